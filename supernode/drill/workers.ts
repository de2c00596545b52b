import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import type { WorkerCommand, WorkerConfig, WorkerReport } from './client-worker';

/** Clients per process: well under the 20,000 open files one process may hold. */
export const CLIENTS_PER_WORKER = 5000;
const REPORT_TIMEOUT_MS = 2000;

export type Report = WorkerReport & { ackedIds: string[] };

/** The simulated clients, spread over child processes, summed. */
export class ClientFleet {
  private readonly workers: ChildProcess[] = [];
  /** Each worker's last answer: a worker too busy to answer in time counts with what it said before. */
  private readonly last = new Map<ChildProcess, Report>();
  private readonly delivered: string[] = [];
  private readonly ackedIds: string[] = [];
  private readonly reconnectedAt: number[] = [];

  static async start(config: Omit<WorkerConfig, 'usernames'>, usernames: string[]): Promise<ClientFleet> {
    const fleet = new ClientFleet();
    const per = Math.ceil(usernames.length / Math.max(1, Math.ceil(usernames.length / CLIENTS_PER_WORKER)));
    const started: Promise<void>[] = [];
    for (let i = 0; i < usernames.length; i += per) {
      const workerConfig: WorkerConfig = { ...config, usernames: usernames.slice(i, i + per) };
      const child = fork(join(__dirname, 'client-worker.ts'), [], {
        execArgv: ['--import', 'tsx'],
        env: process.env,
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      child.send({ type: 'config', config: workerConfig });
      fleet.workers.push(child);
      child.on('message', (message: Report) => {
        if (message.type !== 'report') return;
        fleet.last.set(child, message);
        fleet.delivered.push(...message.delivered);
        fleet.ackedIds.push(...message.ackedIds);
        fleet.reconnectedAt.push(...message.reconnectedAt);
      });
      started.push(
        new Promise((resolve, reject) => {
          child.once('message', () => resolve());
          child.once('exit', (code) =>
            reject(new Error(`client worker exited with ${code} before starting`)),
          );
        }),
      );
    }
    await Promise.all(started);
    return fleet;
  }

  /** The worker processes' ids, for CPU accounting. */
  pids(): number[] {
    return this.workers.flatMap((worker) => (worker.pid ? [worker.pid] : []));
  }

  send(command: WorkerCommand): void {
    for (const worker of this.workers) if (worker.connected) worker.send(command);
  }

  /**
   * Every worker's figures, summed: counters are totals, the id lists hold what arrived since the last
   * call. A worker too busy to answer within 2 s counts with its previous answer (its lists arrive
   * with its next answer, never lost), so the drill's clock is never held up by its own load.
   */
  async report(options: { complete?: boolean } = {}): Promise<Report & { fresh: boolean }> {
    let fresh = true;
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (!worker.connected) return resolve();
            // complete: the final tally waits for every worker, however busy.
            const timer = options.complete
              ? undefined
              : setTimeout(() => {
                  fresh = false;
                  done();
                }, REPORT_TIMEOUT_MS);
            function done(): void {
              clearTimeout(timer);
              worker.off('message', onMessage);
              resolve();
            }
            const onMessage = (message: Report) => {
              if (message.type === 'report') done();
            };
            worker.on('message', onMessage);
            worker.send({ type: 'report' } satisfies WorkerCommand);
          }),
      ),
    );
    const total = sumReports([...this.last.values()]);
    total.delivered = this.delivered.splice(0);
    total.ackedIds = this.ackedIds.splice(0);
    total.reconnectedAt = this.reconnectedAt.splice(0);
    return { ...total, fresh };
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.exitCode !== null || !worker.connected) return resolve();
            const timer = setTimeout(() => worker.kill('SIGKILL'), 10_000);
            worker.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            worker.send({ type: 'stop' } satisfies WorkerCommand);
          }),
      ),
    );
  }
}

function addInto(target: Record<string, number>, source: Record<string, number>): void {
  for (const [key, value] of Object.entries(source)) target[key] = (target[key] ?? 0) + value;
}

export function sumReports(reports: Report[]): Report {
  const total: Report = {
    type: 'report',
    connected: 0,
    byNode: {},
    passwordLogins: 0,
    refreshes: 0,
    attempts: {},
    refusals: {},
    gaveUp: 0,
    lookups: 0,
    lookupsFound: 0,
    lookupsFailed: 0,
    sent: 0,
    acked: 0,
    ackFailed: 0,
    delivered: [],
    ackedIds: [],
    reconnectedAt: [],
    rehomes: 0,
  };
  for (const r of reports) {
    for (const key of [
      'connected',
      'passwordLogins',
      'refreshes',
      'gaveUp',
      'lookups',
      'lookupsFound',
      'lookupsFailed',
      'sent',
      'acked',
      'ackFailed',
      'rehomes',
    ] as const) {
      total[key] += r[key];
    }
    addInto(total.byNode, r.byNode);
    addInto(total.attempts, r.attempts);
    addInto(total.refusals, r.refusals);
    total.delivered.push(...r.delivered);
    total.ackedIds.push(...r.ackedIds);
  }
  return total;
}
