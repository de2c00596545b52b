/**
 * One process of simulated clients for the drills: each is a real SupernodeClient (the SDK an
 * application embeds) with its own credential cache, on a real WebSocket. The parent sends commands
 * and reads figures over IPC. Many processes share the load: one process may hold 20,000 files.
 */
import { AuthClient } from '../client/auth-client';
import { MemoryCredentialStore } from '../client/credentials';
import { SupernodeClient } from '../client/resilient-client';
import { mintDrillTokens } from './tier';

export interface WorkerConfig {
  usernames: string[];
  nodes: string[];
  authUrl: string;
  password: string;
  /** Cached credentials before the event: minted from this key ring file. Absent: start empty. */
  signingKeysFile?: string;
  startJitterMs: number;
  /** crash drill: every client looks a random peer up and sends it a message this often. */
  trafficIntervalMs?: number;
  /** Users of every worker (lookup and message targets). */
  allUsers?: string[];
}

export type WorkerCommand =
  | { type: 'wipe' }
  | { type: 'stop' }
  | { type: 'traffic'; on: boolean }
  | { type: 'report' };

export interface WorkerReport {
  type: 'report';
  connected: number;
  /** Per node URL: clients connected there. */
  byNode: Record<string, number>;
  passwordLogins: number;
  refreshes: number;
  attempts: Record<string, number>;
  /** Why connects or auth calls failed, by reason. */
  refusals: Record<string, number>;
  gaveUp: number;
  /** crash drill traffic */
  lookups: number;
  lookupsFound: number;
  /** Lookups that got no answer (error or timeout), as opposed to an answer "offline". */
  lookupsFailed: number;
  sent: number;
  acked: number;
  ackFailed: number;
  delivered: string[];
  /** When clients got a session back after losing one (epoch ms), since the last report. */
  reconnectedAt: number[];
  rehomes: number;
}

/** The configuration comes over IPC: a user list does not fit in one environment variable (128 KiB). */
function receiveConfig(): Promise<WorkerConfig> {
  return new Promise((resolve) => {
    const onMessage = (message: { type: string; config?: WorkerConfig }) => {
      if (message.type !== 'config' || !message.config) return;
      process.off('message', onMessage);
      resolve(message.config);
    };
    process.on('message', onMessage);
  });
}

async function main(): Promise<void> {
  const config = await receiveConfig();
  const store = new MemoryCredentialStore();
  if (config.signingKeysFile) {
    const minted = await mintDrillTokens(config.signingKeysFile, config.usernames);
    for (const [user, accessToken] of minted) {
      // No refresh token: a refresh attempt would fail as invalid and show up as a password login.
      store.tokens.set(user, { accessToken, refreshToken: 'none', expiresAt: Date.now() + 3600_000 });
    }
  }
  const auth = new AuthClient(config.authUrl);
  const refusals: Record<string, number> = {};
  const count = (reason: string) => {
    refusals[reason] = (refusals[reason] ?? 0) + 1;
  };
  let gaveUp = 0;
  const traffic = { lookups: 0, lookupsFound: 0, lookupsFailed: 0, sent: 0, acked: 0, ackFailed: 0 };
  let delivered: string[] = [];
  let ackedIds: string[] = [];
  const connectedAt = new Map<string, string>();
  const lost = new Set<string>();
  let reconnectedAt: number[] = [];
  const clients = config.usernames.map((username, i) => {
    // First choice round-robin, the rest shuffled: after a crash its clients spread over the survivors.
    const first = config.nodes[i % config.nodes.length];
    const rest = config.nodes.filter((url) => url !== first).sort(() => Math.random() - 0.5);
    const nodes = [first, ...rest];
    const client = new SupernodeClient({
      username,
      nodes,
      auth,
      credentials: store,
      password: () => config.password,
    });
    client.on('connected', ({ url }) => {
      if (lost.delete(username)) reconnectedAt.push(Date.now());
      connectedAt.set(username, url);
    });
    client.on('disconnected', () => {
      connectedAt.delete(username);
      lost.add(username);
    });
    client.on('retry_scheduled', ({ reason }) => count(reason));
    client.on('gave_up', () => gaveUp++);
    client.on('message', (message) => {
      delivered.push(Buffer.from(message.payload).toString('utf8'));
    });
    return { username, client };
  });
  for (const { client } of clients) client.start({ startJitterMs: config.startJitterMs });

  let trafficTimer: NodeJS.Timeout | undefined;
  const everyone = config.allUsers ?? config.usernames;
  const tick = () => {
    for (const { username, client } of clients) {
      if (!client.session) continue;
      const peer = everyone[Math.floor(Math.random() * everyone.length)];
      traffic.lookups++;
      client.lookup(peer).then(
        (result) => {
          if (result.online) traffic.lookupsFound++;
        },
        (err: { code?: string; name?: string }) => {
          traffic.lookupsFailed++;
          count(`lookup:${err.code ?? err.name ?? 'error'}`);
        },
      );
      // The send time rides in the id: losses can be placed against the moment of the crash.
      const id = `${username}:${traffic.sent++}:${Date.now()}`;
      client.sendWithAck(peer, Buffer.from(id)).then(
        () => {
          traffic.acked++;
          ackedIds.push(id);
        },
        () => traffic.ackFailed++,
      );
    }
  };
  const report = (): WorkerReport & { ackedIds: string[] } => {
    const byNode: Record<string, number> = {};
    let connected = 0;
    let passwordLogins = 0;
    let refreshes = 0;
    let rehomes = 0;
    const attempts: Record<string, number> = {};
    for (const { username, client } of clients) {
      const counters = client.counters;
      passwordLogins += counters.passwordLogins;
      refreshes += counters.refreshes;
      rehomes += counters.rehomes;
      for (const [step, n] of Object.entries(counters.attempts)) attempts[step] = (attempts[step] ?? 0) + n;
      const url = connectedAt.get(username);
      if (url) {
        connected++;
        byNode[url] = (byNode[url] ?? 0) + 1;
      }
    }
    const out = {
      type: 'report' as const,
      connected,
      byNode,
      passwordLogins,
      refreshes,
      attempts,
      refusals: { ...refusals },
      gaveUp,
      ...traffic,
      delivered,
      ackedIds,
      reconnectedAt,
      rehomes,
    };
    delivered = [];
    ackedIds = [];
    reconnectedAt = [];
    return out;
  };

  process.on('message', (command: WorkerCommand) => {
    if (command.type === 'report') process.send?.(report());
    else if (command.type === 'wipe') store.tokens.clear();
    else if (command.type === 'traffic') {
      if (trafficTimer) clearInterval(trafficTimer);
      trafficTimer = command.on ? setInterval(tick, config.trafficIntervalMs ?? 1000) : undefined;
    } else if (command.type === 'stop') {
      if (trafficTimer) clearInterval(trafficTimer);
      Promise.all(clients.map(({ client }) => client.stop())).finally(() => process.exit(0));
    }
  });
  // The parent's death ends the drill: never leave simulated clients behind.
  process.on('disconnect', () => process.exit(0));
  process.send?.({ type: 'started' });
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
