/**
 * The demo app's "Direct (WebRTC)" in headless Chromium against a real tier: the auth service
 * (in-process) handing out `iceServers` for both supernodes' TURN, two supernodes as child processes
 * meshed over loopback with `--turn`, the demo on its own origin. Alice and Bob, on different nodes,
 * open a relay-only data channel through the page's UI (signalled through the tier) and chat over it;
 * the nodes' own TURN counters say the bytes went through them. The tests share the tier, in order.
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { Page } from 'playwright-core';
import { type FleetNode, freePorts } from '../../supernode/local/fleet';
import { DEMO_HOST, type DemoTier, startDemoTier } from './demo-tier';

const HOST = DEMO_HOST;
const MESH_SECRET = 'mesh-secret-for-webrtc-demo-0123456789';
const TURN_SECRET = randomBytes(24).toString('base64url');
const PASSWORD = 'correct-horse-1';
const DOM_WAIT = { timeout: 20_000 };
/** Relay ports per node: disjoint ranges, so a relayed address names the node that allocated it. */
const RELAY_PORTS_PER_NODE = 64;

/**
 * Chromium leaves loopback out of the networks WebRTC gathers on; on a host whose only interface is
 * loopback it would gather nothing (see test/webrtc/chromium.test.ts).
 */
const CHROMIUM_ARGS = [
  '--allow-loopback-in-peer-connection',
  // A microphone for the audio call: Chromium's fake device (a beep), granted without a prompt.
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
];

jest.setTimeout(90_000);

interface TurnNode extends FleetNode {
  turnPort: number;
  relay: { min: number; max: number };
}

let tier: DemoTier<TurnNode>;
let fleet: TurnNode[] = [];
const pages: Record<'alice' | 'bob', Page> = {} as Record<'alice' | 'bob', Page>;

async function metricsOf(node: TurnNode): Promise<string> {
  return (await fetch(`http://${HOST}:${node.port}/metrics`)).text();
}

/** One sample of the node's /metrics, `labels` as written there (e.g. `direction="to_peer"`), or 0. */
async function sample(node: TurnNode, name: string, labels?: string): Promise<number> {
  const text = await metricsOf(node);
  const series = labels ? `${name}\\{${labels}\\}` : name;
  const match = new RegExp(`^${series} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** Payload bytes the TURN servers of both nodes relayed in one direction. */
async function relayedBytes(direction: 'to_peer' | 'to_client'): Promise<number> {
  const each = await Promise.all(
    fleet.map((node) => sample(node, 'supernode_turn_relayed_bytes_total', `direction="${direction}"`)),
  );
  return each.reduce((sum, bytes) => sum + bytes, 0);
}

const passwordLogins = () => tier.authRequests('login');
const openPage = (nodeIndex: number) => tier.openPage(nodeIndex);

/** What the page says about its connection and its direct call, for the message of a failed wait. */
async function pageState(page: Page): Promise<string> {
  const status = await page.textContent('#status').catch(() => '?');
  const direct = await page.textContent('#direct').catch(() => '?');
  const events = await page
    .locator('#events li')
    .allTextContents()
    .catch(() => []);
  return `status: ${status}; direct: ${direct?.replace(/\s+/g, ' ')}; events, newest first: ${events.join(' | ')}`;
}

async function waitFor(page: Page, selector: string, what: string): Promise<void> {
  try {
    await page.waitForSelector(selector, DOM_WAIT);
  } catch (error) {
    throw new Error(`${what}: ${await pageState(page)}`, { cause: error });
  }
}

async function connectedTo(page: Page, node: FleetNode): Promise<void> {
  await waitFor(
    page,
    `#status[data-state="connected"][data-node="${node.id}"]`,
    `not connected to ${node.id}`,
  );
}

interface OpenCall {
  id: string;
  localType: string;
  remoteType: string;
  local: string;
  remote: string;
}

async function callOnPage(page: Page): Promise<OpenCall> {
  return page.$eval('#direct', (panel) => {
    const data = (panel as unknown as { dataset: Record<string, string | undefined> }).dataset;
    return {
      id: data.call ?? '',
      localType: data.localType ?? '',
      remoteType: data.remoteType ?? '',
      local: data.localAddress ?? '',
      remote: data.remoteAddress ?? '',
    };
  });
}

/** The call the page shows once it is open with its selected pair known; not the call `previous`. */
async function openCall(page: Page, previous: string): Promise<OpenCall> {
  await waitFor(
    page,
    `#direct[data-state="open"]:not([data-call="${previous}"])[data-local-type]:not([data-local-type=""])`,
    'no new open call',
  );
  return callOnPage(page);
}

