/**
 * The environment-neutral pieces of the SDK, checked in Node: the relay codec against the protocol's
 * own, the emitter against what Node code expects of an EventEmitter, the Web Storage store, and the
 * WHATWG-WebSocket transport (ws's WebSocket has that API) against a real node.
 */
import { once } from 'node:events';
import fc from 'fast-check';
import WebSocket from 'ws';
import type { Tokens } from '../../supernode/client/auth-client';
import { type WebStorage, WebStorageCredentialStore } from '../../supernode/client/credential-store';
import { Emitter } from '../../supernode/client/emitter';
import { encodeSendFrame, parseDeliverFrame } from '../../supernode/client/relay-codec';
import { SupernodeSession } from '../../supernode/client/session';
import { type WebSocketConstructor, webSocketTransport } from '../../supernode/client/transport';
import {
  encodeRelayFrame,
  FLAG_ACK,
  FRAME_DELIVER,
  FRAME_SEND,
  parseRelayFrame,
} from '../../supernode/protocol/frames';
import { runs } from '../fuzz/arbitraries';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys } from '../helpers/node';

const userId = fc.stringMatching(/^[\x21-\x7e]{1,128}$/);
const payload = fc.uint8Array({ maxLength: 300 });
const msgId = fc.integer({ min: 0, max: 0xffffffff });

describe('relay codec', () => {
  test('a send frame is byte for byte what protocol/frames.ts encodes', () => {
    fc.assert(
      fc.property(fc.boolean(), msgId, userId, payload, (ack, id, to, body) => {
        const ours = encodeSendFrame(ack, id, to, body);
        const theirs = encodeRelayFrame(FRAME_SEND, ack ? FLAG_ACK : 0, id, to, body);
        expect(Buffer.from(ours).equals(theirs)).toBe(true);
      }),
      { numRuns: runs },
    );
  });

  test('a deliver frame parses as protocol/frames.ts parses it, from a Buffer or a plain Uint8Array', () => {
    fc.assert(
      fc.property(msgId, userId, payload, (id, from, body) => {
        const frame = encodeRelayFrame(FRAME_DELIVER, 0, id, from, body);
        const reference = parseRelayFrame(frame, FRAME_DELIVER);
        if (!reference.ok) throw new Error(reference.message);
        for (const bytes of [frame, new Uint8Array(frame)]) {
          const ours = parseDeliverFrame(bytes);
          expect(ours).toEqual({
            from: reference.frame.userId,
            msgId: reference.frame.msgId,
            payload: bytes.subarray(reference.frame.payloadOffset),
          });
        }
        // In Node the payload stays a Buffer, as the Node API has always said.
        expect(Buffer.isBuffer(parseDeliverFrame(frame)?.payload)).toBe(true);
      }),
      { numRuns: runs },
    );
  });

  test('whatever bytes arrive, it accepts exactly the deliver frames protocol/frames.ts accepts', () => {
    // Near misses mostly: the right or a wrong kind and flags, id lengths around the limits, bytes
    // around the printable range.
    const header = fc.tuple(
      fc.constantFrom(FRAME_DELIVER, FRAME_SEND, 0x00, 0xff),
      fc.constantFrom(0, FLAG_ACK, 0x02, 0x80),
      fc.uint8Array({ minLength: 4, maxLength: 4 }),
      fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 126, max: 130 }), fc.nat({ max: 255 })),
    );
    const body = fc.array(fc.oneof(fc.integer({ min: 0x20, max: 0x7f }), fc.nat({ max: 255 })), {
      maxLength: 160,
    });
    fc.assert(
      fc.property(fc.option(header), body, fc.nat({ max: 40 }), (head, rest, offset) => {
        const bytes = head ? [head[0], head[1], ...head[2], head[3], ...rest] : rest;
        // A view that does not start at the buffer's beginning, as a frame inside a larger read.
        const view = new Uint8Array(offset + bytes.length);
        view.set(bytes, offset);
        const data = view.subarray(offset);
        expect(parseDeliverFrame(data) !== undefined).toBe(
          parseRelayFrame(Buffer.from(data), FRAME_DELIVER).ok,
        );
      }),
      { numRuns: runs * 5 },
    );
  });
});

