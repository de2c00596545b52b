import type { Ack, Drain, Endpoint, LookupResult, ServerError } from '../protocol/messages';
import type { AuthClient, IceServer, Tokens } from './auth-client';
import {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  fullJitterDelay,
  type Random,
  type Scheduler,
  systemScheduler,
} from './backoff';
import type { CredentialStore } from './credential-store';
import {
  afterConnectFailure,
  afterDrain,
  afterLoginFailure,
  afterRefreshFailure,
  afterSessionLost,
  type CredentialsReason,
  type Next,
  type Step,
  type Target,
} from './decisions';
import { Emitter } from './emitter';
import { DEFAULT_RETRY_BUDGET, RetryBudget, type RetryBudgetOptions } from './retry-budget';
import { type DeliveredMessage, SessionError, type SessionOptions, SupernodeSession } from './session';

/** The calls the client makes to the auth service; an AuthClient, or a fake in tests. */
export type AuthApi = Pick<AuthClient, 'login' | 'refresh'>;

/** What the client needs of a session; a SupernodeSession, or a fake in tests. */
export interface ClientSession
  extends Pick<
    SupernodeSession,
    'welcome' | 'isOpen' | 'lookup' | 'ping' | 'send' | 'sendWithAck' | 'setEndpoints' | 'close'
  > {
  on(event: 'message', listener: (message: DeliveredMessage) => void): unknown;
  on(event: 'drain', listener: (drain: Drain) => void): unknown;
  on(event: 'server-error', listener: (error: ServerError) => void): unknown;
  on(event: 'close', listener: (code: number, reason: string) => void): unknown;
}

export interface SupernodeClientOptions {
  /** The user; the cache key in `credentials` and the username of a password login. */
  username: string;
  /** Supernode URLs (ws://host:port), tried in turn on failure; or the load balancer's one URL. */
  nodes: readonly string[];
  /** The auth service; several instances are tried in turn when one fails. */
  auth: AuthApi | readonly AuthApi[];
  /** Where the tokens live between runs; read before every connect and refresh, written before use. */
  credentials: CredentialStore;
  /**
   * Asked for the password only when a password login is needed: nothing cached, or the refresh
   * token rejected as invalid. Returning undefined (or throwing) emits `credentials_required` and the
   * client waits for `retryNow()`.
   */
  password?: () => string | undefined | Promise<string | undefined>;
  /** Endpoints advertised in every hello (re-registration carries them to the new node). */
  endpoints?: Endpoint[];
  /** Full-jitter backoff of retries: base 500 ms, cap 30 s. */
  backoff?: Partial<BackoffPolicy>;
  /** Retry budget: 10% of successful requests, burst 10, one per 10 s when empty. */
  retryBudget?: Partial<RetryBudgetOptions>;
  /** After losing a session, the first reconnect waits random(0, this): 1000 ms. */
  reconnectJitterMs?: number;
  /**
   * A password login after a lost session (credentials gone or refresh token rejected) first waits
   * random(0, this): 30 s. Every other client of a mass event is logging in too. The first login after
   * `start()` (someone is waiting for it) is not delayed.
   */
  loginSpreadMs?: number;
  /** Give up (`gave_up`, then `stopped`) after failing this long without a session; default never. */
  maxRetryMs?: number;
  /** Time allowed for a connect and its welcome: 10 s. */
  connectTimeoutMs?: number;
  scheduler?: Scheduler;
  random?: Random;
  /** Opens a session; SupernodeSession.connect by default. */
  connect?: (options: SessionOptions) => Promise<ClientSession>;
}

/** A node and the URL it was reached at (through a load balancer the URL stays, the node changes). */
export interface NodeRef {
  url: string;
  node: string;
}

export type StopReason = 'stop' | 'gave_up' | 'replaced';

/** Events, each with one argument. */
export interface ClientEvents {
  /** A session is open. `attempt`: connects tried since the session was lost (or the start). `resumed`: with the cached access token, no refresh or login. */
  connected: [{ url: string; node: string; attempt: number; resumed: boolean }];
  disconnected: [NodeRef & { code: number; reason: string }];
  /** Every wait before a try: `attempt` is the backoff exponent (0 for reconnect and start jitter). */
  retry_scheduled: [{ step: Step; attempt: number; delayMs: number; reason: string }];
  token_refreshed: [{ expiresAt: number }];
  password_login: [{ expiresAt: number }];
  /** The client needs the application: give it a password (or fix the account), then `retryNow()`. */
  credentials_required: [{ reason: CredentialsReason }];
  /** Connected to another node than the last session's; the hello registered the user there. */
  rehomed: [{ from: NodeRef; to: NodeRef }];
  /** The retry budget is empty: this retry waits `waitMs` longer than its backoff. */
  budget_exhausted: [{ step: Step; waitMs: number }];
  gave_up: [{ step: Step; elapsedMs: number; reason: string }];
  stopped: [{ reason: StopReason }];
  /** The credential store failed to load or save; the client carries on (tokens kept in memory). */
  store_failed: [{ error: unknown }];
  message: [DeliveredMessage];
  /** An error from the node not tied to a pending call (e.g. `unknown_recipient` for a plain send). */
  server_error: [ServerError];
}

