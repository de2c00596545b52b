/** One entry of RTCPeerConnection's `iceServers`: a TURN server of the tier and its credentials. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

/** Tokens as the auth service returns them, plus when the access token expires (ms since the epoch). */
export interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresAt: number;
  /** When the service hands out TURN (docs/auth.md#tokens): `new RTCPeerConnection({ iceServers })`. */
  iceServers?: IceServer[];
}

/** The auth service answered with an error body; `code` is its typed `error` field. */
export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/** Calls to the auth service's HTTP API (docs/auth.md). No retries here: callers decide. */
export class AuthClient {
  constructor(
    private readonly baseUrl: string,
    private readonly timeoutMs = 10_000,
  ) {}

  async signup(username: string, password: string): Promise<void> {
    await this.post('/v1/accounts', { username, password });
  }

  async login(username: string, password: string): Promise<Tokens> {
    return toTokens(await this.post('/v1/login', { username, password }));
  }

  async refresh(refreshToken: string): Promise<Tokens> {
    return toTokens(await this.post('/v1/token/refresh', { refreshToken }));
  }

  async changePassword(username: string, currentPassword: string, newPassword: string): Promise<void> {
    await this.post('/v1/accounts/password', { username, currentPassword, newPassword });
  }

  async logout(refreshToken: string): Promise<void> {
    await this.post('/v1/logout', { refreshToken });
  }

  private async post(path: string, body: object): Promise<Record<string, unknown>> {
    const response = await fetch(`${this.baseUrl.replace(/\/$/, '')}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    const parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    if (!response.ok) {
      const retryAfter = Number(parsed.retryAfterMs ?? Number(response.headers.get('retry-after')) * 1000);
      throw new AuthError(
        response.status,
        String(parsed.error ?? 'http_error'),
        String(parsed.message ?? response.statusText),
        Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
      );
    }
    return parsed;
  }
}

function toTokens(body: Record<string, unknown>): Tokens {
  const tokens: Tokens = {
    accessToken: String(body.accessToken),
    refreshToken: String(body.refreshToken),
    expiresAt: Date.now() + Number(body.expiresIn) * 1000,
  };
  const iceServers = parseIceServers(body.iceServers);
  if (iceServers) tokens.iceServers = iceServers;
  return tokens;
}

/**
 * `value` as `iceServers` if it has that shape (an auth answer's, or stored with the tokens); anything
 * else is not handed to RTCPeerConnection.
 */
export function parseIceServers(value: unknown): IceServer[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const servers: IceServer[] = [];
  for (const entry of value as Array<Record<string, unknown> | null>) {
    const urls = entry?.urls;
    if (!Array.isArray(urls) || !urls.every((url) => typeof url === 'string')) return undefined;
    const server: IceServer = { urls: [...urls] };
    if (typeof entry?.username === 'string') server.username = entry.username;
    if (typeof entry?.credential === 'string') server.credential = entry.credential;
    servers.push(server);
  }
  return servers;
}
