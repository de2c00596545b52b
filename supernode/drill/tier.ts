/**
 * The local tier as the drills drive it: an auth service and three meshed supernodes as real child
 * processes on loopback, each of which can be stopped, killed and started again.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mintAccessTokens, seedAccounts } from '../auth';
import { type FleetNode, freePorts, killAll, planFleet, startFleetNode, waitReady } from '../local/fleet';

const CLI = join(__dirname, '../bin/supernode.cjs');
const TABLE = 'supernode-auth';

export interface DrillTierOptions {
  dataDir: string;
  nodes?: number;
  /** Extra environment of every supernode (e.g. fault injection). */
  nodeEnv?: Record<string, string>;
}

export class DrillTier {
  readonly nodes: FleetNode[] = [];
  authUrl = '';
  private auth: ChildProcess | undefined;
  private authPort = 0;
  private readonly secret = randomBytes(24).toString('hex');

  constructor(private readonly options: DrillTierOptions) {}

  get authProcess(): ChildProcess | undefined {
    return this.auth;
  }

  get jwksFile(): string {
    return join(this.options.dataDir, 'auth', 'jwks.json');
  }

  get signingKeysFile(): string {
    return join(this.options.dataDir, 'auth', 'signing-keys.json');
  }

  /** Auth first (it writes the public keys the nodes read), then the nodes, all ready. */
  async start(): Promise<void> {
    [this.authPort] = await freePorts(1);
    this.authUrl = `http://127.0.0.1:${this.authPort}`;
    await this.startAuth();
    this.nodes.push(...(await planFleet(this.options.nodes ?? 3, 'drill')));
    await Promise.all(this.nodes.map((node) => this.startNode(node)));
  }

  async startAuth(): Promise<void> {
    this.auth = spawn(process.execPath, [CLI, 'auth'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: {
        ...process.env,
        AUTH_PORT: String(this.authPort),
        AUTH_DATA_DIR: this.options.dataDir,
        AUTH_TABLE: TABLE,
        AUTH_LOG_LEVEL: 'error',
        // Every simulated client shares 127.0.0.1: per-IP limits would measure the drill, not the service.
        // In AWS, clients come from many addresses and WAF holds the per-IP line.
        AUTH_IP_LOGINS_PER_MINUTE: '1000000',
        AUTH_IP_REFRESHES_PER_MINUTE: '1000000',
      },
    });
    await waitReady(this.authUrl, 30_000, this.auth);
  }

  /** SIGTERM, as an operator or a failing host would; waits for the process to go. */
  async stopAuth(): Promise<void> {
    const auth = this.auth;
    this.auth = undefined;
    if (!auth || auth.exitCode !== null) return;
    const exited = new Promise((resolve) => auth.once('exit', resolve));
    auth.kill('SIGTERM');
    const force = setTimeout(() => auth.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(force);
  }

  async startNode(node: FleetNode): Promise<void> {
    await startFleetNode(node, {
      jwksFile: this.jwksFile,
      secret: this.secret,
      peers: this.nodes,
      extraEnv: this.options.nodeEnv,
    });
  }

  /** kill -9, no drain: a crash. */
  async killNode(node: FleetNode): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Every node killed at once and started again on the same ports: the mass restart of the storm. */
  async restartAllNodes(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.killNode(node)));
    await Promise.all(this.nodes.map((node) => this.startNode(node)));
  }

  /** Peak resident memory of a process so far (VmHWM), in bytes; 0 once it is gone. */
  peakRss(child: ChildProcess | undefined): number {
    if (!child?.pid) return 0;
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      return 0;
    }
  }

  async authHealthy(timeoutMs = 2000): Promise<boolean> {
    try {
      const response = await fetch(`${this.authUrl}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
      return response.ok;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    killAll(this.nodes);
    await this.stopAuth();
  }
}

/** The drill's accounts, in the drill tier's table: what sign-up would have stored (auth/seed.ts). */
export function seedDrillAccounts(dataDir: string, usernames: string[], password: string): Promise<void> {
  return seedAccounts(dataDir, TABLE, usernames, password);
}

/** Access tokens as the drill tier's auth service issues them: the credentials held before the event. */
export function mintDrillTokens(
  signingKeysFile: string,
  usernames: string[],
  ttlSec = 3600,
): Promise<Map<string, string>> {
  return mintAccessTokens(signingKeysFile, usernames, {
    audience: 'supernode',
    issuer: 'supernode-auth',
    ttlSec,
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
