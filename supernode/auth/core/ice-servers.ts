import type { AuthConfig } from '../../config/auth-options';
import { readTurnSecrets, TurnSecretFile } from '../../config/turn-secrets';
import type { LogSink } from '../../shared/log';
import { type IceServer, turnCredentials } from '../../turn/credentials';

export type { IceServer } from '../../turn/credentials';

/**
 * `iceServers` for RTCPeerConnection: the configured TURN URLs with time-limited credentials for
 * `userId` in coturn's `use-auth-secret` scheme (username `expiry:userId`, password
 * base64(HMAC-SHA1(secret, username))), which every supernode verifies offline. The TURN servers also
 * answer STUN Binding, and their allocations carry the client's reflexive address, so no stun: entry
 * is needed.
 */
export function iceServersFor(
  urls: readonly string[],
  secret: string,
  userId: string,
  ttlSec: number,
  now: number = Date.now(),
): IceServer[] {
  const { username, credential } = turnCredentials(secret, userId, ttlSec, now);
  return [{ urls: [...urls], username, credential }];
}

const SECRET_FILE_OPTION = '--turn-secret-file (AUTH_TURN_SECRET_FILE)';

/**
 * Mints `iceServers` for logins and refreshes. One HMAC-SHA1 per answer (microseconds), no store
 * access: the refresh path stays cheap. With a secret file, the first line signs, re-read on a timer.
 */
export class IceServerIssuer {
  private secret: string;
  readonly secretFile: TurnSecretFile | undefined;

  private constructor(
    private readonly urls: readonly string[],
    private readonly ttlSec: number,
    secrets: string[],
    file: { path: string; refreshMs: number; log: LogSink<'info' | 'warn'> } | undefined,
  ) {
    this.secret = secrets[0];
    this.secretFile =
      file &&
      new TurnSecretFile(
        file.path,
        SECRET_FILE_OPTION,
        file.refreshMs,
        (next) => {
          this.secret = next[0];
          file.log.info({ secrets: next.length }, 'TURN secrets reloaded');
        },
        (err) =>
          file.log.warn({ err: err.message }, 'TURN secret file not reloaded; keeping the last good secret'),
        secrets,
      );
  }

  /** The issuer the configuration asks for, or undefined without --turn-urls. Reads the secret file now. */
  static fromConfig(config: AuthConfig, log: LogSink<'info' | 'warn'>): IceServerIssuer | undefined {
    if (config.turnUrls.length === 0) return undefined;
    if (config.turnSecretFile) {
      const secrets = readTurnSecrets(config.turnSecretFile, SECRET_FILE_OPTION);
      return new IceServerIssuer(config.turnUrls, config.turnCredentialTtlSec, secrets, {
        path: config.turnSecretFile,
        refreshMs: config.turnSecretRefreshMs,
        log,
      });
    }
    return new IceServerIssuer(
      config.turnUrls,
      config.turnCredentialTtlSec,
      [config.turnSecret as string],
      undefined,
    );
  }

  issue(userId: string, now: number = Date.now()): IceServer[] {
    return iceServersFor(this.urls, this.secret, userId, this.ttlSec, now);
  }

  start(): void {
    this.secretFile?.start();
  }

  stop(): void {
    this.secretFile?.stop();
  }
}
