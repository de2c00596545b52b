import { EventEmitter } from 'node:events';
import fc from 'fast-check';
import pino from 'pino';
import type { WebSocket } from 'ws';
import { StaticDiscovery } from '../../supernode/mesh/discovery';
import { acceptPeer, CLOSE_MESH_AUTH, dialPeer, mac } from '../../supernode/mesh/link';
import { type LocalNode, Mesh } from '../../supernode/mesh/mesh';
import {
  type DirectoryRecord,
  encodeForwardFrame,
  type MeshMessage,
  parseHandshake,
  parseMeshMessage,
} from '../../supernode/mesh/wire';
import {
  anyText,
  deeplyNested,
  endpoint,
  hostileJson,
  hostileKey,
  isEndpoint,
  nodeId,
  runs,
  USER_ID,
  userId,
  withKey,
} from './arbitraries';

/**
 * What a node accepts from a mesh peer (docs/architecture.md): the handshake (link.ts), the JSON
 * directory and relay messages and the forward frame (mesh.ts), on random and mutated input.
 */

const NODE_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const SECRET = 's'.repeat(32);
const isUint32 = (v: unknown) => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff;
const nonce43 = fc.string({ unit: fc.constantFrom(...'ab09_-XY'.split('')), minLength: 43, maxLength: 43 });
const macText = fc.string({ unit: fc.constantFrom(...'ab09_-XY'.split('')), minLength: 43, maxLength: 43 });

/** A value that is one of the given shapes, or anything else at all. */
const orJunk = <T>(arbitrary: fc.Arbitrary<T>) =>
  fc.oneof({ weight: 3, arbitrary }, { weight: 1, arbitrary: hostileJson });

/** Random text, hostile JSON, and valid-looking objects with fields replaced, removed or added. */
function texts(valid: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<string> {
  const mutated = fc
    .tuple(
      valid,
      fc.oneof(hostileKey, fc.constantFrom('t', 'r', 'node', 'nonce', 'mac', 'user', 'id')),
      hostileJson,
      fc.boolean(),
    )
    .map(([message, key, value, remove]) => {
      if (!remove) return withKey(message, key, value);
      const copy = { ...message };
      delete copy[key];
      return copy;
    });
  return fc.oneof(
    anyText,
    deeplyNested,
    hostileJson.map((v) => JSON.stringify(v) ?? 'null'),
    valid.map((v) => JSON.stringify(v)),
    mutated.map((v) => JSON.stringify(v)),
  );
}

// ---- handshake ---------------------------------------------------------------------------------

const validHandshake: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ t: fc.constant('challenge'), node: nodeId, nonce: nonce43 }),
  fc.record({ t: fc.constant('auth'), node: nodeId, nonce: nonce43, mac: macText }),
  fc.record({ t: fc.constant('accept'), mac: macText }),
);

function handshakeValid(text: string): boolean {
  let m: Record<string, unknown>;
  try {
    m = JSON.parse(text);
  } catch {
    return false;
  }
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return false;
  const node = typeof m.node === 'string' && NODE_ID.test(m.node);
  if (m.t === 'challenge') return node && typeof m.nonce === 'string';
  if (m.t === 'auth')
    return node && typeof m.nonce === 'string' && m.nonce.length === 43 && typeof m.mac === 'string';
  return m.t === 'accept' && typeof m.mac === 'string';
}

