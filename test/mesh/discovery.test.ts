import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { type MemberAddress, StaticDiscovery } from '../../supernode/mesh/discovery';
import { Ec2Discovery, type Ec2DiscoveryOptions, MAX_PAGES } from '../../supernode/mesh/ec2-discovery';

const ec2 = mockClient(EC2Client);

beforeEach(() => {
  ec2.reset();
});

afterEach(() => {
  jest.useRealTimers();
});

function fakeLog() {
  return { warn: jest.fn<void, [object, string]>(), info: jest.fn<void, [object, string]>() };
}

function page(instances: Instance[][], nextToken?: string): DescribeInstancesCommandOutput {
  return {
    $metadata: {},
    Reservations: instances.map((Instances) => ({ Instances })),
    NextToken: nextToken,
  };
}

function instance(id: string, ip?: string): Instance {
  return { InstanceId: id, PrivateIpAddress: ip };
}

function urls(members: readonly MemberAddress[]): string[] {
  return members.map((m) => `${m.id}=${m.meshUrl}`);
}

const stopAfter: Ec2Discovery[] = [];
afterEach(() => {
  for (const d of stopAfter.splice(0)) d.stop();
});

function discovery(overrides: Partial<Ec2DiscoveryOptions> = {}) {
  const log = fakeLog();
  const onChange = jest.fn<void, [readonly MemberAddress[]]>();
  const d = new Ec2Discovery({
    autoScalingGroup: 'sn-fleet',
    meshPort: 7000,
    refreshMs: 15_000,
    client: new EC2Client({ region: 'eu-west-1' }),
    log,
    onChange,
    random: () => 0.5,
    ...overrides,
  });
  stopAfter.push(d);
  return { d, log, onChange };
}

function calls() {
  return ec2.commandCalls(DescribeInstancesCommand).map((c) => c.args[0].input);
}

describe('StaticDiscovery', () => {
  it('is ready at once with the given members, sorted and without repeats', async () => {
    const d = new StaticDiscovery([
      { id: 'b', meshUrl: 'ws://127.0.0.1:2' },
      { id: 'a', meshUrl: 'ws://127.0.0.1:1' },
      { id: 'b', meshUrl: 'ws://127.0.0.1:3' },
    ]);
    expect(d.ready).toBe(true);
    await d.start();
    expect(urls(d.members())).toEqual(['a=ws://127.0.0.1:1', 'b=ws://127.0.0.1:2']);
    d.stop();
  });
});

