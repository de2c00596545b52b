import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SupernodeSession } from '../../supernode/client/session';
import {
  type FleetNode,
  freePorts,
  killAll,
  metric,
  planFleet,
  startFleetNode,
} from '../../supernode/local/fleet';
import { makeTestKeys, type TestKeys } from '../helpers/node';

// Three "instances", each with its own private address on the loopback network and the same mesh
// port, as in an Auto Scaling group; discovery asks a local stand-in for the EC2 API.
const INSTANCES = [
  { id: 'i-00000000000000a01', ip: '127.0.0.21' },
  { id: 'i-00000000000000a02', ip: '127.0.0.22' },
  { id: 'i-00000000000000a03', ip: '127.0.0.23' },
];

let keys: TestKeys;
let ec2: Server;
let ec2Mode: 'ok' | 'fail' = 'ok';
let ec2Requests = 0;
let fleet: FleetNode[] = [];
const sessions: SupernodeSession[] = [];

function describeInstances(): string {
  const items = INSTANCES.map(
    ({ id, ip }) =>
      `<item><instanceId>${id}</instanceId><privateIpAddress>${ip}</privateIpAddress>` +
      '<instanceState><code>16</code><name>running</name></instanceState></item>',
  ).join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' +
    '<requestId>r</requestId><reservationSet><item><reservationId>r-1</reservationId>' +
    `<instancesSet>${items}</instancesSet></item></reservationSet></DescribeInstancesResponse>`
  );
}

beforeAll(async () => {
  keys = await makeTestKeys();
  ec2 = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      ec2Requests++;
      if (ec2Mode === 'fail') {
        res
          .writeHead(503, { 'content-type': 'text/xml' })
          .end(
            '<Response><Errors><Error><Code>Unavailable</Code><Message>down for the test</Message></Error></Errors><RequestID>x</RequestID></Response>',
          );
        return;
      }
      res.writeHead(200, { 'content-type': 'text/xml' }).end(describeInstances());
    });
  });
  await new Promise<void>((resolve) => ec2.listen(0, '127.0.0.1', resolve));
});
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close().catch(() => {})));
  killAll(fleet);
  await new Promise((r) => ec2.close(r));
  await keys.cleanup();
});

test('EC2 discovery builds the mesh, and a failing EC2 API does not empty it', async () => {
  const [meshPort] = await freePorts(1);
  fleet = (await planFleet(3, 'ec2-')).map((node, i) => ({ ...node, id: INSTANCES[i].id, meshPort }));
  const endpoint = `http://127.0.0.1:${(ec2.address() as AddressInfo).port}`;
  await Promise.all(
    fleet.map((node, i) =>
      startFleetNode(node, {
        jwksFile: keys.jwksFile,
        secret: 'mesh-secret-for-tests-0123456789abcdef',
        peers: [],
        extraEnv: {
          SUPERNODE_DISCOVERY: 'ec2',
          SUPERNODE_AUTO_SCALING_GROUP: 'test-fleet',
          SUPERNODE_DISCOVERY_REFRESH_MS: '1000',
          SUPERNODE_MESH_HOST: INSTANCES[i].ip,
          AWS_ENDPOINT_URL_EC2: endpoint,
          AWS_REGION: 'eu-west-1',
          AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'test-secret',
        },
      }),
    ),
  );
  const meshSize = async () => Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_members')));
  for (let i = 0; i < 100 && !(await meshSize()).every((n) => n === 3); i++)
    await new Promise((r) => setTimeout(r, 100));
  expect(await meshSize()).toEqual([3, 3, 3]);

  const connect = async (node: FleetNode, user: string) => {
    const session = await SupernodeSession.connect({ url: node.url, token: await keys.mint(user) });
    sessions.push(session);
    return session;
  };
  const alice = await connect(fleet[0], 'alice');
  await connect(fleet[2], 'carol');

  ec2Mode = 'fail';
  const before = ec2Requests;
  await new Promise((r) => setTimeout(r, 3500));
  expect(ec2Requests).toBeGreaterThan(before); // discovery kept asking, and kept failing
  expect(await meshSize()).toEqual([3, 3, 3]);
  expect(await alice.lookup('carol')).toMatchObject({ online: true, node: fleet[2].url });
  ec2Mode = 'ok';
}, 60_000);
