import { type ChildProcess, spawn } from 'node:child_process';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { SessionError, SupernodeSession } from '../../supernode/client/session';
import type { Drain } from '../../supernode/protocol/messages';
import { stunBinding } from '../../supernode/stun/client';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

let keys: TestKeys;
beforeAll(async () => {
  keys = await makeTestKeys();
});
afterAll(() => keys.cleanup());

async function getJson(
  port: number,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('health and metrics', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startTestNode(keys, { stun: true, stunPort: 0 });
  });
  afterAll(() => running.node.close());

  it('/healthz and /readyz answer small JSON bodies', async () => {
    expect(await getJson(running.port, '/healthz')).toEqual({
      status: 200,
      body: { status: 'ok', node: 'test-node', uptimeS: expect.any(Number) },
    });
    expect(await getJson(running.port, '/readyz')).toEqual({
      status: 200,
      body: { ready: true, reasons: [], node: 'test-node', sessions: 0, capacity: 10_000 },
    });
  });

  it('/metrics counts sessions, registrations, relays, refusals, STUN and event-loop delay', async () => {
    const alice = await connectAs(running, keys, 'alice');
    const bob = await connectAs(running, keys, 'bob');
    await alice.sendWithAck('bob', Buffer.alloc(64));
    await alice.sendWithAck('bob', Buffer.alloc(36));
    await SupernodeSession.connect({ url: running.url, token: await keys.mint('x', { ttlSec: -100 }) }).catch(
      () => {},
    );
    await stunBinding('127.0.0.1', running.stunPort as number);
    const text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
    expect(text).toMatch(/^supernode_sessions 2$/m);
    expect(text).toMatch(/^supernode_registrations_total 2$/m);
    expect(text).toMatch(/^supernode_relayed_messages_total 2$/m);
    expect(text).toMatch(/^supernode_relayed_bytes_total 100$/m);
    expect(text).toMatch(/^supernode_refusals_total\{reason="token_expired"\} 1$/m);
    expect(text).toMatch(/^supernode_stun_total\{outcome="answered"\} 1$/m);
    expect(text).toMatch(/^supernode_event_loop_delay_seconds\{quantile="0.99"\} /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
    await Promise.all([alice.close(), bob.close()]);
  });

  it('CloudWatch figures carry gauges as they are and counters as deltas', () => {
    const samples = running.node.metrics.cloudWatchSamples();
    expect(samples.find((s) => s.name === 'Registrations')?.value).toBe(2);
    expect(running.node.metrics.cloudWatchSamples().find((s) => s.name === 'Registrations')?.value).toBe(0);
    expect(samples.map((s) => s.name)).toEqual(
      expect.arrayContaining(['ConnectedClients', 'SessionsRefused', 'RelayedMessages', 'EventLoopDelayP99']),
    );
  });
});

