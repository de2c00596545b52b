/**
 * docs/protocol.md against the code, so the document a client is written from cannot drift: the error
 * and close-code tables, the message types, the JSON examples (compared with messages real nodes
 * send, over real WebSockets, with and without a mesh) and the local tier's ports.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { authOptionTable } from '../../supernode/config/auth-options';
import { consoleOptionTable } from '../../supernode/config/console-options';
import { nodeOptionTable } from '../../supernode/config/node-options';
import { freePorts } from '../../supernode/local/fleet';
import { runLocalTier } from '../../supernode/local/tier';
import { MESH_PATH } from '../../supernode/mesh/link';
import { encodeRelayFrame, FLAG_ACK, FRAME_SEND } from '../../supernode/protocol/frames';
import {
  type ClientMessage,
  ErrorCodes,
  parseClientMessage,
  SESSION_PATH,
  type ServerMessage,
} from '../../supernode/protocol/messages';
import {
  makeTestKeys,
  type RawConnection,
  type RunningNode,
  rawConnect,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';
import { wsFrame } from '../hostile/hostile';
import {
  brokenLinks,
  cell,
  codeBlocks,
  firstTable,
  headings,
  inlineCode,
  readDoc,
  routesIn,
  section,
  shapeOf,
} from './markdown';

const doc = readDoc('protocol.md');
const MESH_SECRET = 'mesh-secret-of-the-protocol-docs-test-0123456789';

/**
 * The message types, checked by tsc: adding a type to ServerMessage or ClientMessage without adding it
 * here fails `npm run typecheck`, and the tests below then want it documented.
 */
const SERVER_TYPES = {
  error: true,
  welcome: true,
  lookup_result: true,
  pong: true,
  ack: true,
  drain: true,
} as const satisfies Record<ServerMessage['type'], true>;
const CLIENT_TYPES = {
  hello: true,
  endpoints: true,
  lookup: true,
  ping: true,
} as const satisfies Record<ClientMessage['type'], true>;

/** The `type` literals of the interfaces in `export type ServerMessage = A | B | ...`, read from the source. */
function serverMessageTypesInSource(): string[] {
  const source = readFileSync(join(__dirname, '../../supernode/protocol/messages.ts'), 'utf8');
  const union = /export type ServerMessage\s*=([^;]+);/.exec(source);
  if (!union) throw new Error('ServerMessage not found in messages.ts');
  return union[1]
    .split('|')
    .map((name) => name.trim())
    .filter(Boolean)
    .map((name) => {
      const body = new RegExp(`export interface ${name}\\s*\\{\\s*type:\\s*'([a-z_]+)'`).exec(source);
      if (!body) throw new Error(`no type literal for ${name} in messages.ts`);
      return body[1];
    });
}

