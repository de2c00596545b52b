import { parseIceServers, type Tokens } from './auth-client';

/** Where a client keeps its tokens between runs; applications plug in their own (keychain, storage). */
export interface CredentialStore {
  load(user: string): Promise<Tokens | undefined>;
  save(user: string, tokens: Tokens): Promise<void>;
  clear(user: string): Promise<void>;
}

/** Tokens in memory only: for processes with no disk to keep them on, simulations and tests. */
export class MemoryCredentialStore implements CredentialStore {
  readonly tokens = new Map<string, Tokens>();

  async load(user: string): Promise<Tokens | undefined> {
    return this.tokens.get(user);
  }

  async save(user: string, tokens: Tokens): Promise<void> {
    this.tokens.set(user, tokens);
  }

  async clear(user: string): Promise<void> {
    this.tokens.delete(user);
  }
}

/** The part of the Web Storage API (localStorage, sessionStorage) the store uses. */
export interface WebStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * What a stored value must look like to be used: anything else reads as "no tokens". The `iceServers`
 * saved with them come back too, so a resumed session (a reload) can still open a WebRTC call; values
 * saved before they were kept, or of the wrong shape, load as tokens without them (the next refresh
 * brings new ones).
 */
export function parseStoredTokens(text: string): Tokens | undefined {
  try {
    const value = JSON.parse(text) as (Partial<Tokens> & { iceServers?: unknown }) | null;
    if (typeof value?.accessToken !== 'string' || typeof value.refreshToken !== 'string') return undefined;
    const tokens: Tokens = {
      accessToken: value.accessToken,
      refreshToken: value.refreshToken,
      expiresAt: Number(value.expiresAt) || 0,
    };
    const iceServers = parseIceServers(value.iceServers);
    if (iceServers) tokens.iceServers = iceServers;
    return tokens;
  } catch {
    return undefined;
  }
}

/**
 * One key per user in the browser's localStorage (or any Web Storage): the tokens survive a reload,
 * so the page resumes without the password. Storage that throws (quota, private mode) fails the
 * call; the client then keeps the tokens in memory and says so (`store_failed`).
 */
export class WebStorageCredentialStore implements CredentialStore {
  constructor(
    private readonly storage: WebStorage = (globalThis as { localStorage?: WebStorage })
      .localStorage as WebStorage,
    private readonly prefix = 'supernode-tier:tokens:',
  ) {
    if (!storage) throw new TypeError('no localStorage in this environment: pass a Web Storage');
  }

  async load(user: string): Promise<Tokens | undefined> {
    const text = this.storage.getItem(this.prefix + user);
    return text === null ? undefined : parseStoredTokens(text);
  }

  async save(user: string, tokens: Tokens): Promise<void> {
    this.storage.setItem(this.prefix + user, JSON.stringify(tokens));
  }

  async clear(user: string): Promise<void> {
    this.storage.removeItem(this.prefix + user);
  }
}
