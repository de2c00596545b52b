import { createServer, type Server } from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';
import { type Endpoint, MAX_ENDPOINTS } from '../protocol/messages';
import type { Logger } from '../shared/log';
import { batchWrites } from '../shared/write-batch';
import type { Discovery, MemberAddress } from './discovery';
import { type AuthenticatedLink, acceptPeer, dialPeer, MESH_PATH } from './link';
import { owners } from './rendezvous';
import { type DirectoryRecord, encodeForwardFrame, parseForwardFrame, parseMeshMessage } from './wire';

/** Inbound mesh sockets allowed mid-handshake at once. */
const MAX_HANDSHAKING = 64;

export type { DirectoryRecord } from './wire';

export interface LookupAnswer {
  online: boolean;
  node: string | null;
  sessions: number;
  endpoints: Endpoint[];
}

/** What the mesh needs from its node: the node's own sessions, and delivery to them. */
export interface LocalNode {
  /** Sessions and endpoints of `user` on this node, or undefined. */
  presenceOf(user: string): { sessions: number; endpoints: Endpoint[] } | undefined;
  localUsers(): Iterable<string>;
  /** Delivers a forwarded frame; the number of sessions reached, or -1 if the user has none here. */
  deliver(from: string, to: string, msgId: number, payload: Buffer): number | 'busy';
  /** The result of a frame this node forwarded, for its sender's session. */
  forwardResult(
    session: number,
    msgId: number,
    result: { delivered: number } | { code: 'unknown_recipient' | 'recipient_busy' },
  ): void;
}

export interface MeshOptions {
  selfId: string;
  /** The URL clients use for this node (the home URL in lookups). */
  selfUrl: string;
  host: string;
  port: number;
  secret: string;
  discovery: Discovery;
  replicas: number;
  heartbeatMs: number;
  deadAfterMisses: number;
  lookupTimeoutMs: number;
  sendBufferBytes: number;
  maxFrameBytes: number;
  log: Logger;
  local: LocalNode;
}

export interface MeshStats {
  republished: number;
  purged: number;
  lookupsRemote: number;
  lookupFallbacks: number;
  forwarded: number;
  forwardedBusy: number;
  received: number;
  refusedPeers: number;
}

