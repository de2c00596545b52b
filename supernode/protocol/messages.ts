import { isIP } from 'node:net';
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

/** The session path; the version is part of the path so a v2 can run beside v1. */
export const SESSION_PATH = '/v1/session';

/** Bounds that hold before any schema work: a control frame larger than this is refused unparsed. */
export const MAX_CONTROL_BYTES = 8 * 1024;
export const MAX_TOKEN_CHARS = 4096;
export const MAX_ENDPOINTS = 8;
/** User ids come from the token's `sub`; printable ASCII keeps them safe in frames, logs and metrics. */
export const USER_ID_PATTERN = '^[\\x21-\\x7e]{1,128}$';
export const USER_ID_REGEX = new RegExp(USER_ID_PATTERN);

const RequestId = Type.Integer({ minimum: 0, maximum: 0xffffffff });
const UserId = Type.String({ pattern: USER_ID_PATTERN, maxLength: 128 });
const Endpoint = Type.Object(
  {
    address: Type.String({ minLength: 2, maxLength: 45 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    kind: Type.Optional(Type.Union([Type.Literal('host'), Type.Literal('srflx'), Type.Literal('relay')])),
  },
  { additionalProperties: false },
);
export type Endpoint = Static<typeof Endpoint>;
const Endpoints = Type.Array(Endpoint, { maxItems: MAX_ENDPOINTS });

/** Client to server control messages (text frames). */
export const HelloMessage = Type.Object(
  {
    type: Type.Literal('hello'),
    token: Type.String({ minLength: 1, maxLength: MAX_TOKEN_CHARS }),
    endpoints: Type.Optional(Endpoints),
  },
  { additionalProperties: false },
);
export const EndpointsMessage = Type.Object(
  { type: Type.Literal('endpoints'), endpoints: Endpoints },
  { additionalProperties: false },
);
export const LookupMessage = Type.Object(
  { type: Type.Literal('lookup'), id: RequestId, user: UserId },
  { additionalProperties: false },
);
export const PingMessage = Type.Object(
  { type: Type.Literal('ping'), id: RequestId },
  { additionalProperties: false },
);

export type HelloMessage = Static<typeof HelloMessage>;
export type EndpointsMessage = Static<typeof EndpointsMessage>;
export type LookupMessage = Static<typeof LookupMessage>;
export type PingMessage = Static<typeof PingMessage>;
export type ClientMessage = HelloMessage | EndpointsMessage | LookupMessage | PingMessage;

const validators = {
  hello: TypeCompiler.Compile(HelloMessage),
  endpoints: TypeCompiler.Compile(EndpointsMessage),
  lookup: TypeCompiler.Compile(LookupMessage),
  ping: TypeCompiler.Compile(PingMessage),
};
export type ClientMessageType = keyof typeof validators;

/** Typed error codes carried in `error` messages; the close code used when the session ends with one. */
export const ErrorCodes = {
  bad_message: 4000,
  auth_required: 4001,
  auth_timeout: 4001,
  token_invalid: 4002,
  token_expired: 4003,
  token_revoked: 4005,
  keys_unavailable: 4004,
  rate_limited: 4008,
  replaced: 4009,
  full: 4010,
  draining: 4011,
  slow_consumer: 4012,
  unsupported: 0,
  unknown_recipient: 0,
  recipient_busy: 0,
  internal: 1011,
} as const;
export type ErrorCode = keyof typeof ErrorCodes;

export interface ServerError {
  type: 'error';
  code: ErrorCode;
  message: string;
  /** The request (`lookup`/`ping` id) or relay frame (`msgId`) the error answers. */
  id?: number;
  msgId?: number;
  retryAfterMs?: number;
  alternatives?: string[];
}
export interface Welcome {
  type: 'welcome';
  session: string;
  user: string;
  node: string;
  expiresAt: number;
  heartbeatMs: number;
  limits: {
    maxFrameBytes: number;
    messagesPerSecond: number;
    lookupsPerSecond: number;
    sendBufferBytes: number;
    maxSessionsPerUser: number;
  };
}
export interface LookupResult {
  type: 'lookup_result';
  id: number;
  user: string;
  online: boolean;
  node: string | null;
  sessions: number;
  endpoints: Endpoint[];
}
export interface Pong {
  type: 'pong';
  id: number;
}
export interface Ack {
  type: 'ack';
  msgId: number;
  delivered: number;
}
export interface Drain {
  type: 'drain';
  retryAfterMs: number;
  alternatives: string[];
}
export type ServerMessage = ServerError | Welcome | LookupResult | Pong | Ack | Drain;

export type ParseResult =
  | { ok: true; message: ClientMessage }
  | { ok: false; code: 'bad_message' | 'unsupported'; message: string; id?: number; fatal: boolean };

/**
 * Parses one client text frame. Malformed JSON is fatal (no honest client sends it); an unknown
 * `type` is not (a newer client may), nor is a known type with bad fields. Never throws.
 */
export function parseClientMessage(text: string): ParseResult {
  // The limit is in UTF-8 bytes: 8192 UTF-16 units of 3-byte characters would be 24 KiB. The unit
  // count is a lower bound on the byte count, so the exact count is only taken below the limit.
  if (text.length > MAX_CONTROL_BYTES || Buffer.byteLength(text, 'utf8') > MAX_CONTROL_BYTES) {
    return {
      ok: false,
      code: 'bad_message',
      message: `control message over ${MAX_CONTROL_BYTES} bytes`,
      fatal: true,
    };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'bad_message', message: 'control message is not valid JSON', fatal: true };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_message', message: 'control message must be a JSON object', fatal: true };
  }
  const record = value as Record<string, unknown>;
  const type = record.type;
  const id = typeof record.id === 'number' && Number.isInteger(record.id) ? record.id : undefined;
  if (typeof type !== 'string' || !Object.hasOwn(validators, type)) {
    return {
      ok: false,
      code: 'unsupported',
      message: `unknown message type ${describeType(type)}`,
      id,
      fatal: false,
    };
  }
  const validator = validators[type as ClientMessageType];
  if (!validator.Check(value)) {
    const first = validator.Errors(value).First();
    const where = first?.path || '/';
    return {
      ok: false,
      code: 'bad_message',
      message: `${type}: ${where} ${first?.message ?? 'invalid'}`,
      id,
      fatal: false,
    };
  }
  const message = value as ClientMessage;
  if ('endpoints' in message && message.endpoints) {
    for (const endpoint of message.endpoints) {
      if (isIP(endpoint.address) === 0) {
        return {
          ok: false,
          code: 'bad_message',
          message: `${type}: endpoint address must be an IPv4 or IPv6 literal`,
          fatal: false,
        };
      }
    }
  }
  return { ok: true, message };
}

/**
 * The `type` of a refused message, for the error text. Not String(type): a parsed object may carry
 * its own `toString`/`valueOf` keys (`{"type":{"toString":1}}`), and String() of it throws.
 */
function describeType(type: unknown): string {
  if (typeof type === 'string') return JSON.stringify(type.slice(0, 32));
  if (typeof type === 'object' && type !== null) return Array.isArray(type) ? '(an array)' : '(an object)';
  return JSON.stringify(String(type));
}
