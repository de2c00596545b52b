/**
 * The decision table of the resilient client (docs/client.md): after each failure, what to do next.
 * Pure functions of the failure, so the table is tested row by row without any network.
 *
 * The rule that shapes it: the auth service must not be needed by clients that hold usable
 * credentials, and a password login (the expensive request, the one a login storm is made of) happens
 * only when the refresh token has been rejected as invalid, never because something was slow or down.
 */
import type { Drain, ServerError } from '../protocol/messages';
import { AuthError } from './auth-client';
import { SessionError } from './session';

/** What the client does to get a session: connect with the access token, refresh it, or log in. */
export type Step = 'connect' | 'refresh' | 'login';

/**
 * How long before the next step: `now` is progress (nothing failed that a wait would fix);
 * `backoff` is a retry of a failed step (full jitter on that step's failure count, within the retry
 * budget); `reconnect` is the first try after losing a session (random within the reconnect jitter).
 * Either wait is at least `floorMs` when the server advised one.
 */
export type Wait = 'now' | 'backoff' | 'reconnect';

/** Where the next connect goes: the same node, the next one, or one the refusing node suggested. */
export type Target = 'same' | 'next' | 'alternative';

/** Why the client stopped trying and waits for the application (`retryNow()` after fixing it). */
export type CredentialsReason = 'no_password' | 'invalid_credentials' | 'account_disabled';

export type Next =
  | {
      step: 'connect';
      wait: Wait;
      target: Target;
      floorMs?: number;
      alternatives?: string[];
      reason: string;
    }
  | { step: 'refresh' | 'login'; wait: Wait; floorMs?: number; reason: string }
  | { step: 'credentials'; reason: CredentialsReason }
  | { step: 'stop'; reason: 'replaced' };

const TOKEN_REFUSALS = new Set(['token_expired', 'token_invalid', 'token_revoked']);
const ADVISED = new Set(['full', 'draining', 'keys_unavailable']);

/**
 * A connect (WebSocket + hello) failed. `freshToken`: the token was issued moments ago by a refresh or
 * a login, so refusing it again at once would only loop; a token from the cache is refreshed at once.
 */
export function afterConnectFailure(error: unknown, freshToken: boolean): Next {
  if (error instanceof SessionError && TOKEN_REFUSALS.has(error.code)) {
    return { step: 'refresh', wait: freshToken ? 'backoff' : 'now', reason: error.code };
  }
  if (error instanceof SessionError && ADVISED.has(error.code)) {
    return {
      step: 'connect',
      wait: 'backoff',
      target: 'alternative',
      floorMs: error.retryAfterMs,
      alternatives: error.alternatives,
      reason: error.code,
    };
  }
  // Timeouts, refused or cut connections, anything else: another node (through a load balancer,
  // the same name, which picks another instance).
  return { step: 'connect', wait: 'backoff', target: 'next', reason: reasonOf(error) };
}

/** A refresh failed: only a rejection of the refresh token (401, or 400 for a malformed one) leads to a password login. */
export function afterRefreshFailure(error: unknown): Next {
  if (error instanceof AuthError && (error.status === 401 || error.status === 400)) {
    return { step: 'login', wait: 'now', reason: error.code };
  }
  return {
    step: 'refresh',
    wait: 'backoff',
    floorMs: error instanceof AuthError ? error.retryAfterMs : undefined,
    reason: reasonOf(error),
  };
}

/**
 * A password login failed. A wrong password is not retried (retrying would only lock the account);
 * 429 (limits, lockout), 503 (shed) and network failures are retried no sooner than advised.
 */
export function afterLoginFailure(error: unknown): Next {
  if (error instanceof AuthError && (error.status === 400 || error.status === 401 || error.status === 403)) {
    return {
      step: 'credentials',
      reason: error.status === 403 ? 'account_disabled' : 'invalid_credentials',
    };
  }
  return {
    step: 'login',
    wait: 'backoff',
    floorMs: error instanceof AuthError ? error.retryAfterMs : undefined,
    reason: reasonOf(error),
  };
}

/** An established session ended with close `code`; `lastError` is the node's last unsolicited error. */
export function afterSessionLost(code: number, lastError?: ServerError): Next {
  if (code === 4009) return { step: 'stop', reason: 'replaced' };
  if (code === 4002 || code === 4003 || code === 4005) {
    return { step: 'refresh', wait: 'now', reason: lastError?.code ?? `closed ${code}` };
  }
  if (code === 4004 || code === 4010 || code === 4011) {
    return {
      step: 'connect',
      wait: 'reconnect',
      target: 'alternative',
      floorMs: lastError?.retryAfterMs,
      alternatives: lastError?.alternatives,
      reason: lastError?.code ?? `closed ${code}`,
    };
  }
  // 1001: the node shut down or its drain deadline passed; 1006: cut (crash, network): elsewhere.
  // Anything else (rate_limited, internal, a normal close) says nothing against this node.
  const target = code === 1001 || code === 1006 ? 'next' : 'same';
  return { step: 'connect', wait: 'reconnect', target, reason: `closed ${code}` };
}

/** The node is draining: move after its (per-client random) delay, keeping this session until then. */
export function afterDrain(drain: Drain): Next {
  return {
    step: 'connect',
    wait: 'reconnect',
    target: 'alternative',
    floorMs: drain.retryAfterMs,
    alternatives: drain.alternatives,
    reason: 'drain',
  };
}

function reasonOf(error: unknown): string {
  if (error instanceof SessionError || error instanceof AuthError) return error.code;
  if (error instanceof Error && error.name === 'TimeoutError') return 'timeout';
  return error instanceof Error ? `network: ${error.message}` : 'unknown';
}
