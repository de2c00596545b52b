import { EventEmitter } from 'node:events';
import type { Tokens } from '../../supernode/client/auth-client';
import { MemoryCredentialStore } from '../../supernode/client/credentials';
import {
  type AuthApi,
  type ClientSession,
  SupernodeClient,
  type SupernodeClientOptions,
} from '../../supernode/client/resilient-client';
import type { SessionOptions } from '../../supernode/client/session';
import { SessionError } from '../../supernode/client/session';
import type { Ack, LookupResult, Welcome } from '../../supernode/protocol/messages';

/** Fake nodes are named after their URL: ws://a is node "a". */
export const nodeOf = (url: string): string => url.replace('ws://', '');

export class FakeSession extends EventEmitter {
  isOpen = true;
  readonly welcome: Welcome;

  constructor(
    readonly url: string,
    readonly token: string,
  ) {
    super();
    this.welcome = {
      type: 'welcome',
      session: `${nodeOf(url)}/1`,
      user: 'alice',
      node: nodeOf(url),
      expiresAt: 0,
      heartbeatMs: 30_000,
      limits: {
        maxFrameBytes: 65_536,
        messagesPerSecond: 500,
        lookupsPerSecond: 20,
        sendBufferBytes: 1_048_576,
        maxSessionsPerUser: 4,
      },
    };
  }

  async lookup(user: string): Promise<LookupResult> {
    return { type: 'lookup_result', id: 1, user, online: true, node: this.url, sessions: 1, endpoints: [] };
  }
  async ping(): Promise<number> {
    return 1;
  }
  send(): number {
    return 1;
  }
  async sendWithAck(): Promise<Ack> {
    return { type: 'ack', msgId: 1, delivered: 1 };
  }
  setEndpoints(): void {}

  async close(): Promise<void> {
    this.drop(1000);
  }

  /** The node ends the session (or the connection is cut: 1006). */
  drop(code: number, reason = ''): void {
    if (!this.isOpen) return;
    this.isOpen = false;
    this.emit('close', code, reason);
  }
}

/** Supernodes behind the session transport: each connect takes the next scripted refusal, else succeeds. */
export class FakeNodes {
  readonly calls: Array<{ url: string; token: string; at: number }> = [];
  readonly sessions: FakeSession[] = [];
  /** Refusals for the next connects, in order. */
  readonly refusals: SessionError[] = [];
  /** URLs that refuse the TCP connection. */
  readonly down = new Set<string>();
  /** Checked at every connect (e.g. that the token was saved before use). */
  onConnect: (options: SessionOptions) => void = () => {};

  readonly connect = async (options: SessionOptions): Promise<ClientSession> => {
    this.calls.push({ url: options.url, token: options.token, at: Date.now() });
    this.onConnect(options);
    if (this.down.has(options.url)) throw new SessionError('connect_failed', 'connect ECONNREFUSED');
    const refusal = this.refusals.shift();
    if (refusal) throw refusal;
    const session = new FakeSession(options.url, options.token);
    this.sessions.push(session);
    return session;
  };

  get last(): FakeSession {
    return this.sessions[this.sessions.length - 1];
  }
}

let serial = 0;
export function issue(ttlMs = 900_000): Tokens {
  serial++;
  return {
    accessToken: `access-${serial}`,
    refreshToken: `refresh-${serial}`,
    expiresAt: Date.now() + ttlMs,
  };
}

/** The auth service: each call takes the next scripted failure, else issues tokens. */
export class FakeAuth implements AuthApi {
  readonly refreshFailures: unknown[] = [];
  readonly loginFailures: unknown[] = [];
  readonly refreshCalls: Array<{ token: string; at: number }> = [];
  readonly loginCalls: Array<{ password: string; at: number }> = [];

  async refresh(refreshToken: string): Promise<Tokens> {
    this.refreshCalls.push({ token: refreshToken, at: Date.now() });
    if (this.refreshFailures.length > 0) throw this.refreshFailures.shift();
    return issue();
  }

  async login(_username: string, password: string): Promise<Tokens> {
    this.loginCalls.push({ password, at: Date.now() });
    if (this.loginFailures.length > 0) throw this.loginFailures.shift();
    return issue();
  }
}

/** The SDK's memory store, with the name the tests read it by. */
export class MemoryStore extends MemoryCredentialStore {
  get saved(): Map<string, Tokens> {
    return this.tokens;
  }
}

export interface Harness {
  client: SupernodeClient;
  nodes: FakeNodes;
  auth: FakeAuth;
  store: MemoryStore;
  /** Every event, as [name, payload], in order. */
  events: Array<[string, unknown]>;
}

/** A client wired to fakes, with random fixed at 0.5 unless given. */
export function harness(options: Partial<SupernodeClientOptions> & { cached?: Tokens } = {}): Harness {
  const nodes = new FakeNodes();
  const auth = new FakeAuth();
  const store = new MemoryStore();
  if (options.cached) store.saved.set('alice', options.cached);
  const client = new SupernodeClient({
    username: 'alice',
    nodes: ['ws://a', 'ws://b', 'ws://c'],
    auth,
    credentials: store,
    password: () => 'alice-secret-1',
    random: () => 0.5,
    connect: nodes.connect,
    ...options,
  });
  const events: Array<[string, unknown]> = [];
  for (const name of [
    'connected',
    'disconnected',
    'retry_scheduled',
    'token_refreshed',
    'password_login',
    'credentials_required',
    'rehomed',
    'budget_exhausted',
    'gave_up',
    'stopped',
    'store_failed',
  ] as const) {
    client.on(name, (payload: unknown) => events.push([name, payload]));
  }
  return { client, nodes, auth, store, events };
}
