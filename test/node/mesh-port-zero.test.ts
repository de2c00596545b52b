/**
 * A meshed node started on port 0 (tests, development) learns its port when it listens; the directory
 * must advertise that port, not 0, as the user's home.
 */
import { freePorts } from '../../supernode/local/fleet';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

let keys: TestKeys;
const nodes: RunningNode[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  const meshPorts = await freePorts(2);
  const ids = ['zero-a', 'zero-b'];
  for (const [i, id] of ids.entries()) {
    nodes.push(
      await startTestNode(keys, {
        nodeId: id,
        port: 0,
        mesh: true,
        meshPort: meshPorts[i],
        meshSecret: 'z'.repeat(32),
        meshPeers: ids
          .filter((other) => other !== id)
          .map((other) => `${other}@ws://127.0.0.1:${meshPorts[ids.indexOf(other)]}`),
      }),
    );
  }
  await waitFor(() => nodes.every((n) => n.node.mesh?.members().length === 2), 10_000, 'the mesh');
});

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.node.close()));
  await keys.cleanup();
});

test("a lookup from the other node names the home's real port", async () => {
  const [a, b] = nodes;
  const alice = await connectAs(a, keys, 'alice');
  const bob = await connectAs(b, keys, 'bob');
  try {
    let answer = await bob.lookup('alice');
    for (let i = 0; i < 50 && !answer.online; i++) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await bob.lookup('alice');
    }
    expect(answer).toMatchObject({ online: true, node: `ws://127.0.0.1:${a.port}` });
    expect(a.port).not.toBe(0);
  } finally {
    await Promise.all([alice.close(), bob.close()]);
  }
});
