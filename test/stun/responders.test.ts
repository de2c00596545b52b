import dgram from 'node:dgram';
import { stunBinding } from '../../supernode/stun/client';
import { encodeBindingRequest, parseBindingResponse } from '../../supernode/stun/codec';
import { type StunOutcome, StunServer, type StunServerDropReason } from '../../supernode/stun/server';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks this process's event loop: only another process can read the shared socket meanwhile. */
function blockFor(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function openProbe(): Promise<{ socket: dgram.Socket; answers: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  const answers: Buffer[] = [];
  socket.on('message', (message) => answers.push(message));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { socket, answers };
}

async function waitUntil(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('StunServer with responder processes', () => {
  let server: StunServer;
  let port: number;
  let outcomes: Array<[StunOutcome, StunServerDropReason | undefined, number]>;
  const warnings: string[] = [];

  beforeEach(async () => {
    outcomes = [];
    warnings.length = 0;
    server = new StunServer({
      host: '127.0.0.1',
      port: 0,
      software: 'responder-test',
      processes: 3,
      log: { warn: (_fields, message) => warnings.push(String(message)) },
      onOutcome: (outcome, reason, count) => outcomes.push([outcome, reason, count]),
    });
    ({ port } = await server.start());
  });

  afterEach(() => server.close());

  it('starts the extra processes on the one socket', () => {
    expect(server.processes).toBe(3);
    expect(server.responderPids).toHaveLength(2);
    for (const pid of server.responderPids) expect(alive(pid)).toBe(true);
    expect(server.responderPids).not.toContain(process.pid);
  });

  it('answers from the responders while this process cannot read, and reports their counts', async () => {
    const probe = await openProbe();
    const requests = 200;
    const sent = Array.from({ length: requests }, () => encodeBindingRequest());
    const send = (datagram: Buffer) =>
      new Promise<void>((resolve, reject) =>
        probe.socket.send(datagram, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      );
    // Sent for real (the callbacks run after the kernel took each datagram) before the loop is blocked.
    await Promise.all([...sent.map(send), send(Buffer.from('not stun at all, but 20 bytes or more'))]);
    // Every request is read and answered by a responder while this event loop is stuck.
    blockFor(500);
    await waitUntil(() => probe.answers.length === requests);
    const byTransaction = new Map(
      probe.answers.map((answer) => [answer.subarray(8, 20).toString('hex'), answer]),
    );
    for (const request of sent) {
      const answer = byTransaction.get(request.subarray(8, 20).toString('hex'));
      const mapped = answer && parseBindingResponse(answer, request.subarray(8, 20));
      expect(mapped).toMatchObject({ address: '127.0.0.1', port: probe.socket.address().port });
    }
    await waitUntil(() => server.stats.answered === requests && server.stats.dropped === 1);
    // This loop may have read a few while the sends completed; the rest can only be the responders'.
    expect(server.stats.fromResponders).toBeGreaterThan(requests / 2);
    const answered = outcomes
      .filter(([outcome]) => outcome === 'answered')
      .reduce((n, [, , count]) => n + count, 0);
    expect(answered).toBe(requests);
    expect(outcomes.find(([outcome]) => outcome === 'dropped')?.[1]).toBeDefined();
    probe.socket.close();
  });

  it('keeps answering in this process when a responder dies, and says so', async () => {
    const [victim] = server.responderPids;
    process.kill(victim, 'SIGKILL');
    await waitUntil(() => server.processes === 2);
    expect(warnings).toContain('stun responder exited; not replaced');
    const reply = await stunBinding('127.0.0.1', port, { timeoutMs: 2000 });
    expect(reply.address).toBe('127.0.0.1');
  });

  it("ignores a process group's SIGTERM and SIGINT, so STUN keeps answering while the node drains", async () => {
    const pids = server.responderPids;
    for (const pid of pids) {
      process.kill(pid, 'SIGTERM');
      process.kill(pid, 'SIGINT');
    }
    await sleep(300);
    expect(server.processes).toBe(3);
    for (const pid of pids) expect(alive(pid)).toBe(true);
    await server.close();
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('ends its responders on close', async () => {
    const pids = server.responderPids;
    await server.close();
    expect(server.processes).toBe(1);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });
});

it('refuses a process count out of range at construction', () => {
  for (const processes of [0, 65, 1.5])
    expect(() => new StunServer({ host: '127.0.0.1', port: 0, processes })).toThrow(RangeError);
});