describe('Ec2Discovery', () => {
  it('asks for the running instances of the group', async () => {
    ec2.on(DescribeInstancesCommand).resolves(page([[instance('i-1', '10.0.0.1')]]));
    const { d } = discovery();
    await d.start();
    expect(calls()).toEqual([
      {
        Filters: [
          { Name: 'tag:aws:autoscaling:groupName', Values: ['sn-fleet'] },
          { Name: 'instance-state-name', Values: ['running'] },
        ],
        MaxResults: 1000,
        NextToken: undefined,
      },
    ]);
    expect(d.ready).toBe(true);
    expect(urls(d.members())).toEqual(['i-1=ws://10.0.0.1:7000']);
  });

  it('follows NextToken across 3 pages, sorts by id and skips instances without a private IP', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(page([[instance('i-c', '10.0.0.3')], [instance('i-nope')]], 't1'))
      .resolvesOnce(page([[instance('i-a', '10.0.0.1'), instance('i-b', '10.0.0.2')]], 't2'))
      .resolvesOnce(page([[instance('i-d', '10.0.0.4'), { PrivateIpAddress: '10.0.0.9' }]]));
    const { d, onChange } = discovery();
    await d.start();
    expect(calls().map((input) => input.NextToken)).toEqual([undefined, 't1', 't2']);
    const expected = [
      'i-a=ws://10.0.0.1:7000',
      'i-b=ws://10.0.0.2:7000',
      'i-c=ws://10.0.0.3:7000',
      'i-d=ws://10.0.0.4:7000',
    ];
    expect(urls(d.members())).toEqual(expected);
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(urls(onChange.mock.calls[0][0])).toEqual(expected);
  });

  it('keeps the last members and stays ready after a failed round; logs name and message only', async () => {
    const boom = Object.assign(new Error('Rate exceeded'), {
      name: 'RequestLimitExceeded',
      $response: 'raw',
    });
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(page([[instance('i-1', '10.0.0.1')]]))
      .rejectsOnce(boom);
    const { d, log, onChange } = discovery();
    await d.start();
    expect(await d.refreshNow()).toBe(false);
    expect(d.ready).toBe(true);
    expect(urls(d.members())).toEqual(['i-1=ws://10.0.0.1:7000']);
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(log.warn).toHaveBeenCalledTimes(1);
    const [fields] = log.warn.mock.calls[0];
    expect(fields).toMatchObject({
      error: { name: 'RequestLimitExceeded', message: 'Rate exceeded' },
      failures: 1,
      keptMembers: 1,
    });
    expect(JSON.stringify(fields)).not.toContain('raw');
  });

  it('is not ready and has no members until a first round succeeds', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .rejectsOnce(new Error('no route'))
      .resolves(page([[instance('i-1', '10.0.0.1')]]));
    const { d, onChange } = discovery();
    await d.start();
    expect(d.ready).toBe(false);
    expect(d.members()).toEqual([]);
    expect(onChange).not.toHaveBeenCalled();
    expect(await d.refreshNow()).toBe(true);
    expect(d.ready).toBe(true);
    expect(urls(d.members())).toEqual(['i-1=ws://10.0.0.1:7000']);
  });

  it('accepts a successful empty answer: the group can really be empty', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(page([[instance('i-1', '10.0.0.1')]]))
      .resolves(page([]));
    const { d, onChange } = discovery();
    await d.start();
    await d.refreshNow();
    expect(d.members()).toEqual([]);
    expect(onChange).toHaveBeenCalledTimes(2);
  });

  it('retries with a jittered backoff doubling up to refreshMs, then refreshes on schedule', async () => {
    jest.useFakeTimers();
    ec2
      .on(DescribeInstancesCommand)
      .rejectsOnce(new Error('1'))
      .rejectsOnce(new Error('2'))
      .rejectsOnce(new Error('3'))
      .rejectsOnce(new Error('4'))
      .resolves(page([[instance('i-1', '10.0.0.1')]]));
    // random 0.5 puts each delay at 3/4 of its cap: caps 1000, 2000, 4000, then refreshMs = 5000.
    const { d, log } = discovery({ refreshMs: 5000, retryBaseMs: 1000 });
    await d.start();
    const expectedGaps = [750, 1500, 3000, 3750, 5000, 5000];
    let at = 0;
    for (const [i, gap] of expectedGaps.entries()) {
      await jest.advanceTimersByTimeAsync(gap - 1);
      expect(calls()).toHaveLength(i + 1);
      await jest.advanceTimersByTimeAsync(1);
      expect(calls()).toHaveLength(i + 2);
      at += gap;
    }
    expect(at).toBe(19_000);
    expect(log.warn.mock.calls.map(([fields]) => (fields as { retryInMs: number }).retryInMs)).toEqual([
      750, 1500, 3000, 3750,
    ]);
    expect(log.info).toHaveBeenCalledWith(
      expect.objectContaining({ failures: 4 }),
      'mesh discovery recovered',
    );
    expect(d.ready).toBe(true);
  });

  it('spreads retries with the jitter: half the cap fixed, half random', async () => {
    jest.useFakeTimers();
    ec2.on(DescribeInstancesCommand).rejects(new Error('down'));
    const { d, log } = discovery({ refreshMs: 60_000, retryBaseMs: 1000, random: () => 0 });
    await d.start();
    await jest.advanceTimersByTimeAsync(500);
    expect(calls()).toHaveLength(2);
    expect(log.warn.mock.calls.map(([fields]) => (fields as { retryInMs: number }).retryInMs)).toEqual([
      500, 1000,
    ]);
  });

  it('calls onChange only when the set of members changes', async () => {
    const a = instance('i-a', '10.0.0.1');
    const b = instance('i-b', '10.0.0.2');
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce(page([[a, b]]))
      .resolvesOnce(page([[b], [a]])) // same set, other order
      .resolvesOnce(page([[a, { ...b, PrivateIpAddress: '10.0.0.3' }]])) // b moved
      .resolvesOnce(page([[a]]));
    const { d, onChange } = discovery();
    await d.start();
    await d.refreshNow();
    await d.refreshNow();
    await d.refreshNow();
    expect(onChange.mock.calls.map(([members]) => urls(members))).toEqual([
      ['i-a=ws://10.0.0.1:7000', 'i-b=ws://10.0.0.2:7000'],
      ['i-a=ws://10.0.0.1:7000', 'i-b=ws://10.0.0.3:7000'],
      ['i-a=ws://10.0.0.1:7000'],
    ]);
  });

  it('survives an onChange that throws', async () => {
    ec2.on(DescribeInstancesCommand).resolves(page([[instance('i-1', '10.0.0.1')]]));
    const { d, log } = discovery({
      onChange: () => {
        throw new Error('listener bug');
      },
    });
    await d.start();
    expect(d.ready).toBe(true);
    expect(log.warn).toHaveBeenCalledWith(
      { error: { name: 'Error', message: 'listener bug' } },
      'mesh onChange callback threw',
    );
  });

  it('bounds a round that never answers, counting it as a failure', async () => {
    ec2.on(DescribeInstancesCommand).callsFake(() => new Promise(() => {}));
    const { d, log } = discovery({ requestTimeoutMs: 50 });
    expect(await d.refreshNow()).toBe(false);
    expect(log.warn.mock.calls[0][0]).toMatchObject({ error: { name: 'TimeoutError' } });
  });

  it('gives up on a NextToken chain that does not end, keeping the last members', async () => {
    ec2.on(DescribeInstancesCommand).resolves(page([[instance('i-1', '10.0.0.1')]]));
    const { d, log } = discovery();
    await d.start();
    ec2.reset();
    ec2
      .on(DescribeInstancesCommand)
      .callsFake((input: { NextToken?: string }) =>
        Promise.resolve(
          page([[instance('i-2', '10.0.0.2')]], `t${Number(input.NextToken?.slice(1) ?? 0) + 1}`),
        ),
      );
    expect(await d.refreshNow()).toBe(false);
    expect(calls()).toHaveLength(MAX_PAGES);
    expect(log.warn.mock.calls[0][0]).toMatchObject({ error: { message: expect.stringMatching(/pages/) } });
    expect(urls(d.members())).toEqual(['i-1=ws://10.0.0.1:7000']);

    ec2.on(DescribeInstancesCommand).resolves(page([], 'same'));
    expect(await d.refreshNow()).toBe(false);
    expect(log.warn.mock.calls[1][0]).toMatchObject({
      error: { message: expect.stringMatching(/same NextToken/) },
    });
  });

  it('stop() ends the refreshes and drops the result of a round in flight', async () => {
    jest.useFakeTimers();
    ec2.on(DescribeInstancesCommand).resolves(page([[instance('i-1', '10.0.0.1')]]));
    const { d, onChange } = discovery({ refreshMs: 1000 });
    await d.start();
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls()).toHaveLength(2);
    d.stop();
    await jest.advanceTimersByTimeAsync(10_000);
    expect(calls()).toHaveLength(2);
    expect(onChange).toHaveBeenCalledTimes(1);

    let answer: (out: DescribeInstancesCommandOutput) => void = () => {};
    ec2.on(DescribeInstancesCommand).callsFake(() => new Promise((resolve) => (answer = resolve)));
    const late = discovery({ refreshMs: 1000 });
    const started = late.d.start();
    late.d.stop();
    answer(page([[instance('i-9', '10.0.0.9')]]));
    await started;
    await jest.advanceTimersByTimeAsync(10_000);
    expect(late.onChange).not.toHaveBeenCalled();
    expect(late.d.ready).toBe(false);
    expect(late.log.warn).not.toHaveBeenCalled();
  });

  it('start() after stop() runs a fresh round and ignores the one stop() cut short', async () => {
    const answers: ((out: DescribeInstancesCommandOutput) => void)[] = [];
    ec2.on(DescribeInstancesCommand).callsFake(() => new Promise((resolve) => answers.push(resolve)));
    const { d, log, onChange } = discovery();
    const first = d.start();
    d.stop();
    const second = d.start();
    expect(answers).toHaveLength(2);
    answers[1](page([[instance('i-new', '10.0.0.2')]]));
    answers[0](page([[instance('i-old', '10.0.0.1')]]));
    await Promise.all([first, second]);
    expect(urls(d.members())).toEqual(['i-new=ws://10.0.0.2:7000']);
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(log.warn).not.toHaveBeenCalled();
  });

  it('rejects bad options', () => {
    const log = fakeLog();
    const base = { autoScalingGroup: 'g', meshPort: 7000, refreshMs: 1000, log };
    expect(() => new Ec2Discovery({ ...base, autoScalingGroup: '' })).toThrow(/autoScalingGroup/);
    expect(() => new Ec2Discovery({ ...base, meshPort: 0 })).toThrow(/meshPort/);
    expect(() => new Ec2Discovery({ ...base, refreshMs: 0 })).toThrow(/refreshMs/);
    expect(() => new Ec2Discovery({ ...base, retryBaseMs: -1 })).toThrow(/retryBaseMs/);
  });
});

