/**
 * The console process (`supernode console`): the poller, the console plugin and the demo app on one
 * Fastify server; listens, and closes on a signal. The local tier runs it as one of its components.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { type ConsoleConfig, checkConsoleConfig, consoleOptionTable } from '../config/console-options';
import { ConfigError, flagOf, helpText, parseOptions, resolveOptions } from '../config/options';
import { createLogger, type Logger } from '../shared/log';
import { consoleApp } from './app';
import { StatusPoller } from './poller';

export interface ConsoleServerOptions extends Partial<ConsoleConfig> {
  logger?: Logger;
}

export interface ConsoleServer {
  readonly app: FastifyInstance;
  readonly poller: StatusPoller;
  readonly config: Readonly<ConsoleConfig>;
  /** Polls once, then listens; the URL is the console page's. */
  listen(): Promise<{ port: number; url: string }>;
  close(): Promise<void>;
}

export function buildConsoleServer(options: ConsoleServerOptions = {}): ConsoleServer {
  const { logger, ...given } = options;
  const config = checkConsoleConfig(resolveOptions(consoleOptionTable, given));
  const log = logger ?? createLogger(config.logLevel, 'console');
  const nodeUrls = config.url.map((url) => url.replace(/\/+$/, ''));
  const poller = new StatusPoller({
    nodeUrls,
    authUrl: config.authUrl?.replace(/\/+$/, ''),
    authAdminToken: config.authAdminToken,
    pollMs: config.pollMs,
    drillDir: config.drillDir,
  });
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024,
    requestTimeout: 10_000,
    return503OnClosing: true,
  });
  app.register(consoleApp, { poller, adminToken: config.adminToken, drillDir: config.drillDir });
  // The demo is for people trying the tier; the console must not depend on it loading. Required
  // here, not imported: a demo that fails even to load (it builds the browser SDK) leaves the console up.
  if (config.authUrl && nodeUrls.length > 0) {
    const demo = { authUrl: config.authUrl, nodeUrls: nodeUrls.map((url) => url.replace(/^http/, 'ws')) };
    app.register(async (scope) => {
      try {
        const { demoRoutes } = require('../demo/routes') as typeof import('../demo/routes');
        await demoRoutes(scope, demo);
      } catch (err) {
        log.error({ err: { message: (err as Error).message } }, 'demo app not available');
      }
    });
  }

  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    poller.stop();
    await app.close();
  };
  return {
    app,
    poller,
    config,
    async listen() {
      await poller.start();
      try {
        await app.listen({ host: config.host, port: config.port });
      } catch (err) {
        await close();
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err;
        throw new ConfigError(
          `TCP ${config.host}:${config.port} cannot be bound (${code}); choose another with ${flagOf('port')} (${consoleOptionTable.port.env})`,
        );
      }
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      const url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}/console`;
      // A log line as the other services write one; the local tier's banner names the URL itself.
      log.info({ url }, 'console listening');
      return { port, url };
    },
    close,
  };
}

/** `supernode console`: the console until a signal; the first closes it (streams end), a second exits. */
export async function runConsole(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(
      helpText(
        'Usage: supernode console --url <node URL>[,<node URL>...] --auth-url <auth URL> [options]\n\nThe operator console: live nodes, sessions, directory spread, mesh links, admission and refusals.',
        consoleOptionTable,
      ),
    );
    return;
  }
  const server = buildConsoleServer(parseOptions(consoleOptionTable, argv));
  await server.listen();
  let signals = 0;
  const onSignal = (): void => {
    if (++signals > 1) process.exit(1);
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
