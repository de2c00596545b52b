import { type Static, Type } from '@sinclair/typebox';

/** Usernames are the user ids supernodes see (`sub`): lowercase, so "Alice" and "alice" are one user. */
export const USERNAME_PATTERN = '^[a-z0-9][a-z0-9._-]{2,31}$';
const Username = Type.String({ pattern: USERNAME_PATTERN, minLength: 3, maxLength: 32 });
// Length bounds the hash input; 8 is the NIST SP 800-63B minimum for user-chosen secrets.
const Password = Type.String({ minLength: 8, maxLength: 256 });
const RefreshToken = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });

export const Credentials = Type.Object(
  { username: Username, password: Password },
  { additionalProperties: false },
);
export const PasswordChange = Type.Object(
  { username: Username, currentPassword: Password, newPassword: Password },
  { additionalProperties: false },
);
export const RefreshBody = Type.Object({ refreshToken: RefreshToken }, { additionalProperties: false });
/** One entry of RTCPeerConnection's `iceServers`, as the login and refresh answers carry it. */
const IceServerAnswer = Type.Object(
  {
    urls: Type.Array(Type.String()),
    username: Type.Optional(Type.String()),
    credential: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
/** 200 of login and refresh (docs/auth.md#tokens); also what is serialized, so nothing else leaks out. */
export const TokenAnswer = Type.Object(
  {
    tokenType: Type.Literal('Bearer'),
    accessToken: Type.String(),
    expiresIn: Type.Integer(),
    refreshToken: Type.String(),
    iceServers: Type.Optional(Type.Array(IceServerAnswer)),
  },
  { additionalProperties: false },
);
export const UsernameParams = Type.Object({ username: Username }, { additionalProperties: false });

export type CredentialsBody = Static<typeof Credentials>;
export type PasswordChangeBody = Static<typeof PasswordChange>;
export type RefreshTokenBody = Static<typeof RefreshBody>;
export type UsernameParamsOf = Static<typeof UsernameParams>;

/** What each field must be, in words, for 400 answers (instead of the validator's schema text). */
const FIELD_RULES: Record<string, string> = {
  username: 'username must be 3 to 32 characters of a-z 0-9 . _ -, starting with a letter or digit',
  password: 'password must be 8 to 256 characters',
  currentPassword: 'currentPassword must be 8 to 256 characters',
  newPassword: 'newPassword must be 8 to 256 characters',
  refreshToken: 'refreshToken must be the 43-character token the service issued',
};

/** One validation error as a person reads it: the rule of the field, else the validator's text. */
export function validationMessage(
  errors: ReadonlyArray<{
    instancePath?: string;
    keyword?: string;
    params?: Record<string, unknown>;
    message?: string;
  }>,
  context: string,
  fallback: string,
): string {
  const first = errors[0];
  if (!first) return fallback;
  const field = first.instancePath?.split('/').filter(Boolean)[0];
  if (field && FIELD_RULES[field] && first.keyword !== 'type') return FIELD_RULES[field];
  if (first.keyword === 'required') return `${context} needs ${String(first.params?.missingProperty)}`;
  if (first.keyword === 'additionalProperties')
    return `${context} has an unknown field ${String(first.params?.additionalProperty)}`;
  return fallback;
}

/**
 * A login body whose username and password are strings, though not ones any account can have (a
 * password too short, a name of the wrong shape): wrong credentials, nothing more, whatever the rule.
 */
export function isCredentialShaped(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  const { username, password } = body as Record<string, unknown>;
  return (
    keys.length === 2 &&
    typeof username === 'string' &&
    typeof password === 'string' &&
    username.length <= 256 &&
    password.length <= 1024
  );
}
