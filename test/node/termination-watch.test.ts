import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { AutoScalingClient, CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import { mockClient } from 'aws-sdk-client-mock';
import { SupernodeSession } from '../../supernode/client/session';
import {
  Imds,
  ImdsError,
  TerminationWatch,
  type TerminationWatchOptions,
} from '../../supernode/node/termination-watch';
import type { Drain } from '../../supernode/protocol/messages';
import { connectAs, makeTestKeys, startTestNode, type TestKeys, waitFor } from '../helpers/node';

const asg = mockClient(AutoScalingClient);
const INSTANCE_ID = 'i-0123456789abcdef0';
const STATE_PATH = '/latest/meta-data/autoscaling/target-lifecycle-state';

interface FakeImds {
  url: string;
  /** What target-lifecycle-state answers. */
  state: string;
  /** Answer every metadata read (not token requests) with this status instead, while set. */
  failWith: number | undefined;
  tokens: Map<string, number>;
  requests: Array<{ method?: string; path: string; token?: string; ttl?: string; status: number }>;
  close(): Promise<void>;
}

/**
 * IMDSv2 as EC2 runs it with v1 disabled: PUT /latest/api/token with a TTL header gives a token, every
 * read without a valid (known, unexpired) token gets 401.
 */
async function fakeImds(): Promise<FakeImds> {
  let serial = 0;
  const fake: FakeImds = {
    url: '',
    state: 'InService',
    failWith: undefined,
    tokens: new Map(),
    requests: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
  const server = http.createServer((req, res) => {
    req.resume();
    const path = req.url ?? '/';
    const token = req.headers['x-aws-ec2-metadata-token'] as string | undefined;
    const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'] as string | undefined;
    const answer = (status: number, body = '') => {
      fake.requests.push({ method: req.method, path, token, ttl, status });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
    };
    if (path === '/latest/api/token') {
      const seconds = Number(ttl);
      if (req.method !== 'PUT' || !Number.isInteger(seconds) || seconds < 1 || seconds > 21_600) {
        answer(400);
        return;
      }
      const issued = `token-${++serial}`;
      fake.tokens.set(issued, Date.now() + seconds * 1000);
      answer(200, issued);
      return;
    }
    const expires = token === undefined ? undefined : fake.tokens.get(token);
    if (req.method !== 'GET' || expires === undefined || expires < Date.now()) {
      answer(401);
      return;
    }
    if (fake.failWith !== undefined) answer(fake.failWith);
    else if (path === STATE_PATH) answer(200, fake.state);
    else if (path === '/latest/meta-data/instance-id') answer(200, INSTANCE_ID);
    else answer(404);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return fake;
}

function fakeLog() {
  return {
    info: jest.fn<void, [object, string]>(),
    warn: jest.fn<void, [object, string]>(),
    error: jest.fn<void, [object, string]>(),
  };
}

let imds: FakeImds;
beforeEach(async () => {
  imds = await fakeImds();
  asg.reset();
  asg.on(CompleteLifecycleActionCommand).resolves({ $metadata: { httpStatusCode: 200 } });
});
afterEach(() => imds.close());

function watch(overrides: Partial<TerminationWatchOptions> = {}) {
  const log = fakeLog();
  const onTerminating = jest.fn();
  const w = new TerminationWatch({
    lifecycleHook: 'sn-drain',
    autoScalingGroup: 'sn-fleet',
    pollMs: 20,
    onTerminating,
    log,
    imds: new Imds({ endpoint: imds.url, timeoutMs: 500 }),
    retryBaseMs: 10,
    ...overrides,
  });
  return { w, log, onTerminating };
}

describe('Imds (IMDSv2)', () => {
  it('the fake, like IMDSv2, refuses reads without a token and tokens without a TTL', async () => {
    expect((await fetch(`${imds.url}${STATE_PATH}`)).status).toBe(401);
    expect(
      (await fetch(`${imds.url}${STATE_PATH}`, { headers: { 'x-aws-ec2-metadata-token': 'x' } })).status,
    ).toBe(401);
    expect((await fetch(`${imds.url}/latest/api/token`, { method: 'PUT' })).status).toBe(400);
  });

  it('gets a session token once and sends it with every read', async () => {
    const client = new Imds({ endpoint: `${imds.url}/`, tokenTtlSec: 21_600 });
    expect(await client.get('meta-data/instance-id')).toBe(INSTANCE_ID);
    expect(await client.get('meta-data/autoscaling/target-lifecycle-state')).toBe('InService');
    expect(client.tokensFetched).toBe(1);
    expect(imds.requests).toEqual([
      { method: 'PUT', path: '/latest/api/token', ttl: '21600', status: 200 },
      { method: 'GET', path: '/latest/meta-data/instance-id', token: 'token-1', status: 200 },
      { method: 'GET', path: STATE_PATH, token: 'token-1', status: 200 },
    ]);
  });

  it('renews the token before it expires', async () => {
    const client = new Imds({ endpoint: imds.url, tokenTtlSec: 1 });
    await client.get('meta-data/instance-id');
    await new Promise((r) => setTimeout(r, 800));
    await client.get('meta-data/instance-id');
    expect(client.tokensFetched).toBe(2);
    expect(imds.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('takes a new token at once when the service forgets the old one', async () => {
    const client = new Imds({ endpoint: imds.url });
    await client.get('meta-data/instance-id');
    imds.tokens.clear();
    expect(await client.get('meta-data/instance-id')).toBe(INSTANCE_ID);
    expect(imds.requests.map((r) => r.status)).toEqual([200, 200, 401, 200, 200]);
  });

  it('fails with a typed error carrying the status', async () => {
    imds.failWith = 404;
    const error = await new Imds({ endpoint: imds.url }).get(STATE_PATH.slice(8)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ImdsError);
    expect(error).toMatchObject({ status: 404 });
  });
});

describe('TerminationWatch', () => {
  it('starts the drain once when the target lifecycle state turns to Terminated, then stops polling', async () => {
    const { w, onTerminating, log } = watch();
    w.start();
    await waitFor(() => w.stats.polls >= 3, 2000, 'a few polls');
    expect(onTerminating).not.toHaveBeenCalled();
    imds.state = 'Terminated';
    await waitFor(() => onTerminating.mock.calls.length > 0, 2000, 'the drain to start');
    const polls = w.stats.polls;
    await new Promise((r) => setTimeout(r, 100));
    expect(w.stats).toMatchObject({ polls, terminating: true, pollFailures: 0 });
    expect(onTerminating).toHaveBeenCalledTimes(1);
    expect(log.info).toHaveBeenCalledWith(
      { lifecycleHook: 'sn-drain', autoScalingGroup: 'sn-fleet' },
      'instance is terminating (Auto Scaling lifecycle hook); draining',
    );
    w.stop();
  });

  it('logs and retries when instance metadata fails, and never throws', async () => {
    imds.failWith = 500;
    const { w, log, onTerminating } = watch();
    w.start();
    await waitFor(() => w.stats.pollFailures >= 4, 2000, 'failed polls');
    // 1st, 2nd and 4th failure in a row are logged, not every one.
    const warned = log.warn.mock.calls.map(([fields]) => (fields as { failures: number }).failures);
    expect(warned.slice(0, 3)).toEqual([1, 2, 4]);
    expect(log.warn.mock.calls[0][0]).toMatchObject({ error: { name: 'ImdsError', status: 500 } });
    imds.failWith = undefined;
    imds.state = 'Terminated';
    await waitFor(() => onTerminating.mock.calls.length > 0, 2000, 'the drain to start');
    expect(log.info).toHaveBeenCalledWith(
      expect.objectContaining({ state: 'Terminated' }),
      'instance metadata answers again',
    );
    w.stop();
  });

  it('survives an unreachable metadata service', async () => {
    const url = imds.url;
    await imds.close();
    const { w, log } = watch({ imds: new Imds({ endpoint: url, timeoutMs: 200 }) });
    w.start();
    await waitFor(() => w.stats.pollFailures >= 2, 2000, 'failed polls');
    w.stop();
    expect(log.warn.mock.calls[0][0]).toMatchObject({
      error: { message: expect.stringMatching(/ECONNREFUSED/) },
    });
    imds = await fakeImds(); // for afterEach
  });

  it('completes the lifecycle action with CONTINUE for this instance', async () => {
    const { w, log } = watch();
    await expect(w.complete()).resolves.toBe(true);
    expect(asg.commandCalls(CompleteLifecycleActionCommand).map((c) => c.args[0].input)).toEqual([
      {
        LifecycleHookName: 'sn-drain',
        AutoScalingGroupName: 'sn-fleet',
        InstanceId: INSTANCE_ID,
        LifecycleActionResult: 'CONTINUE',
      },
    ]);
    expect(w.stats).toMatchObject({ completed: true, completionAttempts: 1, completionFailures: 0 });
    expect(log.info).toHaveBeenCalledWith(
      expect.objectContaining({ instanceId: INSTANCE_ID }),
      expect.any(String),
    );
    // Once only, however often asked.
    await expect(w.complete()).resolves.toBe(true);
    expect(asg.commandCalls(CompleteLifecycleActionCommand)).toHaveLength(1);
  });

  it('retries a failed completion with backoff, the instance id read included', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), {
      name: 'Throttling',
      $metadata: { httpStatusCode: 400 },
    });
    asg.on(CompleteLifecycleActionCommand).rejectsOnce(throttled).resolves({ $metadata: {} });
    imds.failWith = 503;
    const { w, log } = watch({ retryBaseMs: 50 });
    const completing = w.complete();
    await waitFor(() => imds.requests.some((r) => r.status === 503), 2000, 'a failed instance id read');
    imds.failWith = undefined;
    await expect(completing).resolves.toBe(true);
    expect(w.stats).toMatchObject({ completed: true, completionAttempts: 3, completionFailures: 2 });
    expect(log.warn.mock.calls.map(([fields]) => fields)).toEqual([
      expect.objectContaining({ attempt: 1, retryInMs: 50, error: expect.objectContaining({ status: 503 }) }),
      expect.objectContaining({
        attempt: 2,
        retryInMs: 100,
        error: expect.objectContaining({ name: 'Throttling' }),
      }),
    ]);
  });

  it('gives up after the last attempt, logs it and resolves false', async () => {
    asg.on(CompleteLifecycleActionCommand).rejects(new Error('boom'));
    const { w, log } = watch({ completeAttempts: 3 });
    await expect(w.complete()).resolves.toBe(false);
    expect(asg.commandCalls(CompleteLifecycleActionCommand)).toHaveLength(3);
    expect(w.stats).toMatchObject({ completed: false, completionFailures: 3 });
    expect(log.error).toHaveBeenCalledWith(
      expect.objectContaining({ attempts: 3 }),
      'lifecycle action not completed; the hook heartbeat timeout will continue the termination',
    );
  });

  it('completes only when the instance was seen terminating', async () => {
    const { w } = watch();
    await expect(w.completeIfTerminating()).resolves.toBe(false);
    expect(asg.calls()).toHaveLength(0);
  });
});

describe('a node with --lifecycle-hook', () => {
  let keys: TestKeys;
  const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
  beforeAll(async () => {
    keys = await makeTestKeys();
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
    await keys.cleanup();
  });

  it('needs --auto-scaling-group', async () => {
    await expect(startTestNode(keys, { lifecycleHook: 'sn-drain' })).rejects.toThrow(
      '--auto-scaling-group (SUPERNODE_AUTO_SCALING_GROUP) is required with --lifecycle-hook',
    );
  });

  it('drains when terminating and completes the hook before it reports drained', async () => {
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    const order: string[] = [];
    asg.on(CompleteLifecycleActionCommand).callsFake(async () => {
      order.push('complete');
      return {};
    });
    const running = await startTestNode(keys, {
      lifecycleHook: 'sn-drain',
      autoScalingGroup: 'sn-fleet',
      lifecyclePollMs: 100,
      drainTimeoutMs: 300,
      onDrained: () => order.push('drained'),
    });
    const session = await connectAs(running, keys, 'alice');
    const drain = new Promise<Drain>((resolve) => session.once('drain', resolve));
    await waitFor(() => (running.node.termination?.stats.polls ?? 0) > 0, 2000, 'a poll');
    const metrics = await (await fetch(`http://127.0.0.1:${running.port}/metrics`)).text();
    expect(metrics).toMatch(/^supernode_lifecycle_terminating 0$/m);
    expect(metrics).toMatch(/^supernode_lifecycle_polls_total [1-9]/m);
    imds.state = 'Terminated';
    expect(await drain).toMatchObject({ type: 'drain' });
    await waitFor(() => order.length === 2, 3000, 'drained');
    expect(order).toEqual(['complete', 'drained']);
    expect(running.node.termination?.stats).toMatchObject({ terminating: true, completed: true });
  });
});

describe('the node process under a termination lifecycle hook', () => {
  const cli = join(__dirname, '../../supernode/bin/supernode.cjs');
  let child: ChildProcess | undefined;
  let autoScaling: http.Server | undefined;
  let keys: TestKeys;
  beforeAll(async () => {
    keys = await makeTestKeys();
  });
  afterEach(async () => {
    child?.kill('SIGKILL');
    if (autoScaling) {
      autoScaling.closeAllConnections();
      await new Promise((r) => autoScaling?.close(r));
    }
  });
  afterAll(() => keys.cleanup());

  it('drains, completes CompleteLifecycleAction on the Auto Scaling endpoint, and exits 0', async () => {
    // The Auto Scaling query protocol: a form-encoded POST, an XML answer.
    const calls: URLSearchParams[] = [];
    autoScaling = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const params = new URLSearchParams(Buffer.concat(chunks).toString());
        calls.push(params);
        res
          .writeHead(200, { 'content-type': 'text/xml' })
          .end(
            '<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/">' +
              '<CompleteLifecycleActionResult/><ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>' +
              '</CompleteLifecycleActionResponse>',
          );
      });
    });
    autoScaling.listen(0, '127.0.0.1');
    await once(autoScaling, 'listening');

    child = spawn(process.execPath, [cli, 'node', '--port', '0', '--no-stun', '--jwks-file', keys.jwksFile], {
      env: {
        ...process.env,
        SUPERNODE_LOG_LEVEL: 'info',
        SUPERNODE_DRAIN_TIMEOUT_MS: '800',
        SUPERNODE_AUTO_SCALING_GROUP: 'sn-fleet-test',
        SUPERNODE_LIFECYCLE_HOOK: 'sn-drain-hook',
        SUPERNODE_LIFECYCLE_POLL_MS: '100',
        AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
        AWS_ENDPOINT_URL_AUTO_SCALING: `http://127.0.0.1:${(autoScaling.address() as AddressInfo).port}`,
        AWS_REGION: 'eu-west-1',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'test-secret',
        AWS_SESSION_TOKEN: '',
        AWS_PROFILE: '',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', resolve));
    const port = await new Promise<number>((resolve, reject) => {
      let buffered = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const complete = buffered.split('\n');
        buffered = complete.pop() ?? '';
        for (const line of complete) {
          lines.push(line);
          if (line.includes('supernode listening')) resolve((JSON.parse(line) as { port: number }).port);
        }
      });
      void exited.then((code) => reject(new Error(`exited early with ${code}: ${stderr}`)));
    });
    const session = await SupernodeSession.connect({
      url: `ws://127.0.0.1:${port}`,
      token: await keys.mint('alice'),
    });
    const drain = new Promise<Drain>((resolve) => session.once('drain', resolve));
    const closed = new Promise<number>((resolve) => session.once('close', resolve));
    await waitFor(() => imds.requests.some((r) => r.path === STATE_PATH && r.status === 200), 5000, 'a poll');

    imds.state = 'Terminated';
    expect(await drain).toMatchObject({ type: 'drain' });
    // The client stays: it is closed with 1001 at the drain deadline, as docs/protocol.md says.
    expect(await closed).toBe(1001);
    expect(await exited).toBe(0);

    expect(calls).toHaveLength(1);
    expect(Object.fromEntries(calls[0])).toEqual({
      Action: 'CompleteLifecycleAction',
      Version: '2011-01-01',
      LifecycleHookName: 'sn-drain-hook',
      AutoScalingGroupName: 'sn-fleet-test',
      InstanceId: INSTANCE_ID,
      LifecycleActionResult: 'CONTINUE',
    });
    // Every metadata read carried a token, as IMDSv2 requires.
    expect(imds.requests.filter((r) => r.status === 401)).toEqual([]);
    const messages = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(messages).toEqual(
      expect.arrayContaining([
        'watching for Auto Scaling termination',
        'instance is terminating (Auto Scaling lifecycle hook); draining',
        'drain finished',
        'lifecycle action completed (CONTINUE)',
      ]),
    );
  }, 20_000);
});
