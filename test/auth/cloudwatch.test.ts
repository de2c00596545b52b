import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudWatchClient, type MetricDatum, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';

const cw = mockClient(CloudWatchClient);
let dataDir: string;
let auth: AuthService;
let base: string;

beforeEach(async () => {
  cw.reset();
  cw.on(PutMetricDataCommand).resolves({});
  dataDir = await mkdtemp(join(tmpdir(), 'auth-cw-test-'));
  auth = await buildAuthService({
    dataDir,
    port: 0,
    scryptN: 1024,
    logLevel: 'silent',
    region: 'eu-west-1',
    accountLoginsPerMinute: 3,
    cloudwatch: true,
    // No tick during the test: it drives publishOnce() itself.
    cloudwatchIntervalMs: 3_600_000,
    autoScalingGroup: 'sn-auth-fleet',
  });
  base = (await auth.listen()).url;
});
afterEach(async () => {
  await auth.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function post(path: string, body: object) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function tick(): Promise<Record<string, number>> {
  const before = cw.commandCalls(PutMetricDataCommand).length;
  await auth.cloudWatch?.publishOnce();
  const call = cw.commandCalls(PutMetricDataCommand)[before];
  expect(call.args[0].input.Namespace).toBe('Supernode');
  const datums = call.args[0].input.MetricData as MetricDatum[];
  for (const datum of datums) {
    expect(datum.Dimensions).toEqual([{ Name: 'AutoScalingGroupName', Value: 'sn-auth-fleet' }]);
    expect(datum.Unit).toBe('Count');
  }
  return Object.fromEntries(datums.map((d) => [d.MetricName, d.Value]));
}

test('publishes per-tick login, shed and refresh counts and the hash queue depth', async () => {
  expect((await post('/v1/accounts', { username: 'alice', password: 'correct-horse-1' })).status).toBe(201);
  const tokens = await post('/v1/login', { username: 'alice', password: 'correct-horse-1' });
  expect(tokens.status).toBe(200);
  // Three hashed failures, then the per-account limit refuses before hashing.
  const statuses = [];
  for (let i = 0; i < 4; i++)
    statuses.push((await post('/v1/login', { username: 'ghost-user', password: 'wrong-password' })).status);
  expect(statuses).toEqual([401, 401, 401, 429]);
  expect((await post('/v1/token/refresh', { refreshToken: tokens.body.refreshToken })).status).toBe(200);

  expect(await tick()).toEqual({
    LoginsAdmitted: 5, // sign-up, login, three failed logins
    LoginsShed: 1,
    LoginsSucceeded: 1,
    TokenRefreshes: 1,
    HashQueueDepth: 0,
  });
  // Deltas: nothing happened since the last tick.
  expect(await tick()).toEqual({
    LoginsAdmitted: 0,
    LoginsShed: 0,
    LoginsSucceeded: 0,
    TokenRefreshes: 0,
    HashQueueDepth: 0,
  });
  expect((await post('/v1/login', { username: 'alice', password: 'correct-horse-1' })).status).toBe(200);
  expect(await tick()).toMatchObject({ LoginsAdmitted: 1, LoginsSucceeded: 1 });

  // A reservation waiting for the pool is what the gauge counts.
  const waiting = auth.pool.reserve();
  expect(await tick()).toMatchObject({ HashQueueDepth: 1, LoginsAdmitted: 0 });
  if (waiting.admitted) waiting.ticket.cancel();
});
