/**
 * The proof both WebRTC stacks run: two relay-only peer connections in one process, signalled
 * directly, a data channel carrying messages both ways, then what getStats() says was selected.
 * The same code runs in Node (with @roamhq/wrtc's RTCPeerConnection) and in Chromium (bundled by
 * esbuild into the test page), so both tests prove exactly the same thing. It imports nothing and
 * touches no Node API; the tests assert on the report it returns.
 */

/** The part of the WebRTC API the proof uses: the standard one, which both stacks implement. */
export interface IceServerConfig {
  urls: string | string[];
  username?: string;
  credential?: string;
}

interface DataChannelLike {
  readonly readyState: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string): void;
  close(): void;
}

interface StatsReportLike {
  forEach(callback: (stat: Record<string, unknown>) => void): void;
}

interface PeerConnectionLike {
  readonly iceConnectionState: string;
  readonly iceGatheringState: string;
  onicecandidate: ((event: { candidate: { candidate: string } | null }) => void) | null;
  onicecandidateerror: ((event: { errorCode: number; errorText: string; url: string }) => void) | null;
  oniceconnectionstatechange: ((event: unknown) => void) | null;
  onicegatheringstatechange: ((event: unknown) => void) | null;
  ondatachannel: ((event: { channel: DataChannelLike }) => void) | null;
  createDataChannel(label: string): DataChannelLike;
  createOffer(): Promise<{ type: string; sdp?: string }>;
  createAnswer(): Promise<{ type: string; sdp?: string }>;
  setLocalDescription(description: { type: string; sdp?: string }): Promise<void>;
  setRemoteDescription(description: { type: string; sdp?: string }): Promise<void>;
  // biome-ignore lint/suspicious/noExplicitAny: each stack types its own candidate object; it is passed through.
  addIceCandidate(candidate: any): Promise<void>;
  getStats(): Promise<StatsReportLike>;
  close(): void;
}

export type PeerConnectionConstructor = new (config: {
  iceServers: IceServerConfig[];
  iceTransportPolicy: 'relay';
}) => PeerConnectionLike;

/** One ICE candidate as getStats() reports it. */
export interface CandidateStats {
  candidateType: string;
  address: string;
  port: number;
  /** Local relay candidates: the transport to the TURN server (udp, tcp, tls). */
  relayProtocol?: string;
  /** Local candidates: the ICE server URL the candidate came from. */
  url?: string;
}

export interface CandidatePairStats {
  local: CandidateStats;
  remote: CandidateStats;
  state: string;
  nominated: boolean;
  /** What went over the pair: the data channel's packets and ICE's own checks. */
  bytesSent: number;
  bytesReceived: number;
}

export interface PeerReport {
  /** The `typ` of every candidate this peer gathered (onicecandidate). */
  gatheredTypes: string[];
  /** icecandidateerror events: how the TURN server answered when it refused. */
  iceErrors: Array<{ errorCode: number; errorText: string; url: string }>;
  /** Candidates the other side would not take (none expected). */
  signallingErrors: string[];
  iceConnectionState: string;
  gatheringComplete: boolean;
  /** Messages received on the data channel, in order. */
  received: string[];
  /** The transport's selected candidate pair; absent when none was selected. */
  selected?: CandidatePairStats;
  /**
   * Every pair that carried bytes. ICE may move the selection to a better pair after the first data
   * went over another one (more so on a busy machine), so what the messages crossed is all of these.
   */
  usedPairs: CandidatePairStats[];
  /** Every local and remote candidate in the stats, selected or not. */
  statsCandidates: CandidateStats[];
}

export interface RelayReport {
  /** `connected`: both sides got every message; `no-candidates`: a side finished gathering with none. */
  outcome: 'connected' | 'no-candidates' | 'failed' | 'timeout';
  detail: string;
  offerer: PeerReport;
  answerer: PeerReport;
}

export interface RelayProofOptions {
  iceServers: IceServerConfig[];
  /** Sent by the offerer over the data channel it opens, once the answerer's first message arrived. */
  fromOfferer: string[];
  /** Sent by the answerer as soon as the channel is open on its side; at least one. */
  fromAnswerer: string[];
  /** A guard so a broken connection fails the test with a report, not with Jest's timeout. */
  giveUpAfterMs: number;
}

export interface RelayPair {
  report: RelayReport;
  /** Closes both peer connections (their TURN allocations are released). */
  close(): void;
}

/**
 * Opens the two relay-only connections and exchanges the messages; resolves with the report while
 * both connections are still open, so the caller can look at the TURN server before closing them.
 */
