import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomically } from '../shared/files';
import type { Tokens } from './auth-client';

/** Where a client keeps its tokens between runs; applications plug in their own (keychain, storage). */
export interface CredentialStore {
  load(user: string): Promise<Tokens | undefined>;
  save(user: string, tokens: Tokens): Promise<void>;
  clear(user: string): Promise<void>;
}

/** One file per user, readable by its owner only: the CLI's store. */
export class FileCredentialStore implements CredentialStore {
  constructor(private readonly dir: string) {}

  private path(user: string): string {
    return join(this.dir, `${encodeURIComponent(user)}.json`);
  }

  async load(user: string): Promise<Tokens | undefined> {
    try {
      const value = JSON.parse(await readFile(this.path(user), 'utf8')) as Partial<Tokens>;
      if (typeof value.accessToken !== 'string' || typeof value.refreshToken !== 'string') return undefined;
      return {
        accessToken: value.accessToken,
        refreshToken: value.refreshToken,
        expiresAt: Number(value.expiresAt) || 0,
      };
    } catch {
      return undefined;
    }
  }

  async save(user: string, tokens: Tokens): Promise<void> {
    await writeAtomically(this.path(user), JSON.stringify(tokens), 0o600);
  }

  async clear(user: string): Promise<void> {
    await rm(this.path(user), { force: true });
  }
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
