import { randomUUID } from 'node:crypto';
import type { KeyRecord } from '../../supernode/auth/key-ring';

/** An error as Secrets Manager names it (`__type` on the wire, the exception's name in the SDK). */
export class FakeSecretError extends Error {
  constructor(
    override readonly name: 'ResourceExistsException' | 'ResourceNotFoundException',
    message: string,
  ) {
    super(message);
  }
}

/**
 * One secret as Secrets Manager keeps it: versions by id, the newest one current. A PutSecretValue token
 * becomes the new version's id; the same token again is accepted with the same content (nothing changes)
 * and refused with other content.
 */
export class FakeSecret {
  readonly versions = new Map<string, string>();
  current: string;
  reads = 0;
  readonly puts = { accepted: 0, repeated: 0, refused: 0 };

  constructor(
    readonly name: string,
    initial: string,
  ) {
    this.current = randomUUID();
    this.versions.set(this.current, initial);
  }

  get(secretId: string | undefined): { SecretString: string; VersionId: string } {
    this.check(secretId);
    this.reads++;
    return { SecretString: this.versions.get(this.current) as string, VersionId: this.current };
  }

  put(secretId: string | undefined, text: string, token: string = randomUUID()): { VersionId: string } {
    this.check(secretId);
    const existing = this.versions.get(token);
    if (existing === undefined) {
      this.versions.set(token, text);
      this.current = token;
      this.puts.accepted++;
    } else if (existing === text) {
      this.puts.repeated++;
    } else {
      this.puts.refused++;
      throw new FakeSecretError(
        'ResourceExistsException',
        `A resource with the ID you requested already exists: version ${token}`,
      );
    }
    return { VersionId: token };
  }

  /** The ring the secret holds now. */
  ring(): KeyRecord[] {
    return (JSON.parse(this.versions.get(this.current) as string) as { keys: KeyRecord[] }).keys;
  }

  private check(secretId: string | undefined): void {
    if (secretId !== this.name)
      throw new FakeSecretError('ResourceNotFoundException', `Secrets Manager can't find ${secretId}`);
  }
}