describe('Ec2Discovery over real HTTP (default client)', () => {
  const ENV_KEYS = [
    'AWS_ENDPOINT_URL_EC2',
    'AWS_ENDPOINT_URL',
    'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_REGION',
    'AWS_PROFILE',
    'AWS_EC2_METADATA_DISABLED',
  ];
  let savedEnv: Record<string, string | undefined>;
  let server: http.Server | undefined;

  beforeEach(() => {
    // The top-level beforeEach re-stubs via reset(); this test needs the real send().
    ec2.restore();
    savedEnv = Object.fromEntries(ENV_KEYS.map((key) => [key, process.env[key]]));
    for (const key of ENV_KEYS) delete process.env[key];
    process.env.AWS_ACCESS_KEY_ID = 'AKIDLOCALTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'local-test-secret';
    process.env.AWS_REGION = 'eu-west-1';
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });

  afterEach(async () => {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server?.close(r));
      server = undefined;
    }
  });

  // The EC2 query protocol: a form-encoded POST in, an XML document named <Action>Response out.
  function describeResponse(instances: { id: string; ip?: string }[], nextToken?: string): string {
    const items = instances
      .map(
        ({ id, ip }) =>
          `<item><instanceId>${id}</instanceId>${ip ? `<privateIpAddress>${ip}</privateIpAddress>` : ''}` +
          '<instanceState><code>16</code><name>running</name></instanceState></item>',
      )
      .join('');
    return (
      '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">' +
      '<requestId>11111111-2222-3333-4444-555555555555</requestId>' +
      '<reservationSet><item><reservationId>r-1</reservationId>' +
      `<instancesSet>${items}</instancesSet></item></reservationSet>` +
      (nextToken ? `<nextToken>${nextToken}</nextToken>` : '') +
      '</DescribeInstancesResponse>'
    );
  }

  it('reaches AWS_ENDPOINT_URL_EC2 with a signed DescribeInstances and parses the XML pages', async () => {
    const bodies: string[] = [];
    const auth: string[] = [];
    const s = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        bodies.push(body);
        auth.push(String(req.headers.authorization));
        const params = new URLSearchParams(body);
        res.writeHead(200, { 'content-type': 'text/xml;charset=UTF-8' });
        res.end(
          params.get('NextToken') === 'page-2'
            ? describeResponse([{ id: 'i-0aaa', ip: '10.1.0.5' }])
            : describeResponse(
                [
                  { id: 'i-0ccc', ip: '10.1.0.7' },
                  { id: 'i-0bbb' }, // no private IP: skipped
                ],
                'page-2',
              ),
        );
      });
    });
    server = s;
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    process.env.AWS_ENDPOINT_URL_EC2 = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

    const log = fakeLog();
    const d = new Ec2Discovery({ autoScalingGroup: 'sn-fleet', meshPort: 7000, refreshMs: 60_000, log });
    await d.start();
    d.stop();

    expect(log.warn).not.toHaveBeenCalled();
    expect(d.ready).toBe(true);
    expect(urls(d.members())).toEqual(['i-0aaa=ws://10.1.0.5:7000', 'i-0ccc=ws://10.1.0.7:7000']);
    expect(bodies).toHaveLength(2);
    const first = Object.fromEntries(new URLSearchParams(bodies[0]));
    expect(first).toMatchObject({
      Action: 'DescribeInstances',
      Version: '2016-11-15',
      'Filter.1.Name': 'tag:aws:autoscaling:groupName',
      'Filter.1.Value.1': 'sn-fleet',
      'Filter.2.Name': 'instance-state-name',
      'Filter.2.Value.1': 'running',
      MaxResults: '1000',
    });
    expect(new URLSearchParams(bodies[1]).get('NextToken')).toBe('page-2');
    expect(auth[0]).toContain('Credential=AKIDLOCALTEST/');
    expect(auth[0]).toContain('/eu-west-1/ec2/aws4_request');
  });
});
