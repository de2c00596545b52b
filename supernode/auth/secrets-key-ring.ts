import { createHash } from 'node:crypto';
import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { KeyRecord, KeyRingSaveResult, KeyRingStorage, StoredKeyRing } from './key-ring';

export interface SecretsManagerKeyRingStorageOptions {
  /** The secret's ARN or name. It must exist (the stack creates it); any content that is not a ring is replaced. */
  secretId: string;
  /** @default secretsManagerClientFromEnv(region) */
  client?: SecretsManagerClient;
  region?: string;
}

/**
 * The default client. The SDK resolves AWS_ENDPOINT_URL_SECRETS_MANAGER, then AWS_ENDPOINT_URL, by itself
 * (service id "Secrets Manager"; see the loopback test), so no endpoint is passed here.
 */
export function secretsManagerClientFromEnv(region?: string): SecretsManagerClient {
  return new SecretsManagerClient(region === undefined ? { maxAttempts: 3 } : { region, maxAttempts: 3 });
}

/**
 * The PutSecretValue token of a change built on `baseVersion`: a UUID-shaped hash of it. Secrets Manager
 * makes the token the new version's id and refuses a token already used with other content, so two
 * instances changing the same version collide, and a change built on a superseded version collides with
 * the change that superseded it. The same content under the same token (an SDK retry, or two instances
 * dropping the same retired key) is accepted as one write.
 */
export function changeToken(baseVersion: string): string {
  const h = createHash('sha256').update(`supernode-key-ring:${baseVersion}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/**
 * The key ring in one Secrets Manager secret shared by every auth instance, as `{"keys": [...]}`.
 * Writes are optimistic (see changeToken): a refused write reports a conflict and the KeyRing adopts the
 * ring that won.
 */
export class SecretsManagerKeyRingStorage implements KeyRingStorage {
  private readonly client: SecretsManagerClient;
  private readonly ownsClient: boolean;

  constructor(private readonly options: SecretsManagerKeyRingStorageOptions) {
    if (!options.secretId) throw new RangeError('secretId is required');
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? secretsManagerClientFromEnv(options.region);
  }

  async load(): Promise<StoredKeyRing> {
    const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.options.secretId }));
    return { keys: parseRing(out.SecretString, this.options.secretId), version: out.VersionId };
  }

  async save(keys: KeyRecord[], baseVersion: string | undefined): Promise<KeyRingSaveResult> {
    try {
      const out = await this.client.send(
        new PutSecretValueCommand({
          SecretId: this.options.secretId,
          SecretString: JSON.stringify({ keys }),
          // Without a base (never seen one) the SDK picks a random token: nothing to race against.
          ClientRequestToken: baseVersion === undefined ? undefined : changeToken(baseVersion),
        }),
      );
      return { status: 'saved', version: out.VersionId };
    } catch (err) {
      const name = (err as Error)?.name;
      if (
        baseVersion === undefined ||
        (name !== 'ResourceExistsException' && name !== 'InvalidRequestException')
      )
        throw err;
      // InvalidRequestException has other causes too (a secret pending deletion): only a moved-on
      // secret makes it a lost race.
      const current = await this.client.send(new GetSecretValueCommand({ SecretId: this.options.secretId }));
      if (current.VersionId !== baseVersion) return { status: 'conflict' };
      throw err;
    }
  }

  /** Frees the keep-alive sockets of a client we created; a caller's client is theirs to destroy. */
  close(): void {
    if (this.ownsClient) this.client.destroy();
  }
}

/** The secret holds a ring whose entries are not keys: refused rather than replaced, which would lose them. */
export class KeyRingFormatError extends Error {
  override name = 'KeyRingFormatError';
}

/**
 * The ring in a secret's text. Anything that is not `{"keys": [...]}` (the random string the stack
 * generated) is no ring yet; a ring with malformed entries is an error.
 */
export function parseRing(text: string | undefined, secretId: string): KeyRecord[] | undefined {
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const keys = (parsed as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return undefined;
  for (const k of keys as Array<Partial<KeyRecord> | null>) {
    if (
      typeof k?.kid !== 'string' ||
      typeof k.createdAt !== 'number' ||
      typeof k.activatesAt !== 'number' ||
      typeof k.privateJwk !== 'object' ||
      typeof k.publicJwk !== 'object'
    )
      throw new KeyRingFormatError(`secret ${secretId} holds a key ring with a malformed key`);
  }
  return keys as KeyRecord[];
}
