/**
 * The console as a Fastify plugin: the page, its snapshot as JSON, its server-sent events and the
 * drill charts, all behind the loopback-or-admin-token rule (access.ts); health for the local tier.
 * Read-only: no route here changes anything anywhere.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { guardConsole } from './access';
import { readChart } from './charts';
import { CONSOLE_CSS, CONSOLE_HTML, CONSOLE_ICON, CONSOLE_JS } from './page';
import type { Snapshot, StatusPoller } from './poller';

/** Open event streams at once; each costs a socket and a JSON write per poll. */
const MAX_STREAMS = 100;
/** A stream whose client has not read this much is dropped rather than buffered without bound. */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;
/** A comment line this often keeps proxies and idle timeouts from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

export interface ConsoleAppOptions {
  poller: StatusPoller;
  adminToken: string | undefined;
  drillDir: string;
}

/** Nothing but this origin; the page has no inline script or style. */
const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/** The drill's SVG is shown through <img>, where no script runs; opened on its own, none may either. */
const CHART_CSP = "default-src 'none'; style-src 'unsafe-inline'";

export async function consoleApp(app: FastifyInstance, { poller, adminToken, drillDir }: ConsoleAppOptions) {
  app.get('/healthz', async () => ({ status: 'ok', uptimeS: Math.round(process.uptime()) }));
  app.get('/readyz', async () => ({ ready: true }));

  const streams = new Set<ServerResponse>();
  const unsubscribe = poller.subscribe((snapshot) => {
    const event = eventOf(snapshot);
    for (const stream of streams) write(stream, event);
  });
  const keepalive = setInterval(() => {
    for (const stream of streams) write(stream, ': keepalive\n\n');
  }, KEEPALIVE_MS);
  keepalive.unref();
  // Streams never end by themselves: close them first, or closing the server would wait on them.
  app.addHook('preClose', async () => {
    unsubscribe();
    clearInterval(keepalive);
    for (const stream of streams) stream.end();
    streams.clear();
  });

  function write(stream: ServerResponse, text: string): void {
    if (stream.writableLength > MAX_UNREAD_BYTES) {
      streams.delete(stream);
      stream.destroy();
      return;
    }
    stream.write(text);
  }

  await app.register(async (guarded) => {
    guarded.addHook('onRequest', guardConsole(adminToken));
    guarded.addHook('onSend', async (_request, reply) => {
      reply.header('x-content-type-options', 'nosniff');
      reply.header('referrer-policy', 'no-referrer');
      if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    });

    guarded.get('/console', async (_request, reply) => {
      reply.type('text/html; charset=utf-8').header('content-security-policy', PAGE_CSP);
      return CONSOLE_HTML;
    });
    guarded.get('/console/', async (_request, reply) => reply.redirect('/console', 301));
    guarded.get('/console/console.css', async (_request, reply) => {
      reply.type('text/css; charset=utf-8');
      return CONSOLE_CSS;
    });
    guarded.get('/console/console.js', async (_request, reply) => {
      reply.type('text/javascript; charset=utf-8');
      return CONSOLE_JS;
    });
    guarded.get('/console/favicon.svg', async (_request, reply) => {
      reply.type('image/svg+xml; charset=utf-8').header('cache-control', 'max-age=86400');
      return CONSOLE_ICON;
    });
    guarded.get('/console/api/snapshot', async () => poller.snapshot);

    guarded.get<{ Params: { name: string } }>('/console/charts/:name', async (request, reply) => {
      const svg = await readChart(drillDir, request.params.name);
      if (svg === undefined) {
        reply.code(404);
        return {
          error: 'not_found',
          message: 'no such chart (only the newest storm and crash charts are served)',
        };
      }
      reply.type('image/svg+xml; charset=utf-8').header('content-security-policy', CHART_CSP);
      return svg;
    });

    guarded.get('/console/events', (request, reply) => {
      if (streams.size >= MAX_STREAMS) {
        reply.code(503).header('retry-after', '5');
        return reply.send({ error: 'overloaded', message: `at most ${MAX_STREAMS} consoles at once` });
      }
      // The stream is this route's own from here: Fastify neither serializes nor ends it.
      reply.hijack();
      const stream = reply.raw;
      stream.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        // No buffering in a proxy between here and the browser (nginx honours this).
        'x-accel-buffering': 'no',
      });
      // The browser retries a lost stream after this long; each connect gets the current snapshot.
      stream.write(`retry: 2000\n\n${eventOf(poller.snapshot)}`);
      streams.add(stream);
      request.raw.once('close', () => streams.delete(stream));
      return reply;
    });
  });
}

function eventOf(snapshot: Snapshot): string {
  // JSON has no raw newlines, so one data line holds it.
  return `data: ${JSON.stringify(snapshot)}\n\n`;
}