describe('STUN on more than one process (--stun-processes)', () => {
  let running: RunningNode;
  beforeAll(async () => {
    running = await startTestNode(keys, { stun: true, stunPort: 0, stunProcesses: 2 });
  });
  afterAll(() => running.node.close());

  it("answers on the one port, and /metrics counts the responder's answers too", async () => {
    const answers = 40;
    for (let i = 0; i < answers; i++) await stunBinding('127.0.0.1', running.stunPort as number);
    // Responders report every 500 ms; the count is exact once the last report is in.
    let text = '';
    for (let i = 0; i < 50; i++) {
      text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
      if (text.includes(`supernode_stun_total{outcome="answered"} ${answers}\n`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(text).toMatch(new RegExp(`^supernode_stun_total\\{outcome="answered"\\} ${answers}$`, 'm'));
  });
});
describe('readiness follows the keys', () => {
  it('is not ready and refuses sessions until the key file exists, then becomes ready', async () => {
    const later = join(keys.dir, 'later.json');
    const running = await startTestNode(keys, { jwksFile: later, jwksRefreshMs: 1000 });
    try {
      expect((await getJson(running.port, '/readyz')).body).toMatchObject({
        ready: false,
        reasons: ['keys_not_loaded'],
      });
      const refused = await connectAs(running, keys, 'alice').catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(SessionError);
      expect(refused).toMatchObject({ code: 'keys_unavailable', closeCode: 4004 });
      await rename(keys.jwksFile, later);
      await waitFor(() => running.node.readyState().ready, 5000, 'keys loaded');
      expect((await connectAs(running, keys, 'alice')).user).toBe('alice');
    } finally {
      await rename(later, keys.jwksFile).catch(() => {});
      await running.node.close();
    }
  });
});

describe('drain', () => {
  it('turns /readyz false, tells clients to move with jittered advice, refuses newcomers, then closes', async () => {
    const running = await startTestNode(keys, {
      drainTimeoutMs: 1500,
      alternatives: ['ws://127.0.0.1:7999'],
    });
    const sessions = await Promise.all(['a', 'b', 'c', 'd'].map((u) => connectAs(running, keys, u)));
    const drains = sessions.map((s) => new Promise<Drain>((resolve) => s.once('drain', resolve)));
    const stubborn = sessions[3];
    const stubbornClosed = new Promise<number>((resolve) => stubborn.once('close', resolve));
    const drained = running.node.drain();

    const advice = await Promise.all(drains);
    for (const message of advice) {
      expect(message).toMatchObject({ type: 'drain', alternatives: ['ws://127.0.0.1:7999'] });
      expect(message.retryAfterMs).toBeGreaterThanOrEqual(0);
      expect(message.retryAfterMs).toBeLessThanOrEqual(750);
    }
    expect(new Set(advice.map((m) => m.retryAfterMs)).size).toBeGreaterThan(1);
    expect(await getJson(running.port, '/readyz')).toMatchObject({
      status: 503,
      body: { reasons: ['draining'] },
    });
    const newcomer = await connectAs(running, keys, 'late').catch((e: unknown) => e);
    expect(newcomer).toMatchObject({
      code: 'draining',
      closeCode: 4011,
      alternatives: ['ws://127.0.0.1:7999'],
    });

    // Three clients move on; the fourth ignores the advice and is closed at the deadline.
    await Promise.all(sessions.slice(0, 3).map((s) => s.close()));
    const started = Date.now();
    await drained;
    expect(await stubbornClosed).toBe(1001);
    expect(Date.now() - started).toBeGreaterThan(500);
    expect(running.node.metrics.stats.disconnects.get('drained')).toBe(1);
  });

  it('POST /admin/drain starts a drain from loopback', async () => {
    let drainedCalled = false;
    const running = await startTestNode(keys, {
      drainTimeoutMs: 200,
      onDrained: () => {
        drainedCalled = true;
      },
    });
    const response = await fetch(`http://127.0.0.1:${running.port}/admin/drain`, { method: 'POST' });
    expect(response.status).toBe(202);
    expect(await response.json()).toMatchObject({ draining: true });
    await waitFor(() => drainedCalled, 3000, 'drain finished');
  });
});

describe('the node process', () => {
  const cli = join(__dirname, '../../supernode/bin/supernode.cjs');
  let child: ChildProcess | undefined;
  afterEach(() => child?.kill('SIGKILL'));

  it('drains on SIGTERM and exits 0 once its clients have moved', async () => {
    child = spawn(process.execPath, [cli, 'node', '--port', '0', '--no-stun', '--jwks-file', keys.jwksFile], {
      env: { ...process.env, SUPERNODE_LOG_LEVEL: 'info', SUPERNODE_DRAIN_TIMEOUT_MS: '10000' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const listening = buffered.split('\n').find((line) => line.includes('supernode listening'));
        if (listening) resolve((JSON.parse(listening) as { port: number }).port);
      });
      child?.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
    });
    const session = await SupernodeSession.connect({
      url: `ws://127.0.0.1:${port}`,
      token: await keys.mint('alice'),
    });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', resolve));
    const drain = new Promise<Drain>((resolve) => session.once('drain', resolve));
    child.kill('SIGTERM');
    await drain;
    await session.close(); // the client moves elsewhere
    expect(await exited).toBe(0);
  });
});
