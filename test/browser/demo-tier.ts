/**
 * The tier the demo's browser tests share: the auth service in-process (CORS open to the demo's origin
 * only), two supernodes as child processes meshed over loopback, the demo served by its own Fastify
 * instance on a third origin, and headless Chromium whose contexts are the people.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { type AuthServiceOptions, buildAuthService } from '../../supernode/auth/server';
import { demoRoutes } from '../../supernode/demo/routes';
import { type FleetNode, freePorts, killAll, planFleet, startFleetNode } from '../../supernode/local/fleet';
import { launchChromium } from './browser';

export const DEMO_HOST = '127.0.0.1';

export interface DemoTierOptions<N extends FleetNode> {
  /** Names the temporary directory and prefixes the node ids. */
  name: string;
  meshSecret: string;
  /** Default timeout of every page's waits. */
  domTimeoutMs: number;
  chromiumArgs?: string[];
  /** Adds what a test needs to each planned node (ports of its own), before anything starts. */
  extendNodes?: (nodes: FleetNode[]) => Promise<N[]>;
  /** Auth service options beyond the tier's own, given the nodes. */
  authOptions?: (nodes: N[]) => Partial<AuthServiceOptions>;
  /** Environment for one node's process beyond the mesh's. */
  nodeEnv?: (node: N) => Record<string, string>;
}

export interface DemoTier<N extends FleetNode> {
  authUrl: string;
  demoUrl: string;
  fleet: N[];
  browser: Browser;
  /** Uncaught errors of every page opened so far. */
  pageErrors: string[];
  /** A new browser context (one person) on the demo, asking for node `nodeIndex`, once it is ready. */
  openPage(nodeIndex: number): Promise<Page>;
  /** Successful requests of one route, as the auth service counts them on /metrics. */
  authRequests(route: 'login' | 'refresh'): Promise<number>;
  close(): Promise<void>;
}

export async function startDemoTier<N extends FleetNode>(options: DemoTierOptions<N>): Promise<DemoTier<N>> {
  const dataDir = await mkdtemp(join(tmpdir(), `browser-${options.name}-`));
  const [demoPort, authPort] = await freePorts(2);
  const demoUrl = `http://${DEMO_HOST}:${demoPort}`;
  const planned = await planFleet(2, options.name);
  const fleet = options.extendNodes ? await options.extendNodes(planned) : (planned as N[]);
  const auth = await buildAuthService({
    scryptN: 1024,
    hashConcurrency: 2,
    logLevel: 'silent',
    keyPublishLeadSec: 0,
    dataDir,
    host: DEMO_HOST,
    port: authPort,
    corsOrigins: [demoUrl],
    ...options.authOptions?.(fleet),
  });
  const demo = Fastify();
  let browser: Browser | undefined;
  const tearDown = async () => {
    await browser?.close();
    killAll(fleet);
    await demo.close();
    await auth.close();
    await rm(dataDir, { recursive: true, force: true });
  };
  const { url: authUrl } = await auth.listen();
  // Every part is awaited even when one fails, then a tier that did not start is torn down here: the
  // test never gets a close() to call, and a node left running would keep Jest's pipe open (and the
  // store's LevelDB files, opened without close-on-exec, would reach every later child of the worker).
  const started = await Promise.allSettled([
    ...fleet.map((node) =>
      startFleetNode(node, {
        jwksFile: auth.files.jwks,
        secret: options.meshSecret,
        peers: fleet,
        extraEnv: options.nodeEnv?.(node),
      }),
    ),
    (async () => {
      await demo.register(demoRoutes, { authUrl, nodeUrls: fleet.map((n) => n.url) });
      await demo.listen({ host: DEMO_HOST, port: demoPort });
      browser = await launchChromium(options.chromiumArgs);
    })(),
  ]);
  const failed = started.find((outcome) => outcome.status === 'rejected');
  if (failed) {
    await tearDown();
    throw failed.reason;
  }
  const liveBrowser = browser as Browser;

  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];
  return {
    authUrl,
    demoUrl,
    fleet,
    browser: liveBrowser,
    pageErrors,
    async openPage(nodeIndex) {
      const context = await liveBrowser.newContext({ viewport: { width: 1280, height: 760 } });
      contexts.push(context);
      context.setDefaultTimeout(options.domTimeoutMs);
      const page = await context.newPage();
      page.on('pageerror', (error) => pageErrors.push(error.message));
      await page.goto(`${demoUrl}/demo/?node=${nodeIndex}`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: options.domTimeoutMs });
      return page;
    },
    async authRequests(route) {
      const text = await (await fetch(`${authUrl}/metrics`)).text();
      const pattern = new RegExp(`^auth_requests_total\\{route="${route}",outcome="ok"\\} (\\d+)$`, 'm');
      const match = pattern.exec(text);
      return match ? Number(match[1]) : 0;
    },
    async close() {
      await Promise.all(contexts.map((c) => c.close()));
      await tearDown();
    },
  };
}
