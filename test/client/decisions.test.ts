import { AuthError } from '../../supernode/client/auth-client';
import {
  afterConnectFailure,
  afterDrain,
  afterLoginFailure,
  afterRefreshFailure,
  afterSessionLost,
} from '../../supernode/client/decisions';
import { SessionError } from '../../supernode/client/session';
import type { ServerError } from '../../supernode/protocol/messages';

const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
const network = new TypeError('fetch failed');

describe('the decision table', () => {
  it('a token refused at the hello is refreshed at once if it came from the cache, after a backoff if it was just issued', () => {
    for (const code of ['token_expired', 'token_invalid', 'token_revoked'] as const) {
      const refused = new SessionError(code, 'refused', 4003);
      expect(afterConnectFailure(refused, false)).toMatchObject({ step: 'refresh', wait: 'now' });
      expect(afterConnectFailure(refused, true)).toMatchObject({ step: 'refresh', wait: 'backoff' });
    }
  });

  it('a full, draining or keyless node: another node no sooner than advised', () => {
    for (const code of ['full', 'draining', 'keys_unavailable'] as const) {
      const refusal = new SessionError(code, 'refused', 4010, 7421, ['ws://b']);
      expect(afterConnectFailure(refusal, false)).toEqual({
        step: 'connect',
        wait: 'backoff',
        target: 'alternative',
        floorMs: 7421,
        alternatives: ['ws://b'],
        reason: code,
      });
    }
  });

  it('timeouts and failed or cut connections: the next node, after a backoff', () => {
    for (const error of [
      new SessionError('timeout', 'no welcome in time'),
      new SessionError('connect_failed', 'ECONNREFUSED'),
      new SessionError('closed', 'closed before welcome: 1006', 1006),
    ]) {
      expect(afterConnectFailure(error, false)).toMatchObject({
        step: 'connect',
        wait: 'backoff',
        target: 'next',
      });
    }
  });

  it('a refresh token rejected as invalid (401, or 400 for a malformed one) leads to a password login', () => {
    expect(
      afterRefreshFailure(new AuthError(401, 'invalid_refresh_token', 'refresh token is not valid')),
    ).toEqual({ step: 'login', wait: 'now', reason: 'invalid_refresh_token' });
    expect(
      afterRefreshFailure(new AuthError(400, 'bad_request', 'body/refreshToken must match')),
    ).toMatchObject({ step: 'login' });
  });

  it.each([
    ['429', new AuthError(429, 'too_many_requests', 'slow down', 2000), 2000],
    ['503 overloaded', new AuthError(503, 'overloaded', 'busy', 250), 250],
    ['503 store_unavailable', new AuthError(503, 'store_unavailable', 'store down', 1000), 1000],
    ['500', new AuthError(500, 'internal', 'bug'), undefined],
    ['a timeout', timeout, undefined],
    ['a network error', network, undefined],
  ])(
    'a refresh failing with %s is retried after a backoff, never replaced by a password login',
    (_, error, floor) => {
      expect(afterRefreshFailure(error)).toMatchObject({ step: 'refresh', wait: 'backoff', floorMs: floor });
    },
  );

  it.each([
    ['429 locked', new AuthError(429, 'too_many_attempts', 'locked', 30_000), 30_000],
    ['503 shed', new AuthError(503, 'overloaded', 'full', 3712), 3712],
    ['a timeout', timeout, undefined],
    ['a network error', network, undefined],
  ])('a login failing with %s is retried no sooner than advised', (_, error, floor) => {
    expect(afterLoginFailure(error)).toMatchObject({ step: 'login', wait: 'backoff', floorMs: floor });
  });

  it('a wrong password or a disabled account is not retried: the application is asked', () => {
    expect(afterLoginFailure(new AuthError(401, 'invalid_credentials', 'wrong'))).toEqual({
      step: 'credentials',
      reason: 'invalid_credentials',
    });
    expect(afterLoginFailure(new AuthError(403, 'account_disabled', 'disabled'))).toEqual({
      step: 'credentials',
      reason: 'account_disabled',
    });
  });

  it('a lost session: elsewhere after a crash or shutdown, the same node otherwise, never after "replaced"', () => {
    expect(afterSessionLost(1006)).toMatchObject({ step: 'connect', wait: 'reconnect', target: 'next' });
    expect(afterSessionLost(1001)).toMatchObject({ step: 'connect', wait: 'reconnect', target: 'next' });
    expect(afterSessionLost(4008)).toMatchObject({ step: 'connect', wait: 'reconnect', target: 'same' });
    expect(afterSessionLost(4009)).toEqual({ step: 'stop', reason: 'replaced' });
    expect(afterSessionLost(4005)).toMatchObject({ step: 'refresh', wait: 'now' });
    const full: ServerError = {
      type: 'error',
      code: 'full',
      message: 'full',
      retryAfterMs: 6000,
      alternatives: ['ws://c'],
    };
    expect(afterSessionLost(4010, full)).toMatchObject({
      step: 'connect',
      target: 'alternative',
      floorMs: 6000,
      alternatives: ['ws://c'],
    });
  });

  it('a drain: to an alternative after the advised delay', () => {
    expect(afterDrain({ type: 'drain', retryAfterMs: 2210, alternatives: ['ws://b'] })).toMatchObject({
      step: 'connect',
      wait: 'reconnect',
      target: 'alternative',
      floorMs: 2210,
      alternatives: ['ws://b'],
    });
  });
});