/** The node whose relay range holds `address` (host:port), or undefined. */
function relayingNode(address: string): TurnNode | undefined {
  const [host, port] = [
    address.slice(0, address.lastIndexOf(':')),
    Number(address.slice(address.lastIndexOf(':') + 1)),
  ];
  if (host !== HOST) return undefined;
  return fleet.find((node) => port >= node.relay.min && port <= node.relay.max);
}

async function sayDirect(page: Page, text: string): Promise<void> {
  await page.fill('#message-input', text);
  await page.click('#send-button');
  await waitFor(
    page,
    `#messages .message.out[data-via="webrtc"][data-delivery="sent"]:has-text(${JSON.stringify(text.slice(0, 40))})`,
    `not sent over WebRTC: ${text.slice(0, 40)}`,
  );
}

async function heardDirect(page: Page, text: string): Promise<void> {
  const selector = `#messages .message.in[data-via="webrtc"]:has-text(${JSON.stringify(text.slice(0, 40))})`;
  await waitFor(page, selector, `not received over WebRTC: ${text.slice(0, 40)}`);
  const item = page.locator(selector).last();
  expect(await item.locator('.meta').textContent()).toBe('via WebRTC (TURN relay)');
  // The whole text, not only its start: the data channel carries messages bigger than one datagram.
  expect((await item.textContent())?.startsWith(text)).toBe(true);
}

/** Opens the call from Alice's page and checks, on both pages, that it is relay to relay on our nodes. */
async function callBob(button: '.direct-button' | '.audio-button'): Promise<void> {
  const previous = { alice: (await callOnPage(pages.alice)).id, bob: (await callOnPage(pages.bob)).id };
  await pages.alice.click(`#contacts li[data-user="bob"] ${button}`);
  const alice = await openCall(pages.alice, previous.alice);
  const bob = await openCall(pages.bob, previous.bob);
  // One call, the same on both pages.
  expect(bob.id).toBe(alice.id);
  for (const [who, pair] of [
    ['alice', alice],
    ['bob', bob],
  ] as const) {
    expect({ who, localType: pair.localType, remoteType: pair.remoteType }).toEqual({
      who,
      localType: 'relay',
      remoteType: 'relay',
    });
    // Both ends of the selected pair are relayed addresses one of our two nodes allocated.
    expect({ who, local: relayingNode(pair.local)?.id, remote: relayingNode(pair.remote)?.id }).toEqual({
      who,
      local: expect.any(String),
      remote: expect.any(String),
    });
  }
  // (Not that each side's remote is exactly the other's local: either may be switching to another
  // relay-relay pair just now, see test/webrtc/expect-relay.ts.)
  // The nodes holding those relayed addresses count the allocations.
  for (const address of [alice.local, bob.local]) {
    const node = relayingNode(address) as TurnNode;
    const allocations = await sample(node, 'supernode_turn_allocations');
    expect({ node: node.id, allocated: allocations > 0 }).toEqual({ node: node.id, allocated: true });
  }
}

/** Messages both ways over the open call; the TURN servers relayed at least their bytes each way. */
async function chatDirect(fromAlice: string, fromBob: string): Promise<void> {
  const toPeerBefore = await relayedBytes('to_peer');
  const toClientBefore = await relayedBytes('to_client');
  await sayDirect(pages.alice, fromAlice);
  await heardDirect(pages.bob, fromAlice);
  await sayDirect(pages.bob, fromBob);
  await heardDirect(pages.alice, fromBob);
  // Relay to relay: each message leaves the sender's allocation toward the peer and reaches the
  // receiver's allocation from it (DTLS and SCTP only add to its size).
  const sent = fromAlice.length + fromBob.length;
  expect((await relayedBytes('to_peer')) - toPeerBefore).toBeGreaterThan(sent);
  expect((await relayedBytes('to_client')) - toClientBefore).toBeGreaterThan(sent);
}

