import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import type { IceServer } from '../../supernode/turn/credentials';

/**
 * The page the Chromium test loads, from an HTTP server on 127.0.0.1: relay-proof.ts bundled for the
 * browser, and the ICE server sets the page fetches by name (`/ice-servers?set=valid`).
 */

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>relay proof</title></head>
<body>
<script src="/relay-proof.js"></script>
<script>
  // Called by the test through page.evaluate; the report is plain data, the connections stay open
  // until closeRelayProof() so the test can look at the TURN server first.
  window.runRelayProof = async (set, messages, giveUpAfterMs) => {
    const response = await fetch('/ice-servers?set=' + encodeURIComponent(set));
    if (!response.ok) throw new Error('GET /ice-servers: ' + response.status);
    const iceServers = await response.json();
    const pair = await relayProof.openRelayPair(RTCPeerConnection, { iceServers, ...messages, giveUpAfterMs });
    window.closeRelayProof = pair.close;
    return pair.report;
  };
</script>
</body>
</html>
`;

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** Serves the page and `sets` (name to iceServers) on 127.0.0.1, on a free port. */
export async function startPageServer(sets: Record<string, IceServer[]>): Promise<PageServer> {
  const bundle = buildSync({
    entryPoints: [join(__dirname, 'relay-proof.ts')],
    bundle: true,
    format: 'iife',
    globalName: 'relayProof',
    target: 'es2020',
    write: false,
  }).outputFiles[0].text;
  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const reply = (status: number, type: string, body: string) => {
      response.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      response.end(body);
    };
    if (request.method !== 'GET') return reply(405, 'text/plain', 'GET only');
    if (url.pathname === '/') return reply(200, 'text/html; charset=utf-8', PAGE);
    if (url.pathname === '/favicon.ico') return reply(204, 'image/x-icon', '');
    if (url.pathname === '/relay-proof.js') return reply(200, 'text/javascript', bundle);
    if (url.pathname === '/ice-servers') {
      const name = url.searchParams.get('set') ?? '';
      return Object.hasOwn(sets, name)
        ? reply(200, 'application/json', JSON.stringify(sets[name]))
        : reply(404, 'text/plain', `unknown set; known: ${Object.keys(sets).join(', ')}`);
    }
    reply(404, 'text/plain', 'not found');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