export interface ClientCounters {
  /** Tries per step: WebSocket connects, refresh requests, password login requests. */
  attempts: Record<Step, number>;
  /** Sessions opened. */
  connects: number;
  /** Successful refreshes. */
  refreshes: number;
  /** Successful password logins. */
  passwordLogins: number;
  /** Waits scheduled after a failure or a lost session (start jitter not included). */
  retries: number;
  /** Retries delayed by the empty retry budget. */
  budgetExhausted: number;
  rehomes: number;
}

/** A call made while the client has no open session, or after it stopped: fails at once. */
export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    readonly code: 'not_connected' | 'stopped',
    message: string,
  ) {
    super(message);
  }
}

type Pending = Step | 'credentials';

/**
 * Keeps one session open for one user across node failures, drains, expired tokens and auth outages,
 * following the decision table in decisions.ts (docs/client.md). One step runs at a time, so at most
 * one refresh is ever in flight, and every wait is scheduled on the injected scheduler.
 */
export class SupernodeClient extends Emitter<ClientEvents> {
  private readonly username: string;
  private readonly nodes: readonly string[];
  private readonly auths: readonly AuthApi[];
  private readonly credentials: CredentialStore;
  private readonly passwordProvider: SupernodeClientOptions['password'];
  private readonly backoff: BackoffPolicy;
  private readonly budget: RetryBudget;
  private readonly reconnectJitterMs: number;
  private readonly maxRetryMs: number;
  private readonly connectTimeoutMs: number;
  private readonly loginSpreadMs: number;
  private readonly scheduler: Scheduler;
  private readonly random: Random;
  private readonly openSession: (options: SessionOptions) => Promise<ClientSession>;
  private endpoints: Endpoint[] | undefined;

  private state: 'new' | 'running' | 'stopped' = 'new';
  private current: ClientSession | undefined;
  private home: NodeRef | undefined;
  private lastServerError: ServerError | undefined;
  private url: string;
  private listIndex = 0;
  /** Nodes a refusing or draining node suggested, tried before going on down the list. */
  private candidates: string[] = [];
  private authIndex = 0;
  /** Tokens the store failed to save: the refresh token they replaced is spent, so these are kept. */
  private unsaved: Tokens | undefined;
  /** The tokens were issued by a refresh or login in this cycle (not yet used for a session). */
  private freshToken = false;
  /** The `iceServers` of the tokens the latest session opened with. */
  private sessionIceServers: IceServer[] | undefined;
  /** Failures per step since the last session opened: the backoff exponent. */
  private failures: Record<Step, number> = { connect: 0, refresh: 0, login: 0 };
  private cycle = { startedAt: 0, attempts: 0 };
  private pending: Pending | undefined;
  private cancelWait: (() => void) | undefined;
  private working = false;
  private readonly stats: ClientCounters = {
    attempts: { connect: 0, refresh: 0, login: 0 },
    connects: 0,
    refreshes: 0,
    passwordLogins: 0,
    retries: 0,
    budgetExhausted: 0,
    rehomes: 0,
  };

  constructor(options: SupernodeClientOptions) {
    super();
    const auths = Array.isArray(options.auth) ? options.auth : [options.auth as AuthApi];
    if (options.nodes.length === 0) throw new RangeError('SupernodeClient: nodes must name at least one URL');
    if (auths.length === 0) throw new RangeError('SupernodeClient: auth must name at least one service');
    this.username = options.username;
    this.nodes = options.nodes;
    this.url = options.nodes[0];
    this.auths = auths;
    this.credentials = options.credentials;
    this.passwordProvider = options.password;
    this.endpoints = options.endpoints;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.budget = new RetryBudget({ ...DEFAULT_RETRY_BUDGET, ...options.retryBudget });
    this.reconnectJitterMs = options.reconnectJitterMs ?? 1000;
    this.maxRetryMs = options.maxRetryMs ?? Number.POSITIVE_INFINITY;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.loginSpreadMs = options.loginSpreadMs ?? 30_000;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.random = options.random ?? Math.random;
    this.openSession = options.connect ?? ((o) => SupernodeSession.connect(o));
  }

