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
