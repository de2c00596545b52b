import { WebSocket } from 'ws';
import { SESSION_PATH } from '../../supernode/protocol/messages';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys } from '../helpers/node';

const HEARTBEAT_MS = 1000;
let keys: TestKeys;
let running: RunningNode;
beforeAll(async () => {
  keys = await makeTestKeys();
  running = await startTestNode(keys, { heartbeatMs: HEARTBEAT_MS });
});
afterAll(async () => {
  await running.node.close();
  await keys.cleanup();
});

/** A raw ws client registered as `user`; `autoPong: false` plays a peer that stopped answering. */
async function register(user: string, autoPong: boolean): Promise<{ socket: WebSocket; pings: number[] }> {
  const socket = new WebSocket(`${running.url}${SESSION_PATH}`, { autoPong });
  const pings: number[] = [];
  socket.on('ping', () => pings.push(performance.now()));
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', async () => {
      socket.send(JSON.stringify({ type: 'hello', token: await keys.mint(user) }));
    });
    socket.on('message', (data) => {
      if (JSON.parse(String(data)).type === 'welcome') resolve();
    });
  });
  return { socket, pings };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function disconnects(reason: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
  const match = new RegExp(`^supernode_disconnects_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

test('a session that answers pings stays; one that stopped answering is closed within two periods', async () => {
  const before = await disconnects('heartbeat');
  const live = await register('hb-live', true);
  const silent = await register('hb-silent', false);
  const silentClosed = new Promise<number>((resolve) =>
    silent.socket.once('close', () => resolve(performance.now())),
  );
  const started = performance.now();
  const closedAt = await Promise.race([silentClosed, sleep(3 * HEARTBEAT_MS).then(() => Number.NaN)]);
  // Pinged once within a period, found silent at the next ping: at most two periods (plus timer slack).
  expect(closedAt - started).toBeLessThan(2 * HEARTBEAT_MS + 300);
  await sleep(HEARTBEAT_MS);
  expect(live.socket.readyState).toBe(WebSocket.OPEN);
  expect(live.pings.length).toBeGreaterThanOrEqual(2);
  // Once a period, not more: the gaps between pings are about one period.
  for (let i = 1; i < live.pings.length; i++)
    expect(live.pings[i] - live.pings[i - 1]).toBeGreaterThan(HEARTBEAT_MS * 0.8);
  expect(await disconnects('heartbeat')).toBe(before + 1);
  live.socket.close();
});

test('pings to many sessions are spread over the period, not sent in one sweep', async () => {
  const clients = await Promise.all(Array.from({ length: 40 }, (_, i) => register(`hb-many-${i}`, true)));
  const since = performance.now();
  await sleep(HEARTBEAT_MS + 200);
  const firsts = clients.map((c) => c.pings.find((at) => at >= since)).filter((at) => at !== undefined);
  expect(firsts).toHaveLength(40);
  // One sweep would deliver all 40 within a few ms; spread, they cover most of the period.
  expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThan(HEARTBEAT_MS / 2);
  for (const client of clients) client.socket.close();
});