  /**
   * Starts connecting, after a uniformly random delay in [0, startJitterMs): give it when many clients
   * start together (a mass reboot, an app update), so they do not all reach the tier in the same second.
   */
  start(options: { startJitterMs?: number } = {}): void {
    if (this.state === 'stopped') throw new ClientError('stopped', 'a stopped client cannot start again');
    if (this.state === 'running') return;
    this.state = 'running';
    this.beginCycle();
    const delayMs = Math.floor(this.random() * (options.startJitterMs ?? 0));
    if (delayMs > 0) this.wait('connect', delayMs, 'start_jitter', 0);
    else void this.run('connect');
  }

  /** Closes the session and cancels every wait. A step in flight finishes, but its result is dropped. */
  stop(): Promise<void> {
    return this.halt('stop');
  }

  /**
   * Runs the step the client is waiting for now: after `credentials_required` once the password or
   * the account is fixed, or to cut a backoff short when the application knows the network is back.
   */
  retryNow(): void {
    const step = this.pending;
    if (!step || this.state !== 'running') return;
    this.cancelWait?.();
    this.cancelWait = undefined;
    void this.run(step === 'credentials' ? 'login' : step);
  }

  /** The open session, if any. Prefer the methods below, which fail fast while disconnected. */
  get session(): ClientSession | undefined {
    return this.current?.isOpen ? this.current : undefined;
  }

  /**
   * TURN servers and credentials for `new RTCPeerConnection({ iceServers })`: those of the tokens the
   * latest session opened with (the login or refresh answer, or the store after a resume, e.g. a page
   * reload). Undefined before the first session, or when the auth service hands out no TURN.
   */
  get iceServers(): IceServer[] | undefined {
    return this.sessionIceServers;
  }

  /** Copies of the counters, for tests and drills. */
  get counters(): ClientCounters {
    return { ...this.stats, attempts: { ...this.stats.attempts } };
  }

  /** Resolves with the open session, now or at the next `connected`; rejects if the client stops first. */
  whenConnected(): Promise<ClientSession> {
    const open = this.session;
    if (open) return Promise.resolve(open);
    if (this.state === 'stopped') return Promise.reject(new ClientError('stopped', 'the client is stopped'));
    return new Promise((resolve, reject) => {
      const onConnected = (): void => {
        this.off('stopped', onStopped);
        resolve(this.current as ClientSession);
      };
      const onStopped = ({ reason }: { reason: StopReason }): void => {
        this.off('connected', onConnected);
        reject(new ClientError('stopped', `the client stopped (${reason})`));
      };
      this.once('connected', onConnected);
      this.once('stopped', onStopped);
    });
  }

  /**
   * Lookups are read-only, so one lost with its session (the node crashed or drained mid-request) is
   * asked again once on the next session, if that opens within the connect timeout.
   */
  async lookup(user: string): Promise<LookupResult> {
    const session = this.open();
    try {
      return await session.lookup(user);
    } catch (err) {
      if (!(err instanceof SessionError) || err.closeCode === undefined || session.isOpen) throw err;
      let cancel: (() => void) | undefined;
      const next = await Promise.race([
        this.whenConnected(),
        new Promise<never>((_, reject) => {
          cancel = this.scheduler.schedule(() => reject(err), this.connectTimeoutMs);
        }),
      ]).finally(() => cancel?.());
      return next.lookup(user);
    }
  }

  async ping(): Promise<number> {
    return this.open().ping();
  }

  /** Fire and forget; returns the msgId. Throws ClientError while disconnected. */
  send(user: string, payload: Uint8Array): number {
    return this.open().send(user, payload);
  }

  async sendWithAck(user: string, payload: Uint8Array): Promise<Ack> {
    return this.open().sendWithAck(user, payload);
  }

  /** Advertised now if connected, and in the hello of every later session. */
  setEndpoints(endpoints: Endpoint[]): void {
    this.endpoints = endpoints;
    this.session?.setEndpoints(endpoints);
  }

  private open(): ClientSession {
    const session = this.session;
    if (session) return session;
    throw this.state === 'stopped'
      ? new ClientError('stopped', 'the client is stopped')
      : new ClientError('not_connected', 'no open session; the client is reconnecting');
  }

