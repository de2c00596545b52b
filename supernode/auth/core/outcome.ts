/** What the core answers: a body to send, or a typed refusal. The routes turn either into a reply. */

/** Typed error bodies: `{ error, message }`, plus `retryAfterMs` where waiting helps. */
export type AuthErrorCode =
  | 'bad_request'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'not_found'
  | 'method_not_allowed'
  | 'invalid_credentials'
  | 'account_disabled'
  | 'username_taken'
  | 'invalid_refresh_token'
  | 'too_many_requests'
  | 'too_many_attempts'
  | 'overloaded'
  | 'store_unavailable'
  | 'forbidden'
  | 'internal';

export interface Refusal {
  ok: false;
  status: number;
  error: AuthErrorCode;
  message: string;
  retryAfterMs?: number;
}

export interface Success<T> {
  ok: true;
  status: number;
  /** undefined: no body (204). */
  body: T | undefined;
}

export type Outcome<T extends object = object> = Success<T> | Refusal;

export function success<T extends object>(body: T | undefined, status = 200): Success<T> {
  return { ok: true, status, body };
}

export function refusal(
  status: number,
  error: AuthErrorCode,
  message: string,
  retryAfterMs?: number,
): Refusal {
  return retryAfterMs === undefined
    ? { ok: false, status, error, message }
    : { ok: false, status, error, message, retryAfterMs };
}

/** The one answer to a wrong username or password, whatever was wrong. */
export const WRONG_CREDENTIALS = (): Refusal =>
  refusal(401, 'invalid_credentials', 'username or password is wrong');

/** Retry advice spread over [ms, 2ms), so refused clients do not return together. */
export function jitter(ms: number): number {
  return Math.ceil(ms * (1 + Math.random()));
}

/** An error for a log line: name and message, never a stack or a request body. */
export function describe(err: unknown): { name: string; message: string } {
  return { name: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) };
}
