import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomically } from '../shared/files';
import type { Tokens } from './auth-client';
import { type CredentialStore, parseStoredTokens } from './credential-store';

// The stores that run anywhere live in credential-store.ts (the browser bundle takes them from there).
export { type CredentialStore, MemoryCredentialStore, WebStorageCredentialStore } from './credential-store';

/** One file per user, readable by its owner only: the CLI's store. */
export class FileCredentialStore implements CredentialStore {
  constructor(private readonly dir: string) {}

  private path(user: string): string {
    return join(this.dir, `${encodeURIComponent(user)}.json`);
  }

  async load(user: string): Promise<Tokens | undefined> {
    try {
      return parseStoredTokens(await readFile(this.path(user), 'utf8'));
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
