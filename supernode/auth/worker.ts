/**
 * The auth service's second thread: the account store (the AWS SDK's request path and, outside AWS,
 * the embedded dynalite server) and the scrypt calls. The main thread keeps only HTTP, validation and
 * admission, so a request that is shed never waits behind a login's store work: in a storm each
 * admitted login put 5-15 ms of synchronous SDK, dynalite and scrypt set-up on the loop that sheds,
 * and those stretches were the shed p99 (docs/performance.md, bench/login-storm.ts).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { LogSink } from '../shared/log';
import type { EmbeddedDynamo } from './embedded-store';
import { inThreadPasswords, type PasswordHasher } from './passwords';
import { ACCOUNT_STORE_METHODS, type AccountStoreApi } from './store-api';

/** Tells the runtime bundle's entry point (cli.ts) that this thread is an auth worker, not the CLI. */
export const AUTH_WORKER_ROLE = 'supernode-auth-worker';

export interface AuthWorkerOptions {
  table: string;
  region?: string;
  /** An explicit DynamoDB endpoint (DynamoDB Local, a test's dynalite). */
  endpoint?: string;
  /** Start the embedded dynalite store on this directory (used when there is no endpoint and no AWS). */
  embeddedPath?: string;
  /** Log sink for the store's warnings and the worker's own failures. */
  log: LogSink<'warn' | 'error'>;
}

export interface AuthWorker {
  readonly store: AccountStoreApi;
  readonly passwords: PasswordHasher;
  /** 'embedded' when this worker runs the local dynalite store. */
  readonly storeKind: 'embedded' | 'dynamodb';
  /** Closes the store (and the embedded server), then lets the thread end; idempotent. */
  close(): Promise<void>;
}

interface WorkerInit {
  role: typeof AUTH_WORKER_ROLE;
  table: string;
  region?: string;
  endpoint?: string;
  embeddedPath?: string;
}

const PASSWORD_METHODS = ['hashPassword', 'verifyPassword', 'dummyVerify'] as const;
type Target = 'store' | 'passwords';

type Request = { id: number; target: Target; method: string; args: unknown[] } | { close: true };
type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { name: string; message: string } }
  | { log: 'warn' | 'error'; fields: object; msg: string }
  | { ready: true }
  | { failed: { name: string; message: string } }
  | { closed: true };

/** An error that crossed from the worker: its name and message survive, its class does not. */
export class AuthWorkerError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export async function startAuthWorker(options: AuthWorkerOptions): Promise<AuthWorker> {
  const init: WorkerInit = {
    role: AUTH_WORKER_ROLE,
    table: options.table,
    region: options.region,
    endpoint: options.endpoint,
    embeddedPath: options.embeddedPath,
  };
  const worker = spawnWorker(init);
  const { log } = options;
  const pending = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>();
  let nextId = 1;
  let stopped: Error | undefined;
  let closing: Promise<void> | undefined;
  let onClosed: (() => void) | undefined;

  const ready = new Promise<void>((resolve, reject) => {
    let started = false;
    const stop = (err: Error): void => {
      const first = !stopped && started;
      stopped ??= err;
      for (const call of pending.values()) call.reject(stopped);
      pending.clear();
      reject(stopped);
      // After close() the thread is meant to end; before it, every store call now answers 503.
      if (first && !closing)
        log.error({ err: { name: err.name, message: err.message } }, 'auth worker stopped');
    };
    worker.on('message', (reply: Reply) => {
      if ('id' in reply) {
        const call = pending.get(reply.id);
        if (!call) return;
        pending.delete(reply.id);
        if (reply.ok) call.resolve(reply.value);
        else call.reject(new AuthWorkerError(reply.error.name, reply.error.message));
      } else if ('log' in reply) log[reply.log](reply.fields, reply.msg);
      else if ('ready' in reply) {
        started = true;
        resolve();
      } else if ('failed' in reply) {
        stop(new AuthWorkerError(reply.failed.name, reply.failed.message));
        void worker.terminate();
      } else if ('closed' in reply) onClosed?.();
    });
    worker.on('error', (err) => stop(err));
    worker.on('exit', (code) => stop(new Error(`auth worker exited (code ${code})`)));
  });
  await ready;