  private beginCycle(): void {
    this.cycle = { startedAt: this.scheduler.now(), attempts: 0 };
  }

  private async run(step: Step): Promise<void> {
    this.pending = undefined;
    this.working = true;
    let next: Next | undefined;
    try {
      if (step === 'connect') next = await this.connectStep();
      else if (step === 'refresh') next = await this.refreshStep();
      else next = await this.loginStep();
    } finally {
      this.working = false;
    }
    if (next) this.follow(next);
  }

  private follow(next: Next): void {
    if (this.state !== 'running') return;
    if (next.step === 'stop') {
      void this.halt(next.reason);
      return;
    }
    if (next.step === 'credentials') {
      this.pending = 'credentials';
      this.emit('credentials_required', { reason: next.reason });
      return;
    }
    if (next.step === 'connect') this.retarget(next.target, next.alternatives);
    // A password login nobody is waiting for (the session was lost and the credentials with it) is
    // the request a login storm is made of: spread it, since every other client is starting one too.
    if (next.step === 'login' && next.wait === 'now' && this.home !== undefined && this.loginSpreadMs > 0) {
      const delayMs = Math.floor(this.random() * this.loginSpreadMs);
      this.wait('login', delayMs, `${next.reason} (spread)`, 0);
      return;
    }
    if (next.wait === 'now') {
      void this.run(next.step);
      return;
    }
    const now = this.scheduler.now();
    const attempt = next.wait === 'backoff' ? this.failures[next.step]++ : 0;
    let delayMs =
      next.wait === 'backoff'
        ? fullJitterDelay(this.backoff, attempt, this.random, next.floorMs)
        : Math.max(next.floorMs ?? 0, Math.floor(this.random() * this.reconnectJitterMs));
    const elapsedMs = now + delayMs - this.cycle.startedAt;
    if (elapsedMs > this.maxRetryMs) {
      this.emit('gave_up', { step: next.step, elapsedMs, reason: next.reason });
      void this.halt('gave_up');
      return;
    }
    const budgetWaitMs = this.budget.acquire(now + delayMs);
    if (budgetWaitMs > 0) {
      this.stats.budgetExhausted++;
      this.emit('budget_exhausted', { step: next.step, waitMs: budgetWaitMs });
      delayMs += budgetWaitMs;
    }
    this.stats.retries++;
    this.wait(next.step, delayMs, next.reason, attempt);
  }

  private wait(step: Step, delayMs: number, reason: string, attempt: number): void {
    this.pending = step;
    this.emit('retry_scheduled', { step, attempt, delayMs, reason });
    this.cancelWait = this.scheduler.schedule(() => {
      this.cancelWait = undefined;
      void this.run(step);
    }, delayMs);
  }

  private retarget(target: Target, alternatives: string[] | undefined): void {
    if (target === 'same') return;
    if (target === 'alternative' && alternatives?.length) {
      this.candidates = this.shuffle(alternatives.filter((url) => url !== this.url));
    }
    this.url = this.candidates.shift() ?? this.nextListed();
  }

  /** The node after the current one in the list (after the last listed one used, if on an alternative). */
  private nextListed(): string {
    const at = this.nodes.indexOf(this.url);
    this.listIndex = ((at >= 0 ? at : this.listIndex) + 1) % this.nodes.length;
    return this.nodes[this.listIndex];
  }

  /** Every client gets the same alternatives from a node; each tries them in its own order. */
  private shuffle(urls: string[]): string[] {
    for (let i = urls.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [urls[i], urls[j]] = [urls[j], urls[i]];
    }
    return urls;
  }

  /** The cached tokens, or 'unavailable' when the store cannot be read (a reason to wait, not to log in). */
  private async loadTokens(): Promise<Tokens | undefined | 'unavailable'> {
    if (this.unsaved) return this.unsaved;
    try {
      return await this.credentials.load(this.username);
    } catch (error) {
      this.emit('store_failed', { error });
      return 'unavailable';
    }
  }

  /** Saved before use: the refresh token just spent is gone, so a crash must not lose its successor. */
  private async persist(tokens: Tokens): Promise<void> {
    this.freshToken = true;
    this.unsaved = tokens;
    try {
      await this.credentials.save(this.username, tokens);
      this.unsaved = undefined;
    } catch (error) {
      this.emit('store_failed', { error });
    }
  }