/** The first `limit` endpoints, newest record first, each once (a device may be advertised on two nodes). */
function uniqueEndpoints(endpoints: Endpoint[], limit: number): Endpoint[] {
  const seen = new Set<string>();
  const out: Endpoint[] = [];
  for (const endpoint of endpoints) {
    const key = `${endpoint.address}|${endpoint.port}|${endpoint.kind ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(endpoint);
    if (out.length === limit) break;
  }
  return out;
}

/** How long a user's home is reused for relays before the directory is asked again. */
const ROUTE_TTL_MS = 5000;
const MAX_ROUTES = 100_000;
/** Frames waiting for one user's route lookup; more are refused as recipient_busy. */
const MAX_PENDING_PER_ROUTE = 1024;

type PendingFrame = [from: string, msgId: number, flags: number, session: number, payload: Buffer];
type Route = { home: string; expires: number } | { pending: PendingFrame[] };

interface Peer {
  id: string;
  url: string;
  socket?: WebSocket;
  lastHeard: number;
  dialing: boolean;
  retryAt: number;
  failures: number;
}

/**
 * The mesh: authenticated links to every other live node, a presence directory spread over R
 * owners per user by rendezvous hashing, and one-hop relay to a user's home node.
 */
export class Mesh {
  private readonly peers = new Map<string, Peer>();
  /** Records this node holds as an owner: user -> home -> record. */
  private readonly records = new Map<string, Map<string, DirectoryRecord>>();
  private readonly pendingLookups = new Map<number, (records: DirectoryRecord[] | undefined) => void>();
  /** Where recently relayed-to users live; frames behind a lookup wait here in order. */
  private readonly routes = new Map<string, Route>();
  private nextLookupId = 1;
  private version = Date.now();
  private live: string[] = [];
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private handshaking = 0;
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;
  /** When this node started holding each record (user -> home -> ms), for the sweep of strays. */
  private readonly heldSince = new WeakMap<DirectoryRecord, number>();
  /** Every mesh socket, authenticated or not, so stop() can end them all. */
  private readonly sockets = new Set<WebSocket>();
  readonly stats: MeshStats = {
    republished: 0,
    purged: 0,
    lookupsRemote: 0,
    lookupFallbacks: 0,
    forwarded: 0,
    forwardedBusy: 0,
    received: 0,
    refusedPeers: 0,
  };

  constructor(private readonly options: MeshOptions) {
    this.live = [options.selfId];
  }

  get ready(): boolean {
    return this.options.discovery.ready;
  }

  /** The node's client URL, once known (a node on port 0 learns its port only when it listens). */
  setSelfUrl(url: string): void {
    this.options.selfUrl = url;
  }

  /** Live members, self included, sorted. */
  members(): readonly string[] {
    return this.live;
  }

  directorySize(): number {
    let n = 0;
    for (const homes of this.records.values()) n += homes.size;
    return n;
  }

  /** Each known peer's link as the status page shows it (read-only: nothing here changes a link). */
  links(): { peer: string; state: 'live' | 'connecting' | 'down'; lastHeardMsAgo: number | null }[] {
    const now = Date.now();
    return [...this.peers.values()]
      .map((peer) => ({
        peer: peer.id,
        state: this.isAlive(peer)
          ? ('live' as const)
          : peer.dialing || peer.socket
            ? ('connecting' as const)
            : ('down' as const),
        lastHeardMsAgo: peer.lastHeard > 0 ? Math.max(0, now - peer.lastHeard) : null,
      }))
      .sort((a, b) => (a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0));
  }

  async start(): Promise<number> {
    const { host, port, maxFrameBytes } = this.options;
    this.server = createServer((_req, res) => res.writeHead(404).end());
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: maxFrameBytes + 1024,
      perMessageDeflate: false,
    });
    this.server.on('upgrade', (request, socket, head) => {
      if (request.url !== MESH_PATH) {
        socket.destroy();
        return;
      }
      this.wss?.handleUpgrade(request, socket, head, (ws) => void this.onInbound(ws));
    });
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(port, host, () => resolve());
    });
    const address = this.server.address();
    const boundPort = typeof address === 'object' && address ? address.port : port;
    await this.options.discovery.start();
    this.tick();
    this.timer = setInterval(() => this.tick(), this.options.heartbeatMs);
    this.timer.unref();
    return boundPort;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.options.discovery.stop();
    for (const socket of this.sockets) socket.terminate();
    this.wss?.close();
    await new Promise((resolve) => (this.server ? this.server.close(resolve) : resolve(undefined)));
  }

  // ---- membership and links -------------------------------------------------------------------

  private track(socket: WebSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  private async onInbound(socket: WebSocket): Promise<void> {
    this.track(socket);
    socket.on('error', () => {});
    // A fleet has at most a few hundred members: more sockets mid-handshake than that is an attack.
    if (this.handshaking >= MAX_HANDSHAKING) {
      this.stats.refusedPeers++;
      socket.terminate();
      return;
    }
    this.handshaking++;
    const link = await acceptPeer(socket, this.options.selfId, this.options.secret).finally(() => {
      this.handshaking--;
    });
    if (!link) {
      this.stats.refusedPeers++;
      this.options.log.warn('refused a mesh peer that failed authentication');
      return;
    }
    this.attach(link, socket);
  }

  private dial(peer: Peer): void {
    peer.dialing = true;
    const socket = new WebSocket(`${peer.url}${MESH_PATH}`, {
      perMessageDeflate: false,
      maxPayload: this.options.maxFrameBytes + 1024,
      handshakeTimeout: 5000,
    });
    this.track(socket);
    socket.on('error', () => {});
    const failed = () => {
      peer.dialing = false;
      peer.failures++;
      // Backoff with jitter, so a restarted fleet does not redial in lockstep; capped low because
      // discovery lists a new instance before its node listens, and it should join within seconds.
      peer.retryAt = Date.now() + 250 * 2 ** Math.min(peer.failures, 4) * (0.5 + Math.random());
    };
    socket.once('close', () => {
      if (peer.dialing) failed();
    });
    socket.once('open', async () => {
      const link = await dialPeer(socket, this.options.selfId, this.options.secret);
      if (link?.peerId !== peer.id) {
        if (link) socket.close(1008, 'unexpected peer id');
        this.stats.refusedPeers++;
        failed();
        return;
      }
      peer.dialing = false;
      peer.failures = 0;
      this.attach(link, socket);
    });
  }

  private attach(link: AuthenticatedLink, socket: WebSocket): void {
    const peerId = link.peerId;
    let peer = this.peers.get(peerId);
    if (!peer) {
      peer = { id: peerId, url: '', lastHeard: 0, dialing: false, retryAt: 0, failures: 0 };
      this.peers.set(peerId, peer);
    }
    if (peer.socket && peer.socket !== socket) peer.socket.terminate();
    peer.socket = socket;
    peer.lastHeard = Date.now();
    const current = peer;
    link.takeOver((data, isBinary) => {
      current.lastHeard = Date.now();
      try {
        if (isBinary) this.onForward(current, data as Buffer);
        else this.onMessage(current, String(data));
      } catch (err) {
        this.options.log.warn(
          { err: { message: (err as Error).message }, peer: current.id },
          'bad mesh message',
        );
      }
    });
    socket.on('close', () => {
      if (current.socket === socket) current.socket = undefined;
      this.recomputeMembers();
    });
    this.send(peer, { t: 'hb' });
    this.recomputeMembers();
  }

  private tick(): void {
    const now = Date.now();
    const known = new Map<string, MemberAddress>();
    for (const member of this.options.discovery.members()) known.set(member.id, member);
    for (const member of known.values()) {
      if (member.id === this.options.selfId) continue;
      let peer = this.peers.get(member.id);
      if (!peer) {
        peer = { id: member.id, url: member.meshUrl, lastHeard: 0, dialing: false, retryAt: 0, failures: 0 };
        this.peers.set(member.id, peer);
      }
      peer.url = member.meshUrl;
      // One link per pair: the smaller id dials, the larger accepts.
      if (!peer.socket && !peer.dialing && this.options.selfId < member.id && now >= peer.retryAt)
        this.dial(peer);
    }
    for (const peer of this.peers.values()) {
      if (peer.socket?.readyState === WebSocket.OPEN) this.send(peer, { t: 'hb' });
      const silentFor = now - peer.lastHeard;
      if (peer.socket && silentFor > this.options.heartbeatMs * this.options.deadAfterMisses) {
        this.options.log.warn({ peer: peer.id, silentMs: silentFor }, 'mesh peer missed its heartbeats');
        peer.socket.terminate();
        peer.socket = undefined;
      }
      if (!peer.socket && !known.has(peer.id) && !peer.dialing) this.peers.delete(peer.id);
    }
    this.recomputeMembers();
    if (++this.ticks % 10 === 0) this.sweepStrays(now);
  }

  /**
   * Drops records this node does not own that it has held for a while. They arrive when a home
   * published while its view of the members differed from ours; the real owners have them too.
   */
  private sweepStrays(now: number): void {
    const grace = this.options.heartbeatMs * this.options.deadAfterMisses * 3;
    for (const [user, homes] of this.records) {
      if (owners(user, this.live, this.options.replicas).includes(this.options.selfId)) continue;
      for (const [home, record] of homes) {
        if (now - (this.heldSince.get(record) ?? now) > grace) homes.delete(home);
      }
      if (homes.size === 0) this.records.delete(user);
    }
  }

  private isAlive(peer: Peer): boolean {
    return (
      peer.socket?.readyState === WebSocket.OPEN &&
      Date.now() - peer.lastHeard <= this.options.heartbeatMs * this.options.deadAfterMisses
    );
  }

  /** On a change of live members: purge records whose home died, hand records to their new owners. */
  private recomputeMembers(): void {
    const live = [
      this.options.selfId,
      ...[...this.peers.values()].filter((p) => this.isAlive(p)).map((p) => p.id),
    ].sort();
    if (live.join(',') === this.live.join(',')) return;
    const before = this.live;
    this.live = live;
    const alive = new Set(live);
    this.options.log.info({ members: live }, 'mesh membership changed');
    for (const [user, homes] of this.records) {
      for (const home of homes.keys()) {
        if (!alive.has(home)) {
          homes.delete(home);
          this.stats.purged++;
        }
      }
      // No longer an owner: the home nodes re-publish to the new owners.
      if (homes.size === 0 || !owners(user, live, this.options.replicas).includes(this.options.selfId)) {
        this.records.delete(user);
      }
    }
    const { replicas } = this.options;
    for (const user of this.options.local.localUsers()) {
      const previous = new Set(owners(user, before, replicas));
      for (const owner of owners(user, live, replicas)) {
        if (!previous.has(owner)) {
          this.publishTo(owner, user);
          this.stats.republished++;
        }
      }
    }
  }

  // ---- directory ------------------------------------------------------------------------------

  /** Registers (or refreshes) this node's presence record of `user` with its R owners. */
  publish(user: string): void {
    for (const owner of owners(user, this.live, this.options.replicas)) this.publishTo(owner, user);
  }

  private publishTo(owner: string, user: string): void {
    const presence = this.options.local.presenceOf(user);
    const v = ++this.version;
    const message = presence
      ? {
          t: 'pub',
          r: {
            user,
            home: this.options.selfId,
            url: this.options.selfUrl,
            sessions: presence.sessions,
            endpoints: presence.endpoints,
            v,
          },
        }
      : { t: 'unpub', user, home: this.options.selfId, v };
    if (owner === this.options.selfId) this.onMessage(undefined, JSON.stringify(message));
    else {
      const peer = this.peers.get(owner);
      if (peer) this.send(peer, message);
    }
  }

  /** The user has no session here any more. */
  unpublish(user: string): void {
    this.publish(user); // presenceOf() is now undefined, so this sends unpub
  }

  async lookup(user: string): Promise<LookupAnswer> {
    const local = this.options.local.presenceOf(user);
    let records: DirectoryRecord[] | undefined;
    const candidates = owners(user, this.live, this.options.replicas);
    // A replica held here answers without a round trip (R/N of lookups: two thirds on a 3-node mesh
    // with R = 2); the other owners follow in rendezvous order.
    const self = candidates.indexOf(this.options.selfId);
    if (self > 0) candidates.unshift(...candidates.splice(self, 1));
    for (const [index, owner] of candidates.entries()) {
      const answer =
        owner === this.options.selfId
          ? [...(this.records.get(user)?.values() ?? [])]
          : await this.ask(owner, user);
      records = answer ?? records;
      // An owner that answers "nobody" may be one that just took the user over in a re-publish and
      // has not received the record yet: the next owner may still hold it.
      if (answer && answer.length > 0) break;
      if (index + 1 < candidates.length) this.stats.lookupFallbacks++;
    }
    const merged = (records ?? []).filter((r) => r.home !== this.options.selfId);
    if (local) {
      merged.push({
        user,
        home: this.options.selfId,
        url: this.options.selfUrl,
        ...local,
        v: Number.MAX_SAFE_INTEGER,
      });
    }
    if (merged.length === 0) return { online: false, node: null, sessions: 0, endpoints: [] };
    merged.sort((a, b) => b.v - a.v);
    return {
      online: true,
      node: merged[0].url,
      sessions: merged.reduce((n, r) => n + r.sessions, 0),
      endpoints: uniqueEndpoints(
        merged.flatMap((r) => r.endpoints),
        MAX_ENDPOINTS,
      ),
    };
  }

  /** Asks one owner; undefined when it is unreachable or slow (the caller tries the next owner). */
  private ask(owner: string, user: string): Promise<DirectoryRecord[] | undefined> {
    const peer = this.peers.get(owner);
    if (!peer || !this.isAlive(peer)) return Promise.resolve(undefined);
    this.stats.lookupsRemote++;
    const id = this.nextLookupId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pendingLookups.delete(id);
        resolve(undefined);
      }, this.options.lookupTimeoutMs);
      this.pendingLookups.set(id, (records) => {
        clearTimeout(timer);
        resolve(records);
      });
      this.send(peer, { t: 'lookup', id, user });
    });
  }

  /** Home node of `user` other than this one, from the directory. */
  async homeOf(user: string): Promise<{ home: string } | undefined> {
    const candidates = owners(user, this.live, this.options.replicas);
    for (const owner of candidates) {
      const records =
        owner === this.options.selfId
          ? [...(this.records.get(user)?.values() ?? [])]
          : await this.ask(owner, user);
      // No answer, or none from an owner still waiting for the record (a re-publish): ask the next.
      const remote = (records ?? []).filter((r) => r.home !== this.options.selfId).sort((a, b) => b.v - a.v);
      if (remote[0]) return { home: remote[0].home };
    }
    return undefined;
  }

  // ---- relay ----------------------------------------------------------------------------------

  /**
   * Relays a frame for a user with no session here to the user's home node, one hop. The home comes
   * from a short-lived route cache or the directory; frames for a user whose route is being looked
   * up wait in order, so order per sender and recipient holds. Failures reach the sender's session
   * through LocalNode.forwardResult.
   */
  relay(from: string, to: string, msgId: number, flags: number, session: number, payload: Buffer): void {
    const route = this.routes.get(to);
    if (route && 'home' in route && route.expires > Date.now()) {
      this.forwardOrFail(route.home, from, to, msgId, flags, session, payload);
      return;
    }
    if (route && 'pending' in route) {
      if (route.pending.length >= MAX_PENDING_PER_ROUTE) {
        this.options.local.forwardResult(session, msgId, { code: 'recipient_busy' });
      } else {
        route.pending.push([from, msgId, flags, session, Buffer.from(payload)]);
      }
      return;
    }
    const pending: PendingFrame[] = [[from, msgId, flags, session, Buffer.from(payload)]];
    this.setRoute(to, { pending });
    this.homeOf(to).then(
      (found) => this.resolveRoute(to, pending, found?.home),
      () => this.resolveRoute(to, pending, undefined),
    );
  }

  private setRoute(user: string, route: Route): void {
    this.routes.delete(user);
    if (this.routes.size >= MAX_ROUTES) this.routes.delete(this.routes.keys().next().value as string);
    this.routes.set(user, route);
  }

  private resolveRoute(to: string, pending: PendingFrame[], home: string | undefined): void {
    if (home) this.setRoute(to, { home, expires: Date.now() + ROUTE_TTL_MS });
    else this.routes.delete(to);
    for (const [from, msgId, flags, session, payload] of pending) {
      if (home) this.forwardOrFail(home, from, to, msgId, flags, session, payload);
      else this.options.local.forwardResult(session, msgId, { code: 'unknown_recipient' });
    }
  }

  private forwardOrFail(
    home: string,
    from: string,
    to: string,
    msgId: number,
    flags: number,
    session: number,
    payload: Buffer,
  ): void {
    const sent = this.forward(home, from, to, msgId, flags, session, payload);
    if (sent === true) return;
    if (sent === 'no_link') this.routes.delete(to);
    this.options.local.forwardResult(session, msgId, {
      code: sent === 'no_link' ? 'unknown_recipient' : 'recipient_busy',
    });
  }

  /** Sends one forward frame; false when the link is over its buffer, 'no_link' when there is none. */
  private forward(
    home: string,
    from: string,
    to: string,
    msgId: number,
    flags: number,
    session: number,
    payload: Buffer,
  ): boolean | 'no_link' {
    const peer = this.peers.get(home);
    if (!peer?.socket || peer.socket.readyState !== WebSocket.OPEN) return 'no_link';
    if (peer.socket.bufferedAmount > this.options.sendBufferBytes) {
      this.stats.forwardedBusy++;
      return false;
    }
    batchWrites(peer.socket);
    peer.socket.send(encodeForwardFrame(flags, msgId, session, from, to, payload));
    this.stats.forwarded++;
    return true;
  }

  private onForward(peer: Peer, data: Buffer): void {
    const frame = parseForwardFrame(data);
    if (!frame) return;
    const { flags, msgId, session, from, to, payloadOffset } = frame;
    this.stats.received++;
    const delivered = this.options.local.deliver(from, to, msgId, data.subarray(payloadOffset));
    if (delivered === 'busy') this.send(peer, { t: 'relay_r', session, msgId, code: 'recipient_busy' });
    else if (delivered < 0)
      this.send(peer, { t: 'relay_r', session, msgId, code: 'unknown_recipient', user: to });
    else if (flags & 1) this.send(peer, { t: 'relay_r', session, msgId, delivered });
  }

  // ---- messages -------------------------------------------------------------------------------

  private send(peer: Peer, message: object): void {
    const socket = peer.socket;
    if (socket?.readyState !== WebSocket.OPEN) return;
    batchWrites(socket);
    socket.send(JSON.stringify(message));
  }

  private onMessage(peer: Peer | undefined, text: string): void {
    const message = parseMeshMessage(text);
    if (!message) return;
    switch (message.t) {
      case 'hb':
        return;
      case 'pub': {
        const record = message.r;
        let homes = this.records.get(record.user);
        if (!homes) {
          homes = new Map();
          this.records.set(record.user, homes);
        }
        const existing = homes.get(record.home);
        if (!existing || existing.v < record.v) {
          homes.set(record.home, record);
          this.heldSince.set(record, Date.now());
        }
        return;
      }
      case 'unpub': {
        const homes = this.records.get(message.user);
        const existing = homes?.get(message.home);
        if (homes && existing && existing.v < message.v) {
          homes.delete(message.home);
          if (homes.size === 0) this.records.delete(message.user);
        }
        return;
      }
      case 'lookup': {
        if (!peer) return;
        const records = [...(this.records.get(message.user)?.values() ?? [])];
        this.send(peer, { t: 'found', id: message.id, records });
        return;
      }
      case 'found': {
        const resolve = this.pendingLookups.get(message.id);
        if (!resolve) return;
        this.pendingLookups.delete(message.id);
        resolve(message.records);
        return;
      }
      case 'relay_r': {
        const { session, msgId } = message;
        if ('delivered' in message)
          this.options.local.forwardResult(session, msgId, { delivered: message.delivered });
        else {
          // The user left that node: the next frame asks the directory again.
          if (message.code === 'unknown_recipient' && message.user) this.routes.delete(message.user);
          this.options.local.forwardResult(session, msgId, { code: message.code });
        }
        return;
      }
    }
  }
}