/** Just enough of a ws WebSocket for link.ts: frames in by 'message', frames out recorded. */
class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly sent: string[] = [];
  closedWith: number | undefined;
  send(data: string): void {
    this.sent.push(data);
  }
  close(code: number): void {
    this.closedWith = code;
    this.readyState = 3;
    this.emit('close');
  }
  terminated = false;
  terminate(): void {
    this.terminated = true;
  }
  frame(text: string, binary = false): void {
    this.emit('message', Buffer.from(text), binary);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** What to answer with: a correct message, a correct one with one field changed, or junk. */
type Plan =
  | { kind: 'correct'; binary: boolean }
  | { kind: 'changed'; key: string; value: unknown }
  | { kind: 'junk'; text: string };
const plan = (junk: fc.Arbitrary<string>): fc.Arbitrary<Plan> =>
  fc.oneof(
    fc.record({ kind: fc.constant('correct' as const), binary: fc.boolean() }),
    fc.record({
      kind: fc.constant('changed' as const),
      key: fc.oneof(fc.constantFrom('t', 'node', 'nonce', 'mac'), hostileKey),
      value: orJunk(fc.oneof(nodeId, nonce43, fc.constantFrom('a', 'b', 'challenge', 'auth', 'accept'))),
    }),
    fc.record({ kind: fc.constant('junk' as const), text: junk }),
  );

/** Sends the planned frame; what was sent, as the far end would read it (undefined for binary). */
function send(socket: FakeSocket, p: Plan, correct: Record<string, unknown>): string | undefined {
  const text =
    p.kind === 'junk'
      ? p.text
      : JSON.stringify(p.kind === 'correct' ? correct : withKey(correct, p.key, p.value));
  const binary = p.kind === 'correct' && p.binary;
  socket.frame(text, binary);
  return binary ? undefined : text;
}

/** The fields of a text frame that is a JSON object, else undefined. */
function objectOf(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const m = JSON.parse(text);
    return typeof m === 'object' && m !== null && !Array.isArray(m) ? m : undefined;
  } catch {
    return undefined;
  }
}

// ---- directory and relay messages --------------------------------------------------------------

const record = fc.record({
  user: userId,
  home: nodeId,
  url: fc.oneof(fc.constant('ws://127.0.0.1:7001'), fc.string({ maxLength: 20 })),
  sessions: fc.integer({ min: 1, max: 1000 }),
  endpoints: fc.array(endpoint, { maxLength: 8 }),
  v: fc.oneof(fc.integer({ min: 0 }), fc.constantFrom(Date.now(), Number.MAX_SAFE_INTEGER)),
});

