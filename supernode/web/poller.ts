/**
 * One poll loop for every browser: the console asks each node and the auth service for GET /status
 * every `pollMs`, checks each answer against its schema, and hands the resulting snapshot to every
 * subscriber (the SSE streams). Browsers never reach the nodes; a hundred open consoles cost the
 * fleet what one costs.
 */
import {
  type AuthStatusBody,
  checkAuthStatus,
  checkNodeStatus,
  type NodeStatusBody,
  type StatusCheck,
} from '../status/schemas';
import { type Chart, newestCharts } from './charts';

/** Largest /status body read; a node's is a few KB even with a hundred mesh peers. */
const MAX_STATUS_BYTES = 512 * 1024;
/** Refusals are shown over this window, from successive answers. */
const RECENT_MS = 60_000;
/** The shed rate is measured over this window. */
const RATE_MS = 10_000;

/** A node as the console shows it. `gone`: no answer; `refused`: it said 403; `bad_data`: not its schema. */
export type NodeState = 'ready' | 'not_ready' | 'draining' | 'gone' | 'refused' | 'bad_data';
export type AuthState = 'up' | 'gone' | 'refused' | 'bad_data';

export interface NodeView {
  url: string;
  state: NodeState;
  /** Why gone, refused or bad data, in words. */
  problem?: string;
  /** The answer of this poll (only when it was valid). */
  status?: NodeStatusBody;
  /** Refusals by reason over the last minute. */
  recentRefusals: Record<string, number>;
}

export interface AuthView {
  url: string;
  state: AuthState;
  problem?: string;
  status?: AuthStatusBody;
  /** Requests shed per second over the last 10 s. */
  shedPerSec: number;
  /** Refusals and sheds by reason over the last minute. */
  recentRefusals: Record<string, number>;
}

export interface Snapshot {
  /** When this poll finished (ISO 8601). */
  at: string;
  pollMs: number;
  nodes: NodeView[];
  auth: AuthView | null;
  charts: Chart[];
}

export interface PollerOptions {
  nodeUrls: string[];
  authUrl?: string;
  /** Sent as a bearer token to the auth service's /status. */
  authAdminToken?: string;
  pollMs: number;
  drillDir: string;
}

type Answer<T> = { kind: 'ok'; value: T } | { kind: 'gone' | 'refused' | 'bad_data'; problem: string };

/** Counters seen at one time, to tell what changed over a window. */
interface Sample {
  at: number;
  counts: Record<string, number>;
}

export class StatusPoller {
  private current: Snapshot;
  private readonly listeners = new Set<(snapshot: Snapshot) => void>();
  private readonly history = new Map<string, Sample[]>();
  private timer: NodeJS.Timeout | undefined;
  private abort: AbortController | undefined;
  private running = false;

  constructor(private readonly options: PollerOptions) {
    this.current = {
      at: new Date().toISOString(),
      pollMs: options.pollMs,
      nodes: [],
      auth: null,
      charts: [],
    };
  }

  get snapshot(): Snapshot {
    return this.current;
  }