beforeAll(async () => {
  tier = await startDemoTier<TurnNode>({
    name: 'webrtc-demo',
    meshSecret: MESH_SECRET,
    domTimeoutMs: DOM_WAIT.timeout,
    chromiumArgs: CHROMIUM_ARGS,
    extendNodes: async (nodes) => {
      const turnPorts = await freePorts(nodes.length);
      const relayBase = 20_000 + randomInt(12_000 - 2 * RELAY_PORTS_PER_NODE);
      return nodes.map((node, i) => ({
        ...node,
        turnPort: turnPorts[i],
        relay: {
          min: relayBase + i * RELAY_PORTS_PER_NODE,
          max: relayBase + (i + 1) * RELAY_PORTS_PER_NODE - 1,
        },
      }));
    },
    authOptions: (nodes) => ({
      // As the local tier does: every node's TURN, over UDP and TCP.
      turnUrls: nodes.flatMap((node) => [
        `turn:${HOST}:${node.turnPort}?transport=udp`,
        `turn:${HOST}:${node.turnPort}?transport=tcp`,
      ]),
      turnSecret: TURN_SECRET,
    }),
    nodeEnv: (node) => ({
      SUPERNODE_TURN: 'true',
      SUPERNODE_TURN_SECRET: TURN_SECRET,
      SUPERNODE_STUN_HOST: HOST,
      SUPERNODE_STUN_PORT: String(node.turnPort),
      SUPERNODE_TURN_MIN_PORT: String(node.relay.min),
      SUPERNODE_TURN_MAX_PORT: String(node.relay.max),
      // Both browsers run here, so each relayed address (the other's peer address) is loopback,
      // which the default policy refuses; this opens exactly that address.
      SUPERNODE_TURN_ALLOW_PEERS: HOST,
    }),
  });
  fleet = tier.fleet;
}, 40_000);

afterAll(() => tier?.close());

test('alice and bob on two nodes open a relay-only data channel from the demo and chat over it both ways', async () => {
  pages.alice = await openPage(1);
  pages.bob = await openPage(2);
  for (const [page, user] of [
    [pages.alice, 'alice'],
    [pages.bob, 'bob'],
  ] as const) {
    await page.fill('#username', user);
    await page.fill('#password', PASSWORD);
    await page.click('#signup-button');
  }
  await connectedTo(pages.alice, fleet[0]);
  await connectedTo(pages.bob, fleet[1]);
  await pages.alice.fill('#contact-name', 'bob');
  await pages.alice.click('#add-contact button');
  await waitFor(pages.alice, '#contacts li[data-user="bob"][data-presence="online"]', 'bob not online');
  expect(await sample(fleet[0], 'supernode_turn_allocations')).toBe(0);
  expect(await sample(fleet[1], 'supernode_turn_allocations')).toBe(0);

  await callBob('.direct-button');
  // Bob's page answered the call it heard about through the tier and opened the conversation.
  await waitFor(
    pages.bob,
    '#contacts li[data-user="alice"][data-direct="open"]',
    'alice not in bob’s people',
  );
  expect(await pages.alice.textContent('#direct')).toContain("iceTransportPolicy: 'relay'");
  await chatDirect(`Hi Bob, straight over WebRTC. ${'a'.repeat(1500)}`, 'Hello Alice, relayed by TURN.');
  expect(tier.pageErrors).toEqual([]);
});

test('after a reload the page resumes without the password and still has the iceServers for a new call', async () => {
  const loginsBefore = await passwordLogins();
  await pages.alice.reload();
  await pages.alice.waitForSelector('body[data-ready="true"]', DOM_WAIT);
  await connectedTo(pages.alice, fleet[0]);
  expect(await pages.alice.textContent('#status')).toContain('resumed with stored tokens');
  expect(await passwordLogins()).toBe(loginsBefore);

  // Bob's page still holds the old call (its end goes when ICE notices); the new offer replaces it.
  await callBob('.direct-button');
  await chatDirect('Back after a reload, same TURN credentials.', `Welcome back. ${'b'.repeat(1200)}`);
  expect(await passwordLogins()).toBe(loginsBefore);
  expect(tier.pageErrors).toEqual([]);
});

test('an audio call where the browser allows it: Chromium’s fake microphones, audio both ways through TURN', async () => {
  const toPeerBefore = await relayedBytes('to_peer');
  await callBob('.audio-button');
  // Packet counts from each page's own RTCPeerConnection stats, as the page shows them.
  for (const page of [pages.alice, pages.bob]) {
    try {
      await page.waitForFunction(
        "(({ audioSent, audioReceived }) => Number(audioSent) > 0 && Number(audioReceived) > 0)(document.querySelector('#direct').dataset)",
        undefined,
        DOM_WAIT,
      );
    } catch (error) {
      throw new Error(`no audio both ways: ${await pageState(page)}`, { cause: error });
    }
    expect(await page.textContent('#direct-audio')).toMatch(
      /^Audio through TURN: \d+ packets sent, \d+ received$/,
    );
  }
  expect(await relayedBytes('to_peer')).toBeGreaterThan(toPeerBefore);
  // The data channel of the same call still carries the chat.
  await chatDirect('Can you hear the beep?', 'Loud and clear, through the relay.');
  expect(tier.pageErrors).toEqual([]);
});