  private async connectStep(): Promise<Next | undefined> {
    const tokens = await this.loadTokens();
    if (tokens === 'unavailable')
      return { step: 'connect', wait: 'backoff', target: 'same', reason: 'store_unavailable' };
    if (!tokens) return { step: 'login', wait: 'now', reason: 'no_credentials' };
    if (tokens.expiresAt <= this.scheduler.now())
      return { step: 'refresh', wait: 'now', reason: 'token_expired' };
    const url = this.url;
    this.stats.attempts.connect++;
    this.cycle.attempts++;
    let session: ClientSession;
    try {
      session = await this.openSession({
        url,
        token: tokens.accessToken,
        endpoints: this.endpoints,
        timeoutMs: this.connectTimeoutMs,
      });
    } catch (err) {
      return afterConnectFailure(err, this.freshToken);
    }
    if (this.state === 'stopped') await session.close();
    else {
      this.sessionIceServers = tokens.iceServers;
      this.adopt(session, url);
    }
    return undefined;
  }

  private async refreshStep(): Promise<Next> {
    const tokens = await this.loadTokens();
    if (tokens === 'unavailable') return { step: 'refresh', wait: 'backoff', reason: 'store_unavailable' };
    if (!tokens) return { step: 'login', wait: 'now', reason: 'no_credentials' };
    this.stats.attempts.refresh++;
    let issued: Tokens;
    try {
      issued = await this.auths[this.authIndex].refresh(tokens.refreshToken);
    } catch (err) {
      return this.afterAuthFailure(afterRefreshFailure(err));
    }
    await this.persist(issued);
    this.stats.refreshes++;
    this.budget.deposit();
    this.emit('token_refreshed', { expiresAt: issued.expiresAt });
    return { step: 'connect', wait: 'now', target: 'same', reason: 'token_refreshed' };
  }

  private async loginStep(): Promise<Next> {
    const password = await Promise.resolve()
      .then(() => this.passwordProvider?.())
      .catch(() => undefined);
    if (password === undefined) return { step: 'credentials', reason: 'no_password' };
    this.stats.attempts.login++;
    let issued: Tokens;
    try {
      issued = await this.auths[this.authIndex].login(this.username, password);
    } catch (err) {
      return this.afterAuthFailure(afterLoginFailure(err));
    }
    await this.persist(issued);
    this.stats.passwordLogins++;
    this.budget.deposit();
    this.emit('password_login', { expiresAt: issued.expiresAt });
    return { step: 'connect', wait: 'now', target: 'same', reason: 'logged_in' };
  }

  /** A retried auth call goes to the next auth instance, if there are several. */
  private afterAuthFailure(next: Next): Next {
    if (next.step === 'refresh' || next.step === 'login')
      this.authIndex = (this.authIndex + 1) % this.auths.length;
    return next;
  }

  private adopt(session: ClientSession, url: string): void {
    const previous = this.current;
    const from = this.home;
    const to: NodeRef = { url, node: session.welcome.node };
    const resumed = !this.freshToken;
    this.current = session;
    this.home = to;
    this.lastServerError = undefined;
    this.freshToken = false;
    // Suggestions of the node that refused or drained us were for that moment only.
    this.candidates = [];
    this.failures = { connect: 0, refresh: 0, login: 0 };
    this.stats.connects++;
    this.budget.deposit();
    session.on('message', (message: DeliveredMessage) => this.emit('message', message));
    session.on('server-error', (error: ServerError) => {
      if (session === this.current) this.lastServerError = error;
      this.emit('server_error', error);
    });
    session.on('drain', (drain: Drain) => {
      if (session !== this.current || this.pending || this.working) return;
      this.beginCycle();
      this.follow(afterDrain(drain));
    });
    session.on('close', (code: number, reason: string) => this.onClosed(session, to, code, reason));
    this.emit('connected', { url, node: to.node, attempt: this.cycle.attempts, resumed });
    if (from && from.node !== to.node) {
      this.stats.rehomes++;
      this.emit('rehomed', { from, to });
    }
    // After a drain the old session stayed usable until now: make before break.
    void previous?.close();
  }

  private onClosed(session: ClientSession, where: NodeRef, code: number, reason: string): void {
    if (session !== this.current) return;
    this.current = undefined;
    this.emit('disconnected', { ...where, code, reason });
    // A move after a drain is already under way (or waiting for credentials): it carries on.
    if (this.state !== 'running' || this.pending || this.working) return;
    this.beginCycle();
    this.follow(afterSessionLost(code, this.lastServerError));
  }

  private async halt(reason: StopReason): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.cancelWait?.();
    this.cancelWait = undefined;
    this.pending = undefined;
    const session = this.current;
    this.current = undefined;
    this.emit('stopped', { reason });
    await session?.close();
  }
}