export async function openRelayPair(
  PeerConnection: PeerConnectionConstructor,
  options: RelayProofOptions,
): Promise<RelayPair> {
  if (options.fromAnswerer.length === 0)
    throw new RangeError('fromAnswerer needs a message: it starts the exchange');
  const config = { iceServers: options.iceServers, iceTransportPolicy: 'relay' as const };
  const offerer = new PeerConnection(config);
  const answerer = new PeerConnection(config);
  const close = () => {
    offerer.close();
    answerer.close();
  };
  const reports = { offerer: emptyReport(), answerer: emptyReport() };

  const outcome = new Promise<{ outcome: RelayReport['outcome']; detail: string }>((resolve) => {
    const timer = setTimeout(
      () => resolve({ outcome: 'timeout', detail: `nothing decided after ${options.giveUpAfterMs} ms` }),
      options.giveUpAfterMs,
    );
    const settle = (result: { outcome: RelayReport['outcome']; detail: string }) => {
      clearTimeout(timer);
      resolve(result);
    };
    const checkDone = () => {
      if (
        reports.offerer.received.length === options.fromAnswerer.length &&
        reports.answerer.received.length === options.fromOfferer.length
      ) {
        settle({ outcome: 'connected', detail: 'every message arrived both ways' });
      }
    };

    for (const [name, pc, other] of [
      ['offerer', offerer, answerer],
      ['answerer', answerer, offerer],
    ] as const) {
      const report = reports[name];
      pc.onicecandidate = ({ candidate }) => {
        if (!candidate) return;
        report.gatheredTypes.push(/ typ (\S+)/.exec(candidate.candidate)?.[1] ?? 'unparsed');
        other
          .addIceCandidate(candidate)
          .catch((err: unknown) => report.signallingErrors.push(`addIceCandidate: ${String(err)}`));
      };
      pc.onicecandidateerror = ({ errorCode, errorText, url }) =>
        report.iceErrors.push({ errorCode, errorText, url });
      pc.oniceconnectionstatechange = () => {
        if (pc.iceConnectionState === 'failed') settle({ outcome: 'failed', detail: `${name}: ICE failed` });
      };
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState !== 'complete') return;
        report.gatheringComplete = true;
        const both = [reports.offerer, reports.answerer];
        if (
          both.every((side) => side.gatheringComplete) &&
          both.some((side) => side.gatheredTypes.length === 0)
        ) {
          settle({
            outcome: 'no-candidates',
            detail: `both finished gathering; ${name} had no relay candidate`,
          });
        }
      };
    }

    // The offerer speaks only once the answerer has: a message that reaches the answerer before its
    // ondatachannel handler ran can be delivered out of order by wrtc (seen: the last one first).
    const channel = offerer.createDataChannel('relay-proof');
    channel.onmessage = ({ data }) => {
      if (reports.offerer.received.length === 0) {
        for (const message of options.fromOfferer) channel.send(message);
      }
      reports.offerer.received.push(String(data));
      checkDone();
    };
    answerer.ondatachannel = ({ channel: incoming }) => {
      incoming.onmessage = ({ data }) => {
        reports.answerer.received.push(String(data));
        checkDone();
      };
      const reply = () => {
        for (const message of options.fromAnswerer) incoming.send(message);
      };
      if (incoming.readyState === 'open') reply();
      else incoming.onopen = reply;
    };
  });

  try {
    const offer = await offerer.createOffer();
    await offerer.setLocalDescription(offer);
    await answerer.setRemoteDescription(offer);
    const answer = await answerer.createAnswer();
    await answerer.setLocalDescription(answer);
    await offerer.setRemoteDescription(answer);
    const { outcome: result, detail } = await outcome;
    for (const [name, pc] of [
      ['offerer', offerer],
      ['answerer', answerer],
    ] as const) {
      Object.assign(reports[name], await selectedPair(pc));
      reports[name].iceConnectionState = pc.iceConnectionState;
    }
    return { report: { outcome: result, detail, ...reports }, close };
  } catch (err) {
    close();
    throw err;
  }
}

function emptyReport(): PeerReport {
  return {
    gatheredTypes: [],
    iceErrors: [],
    signallingErrors: [],
    iceConnectionState: 'new',
    gatheringComplete: false,
    received: [],
    statsCandidates: [],
    usedPairs: [],
  };
}

/** The transport's selected pair, the pairs that carried bytes, and every candidate, from getStats(). */
async function selectedPair(
  pc: PeerConnectionLike,
): Promise<Pick<PeerReport, 'selected' | 'usedPairs' | 'statsCandidates'>> {
  const stats = new Map<string, Record<string, unknown>>();
  (await pc.getStats()).forEach((stat) => {
    stats.set(String(stat.id), stat);
  });
  const all = [...stats.values()];
  const candidate = (id: unknown): CandidateStats => {
    const stat = stats.get(String(id)) ?? {};
    return {
      candidateType: String(stat.candidateType),
      // `address` is the current name; older stacks only have `ip`.
      address: String(stat.address ?? stat.ip),
      port: Number(stat.port),
      relayProtocol: stat.relayProtocol === undefined ? undefined : String(stat.relayProtocol),
      url: stat.url === undefined ? undefined : String(stat.url),
    };
  };
  const pairOf = (pair: Record<string, unknown>): CandidatePairStats => ({
    local: candidate(pair.localCandidateId),
    remote: candidate(pair.remoteCandidateId),
    state: String(pair.state),
    nominated: pair.nominated === true,
    bytesSent: Number(pair.bytesSent ?? 0),
    bytesReceived: Number(pair.bytesReceived ?? 0),
  });
  const statsCandidates = all
    .filter((stat) => stat.type === 'local-candidate' || stat.type === 'remote-candidate')
    .map((stat) => candidate(stat.id));
  const usedPairs = all
    .filter((stat) => stat.type === 'candidate-pair')
    .map(pairOf)
    .filter((pair) => pair.bytesSent + pair.bytesReceived > 0);
  const transport = all.find((stat) => stat.type === 'transport' && stat.selectedCandidatePairId);
  const selected = transport ? stats.get(String(transport.selectedCandidatePairId)) : undefined;
  return { statsCandidates, usedPairs, selected: selected ? pairOf(selected) : undefined };
}