  const call = (target: Target, method: string, args: unknown[]): Promise<unknown> => {
    if (stopped) return Promise.reject(stopped);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, target, method, args } satisfies Request);
    });
  };
  const proxy = <T>(target: Target, methods: readonly string[]): T =>
    Object.fromEntries(methods.map((m) => [m, (...args: unknown[]) => call(target, m, args)])) as T;

  return {
    store: proxy<AccountStoreApi>('store', ACCOUNT_STORE_METHODS),
    passwords: proxy<PasswordHasher>('passwords', PASSWORD_METHODS),
    storeKind: options.embeddedPath && !options.endpoint ? 'embedded' : 'dynamodb',
    close() {
      closing ??= new Promise<void>((resolve) => {
        if (stopped) return resolve();
        const exited = (): void => resolve();
        worker.once('exit', exited);
        // The store is closed in the worker (LevelDB lock released); then the thread ends by itself.
        onClosed = () => void worker.terminate();
        worker.postMessage({ close: true } satisfies Request);
      });
      return closing;
    },
  };
}

/**
 * From a checkout the worker loads this TypeScript file through tsx; in the one-file EC2 bundle it
 * runs the bundle itself, whose entry point (cli.ts) hands a thread with this role to serveAuthWorker.
 */
function spawnWorker(init: WorkerInit): Worker {
  const stderr = false;
  // Not the process's --require preloads: the local tier's parent guard, run in a thread (whose stdin
  // ends at once), would SIGTERM the whole process.
  const execArgv: string[] = [];
  if (__filename.endsWith('.ts')) {
    const loader = 'tsx/cjs'; // a name, not a literal: the bundle must not try to resolve it
    const tsx = JSON.stringify(require.resolve(loader));
    const code = `require(${tsx}); require(${JSON.stringify(__filename)}).serveAuthWorker();`;
    return new Worker(code, { eval: true, workerData: init, stderr, env: process.env, execArgv });
  }
  return new Worker(__filename, { workerData: init, stderr, env: process.env, argv: [], execArgv });
}

/** True in a thread started by startAuthWorker. */
export function isAuthWorkerThread(): boolean {
  return !isMainThread && (workerData as WorkerInit | undefined)?.role === AUTH_WORKER_ROLE;
}

/** The worker side: opens the store, then answers calls until asked to close. */
export function serveAuthWorker(): void {
  const port = parentPort;
  if (!port || !isAuthWorkerThread()) throw new Error('serveAuthWorker runs only in an auth worker thread');
  const init = workerData as WorkerInit;
  const send = (reply: Reply): void => port.postMessage(reply);
  const describeError = (err: unknown) => ({
    name: err instanceof Error ? err.name : 'Error',
    message: err instanceof Error ? err.message : String(err),
  });
  const logSink = (level: 'warn') => (fields: object, msg?: string) =>
    send({ log: level, fields, msg: msg ?? '' });

  let embedded: EmbeddedDynamo | undefined;
  let destroyClient: (() => void) | undefined;
  const opened = (async () => {
    // Loaded here, in the worker only: the main thread never needs the AWS SDK's DynamoDB client.
    const { AccountStore, createDynamoClients, ensureTable } = require('./store') as typeof import('./store');
    let endpoint = init.endpoint;
    if (!endpoint && init.embeddedPath) {
      const { startEmbeddedDynamo } = require('./embedded-store') as typeof import('./embedded-store');
      embedded = await startEmbeddedDynamo({ path: init.embeddedPath });
      endpoint = embedded.endpoint;
    }
    const { client, doc } = createDynamoClients({ endpoint, region: init.region });
    destroyClient = () => client.destroy();
    // In AWS the table belongs to the stack; locally it is created on first start.
    if (endpoint) await ensureTable(client, init.table);
    return new AccountStore(doc, init.table, { logger: { warn: logSink('warn') } });
  })();

  opened.then(
    () => send({ ready: true }),
    async (err: unknown) => {
      // Release the LevelDB lock before the thread ends: this process may try the directory again.
      destroyClient?.();
      await embedded?.close().catch(() => undefined);
      send({ failed: describeError(err) });
      port.close();
    },
  );
  port.on('message', async (request: Request) => {
    if ('close' in request) {
      destroyClient?.();
      await embedded?.close().catch(() => undefined);
      send({ closed: true });
      port.close();
      return;
    }
    const { id, target, method, args } = request;
    try {
      const store = await opened;
      const allowed: readonly string[] = target === 'store' ? ACCOUNT_STORE_METHODS : PASSWORD_METHODS;
      if (!allowed.includes(method)) throw new TypeError(`no ${target} method ${method}`);
      const object = (target === 'store' ? store : inThreadPasswords) as unknown as Record<
        string,
        (...a: unknown[]) => Promise<unknown>
      >;
      send({ id, ok: true, value: await object[method](...args) });
    } catch (err) {
      send({ id, ok: false, error: describeError(err) });
    }
  });
}