describe('emitter', () => {
  interface Events {
    tick: [number];
    done: [string, number];
  }

  test('on, once, off and emit behave like EventEmitter, and Node helpers accept it', async () => {
    const emitter = new Emitter<Events>();
    const seen: string[] = [];
    const every = (n: number): void => {
      seen.push(`every ${n}`);
    };
    emitter.on('tick', every);
    emitter.once('tick', (n) => seen.push(`once ${n}`));
    expect(emitter.emit('tick', 1)).toBe(true);
    expect(emitter.emit('tick', 2)).toBe(true);
    emitter.off('tick', every);
    expect(emitter.emit('tick', 3)).toBe(false);
    expect(seen).toEqual(['every 1', 'once 1', 'every 2']);

    const done = once(emitter, 'done');
    emitter.emit('done', 'ok', 7);
    await expect(done).resolves.toEqual(['ok', 7]);
    expect(emitter.listenerCount('done')).toBe(0);
  });

  test('a listener added or removed during an emit takes effect at the next emit; once can be removed', () => {
    const emitter = new Emitter<Events>();
    const seen: string[] = [];
    const late = (): void => {
      seen.push('late');
    };
    const onceListener = (): void => {
      seen.push('never');
    };
    emitter.once('done', onceListener);
    emitter.off('done', onceListener);
    emitter.on('tick', () => {
      seen.push('first');
      emitter.on('tick', late);
    });
    emitter.emit('tick', 1);
    emitter.emit('done', 'x', 1);
    expect(seen).toEqual(['first']);
    emitter.emit('tick', 2);
    expect(seen).toEqual(['first', 'first', 'late']);
  });
});

describe('Web Storage credential store', () => {
  class MapStorage implements WebStorage {
    readonly items = new Map<string, string>();
    getItem(key: string): string | null {
      return this.items.get(key) ?? null;
    }
    setItem(key: string, value: string): void {
      this.items.set(key, value);
    }
    removeItem(key: string): void {
      this.items.delete(key);
    }
  }
  const tokens: Tokens = { accessToken: 'a.b.c', refreshToken: 'r'.repeat(43), expiresAt: 1234 };

  test('saves, loads and clears per user; a value of the wrong shape reads as no tokens', async () => {
    const storage = new MapStorage();
    const store = new WebStorageCredentialStore(storage);
    await store.save('alice', tokens);
    await expect(store.load('alice')).resolves.toEqual(tokens);
    await expect(store.load('bob')).resolves.toBeUndefined();
    storage.setItem('supernode-tier:tokens:bob', '{"accessToken":1}');
    await expect(store.load('bob')).resolves.toBeUndefined();
    storage.setItem('supernode-tier:tokens:bob', 'not json');
    await expect(store.load('bob')).resolves.toBeUndefined();
    await store.clear('alice');
    expect(storage.items.has('supernode-tier:tokens:alice')).toBe(false);
  });

  test('without localStorage (Node) and none given, it says so', () => {
    expect(() => new WebStorageCredentialStore()).toThrow('no localStorage in this environment');
  });
});

describe('WHATWG WebSocket transport against a real node', () => {
  let keys: TestKeys;
  let running: RunningNode;
  const sessions: SupernodeSession[] = [];
  // ws's WebSocket offers the browser API (binaryType, onopen, onmessage...), so this runs the
  // browser's code path in Node.
  const transport = webSocketTransport(WebSocket as unknown as WebSocketConstructor);

  beforeAll(async () => {
    keys = await makeTestKeys();
    running = await startTestNode(keys);
  });
  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.close()));
    await running?.node.close();
    await keys?.cleanup();
  });

  test('a session over it says hello, relays binary frames both ways and closes', async () => {
    const alice = await SupernodeSession.connect({
      url: running.url,
      token: await keys.mint('alice'),
      transport,
    });
    const bob = await SupernodeSession.connect({
      url: running.url,
      token: await keys.mint('bob'),
      transport,
    });
    sessions.push(alice, bob);
    expect(alice.welcome).toMatchObject({ type: 'welcome', user: 'alice', node: 'test-node' });
    await expect(alice.lookup('bob')).resolves.toMatchObject({ online: true, sessions: 1 });
    const received = once(bob, 'message');
    await expect(alice.sendWithAck('bob', new TextEncoder().encode('hi bob'))).resolves.toMatchObject({
      delivered: 1,
    });
    const [message] = await received;
    expect(message.from).toBe('alice');
    expect(new TextDecoder().decode(message.payload)).toBe('hi bob');
    expect(() => alice.pauseReading()).toThrow('cannot pause');
    await bob.close();
    expect(bob.isOpen).toBe(false);
    expect(bob.closeCode).toBe(1000);
  });

  test('a refused hello is the same typed error as over ws', async () => {
    await expect(
      SupernodeSession.connect({ url: running.url, token: 'not-a-jwt', transport }),
    ).rejects.toMatchObject({ name: 'SessionError', code: 'token_invalid', closeCode: 4002 });
  });
});