/** Documented message types: the `code` headings of a section. */
const documentedTypes = (heading: string) =>
  headings(section(doc, heading), 3)
    .filter((h) => h.startsWith('`'))
    .map((h) => h.replace(/`/g, ''));

/** The JSON example under each `### \`type\`` heading of the node-to-client section. */
function examples(): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const text = section(doc, '## Control messages: node to client');
  for (const type of documentedTypes('## Control messages: node to client')) {
    const sub = section(text, `### \`${type}\``);
    const [block] = codeBlocks(sub, 'json');
    const inline = inlineCode(sub).find((code) => code.startsWith('{'));
    const json = block ?? inline;
    if (json) out.set(type, JSON.parse(json) as Record<string, unknown>);
  }
  return out;
}

/** The control messages of the worked example that are complete JSON (not those shortened with ...). */
function workedExampleMessages(): Array<Record<string, unknown>> {
  return inlineCode(section(doc, '## Worked example'))
    .filter((code) => code.startsWith('{"type":') && !code.includes('...'))
    .map((code) => JSON.parse(code) as Record<string, unknown>);
}

describe('error codes (docs/protocol.md#error-codes)', () => {
  const table = firstTable(section(doc, '## Error codes'));
  const documented = new Map(
    table.rows.map((row) => [cell(table, row, 'Code').replace(/`/g, ''), cell(table, row, 'Close code')]),
  );

  it('lists every code of ErrorCodes, and nothing else', () => {
    expect([...documented.keys()].sort()).toEqual(Object.keys(ErrorCodes).sort());
  });

  it.each(Object.entries(ErrorCodes))('%s has its close code from ErrorCodes (%d)', (code, closeCode) => {
    const documentedClose = documented.get(code) ?? '';
    // The cell starts with the close code, or says "not closed" for the codes that leave a session open.
    const expected = closeCode === 0 ? 'not closed' : String(closeCode);
    expect(documentedClose.match(/^(\d{4}\b|not closed\b)/)?.[1]).toBe(expected);
  });
});

describe('message types', () => {
  it('documents every ServerMessage type under "Control messages: node to client", and no other', () => {
    const inSource = serverMessageTypesInSource();
    expect(inSource.sort()).toEqual(Object.keys(SERVER_TYPES).sort());
    expect(documentedTypes('## Control messages: node to client').sort()).toEqual(inSource.sort());
  });

  it('documents every client message type the node accepts, and no other', () => {
    const documented = documentedTypes('## Control messages: client to node');
    expect(documented.sort()).toEqual(Object.keys(CLIENT_TYPES).sort());
    for (const type of documented) {
      // A known type with missing fields is bad_message; an unknown one would be unsupported.
      expect(parseClientMessage(JSON.stringify({ type }))).toMatchObject({ ok: false, code: 'bad_message' });
    }
  });

  it('every client message example parses as the node parses it', () => {
    const text = section(doc, '## Control messages: client to node');
    for (const type of documentedTypes('## Control messages: client to node')) {
      const sub = section(text, `### \`${type}\``);
      const example = [...codeBlocks(sub, 'json'), ...inlineCode(sub)].find((code) => code.startsWith('{'));
      expect(example).toBeDefined();
      // The hello example's token is a placeholder, still a string: the shape is what is checked.
      expect(parseClientMessage(example as string)).toMatchObject({ ok: true, message: { type } });
    }
  });

  it('has a JSON example for each node message, of its own type', () => {
    const found = examples();
    expect([...found.keys()].sort()).toEqual(Object.keys(SERVER_TYPES).sort());
    for (const [type, example] of found) expect(example.type).toBe(type);
    const errorFields = firstTable(
      section(section(doc, '## Control messages: node to client'), '### `error`'),
    )
      .rows.map((row) => row[0].replace(/`/g, ''))
      .concat('type');
    for (const key of Object.keys(found.get('error') ?? {})) expect(errorFields).toContain(key);
  });
});

describe('against real nodes', () => {
  let keys: TestKeys;
  let plain: RunningNode;
  const meshed: RunningNode[] = [];
  const open: RawConnection[] = [];

  /** Connects and says hello; resolves with the connection and its welcome. */
  async function session(
    running: RunningNode,
    user: string,
    endpoints?: unknown[],
  ): Promise<{ connection: RawConnection; welcome: Record<string, unknown> }> {
    const connection = await rawConnect(running);
    open.push(connection);
    connection.socket.send(JSON.stringify({ type: 'hello', token: await keys.mint(user), endpoints }));
    const welcome = await connection.next();
    expect(welcome.type).toBe('welcome');
    return { connection, welcome };
  }

  let lookupId = 100;
  async function lookup(connection: RawConnection, user: string): Promise<Record<string, unknown>> {
    const id = lookupId++;
    connection.socket.send(JSON.stringify({ type: 'lookup', id, user }));
    const answer = await connection.next();
    expect(answer).toMatchObject({ type: 'lookup_result', id, user });
    return answer;
  }

  /** Looks up until the directory has the record (it arrives one mesh message after the welcome). */
  async function lookupOnline(connection: RawConnection, user: string): Promise<Record<string, unknown>> {
    const deadline = Date.now() + 3000;
    for (;;) {
      const answer = await lookup(connection, user);
      if (answer.online || Date.now() > deadline) return answer;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  beforeAll(async () => {
    keys = await makeTestKeys();
    plain = await startTestNode(keys, { nodeId: 'plain' });
    // Ports chosen up front and public URLs given: each node's URL in lookups is then its real one.
    const [portA, portB, meshA, meshB] = await freePorts(4);
    const peers = [`a@ws://127.0.0.1:${meshA}`, `b@ws://127.0.0.1:${meshB}`];
    // b first: the smaller id dials, so a's first dial then finds b listening (no retry backoff).
    for (const [id, port, meshPort] of [
      ['b', portB, meshB],
      ['a', portA, meshA],
    ] as const) {
      meshed.unshift(
        await startTestNode(keys, {
          nodeId: id,
          port,
          publicUrl: `ws://127.0.0.1:${port}`,
          mesh: true,
          meshPort,
          meshPeers: peers,
          meshSecret: MESH_SECRET,
          meshHeartbeatMs: 100,
        }),
      );
    }
    await waitFor(() => meshed.every((n) => n.node.mesh?.members().length === 2), 5000, 'the mesh');
  });
  afterAll(async () => {
    for (const connection of open) connection.socket.terminate();
    await Promise.all([plain, ...meshed].map((n) => n?.node.close()));
    await keys?.cleanup();
  });

  describe('lookup_result (docs/protocol.md#lookup_result)', () => {
    const example = () => examples().get('lookup_result') as Record<string, unknown>;
    const endpoint = { address: '198.51.100.7', port: 40000, kind: 'srflx' };

    it('the example has exactly the fields, in the order, of what a node sends, without a mesh', async () => {
      await session(plain, 'bob', [endpoint]);
      const { connection } = await session(plain, 'alice');
      const real = await lookup(connection, 'bob');
      expect(shapeOf(example())).toEqual(shapeOf(real));
      expect(real).toMatchObject({ online: true, node: plain.node.config.publicUrl, sessions: 1 });
      expect(real.endpoints).toEqual([endpoint]);
    });

    it('and with a mesh, across nodes: node is the home node, sessions and endpoints cover every home', async () => {
      const [a, b] = meshed;
      await session(b, 'bob', [endpoint]);
      const { connection: alice } = await session(a, 'alice');
      const across = await lookupOnline(alice, 'bob');
      expect(shapeOf(example())).toEqual(shapeOf(across));
      expect(across).toMatchObject({ online: true, node: b.node.config.publicUrl, sessions: 1 });
      // Bob on both nodes: the asked node names itself, the sessions add up, its endpoints come first.
      const here = { address: '203.0.113.9', port: 5000 };
      await session(a, 'bob', [here]);
      const both = await lookup(alice, 'bob');
      expect(both).toMatchObject({ online: true, node: a.node.config.publicUrl, sessions: 2 });
      expect(both.endpoints).toEqual([here, endpoint]);
    });

    it('without a mesh a lookup sees only the node asked', async () => {
      await session(meshed[1], 'carol');
      const { connection } = await session(plain, 'dave');
      expect(await lookup(connection, 'carol')).toEqual({
        type: 'lookup_result',
        id: lookupId - 1,
        user: 'carol',
        online: false,
        node: null,
        sessions: 0,
        endpoints: [],
      });
    });

    it('the worked example: its hello and lookup get exactly the documented lookup_result', async () => {
      // The shortened welcome ({...,...}) is not JSON; the hello only has a shortened token string.
      const messages = inlineCode(section(doc, '## Worked example'))
        .filter((code) => code.startsWith('{"type":') && !code.includes(',...}'))
        .map((code) => JSON.parse(code) as Record<string, unknown>);
      const hello = messages.find((m) => m.type === 'hello') as Record<string, unknown>;
      const request = messages.find((m) => m.type === 'lookup') as Record<string, unknown>;
      const documented = messages.find((m) => m.type === 'lookup_result') as Record<string, unknown>;
      const running = await startTestNode(keys, { nodeId: 'worked' });
      try {
        const bob = await rawConnect(running);
        open.push(bob);
        // The documented token is shortened; the rest of the hello is sent as written.
        bob.socket.send(JSON.stringify({ ...hello, token: await keys.mint('bob') }));
        expect(await bob.next()).toMatchObject({ type: 'welcome', user: 'bob' });
        const { connection: alice } = await session(running, 'alice');
        alice.socket.send(JSON.stringify(request));
        const real = await alice.next();
        // The example runs on ws://127.0.0.1:7001; this node listens elsewhere.
        expect(real.node).toBe(running.node.config.publicUrl);
        expect({ ...real, node: documented.node }).toEqual(documented);
        expect(JSON.stringify({ ...real, node: documented.node })).toBe(JSON.stringify(documented));
      } finally {
        await running.node.close();
      }
    });
  });

  it('the welcome, pong, ack, error and drain examples have the fields of real messages', async () => {
    const running = await startTestNode(keys, {
      nodeId: 'drained',
      drainTimeoutMs: 200,
      alternatives: ['ws://127.0.0.1:7002'],
    });
    const { connection: bob, welcome } = await session(running, 'bob');
    const { connection: alice } = await session(running, 'alice');
    const documented = examples();
    expect(shapeOf(documented.get('welcome'))).toEqual(shapeOf(welcome));
    alice.socket.send(JSON.stringify({ type: 'ping', id: 18 }));
    expect(shapeOf(documented.get('pong'))).toEqual(shapeOf(await alice.next()));
    alice.socket.send(encodeRelayFrame(FRAME_SEND, FLAG_ACK, 5, 'bob', Buffer.from('hi')));
    expect(shapeOf(documented.get('ack'))).toEqual(shapeOf(await alice.next()));
    alice.socket.send(encodeRelayFrame(FRAME_SEND, 0, 6, 'carol', Buffer.from('hi')));
    const error = await alice.next();
    const worked = workedExampleMessages();
    expect(worked.find((m) => m.type === 'error')).toEqual(error);
    expect(shapeOf(worked.find((m) => m.type === 'ack'))).toEqual(shapeOf(documented.get('ack')));
    const drained = running.node.drain();
    const drain = await bob.next();
    expect(shapeOf(documented.get('drain'))).toEqual(shapeOf(drain));
    expect(shapeOf(worked.find((m) => m.type === 'drain'))).toEqual(shapeOf(drain));
    // The drain deadline: still-open sessions are closed with 1001 "drained", as the close-code table says.
    expect(await bob.closed).toEqual({ code: 1001, reason: closeReason(1001, 'drain deadline') });
    await drained;
  });

  describe('close codes (docs/protocol.md#close-codes)', () => {
    it('names every close code of ErrorCodes, with the error code as the reason', async () => {
      const table = closeCodeTable();
      const first = table.find((row) => row.reason === 'the error code');
      const listed = new Set<number>();
      for (const part of (first?.code ?? '').split(',').map((p) => p.trim())) {
        const [low, high = low] = part.split('-').map(Number);
        for (let code = low; code <= high; code++) listed.add(code);
      }
      for (const code of Object.values(ErrorCodes)) if (code !== 0) expect(listed).toContain(code);
      // Two of them for real: the error message comes first, then the close with the code as reason.
      const binaryFirst = await rawConnect(plain);
      binaryFirst.socket.send(Buffer.from([1, 2, 3]));
      expect(await binaryFirst.next()).toMatchObject({ type: 'error', code: 'auth_required' });
      expect(await binaryFirst.closed).toEqual({ code: ErrorCodes.auth_required, reason: 'auth_required' });
      const notJson = await rawConnect(plain);
      notJson.socket.send('{');
      expect(await notJson.next()).toMatchObject({ type: 'error', code: 'bad_message' });
      expect(await notJson.closed).toEqual({ code: ErrorCodes.bad_message, reason: 'bad_message' });
    });

    it('1009 for a frame over maxFrameBytes, with the documented reason and no error message first', async () => {
      const connection = await rawConnect(plain);
      connection.socket.send(Buffer.alloc(nodeOptionTable.maxFrameBytes.default + 1));
      expect(await connection.closed).toEqual({ code: 1009, reason: closeReason(1009) });
      expect(connection.messages).toEqual([]);
      expect(closeReason(1009)).toBe('frame_too_large');
    });

    it('1007 for text that is not UTF-8, 1002 for a compressed frame, with the documented reasons', async () => {
      const invalid = await rawConnect(plain);
      invalid.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
      expect(await invalid.closed).toEqual({ code: 1007, reason: closeReason(1007) });
      const compressed = await rawConnect(plain);
      const frame = wsFrame(0x1, Buffer.from('{"type":"ping","id":1}'));
      frame[0] |= 0x40; // RSV1: permessage-deflate, which was not negotiated
      (compressed.socket as unknown as { _socket: Socket })._socket.write(frame);
      expect(await compressed.closed).toEqual({ code: 1002, reason: closeReason(1002) });
    });

    it('1001 "node shutting down" when a node closes', async () => {
      const running = await startTestNode(keys, { nodeId: 'closing' });
      const { connection } = await session(running, 'erin');
      await running.node.close();
      expect(await connection.closed).toEqual({ code: 1001, reason: closeReason(1001, 'closing') });
    });
  });

  it('the node serves every endpoint the local tier ports table lists for it', async () => {
    await plain.node.app.ready();
    const row = portRow('7001-7003');
    for (const route of routesIn(cell(portsTable(), row, 'Endpoints'))) {
      // The session path is served on the HTTP server's upgrade event, outside Fastify's router.
      const served =
        route.url === SESSION_PATH
          ? await rawConnect(plain).then((connection) => {
              connection.socket.close();
              return true;
            })
          : plain.node.app.hasRoute(route);
      expect([route, served]).toEqual([route, true]);
    }
    expect(routesIn(cell(portsTable(), row, 'Endpoints'))).toContainEqual({
      method: 'GET',
      url: SESSION_PATH,
    });
  });
});

/** Rows of the close-code table. */
function closeCodeTable(): Array<{ code: string; reason: string; when: string }> {
  const table = firstTable(section(doc, '## Close codes'));
  return table.rows.map((row) => ({
    code: cell(table, row, 'Close code'),
    reason: cell(table, row, 'Reason').replace(/`/g, ''),
    when: cell(table, row, 'When'),
  }));
}

/** The documented reason of a close code; with several rows for the code, the one whose "When" has `when`. */
function closeReason(code: number, when?: string): string {
  const rows = closeCodeTable().filter((row) => row.code === String(code));
  const row = when ? rows.find((r) => r.when.includes(when)) : rows[0];
  if (!row || (!when && rows.length > 1)) throw new Error(`close code ${code}: no single row`);
  return row.reason;
}

function portsTable() {
  return firstTable(section(doc, '## Local tier ports'));
}

function portRow(port: string): string[] {
  const table = portsTable();
  const row = table.rows.find((r) => cell(table, r, 'Port') === port);
  if (!row) throw new Error(`no row for port ${port}`);
  return row;
}

describe('local tier ports (docs/protocol.md#local-tier-ports)', () => {
  /** The local tier's options as its --help gives them: environment variable -> default and help. */
  async function tierDefaults(): Promise<Map<string, { value: string; help: string }>> {
    const lines: string[] = [];
    const spy = jest.spyOn(console, 'log').mockImplementation((text: string) => void lines.push(text));
    try {
      await runLocalTier(['--help']);
    } finally {
      spy.mockRestore();
    }
    const out = new Map<string, { value: string; help: string }>();
    const help = lines.join('\n').split('\n');
    help.forEach((line, i) => {
      const env = /^ {2}--\S+.*\[([A-Z_]+)\]$/.exec(line)?.[1];
      const value = /Default: (.*)\.$/.exec(help[i + 2] ?? '')?.[1];
      if (env && value !== undefined) out.set(env, { value, help: help[i + 1].trim() });
    });
    return out;
  }

  const range = (first: number, count: number) =>
    count === 1 ? `${first}` : `${first}-${first + count - 1}`;

  it('lists the ports the local tier uses by default, and how to move each', async () => {
    const tier = await tierDefaults();
    const number = (env: string) => Number(tier.get(env)?.value);
    const nodes = number('SUPERNODE_LOCAL_NODES');
    const table = portsTable();
    const expected = [
      [String(number('AUTH_PORT')), 'AUTH_PORT'],
      [range(number('SUPERNODE_LOCAL_BASE_PORT'), nodes), 'SUPERNODE_LOCAL_BASE_PORT'],
      [range(number('SUPERNODE_LOCAL_MESH_BASE_PORT'), nodes), 'SUPERNODE_LOCAL_MESH_BASE_PORT'],
      [range(number('SUPERNODE_STUN_PORT'), nodes), 'SUPERNODE_STUN_PORT'],
      [String(number('CONSOLE_PORT')), 'CONSOLE_PORT'],
    ];
    expect(table.rows.map((row) => cell(table, row, 'Port'))).toEqual(expected.map(([port]) => port));
    for (const [port, env] of expected) {
      const movedWith = inlineCode(cell(table, portRow(port), 'Moved with'));
      expect(movedWith).toContain(env);
      for (const name of movedWith) expect(tier.has(name)).toBe(true);
    }
    expect(inlineCode(cell(table, portRow(range(7001, nodes)), 'Moved with'))).toContain(
      'SUPERNODE_LOCAL_NODES',
    );
    // The same defaults as the services' own options: the table holds outside the local tier too.
    expect(expected.map(([port]) => port)).toEqual([
      String(authOptionTable.port.default),
      range(nodeOptionTable.port.default, nodes),
      range(nodeOptionTable.meshPort.default, nodes),
      range(nodeOptionTable.stunPort.default, nodes),
      String(consoleOptionTable.port.default),
    ]);
    expect(section(doc, '## Local tier ports')).toContain(`(\`SUPERNODE_LOCAL_HOST\`)`);
    expect(tier.get('SUPERNODE_LOCAL_HOST')?.value).toBe('127.0.0.1');
  });

  it('TURN runs on every node, on UDP and TCP, on by default; STUN alone on the first node without it', async () => {
    const tier = await tierDefaults();
    expect(tier.get('SUPERNODE_STUN_PORT')?.help).toMatch(
      /with --turn, the UDP and TCP port of TURN .* the others following/,
    );
    expect(tier.get('SUPERNODE_LOCAL_TURN')?.value).toBe('true');
    const row = portRow(range(nodeOptionTable.stunPort.default, 3));
    expect(cell(portsTable(), row, 'Protocol')).toBe('UDP and TCP');
    expect(cell(portsTable(), row, 'Service')).toMatch(/TURN on every supernode.*STUN on local-1 only/);
  });

  it('the mesh row names the mesh path', () => {
    const row = portRow(range(nodeOptionTable.meshPort.default, 3));
    expect(inlineCode(cell(portsTable(), row, 'Endpoints'))).toContain(MESH_PATH);
  });
});

describe('STUN (docs/protocol.md#stun)', () => {
  it('says what the code runs: on by default, local-1 only locally, every node in AWS', () => {
    const text = section(doc, '## STUN');
    expect(nodeOptionTable.stun.default).toBe(true);
    expect(text).toContain(`(${nodeOptionTable.stunPort.default})`);
    // The fleet sets the STUN port and leaves --stun at its default (on) on every node.
    const fleet = readFileSync(join(__dirname, '../../lib/constructs/supernode-fleet.ts'), 'utf8');
    expect(fleet).toMatch(/stun: 3478\b/);
    expect(fleet).toContain('SUPERNODE_STUN_PORT: String(FLEET_PORTS.stun)');
    expect(fleet).not.toMatch(/SUPERNODE_STUN:/);
    expect(text).toMatch(/\*\*AWS\*\*: every node of the fleet runs STUN on UDP 3478/);
    expect(text).toMatch(/every node serves TURN, which answers STUN Binding too/);
    expect(text).toMatch(/With\s+`--no-turn` only the first node, local-1, runs STUN/);
  });
});

it('every link of docs/protocol.md into docs/ resolves, anchors included', () => {
  expect(brokenLinks('protocol.md')).toEqual([]);
});
