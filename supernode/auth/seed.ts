/**
 * Accounts and access tokens made without the HTTP API, for drills and benchmarks that need thousands
 * of users: exactly what sign-up stores and what login issues, without hours of hashing.
 */
import { join } from 'node:path';
import { FileKeyRingStorage, type KeyRecord } from './key-ring';
import { hashPassword, OWASP_SCRYPT } from './passwords';
import { signAccessToken } from './signing';
import { AccountStore, createDynamoClients, ensureTable } from './store';
import { newAccount } from './store-api';

/**
 * Writes accounts straight into the embedded store under `dataDir` (before an auth service holds it),
 * all with one OWASP-cost hash of `password`. Logins against them cost what production logins cost.
 */
export async function seedAccounts(
  dataDir: string,
  table: string,
  usernames: string[],
  password: string,
): Promise<void> {
  const { startEmbeddedDynamo } = require('./embedded-store') as typeof import('./embedded-store');
  const embedded = await startEmbeddedDynamo({ path: join(dataDir, 'dynamo') });
  try {
    const { client, doc } = createDynamoClients({ endpoint: embedded.endpoint });
    await ensureTable(client, table);
    const store = new AccountStore(doc, table);
    const passwordHash = await hashPassword(password, OWASP_SCRYPT);
    const now = Date.now();
    let next = 0;
    const writer = async () => {
      while (next < usernames.length) {
        const username = usernames[next++];
        await store.createAccount(newAccount(username, passwordHash, now));
      }
    };
    await Promise.all(Array.from({ length: 32 }, writer));
    client.destroy();
  } finally {
    await embedded.close();
  }
}

/**
 * Access tokens as the auth service issues them, signed with its current key from its key file: the
 * credentials clients hold from before an event. One signature each instead of one password login each.
 */
export async function mintAccessTokens(
  signingKeysFile: string,
  usernames: string[],
  claims: { audience: string; issuer: string; ttlSec: number },
): Promise<Map<string, string>> {
  const loaded = await new FileKeyRingStorage(signingKeysFile).load();
  const keys: KeyRecord[] = loaded?.keys ?? [];
  const now = Date.now();
  const active = keys
    .filter((key) => key.activatesAt <= now)
    .sort((a, b) => b.activatesAt - a.activatesAt)[0];
  if (!active) throw new Error(`no active signing key in ${signingKeysFile}`);
  const tokens = new Map<string, string>();
  for (const username of usernames) {
    tokens.set(
      username,
      await signAccessToken(active, {
        sub: username,
        aud: claims.audience,
        iss: claims.issuer,
        ttlSec: claims.ttlSec,
      }),
    );
  }
  return tokens;
}
