import { createServer } from 'node:net';
import { freePorts } from '../../supernode/local/fleet';

describe('freePorts', () => {
  it('never hands one port out twice in a process, even before anything binds it', async () => {
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) for (const port of await freePorts(8)) seen.add(port);
    expect(seen.size).toBe(400);
  });

  it("draws from this Jest worker's own slice of 20000-31999, so parallel workers cannot collide", async () => {
    const worker = Number(process.env.JEST_WORKER_ID);
    const start = 20_000 + ((worker - 1) % 4) * 3_000;
    for (const port of await freePorts(100)) {
      expect(port).toBeGreaterThanOrEqual(start);
      expect(port).toBeLessThan(start + 3_000);
    }
  });

  it('skips a port something is listening on', async () => {
    const [taken] = await freePorts(1);
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(taken, '127.0.0.1', resolve));
    try {
      // The port is bound now; whatever comes back is bindable.
      for (const port of await freePorts(20)) {
        expect(port).not.toBe(taken);
        const probe = createServer();
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject);
          probe.listen(port, '127.0.0.1', resolve);
        });
        await new Promise((resolve) => probe.close(resolve));
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
