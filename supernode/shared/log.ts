import pino from 'pino';

/** The logger every service uses: pino JSON, with token-bearing fields redacted. */
export type Logger = pino.Logger;

export const redactPaths = [
  'token',
  '*.token',
  'password',
  '*.password',
  'refreshToken',
  '*.refreshToken',
  'req.headers.authorization',
  'req.headers.cookie',
];

export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, redact: { paths: redactPaths, censor: '[redacted]' } });
}

type LogFn = (obj: object, msg: string) => void;
type Level = 'debug' | 'info' | 'warn' | 'error';

/**
 * The levels a module writes at, and nothing else: a pino `Logger` fits, and so does a test's stub
 * with only those methods. `LogSink<'warn'>` is a sink that is only warned.
 */
export type LogSink<Levels extends Level = Level> = { [L in Levels]: LogFn };