  /** Called with every new snapshot; returns the unsubscribe. */
  subscribe(listener: (snapshot: Snapshot) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Polls once now, then every pollMs after each round ends (a slow node never stacks rounds). */
  async start(): Promise<void> {
    this.running = true;
    await this.round();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.abort?.abort();
  }

  /** One round: every source at once, then one snapshot for everyone. */
  async pollOnce(): Promise<Snapshot> {
    const { nodeUrls, authUrl, pollMs, drillDir } = this.options;
    this.abort = new AbortController();
    const signal = AbortSignal.any([
      this.abort.signal,
      AbortSignal.timeout(Math.min(Math.max(pollMs, 500), 3000)),
    ]);
    const [nodes, auth, charts] = await Promise.all([
      Promise.all(nodeUrls.map((url) => this.pollNode(url, signal))),
      authUrl ? this.pollAuth(authUrl, signal) : Promise.resolve(null),
      newestCharts(drillDir),
    ]);
    this.current = { at: new Date().toISOString(), pollMs, nodes, auth, charts };
    for (const listener of this.listeners) listener(this.current);
    return this.current;
  }

  private async round(): Promise<void> {
    if (!this.running) return;
    await this.pollOnce();
    if (!this.running) return;
    this.timer = setTimeout(() => void this.round(), this.options.pollMs);
  }

  private async pollNode(url: string, signal: AbortSignal): Promise<NodeView> {
    const answer = await fetchStatus(url, checkNodeStatus, signal);
    if (answer.kind !== 'ok') return { url, state: answer.kind, problem: answer.problem, recentRefusals: {} };
    const status = answer.value;
    const state: NodeState = status.draining ? 'draining' : status.ready ? 'ready' : 'not_ready';
    return { url, state, status, recentRefusals: this.recent(url, status.refusals, Date.now()).changed };
  }

  private async pollAuth(url: string, signal: AbortSignal): Promise<AuthView> {
    const headers = this.options.authAdminToken
      ? { authorization: `Bearer ${this.options.authAdminToken}` }
      : undefined;
    const answer = await fetchStatus(url, checkAuthStatus, signal, headers);
    if (answer.kind !== 'ok')
      return { url, state: answer.kind, problem: answer.problem, shedPerSec: 0, recentRefusals: {} };
    const status = answer.value;
    const counts: Record<string, number> = { ...status.refusals };
    for (const [reason, n] of Object.entries(status.shed)) counts[`shed:${reason}`] = n;
    const now = Date.now();
    const { changed } = this.recent(url, { ...counts, 'logins:shed': status.logins.shed }, now);
    const { 'logins:shed': _, ...recentRefusals } = changed;
    return { url, state: 'up', status, shedPerSec: this.rate(url, 'logins:shed', now), recentRefusals };
  }

  /**
   * What each counter added over the last minute. A counter that went down means the service
   * restarted: its whole value is new.
   */
  private recent(
    key: string,
    counts: Record<string, number>,
    now: number,
  ): { changed: Record<string, number> } {
    const samples = (this.history.get(key) ?? []).filter((s) => now - s.at <= RECENT_MS);
    samples.push({ at: now, counts: { ...counts } });
    this.history.set(key, samples);
    const oldest = samples[0].counts;
    const changed: Record<string, number> = {};
    for (const [reason, n] of Object.entries(counts)) {
      const before = oldest[reason] ?? 0;
      const added = n >= before ? n - before : n;
      if (added > 0) changed[reason] = added;
    }
    return { changed };
  }

  /** Per second over the last RATE_MS, from the samples kept by recent(). */
  private rate(key: string, counter: string, now: number): number {
    const samples = (this.history.get(key) ?? []).filter((s) => now - s.at <= RATE_MS);
    if (samples.length < 2) return 0;
    const first = samples[0];
    const last = samples[samples.length - 1];
    const added = (last.counts[counter] ?? 0) - (first.counts[counter] ?? 0);
    const seconds = (last.at - first.at) / 1000;
    return added > 0 && seconds > 0 ? added / seconds : 0;
  }
}

/** GET <base>/status, read up to MAX_STATUS_BYTES, parsed and checked; never throws. */
async function fetchStatus<T>(
  base: string,
  check: StatusCheck<T>,
  signal: AbortSignal,
  headers?: Record<string, string>,
): Promise<Answer<T>> {
  let response: Response;
  try {
    response = await fetch(`${base.replace(/\/+$/, '')}/status`, {
      signal,
      headers: { accept: 'application/json', ...headers },
      redirect: 'error',
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code;
    const name = (err as Error).name;
    return {
      kind: 'gone',
      problem:
        name === 'TimeoutError' ? 'no answer in time' : `no answer (${cause ?? (err as Error).message})`,
    };
  }
  if (response.status === 403) {
    await response.body?.cancel();
    return {
      kind: 'refused',
      problem: 'answered 403: /status is loopback-only on nodes, admin-token on auth (docs/console.md)',
    };
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    return { kind: 'bad_data', problem: `answered HTTP ${response.status}` };
  }
  let text: string;
  try {
    text = await readLimited(response, MAX_STATUS_BYTES);
  } catch (err) {
    return { kind: 'bad_data', problem: (err as Error).message };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'bad_data', problem: 'answer is not JSON' };
  }
  const checked = check(parsed);
  return checked.ok
    ? { kind: 'ok', value: checked.value }
    : { kind: 'bad_data', problem: `unexpected answer: ${checked.problem}` };
}

/** The body as text, refusing (and cancelling) one over `maxBytes`, whatever its Content-Length says. */
async function readLimited(response: Response, maxBytes: number): Promise<string> {
  if (Number(response.headers.get('content-length') ?? 0) > maxBytes) {
    await response.body?.cancel();
    throw new Error(`answer over ${maxBytes} bytes`);
  }
  const reader = response.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw new Error(`answer over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}