const validMeshMessage: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.constant({ t: 'hb' }),
  fc.record({ t: fc.constant('pub'), r: record }),
  fc.record({ t: fc.constant('unpub'), user: userId, home: nodeId, v: fc.integer({ min: 0 }) }),
  fc.record({ t: fc.constant('lookup'), id: fc.nat(), user: userId }),
  fc.record({ t: fc.constant('found'), id: fc.nat(), records: fc.array(record, { maxLength: 3 }) }),
  fc.record({
    t: fc.constant('relay_r'),
    session: fc.nat(),
    msgId: fc.nat(),
    delivered: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record(
    {
      t: fc.constant('relay_r'),
      session: fc.nat(),
      msgId: fc.nat(),
      code: fc.constantFrom('unknown_recipient', 'recipient_busy'),
      user: userId,
    },
    { requiredKeys: ['t', 'session', 'msgId', 'code'] },
  ),
);

/** A record as docs/architecture.md describes it, with parts clients will see (docs/protocol.md). */
function recordValid(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as Record<string, unknown>;
  return (
    typeof r.user === 'string' &&
    USER_ID.test(r.user) &&
    typeof r.home === 'string' &&
    NODE_ID.test(r.home) &&
    typeof r.url === 'string' &&
    Number.isSafeInteger(r.sessions) &&
    (r.sessions as number) >= 1 &&
    Array.isArray(r.endpoints) &&
    r.endpoints.length <= 8 &&
    r.endpoints.every((e) => isEndpoint(e, false)) &&
    Number.isFinite(r.v)
  );
}

/** Whether a parsed message is well-formed in every field the mesh uses. */
function conforms(m: MeshMessage): boolean {
  switch (m.t) {
    case 'hb':
      return true;
    case 'pub':
      return recordValid(m.r);
    case 'unpub':
      return USER_ID.test(m.user) && NODE_ID.test(m.home) && Number.isFinite(m.v);
    case 'lookup':
      return Number.isSafeInteger(m.id) && m.id >= 0 && USER_ID.test(m.user);
    case 'found':
      return Number.isSafeInteger(m.id) && m.id >= 0 && m.records.every(recordValid);
    case 'relay_r':
      if (!isUint32(m.session) || !isUint32(m.msgId)) return false;
      if ('delivered' in m) return Number.isSafeInteger(m.delivered) && m.delivered >= 1;
      return (
        ['unknown_recipient', 'recipient_busy'].includes(m.code) &&
        (m.user === undefined || USER_ID.test(m.user))
      );
  }
}

/** A lookup answer as docs/protocol.md#lookup_result allows it. */
function answerValid(answer: {
  online: boolean;
  node: string | null;
  sessions: number;
  endpoints: unknown[];
}): boolean {
  return (
    typeof answer.online === 'boolean' &&
    (answer.node === null || typeof answer.node === 'string') &&
    Number.isSafeInteger(answer.sessions) &&
    answer.sessions >= (answer.online ? 1 : 0) &&
    answer.endpoints.length <= 8 &&
    answer.endpoints.every((e) => isEndpoint(e, true))
  );
}

type Internals = {
  onMessage(peer: unknown, text: string): void;
  onForward(peer: unknown, data: Buffer): void;
};

/** A mesh of one (never started), whose directory and relay handlers are fed directly. */
function soloMesh() {
  const delivered: Array<[string, string]> = [];
  const results: Array<[number, number, unknown]> = [];
  const local: LocalNode = {
    presenceOf: () => undefined,
    localUsers: () => [],
    deliver: (from, to) => {
      delivered.push([from, to]);
      return to.length % 3 === 0 ? -1 : to.length % 3 === 1 ? 'busy' : 1;
    },
    forwardResult: (session, msgId, result) => results.push([session, msgId, result]),
  };
  const mesh = new Mesh({
    selfId: 'self',
    selfUrl: 'ws://127.0.0.1:7001',
    host: '127.0.0.1',
    port: 0,
    secret: SECRET,
    discovery: new StaticDiscovery([]),
    replicas: 2,
    heartbeatMs: 1000,
    deadAfterMisses: 3,
    lookupTimeoutMs: 100,
    sendBufferBytes: 1 << 20,
    maxFrameBytes: 65536,
    log: pino({ level: 'silent' }),
    local,
  });
  const replies: string[] = [];
  const peer = {
    id: 'peer',
    socket: { readyState: 1, bufferedAmount: 0, send: (t: string) => replies.push(t) },
  };
  return { mesh, internals: mesh as unknown as Internals, peer, delivered, results, replies };
}

describe('mesh handshake (fuzz)', () => {
  it('parses any text without throwing, accepting exactly the documented shapes, and round-trips', () => {
    fc.assert(
      fc.property(texts(validHandshake), (text) => {
        const parsed = parseHandshake(text);
        expect(parsed !== undefined).toBe(handshakeValid(text));
        if (parsed) expect(parseHandshake(JSON.stringify(parsed))).toEqual(parsed);
      }),
      { numRuns: runs },
    );
    fc.assert(
      fc.property(validHandshake, (m) => {
        expect(parseHandshake(JSON.stringify(m))).toEqual(m);
      }),
      { numRuns: runs },
    );
  });

  it('acceptor: admits exactly a peer that proves the secret; anything else is closed with 4401', async () => {
    await fc.assert(
      fc.asyncProperty(plan(texts(validHandshake)), nodeId, nonce43, async (p, dialer, dialerNonce) => {
        const socket = new FakeSocket();
        const link = acceptPeer(socket as unknown as WebSocket, 'self', SECRET);
        const challenge = JSON.parse(socket.sent[0]);
        expect(challenge).toMatchObject({ t: 'challenge', node: 'self', nonce: expect.any(String) });
        const dial = (node: string) => mac(SECRET, 'dial', challenge.nonce, node, 'self');
        const m = objectOf(
          send(socket, p, { t: 'auth', node: dialer, nonce: dialerNonce, mac: dial(dialer) }),
        );
        // The oracle: link.ts's header comment and docs/architecture.md#members.
        const admitted =
          m?.t === 'auth' &&
          typeof m.node === 'string' &&
          NODE_ID.test(m.node) &&
          m.node !== 'self' &&
          typeof m.nonce === 'string' &&
          m.nonce.length === 43 &&
          m.mac === dial(m.node);
        const result = await link;
        if (admitted) {
          expect(result?.peerId).toBe(m.node);
          expect(socket.closedWith).toBeUndefined();
          expect(JSON.parse(socket.sent[1])).toEqual({
            t: 'accept',
            mac: mac(SECRET, 'accept', m.nonce as string, 'self', m.node as string),
          });
        } else {
          expect(result).toBeUndefined();
          expect(socket.closedWith).toBe(CLOSE_MESH_AUTH);
          expect(socket.sent).toHaveLength(1);
        }
      }),
      { numRuns: Math.max(20, runs / 4) },
    );
  });

  it('dialer: goes on exactly with an acceptor that proves the secret; anything else is closed with 4401', async () => {
    await fc.assert(
      fc.asyncProperty(
        plan(texts(validHandshake)),
        plan(texts(validHandshake)),
        nodeId,
        nonce43,
        async (first, second, acceptor, acceptorNonce) => {
          const socket = new FakeSocket();
          const link = dialPeer(socket as unknown as WebSocket, 'self', SECRET);
          const c = objectOf(send(socket, first, { t: 'challenge', node: acceptor, nonce: acceptorNonce }));
          await tick();
          const challenged =
            c?.t === 'challenge' &&
            typeof c.node === 'string' &&
            NODE_ID.test(c.node) &&
            typeof c.nonce === 'string';
          if (!challenged) {
            expect(await link).toBeUndefined();
            expect(socket.closedWith).toBe(CLOSE_MESH_AUTH);
            expect(socket.sent).toEqual([]);
            return;
          }
          const node = c.node as string;
          const auth = JSON.parse(socket.sent[0]);
          expect(auth).toEqual({
            t: 'auth',
            node: 'self',
            nonce: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
            mac: mac(SECRET, 'dial', c.nonce as string, 'self', node),
          });
          const expectedMac = mac(SECRET, 'accept', auth.nonce, node, 'self');
          const a = objectOf(send(socket, second, { t: 'accept', mac: expectedMac }));
          const result = await link;
          if (a?.t === 'accept' && a.mac === expectedMac) {
            expect(result?.peerId).toBe(node);
            expect(socket.closedWith).toBeUndefined();
          } else {
            expect(result).toBeUndefined();
            expect(socket.closedWith).toBe(CLOSE_MESH_AUTH);
          }
        },
      ),
      { numRuns: Math.max(20, runs / 4) },
    );
  });
});

test('regression: a refused socket stops being read and is cut after a short grace, whatever it keeps sending', async () => {
  jest.useFakeTimers({ doNotFake: ['setImmediate'] });
  try {
    const socket = new FakeSocket();
    socket.close = function (this: FakeSocket, code: number) {
      // Like a peer that ignores the close frame: the socket stays open.
      this.closedWith = code;
    };
    const link = acceptPeer(socket as unknown as WebSocket, 'self', SECRET);
    socket.frame('garbage');
    expect(await link).toBeUndefined();
    expect(socket.closedWith).toBe(CLOSE_MESH_AUTH);
    // Before the fix the listener stayed and queued up to 1024 frames of up to 66 KiB for 30 s.
    expect(socket.listenerCount('message')).toBe(0);
    expect(socket.terminated).toBe(false);
    jest.advanceTimersByTime(2000);
    expect(socket.terminated).toBe(true);
  } finally {
    jest.useRealTimers();
  }
});

describe('mesh directory and relay messages (fuzz)', () => {
  it('parses any text without throwing; what it accepts is well-formed and round-trips', () => {
    fc.assert(
      fc.property(texts(validMeshMessage), (text) => {
        const parsed = parseMeshMessage(text);
        if (!parsed) return;
        expect(conforms(parsed)).toBe(true);
        // encode(decode(text)) is accepted and equal.
        expect(parseMeshMessage(JSON.stringify(parsed))).toEqual(parsed);
      }),
      { numRuns: runs },
    );
  });

  it('accepts every valid message unchanged, and a pub exactly when its record is valid', () => {
    fc.assert(
      fc.property(validMeshMessage, (m) => {
        expect(parseMeshMessage(JSON.stringify(m))).toEqual(m);
      }),
      { numRuns: runs },
    );
    const recordKey = fc.constantFrom(
      'user',
      'home',
      'url',
      'sessions',
      'endpoints',
      'v',
      '__proto__',
      'extra',
    );
    fc.assert(
      fc.property(orJunk(record), recordKey, hostileJson, fc.boolean(), (r, key, value, remove) => {
        let changed: unknown = r;
        if (typeof r === 'object' && r !== null && !Array.isArray(r)) {
          changed = withKey(r, key, value);
          if (remove) delete (changed as Record<string, unknown>)[key];
        }
        const parsed = parseMeshMessage(JSON.stringify({ t: 'pub', r: changed }));
        expect(parsed !== undefined).toBe(recordValid(changed));
      }),
      { numRuns: runs },
    );
  });

  it('keeps the directory as the valid messages say, whatever else a peer sends, and answers clients with valid lookups', async () => {
    const users = ['alice', 'bob', 'carol'];
    const homes = ['n1', 'n2', 'n3'];
    const smallRecord = fc.record({
      user: fc.constantFrom(...users),
      home: fc.constantFrom(...homes),
      url: fc.constantFrom('ws://a', 'ws://b'),
      sessions: orJunk(fc.integer({ min: 1, max: 4 })),
      endpoints: orJunk(fc.array(orJunk(endpoint), { maxLength: 9 })),
      v: orJunk(fc.integer({ min: 0, max: 20 })),
    });
    const step = fc.oneof(
      fc.record({ t: fc.constant('pub'), r: smallRecord }).map((m) => JSON.stringify(m)),
      fc
        .record({
          t: fc.constant('unpub'),
          user: fc.constantFrom(...users),
          home: fc.constantFrom(...homes),
          v: orJunk(fc.integer({ min: 0, max: 20 })),
        })
        .map((m) => JSON.stringify(m)),
      texts(validMeshMessage),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 20 }), async (steps) => {
        const { mesh, internals, peer, replies } = soloMesh();
        // The model: newest version per (user, home); an unpub drops an older record.
        const model = new Map<string, Map<string, DirectoryRecord>>();
        for (const text of steps) {
          expect(() => internals.onMessage(peer, text)).not.toThrow();
          let m: Record<string, unknown>;
          try {
            m = JSON.parse(text);
          } catch {
            continue;
          }
          if (typeof m !== 'object' || m === null) continue;
          if (m.t === 'pub' && recordValid(m.r)) {
            const r = m.r as DirectoryRecord;
            const byHome = model.get(r.user) ?? new Map<string, DirectoryRecord>();
            model.set(r.user, byHome);
            const existing = byHome.get(r.home);
            if (!existing || existing.v < r.v) byHome.set(r.home, r);
          } else if (
            m.t === 'unpub' &&
            typeof m.user === 'string' &&
            USER_ID.test(m.user) &&
            typeof m.home === 'string' &&
            NODE_ID.test(m.home) &&
            Number.isFinite(m.v)
          ) {
            const byHome = model.get(m.user);
            const existing = byHome?.get(m.home);
            if (byHome && existing && existing.v < (m.v as number)) {
              byHome.delete(m.home);
              if (byHome.size === 0) model.delete(m.user);
            }
          }
        }
        for (const user of users) {
          const answer = await mesh.lookup(user);
          expect(answerValid(answer)).toBe(true);
          const records = [...(model.get(user)?.values() ?? [])];
          expect(answer.online).toBe(records.length > 0);
          expect(answer.sessions).toBe(records.reduce((n, r) => n + r.sessions, 0));
        }
        // What this node tells other nodes in answer to a lookup, they accept unchanged.
        for (const text of replies) {
          const reply = parseMeshMessage(text);
          expect(reply).toBeDefined();
          expect(JSON.parse(text)).toEqual(reply);
        }
      }),
      { numRuns: Math.max(20, runs / 4) },
    );
  });

  it('hands the node only well-formed relay results and forwarded frames', () => {
    const frames = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc
        .record({
          flags: fc.nat(255),
          msgId: fc.nat(),
          session: fc.nat(),
          from: anyText,
          to: fc.oneof(userId, anyText),
        })
        .map((f) =>
          encodeForwardFrame(
            f.flags,
            f.msgId,
            f.session,
            f.from.slice(0, 255),
            f.to.slice(0, 255),
            Buffer.from('x'),
          ),
        ),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(texts(validMeshMessage), frames), { maxLength: 10 }), (inputs) => {
        const { internals, peer, delivered, results, replies } = soloMesh();
        for (const input of inputs) {
          if (typeof input === 'string') expect(() => internals.onMessage(peer, input)).not.toThrow();
          else expect(() => internals.onForward(peer, input)).not.toThrow();
        }
        for (const [from, to] of delivered) {
          expect(from).toMatch(USER_ID);
          expect(to).toMatch(USER_ID);
        }
        for (const [session, msgId, result] of results) {
          expect(isUint32(session) && isUint32(msgId)).toBe(true);
          const r = result as { delivered?: number; code?: string };
          if (r.delivered !== undefined)
            expect(Number.isSafeInteger(r.delivered) && r.delivered >= 1).toBe(true);
          else expect(['unknown_recipient', 'recipient_busy']).toContain(r.code);
        }
        // The relay results this node sends back are accepted by the sending node.
        for (const text of replies) expect(parseMeshMessage(text)).toBeDefined();
      }),
      { numRuns: runs },
    );
  });

  // Findings: records were checked for field types only, so a peer's record with endpoints that are not
  // endpoints, or with no sessions, was stored and served to clients in lookup_result.
  test.each([
    [
      'endpoints that are numbers',
      { user: 'bob', home: 'n1', url: 'ws://a', sessions: 1, endpoints: [1], v: 1 },
    ],
    [
      'an endpoint address that is not an IP',
      {
        user: 'bob',
        home: 'n1',
        url: 'ws://a',
        sessions: 1,
        endpoints: [{ address: { x: 1 }, port: 1 }],
        v: 1,
      },
    ],
    ['zero sessions', { user: 'bob', home: 'n1', url: 'ws://a', sessions: 0, endpoints: [], v: 1 }],
    ['a user id with a space', { user: 'b b', home: 'n1', url: 'ws://a', sessions: 1, endpoints: [], v: 1 }],
  ])('regression: a pub whose record has %s is dropped', async (_name, r) => {
    const { mesh, internals, peer } = soloMesh();
    internals.onMessage(peer, JSON.stringify({ t: 'pub', r }));
    expect(await mesh.lookup(r.user)).toEqual({ online: false, node: null, sessions: 0, endpoints: [] });
  });

  // Finding: any number in relay_r's `delivered` reached the client as an ack (`"delivered":-2.5`).
  test.each([-2.5, 0, 1.5, 1e300])('regression: a relay_r with delivered %p is dropped', (delivered) => {
    const { internals, peer, results } = soloMesh();
    internals.onMessage(peer, JSON.stringify({ t: 'relay_r', session: 1, msgId: 5, delivered }));
    internals.onMessage(
      peer,
      JSON.stringify({ t: 'relay_r', session: 'x', msgId: 5, code: 'recipient_busy' }),
    );
    expect(results).toEqual([]);
  });

  test('regression: a mesh message that is JSON null is dropped, not thrown', () => {
    const { internals, peer } = soloMesh();
    expect(() => internals.onMessage(peer, 'null')).not.toThrow();
  });
});
