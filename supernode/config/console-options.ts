import { ConfigError, flagOf, type OptionTable, type OptionValues, patterns } from './options';

/** `supernode console` (supernode/web/server.ts): the operator console over a local tier or a fleet. */
export const consoleOptionTable = {
  url: {
    kind: 'list',
    env: 'CONSOLE_URLS',
    default: [],
    item: patterns.httpUrl,
    maxItems: 256,
    help: 'HTTP base URL of each supernode to watch (comma-separated). Each node, not a load balancer in front of them: the console asks every node for its own GET /status.',
  },
  authUrl: {
    kind: 'string',
    env: 'CONSOLE_AUTH_URL',
    pattern: patterns.httpUrl,
    help: 'HTTP base URL of the auth service to watch (its GET /status).',
  },
  authAdminToken: {
    kind: 'string',
    env: 'CONSOLE_AUTH_ADMIN_TOKEN',
    pattern: { regex: /^\S{32,256}$/, description: '32-256 non-space characters' },
    help: "Sent as Authorization: Bearer to the auth service's /status when that service has AUTH_ADMIN_TOKEN.",
  },
  host: {
    kind: 'string',
    env: 'CONSOLE_HOST',
    default: '127.0.0.1',
    pattern: patterns.host,
    help: 'Address the console listens on.',
  },
  port: {
    kind: 'int',
    env: 'CONSOLE_PORT',
    default: 8090,
    min: 0,
    max: 65_535,
    help: 'Port of the console (/console) and of the demo app (/demo/).',
  },
  adminToken: {
    kind: 'string',
    env: 'CONSOLE_ADMIN_TOKEN',
    pattern: { regex: /^[A-Za-z0-9._~-]{32,256}$/, description: '32-256 characters of A-Z a-z 0-9 . _ ~ -' },
    help: 'Lets clients other than loopback in: Authorization: Bearer <token>, or /console?token=<token> once in a browser (sets a cookie). Without it, only loopback clients see the console.',
  },
  pollMs: {
    kind: 'int',
    env: 'CONSOLE_POLL_MS',
    default: 1000,
    min: 250,
    max: 60_000,
    help: 'How often the console asks every node and the auth service for /status (one poll, whatever the number of browsers).',
  },
  drillDir: {
    kind: 'string',
    env: 'CONSOLE_DRILL_DIR',
    default: '.data/drills',
    pattern: patterns.path,
    help: 'Where the drills write their charts (DRILL_OUT): the newest storm and crash SVGs are shown.',
  },
  logLevel: {
    kind: 'enum',
    env: 'CONSOLE_LOG_LEVEL',
    default: 'warn',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    help: 'Log level of the console.',
  },
} as const satisfies OptionTable;

export type ConsoleConfig = OptionValues<typeof consoleOptionTable>;

/** Rules across options. */
export function checkConsoleConfig(config: ConsoleConfig): ConsoleConfig {
  if (config.url.length === 0 && !config.authUrl)
    throw new ConfigError(
      `nothing to watch: give ${flagOf('url')} (${consoleOptionTable.url.env}) or ${flagOf('authUrl')} (${consoleOptionTable.authUrl.env})`,
    );
  return config;
}
