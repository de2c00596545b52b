import { readFileSync } from 'node:fs';
import { ConfigError } from './options';

/**
 * The shared secrets of TURN's time-limited credentials (coturn's `use-auth-secret` scheme), which the
 * supernodes and the auth service both hold: the auth service signs with the first, supernodes accept
 * any. A secret file lists them newest first, one a line, so a rotation with overlap is an edit of that
 * file: add the new secret on top, remove the old one once every credential it signed has expired.
 */

export const TURN_SECRET = { regex: /^\S{16,512}$/, description: '16-512 non-space characters' };
/** Enough for a rotation in progress and one held back; more is a mistake in the file. */
export const MAX_TURN_SECRETS = 8;

/**
 * The secrets of a TURN secret file, newest first: blank lines and trailing white space ignored.
 * Errors name the file and the line, never a secret.
 */
export function readTurnSecrets(file: string, option: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`${option}: cannot read ${file} (${code})`);
  }
  const secrets: string[] = [];
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trimEnd();
    if (line === '') continue;
    if (!TURN_SECRET.regex.test(line)) {
      throw new ConfigError(
        `${option}: line ${index + 1} of ${file} must be ${TURN_SECRET.description}; it holds ${line.length} characters${/\s/.test(line) ? ' including white space' : ''}`,
      );
    }
    secrets.push(line);
  }
  if (secrets.length === 0) throw new ConfigError(`${option}: ${file} holds no secret`);
  if (secrets.length > MAX_TURN_SECRETS) {
    throw new ConfigError(`${option}: ${file} holds ${secrets.length} secrets; at most ${MAX_TURN_SECRETS}`);
  }
  return secrets;
}

/**
 * Re-reads a secret file every `refreshMs` and hands each changed list to `apply`. A failed read keeps
 * the last good list (a half-written file must not lock every client out) and is reported to `onError`.
 */
export class TurnSecretFile {
  private timer: NodeJS.Timeout | undefined;
  private current: string;
  reloads = 0;
  failures = 0;

  constructor(
    private readonly file: string,
    private readonly option: string,
    private readonly refreshMs: number,
    private readonly apply: (secrets: string[]) => void,
    private readonly onError: (err: Error) => void,
    initial: string[],
  ) {
    this.current = initial.join('\n');
  }

  start(): void {
    this.timer ??= setInterval(() => this.check(), this.refreshMs);
    this.timer.unref();
  }

  /** Reads the file now; true when it held a new list that was applied. */
  check(): boolean {
    try {
      const secrets = readTurnSecrets(this.file, this.option);
      const joined = secrets.join('\n');
      if (joined === this.current) return false;
      this.apply(secrets);
      this.current = joined;
      this.reloads++;
      return true;
    } catch (err) {
      this.failures++;
      this.onError(err as Error);
      return false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
