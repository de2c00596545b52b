import { AuthError } from '../../supernode/client/auth-client';
import { ClientError } from '../../supernode/client/resilient-client';
import { SessionError } from '../../supernode/client/session';
import { type FakeSession, harness, issue } from './fakes';

const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
const network = new TypeError('fetch failed');
/** Lets the client's promises and any timers due within `ms` run. */
const advance = (ms = 0) => jest.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  jest.useFakeTimers({ now: 1_800_000_000_000 });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('resume first', () => {
  it('connects with the cached access token: no refresh, no login', async () => {
    const { client, nodes, auth, events } = harness({ cached: issue() });
    client.start();
    await advance();
    expect(nodes.calls).toHaveLength(1);
    expect(events).toContainEqual(['connected', { url: 'ws://a', node: 'a', attempt: 1, resumed: true }]);
    expect(auth.refreshCalls).toHaveLength(0);
    expect(auth.loginCalls).toHaveLength(0);
    expect(client.counters).toMatchObject({ connects: 1, refreshes: 0, passwordLogins: 0, retries: 0 });
    expect((await client.lookup('bob')).online).toBe(true);
    await client.stop();
  });

  it('an access token past its expiry is refreshed first, and the new pair is saved before it is used', async () => {
    const { client, nodes, auth, store, events } = harness({ cached: issue(-1000) });
    nodes.onConnect = ({ token }) => expect(store.saved.get('alice')?.accessToken).toBe(token);
    client.start();
    await advance();
    expect(auth.refreshCalls).toHaveLength(1);
    expect(nodes.calls).toHaveLength(1);
    expect(events.map(([name]) => name)).toEqual(['token_refreshed', 'connected']);
    expect(events[1][1]).toMatchObject({ resumed: false });
    await client.stop();
  });

  it('an access token refused as expired at the hello is refreshed at once, then used', async () => {
    const { client, nodes, auth } = harness({ cached: issue() });
    nodes.refusals.push(new SessionError('token_expired', 'token expired', 4003));
    client.start();
    await advance();
    expect(auth.refreshCalls).toHaveLength(1);
    expect(nodes.calls.map((c) => c.url)).toEqual(['ws://a', 'ws://a']);
    expect(nodes.calls[1].token).not.toBe(nodes.calls[0].token);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('a wiped cache: exactly one password login', async () => {
    const { client, auth, store } = harness();
    client.start();
    await advance();
    expect(auth.loginCalls).toHaveLength(1);
    expect(store.saved.get('alice')).toBeDefined();
    // The next session loss resumes with the saved token.
    (client.session as FakeSession).drop(1006);
    await advance(5000);
    expect(auth.loginCalls).toHaveLength(1);
    expect(client.counters).toMatchObject({ connects: 2, passwordLogins: 1, refreshes: 0 });
    await client.stop();
  });
});

describe('refresh failures', () => {
  it('a refresh token rejected as invalid leads to one password login', async () => {
    const { client, auth, events } = harness({ cached: issue(-1000) });
    auth.refreshFailures.push(new AuthError(401, 'invalid_refresh_token', 'refresh token is not valid'));
    client.start();
    await advance();
    expect(auth.refreshCalls).toHaveLength(1);
    expect(auth.loginCalls).toHaveLength(1);
    expect(events.map(([name]) => name)).toEqual(['password_login', 'connected']);
    await client.stop();
  });

  it.each([
    ['429', new AuthError(429, 'too_many_requests', 'slow down', 4000), 4000],
    ['503', new AuthError(503, 'overloaded', 'busy', 3000), 3000],
    ['a timeout', timeout, 0],
    ['a network error', network, 0],
  ])(
    'a refresh failing with %s: backoff (at least the Retry-After) and the refresh again, never a password login',
    async (_, error, floor) => {
      const { client, auth, events } = harness({ cached: issue(-1000) });
      auth.refreshFailures.push(error, error, error);
      client.start();
      await advance();
      // Three failures: waits of max(floor, 0.5 x 500 / 1000 / 2000 ms).
      const expected = [0, 1, 2].map((n) => Math.max(floor, 250 * 2 ** n));
      for (const delayMs of expected) {
        const scheduled = events.filter(([name]) => name === 'retry_scheduled').at(-1)?.[1];
        expect(scheduled).toMatchObject({ step: 'refresh', delayMs });
        const calls = auth.refreshCalls.length;
        await advance(delayMs - 1);
        expect(auth.refreshCalls).toHaveLength(calls);
        await advance(1);
        expect(auth.refreshCalls).toHaveLength(calls + 1);
      }
      expect(client.session).toBeDefined();
      expect(auth.loginCalls).toHaveLength(0);
      expect(client.counters).toMatchObject({ refreshes: 1, passwordLogins: 0, retries: 3 });
      await client.stop();
    },
  );
});

describe('login failures', () => {
  it.each([
    ['429', new AuthError(429, 'too_many_attempts', 'locked', 30_000)],
    ['503', new AuthError(503, 'overloaded', 'login capacity is full', 7000)],
  ])('a login refused with %s is retried no sooner than its Retry-After', async (_, error) => {
    const { client, auth } = harness();
    auth.loginFailures.push(error);
    client.start();
    await advance();
    expect(auth.loginCalls).toHaveLength(1);
    await advance((error.retryAfterMs ?? 0) - 1);
    expect(auth.loginCalls).toHaveLength(1);
    await advance(1);
    expect(auth.loginCalls).toHaveLength(2);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('a wrong password is not retried: credentials_required, then retryNow asks for the password again', async () => {
    const passwords = ['wrong-password', 'alice-secret-1'];
    const { client, auth, events } = harness({ password: () => passwords.shift() });
    auth.loginFailures.push(new AuthError(401, 'invalid_credentials', 'username or password is wrong'));
    client.start();
    await advance(60_000);
    expect(auth.loginCalls).toHaveLength(1);
    expect(events).toContainEqual(['credentials_required', { reason: 'invalid_credentials' }]);
    client.retryNow();
    await advance();
    expect(auth.loginCalls.map((c) => c.password)).toEqual(['wrong-password', 'alice-secret-1']);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('without a password the client waits for the application', async () => {
    const { client, auth, events } = harness({ password: () => undefined });
    client.start();
    await advance(60_000);
    expect(auth.loginCalls).toHaveLength(0);
    expect(events).toEqual([['credentials_required', { reason: 'no_password' }]]);
    await client.stop();
  });
});

describe('failover', () => {
  it('a full node: the alternative it names, after at least its retryAfterMs', async () => {
    const { client, nodes, events } = harness({ cached: issue() });
    nodes.refusals.push(new SessionError('full', 'node is at capacity', 4010, 7421, ['ws://c']));
    client.start();
    await advance();
    expect(events.at(-1)).toEqual([
      'retry_scheduled',
      { step: 'connect', attempt: 0, delayMs: 7421, reason: 'full' },
    ]);
    await advance(7420);
    expect(nodes.calls).toHaveLength(1);
    await advance(1);
    expect(nodes.calls.map((c) => c.url)).toEqual(['ws://a', 'ws://c']);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('an unreachable node: the next one in the list', async () => {
    const { client, nodes } = harness({ cached: issue() });
    nodes.down.add('ws://a');
    client.start();
    await advance(250);
    expect(nodes.calls.map((c) => c.url)).toEqual(['ws://a', 'ws://b']);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('a drain: keeps the session until the advised delay, moves, re-registers, then closes the old one', async () => {
    const { client, nodes, auth, events } = harness({ cached: issue() });
    client.start();
    await advance();
    const first = nodes.last;
    first.emit('drain', { type: 'drain', retryAfterMs: 2210, alternatives: ['ws://b'] });
    await advance(2209);
    expect(nodes.calls).toHaveLength(1);
    expect(first.isOpen).toBe(true);
    await advance(1);
    expect(nodes.calls.map((c) => c.url)).toEqual(['ws://a', 'ws://b']);
    expect(first.isOpen).toBe(false);
    expect(client.session).toBe(nodes.last);
    expect(events).toContainEqual([
      'rehomed',
      { from: { url: 'ws://a', node: 'a' }, to: { url: 'ws://b', node: 'b' } },
    ]);
    expect(auth.refreshCalls).toHaveLength(0);
    await client.stop();
  });

  it('a password login after a lost session (credentials gone) is spread over the login window', async () => {
    const { client, nodes, auth, store, events } = harness({
      cached: issue(),
      reconnectJitterMs: 1000,
      loginSpreadMs: 30_000,
    });
    client.start();
    await advance();
    store.saved.clear();
    nodes.last.drop(1006);
    await advance(500); // the reconnect jitter: no credentials, so a login is next
    expect(events.at(-1)).toEqual([
      'retry_scheduled',
      { step: 'login', attempt: 0, delayMs: 15_000, reason: 'no_credentials (spread)' },
    ]);
    await advance(14_999);
    expect(auth.loginCalls).toHaveLength(0);
    await advance(1);
    expect(auth.loginCalls).toHaveLength(1);
    expect(client.session).toBeDefined();
    await client.stop();
  });

  it('the first login after start is not delayed: someone is waiting for it', async () => {
    const { client, auth } = harness({ loginSpreadMs: 30_000 });
    client.start();
    await advance();
    expect(auth.loginCalls).toHaveLength(1);
    await client.stop();
  });

  it('a lookup lost with its session is asked again on the next session (lookups are read-only)', async () => {
    const { client, nodes } = harness({ cached: issue(), reconnectJitterMs: 1000 });
    client.start();
    await advance();
    const first = nodes.last;
    // The node dies while the lookup is pending: the session closes and rejects what was pending.
    first.lookup = () => {
      first.drop(1006);
      return Promise.reject(new SessionError('closed', 'session closed: 1006', 1006));
    };
    const answer = client.lookup('bob');
    await advance(1000);
    expect(nodes.last.url).toBe('ws://b');
    await expect(answer).resolves.toMatchObject({ online: true, node: 'ws://b' });
    await client.stop();
  });

  it('a lookup refused by a live session is not asked again', async () => {
    const { client, nodes } = harness({ cached: issue() });
    client.start();
    await advance();
    nodes.last.lookup = () => Promise.reject(new SessionError('rate_limited', 'too many lookups'));
    await expect(client.lookup('bob')).rejects.toMatchObject({ code: 'rate_limited' });
    await client.stop();
  });

  it('a crashed node (1006): reconnects to the next one within the reconnect jitter', async () => {
    const { client, nodes, events } = harness({ cached: issue(), reconnectJitterMs: 1000 });
    client.start();
    await advance();
    nodes.last.drop(1006);
    expect(events.at(-2)).toMatchObject(['disconnected', { url: 'ws://a', code: 1006 }]);
    expect(events.at(-1)).toEqual([
      'retry_scheduled',
      { step: 'connect', attempt: 0, delayMs: 500, reason: 'closed 1006' },
    ]);
    await expect(client.lookup('bob')).rejects.toEqual(expect.objectContaining({ code: 'not_connected' }));
    expect(() => client.send('bob', Buffer.from('x'))).toThrow(ClientError);
    await advance(500);
    expect(client.session).toBe(nodes.last);
    expect(nodes.last.url).toBe('ws://b');
    expect(client.counters).toMatchObject({ rehomes: 1, retries: 1, refreshes: 0, passwordLogins: 0 });
    await client.stop();
    await expect(client.lookup('bob')).rejects.toEqual(expect.objectContaining({ code: 'stopped' }));
  });

  it('"replaced" is final: no reconnect from this device', async () => {
    const { client, nodes, events } = harness({ cached: issue() });
    client.start();
    await advance();
    nodes.last.drop(4009, 'replaced');
    await advance(60_000);
    expect(nodes.calls).toHaveLength(1);
    expect(events.at(-1)).toEqual(['stopped', { reason: 'replaced' }]);
  });
});

describe('pacing', () => {
  it('start jitter: the first connect waits a uniformly random part of startJitterMs', async () => {
    for (const r of [0.1, 0.5, 0.9]) {
      const { client, nodes } = harness({ cached: issue(), random: () => r });
      client.start({ startJitterMs: 10_000 });
      await advance(r * 10_000 - 1);
      expect(nodes.calls).toHaveLength(0);
      await advance(1);
      expect(nodes.calls).toHaveLength(1);
      await client.stop();
    }
  });

  it('start jitter spreads a crowd of clients evenly over the window', async () => {
    const starts: number[] = [];
    for (let i = 0; i < 500; i++) {
      const { client, events } = harness({ cached: issue(), random: Math.random });
      client.start({ startJitterMs: 10_000 });
      // A draw of 0 ms starts at once, with no wait to announce (1 in 10,000 per client).
      const [name, payload] = events[0] ?? ['none', undefined];
      starts.push(name === 'retry_scheduled' ? (payload as { delayMs: number }).delayMs : 0);
      await client.stop();
    }
    expect(Math.min(...starts)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...starts)).toBeLessThan(10_000);
    // Every second of the window gets a share (500 clients, 10 buckets: about 50 each).
    const buckets = Array.from(
      { length: 10 },
      (_, b) => starts.filter((s) => Math.floor(s / 1000) === b).length,
    );
    expect(Math.min(...buckets)).toBeGreaterThan(20);
  });

  it('a session that keeps dropping right after the welcome is held to the retry budget', async () => {
    const { client, nodes, events } = harness({
      cached: issue(),
      reconnectJitterMs: 100,
      retryBudget: { ratio: 0.1, maxTokens: 3, minIntervalMs: 10_000 },
    });
    nodes.onConnect = () => setTimeout(() => nodes.last.drop(1011), 0);
    client.start();
    await advance(30_000);
    // 3 banked retries (+0.1 per welcome), then one per 10 s: not ~300 reconnects in 30 s.
    expect(nodes.calls.length).toBeGreaterThanOrEqual(5);
    expect(nodes.calls.length).toBeLessThanOrEqual(8);
    expect(events.some(([name]) => name === 'budget_exhausted')).toBe(true);
    await client.stop();
  });

  it('gives up after maxRetryMs without a session, and only then', async () => {
    const { client, nodes, events } = harness({ cached: issue(), maxRetryMs: 20_000 });
    for (const url of ['ws://a', 'ws://b', 'ws://c']) nodes.down.add(url);
    client.start();
    await advance(60_000);
    expect(events.at(-2)).toMatchObject(['gave_up', { step: 'connect' }]);
    expect(events.at(-1)).toEqual(['stopped', { reason: 'gave_up' }]);
    const lastTry = nodes.calls.at(-1)?.at ?? 0;
    expect(lastTry - nodes.calls[0].at).toBeLessThanOrEqual(20_000);
    await expect(client.whenConnected()).rejects.toBeInstanceOf(ClientError);
  });

  it('a credential store that cannot save: tokens kept in memory, no password login', async () => {
    const { client, auth, store, events } = harness({ cached: issue(-1000) });
    store.save = () => Promise.reject(new Error('disk full'));
    client.start();
    await advance();
    expect(events.map(([name]) => name)).toEqual(['store_failed', 'token_refreshed', 'connected']);
    (client.session as FakeSession).drop(1006);
    await advance(5000);
    // The spent refresh token is not presented again: the in-memory successor is used.
    expect(auth.refreshCalls).toHaveLength(1);
    expect(auth.loginCalls).toHaveLength(0);
    expect(client.counters.connects).toBe(2);
    await client.stop();
  });
});
