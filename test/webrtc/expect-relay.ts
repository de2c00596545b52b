import { type TurnFixture, udpPortIsBound } from './fixture';
import type { CandidateStats, PeerReport, RelayProofOptions, RelayReport } from './relay-proof';

/** What both stacks send: short text, and one message larger than a typical single datagram's payload. */
export function proofMessages(): Pick<RelayProofOptions, 'fromOfferer' | 'fromAnswerer'> {
  return {
    fromOfferer: ['hello from the offerer', 'second message', `big:${'o'.repeat(4000)}`],
    fromAnswerer: ['hello from the answerer', `big:${'a'.repeat(4000)}`],
  };
}

/**
 * The pair connected only through our TURN server: every message arrived, every candidate either side
 * gathered or saw is a relay candidate, and the selected pair joins two relayed addresses that our
 * server allocated (its relay range on its address, ports it holds right now, packets it relayed).
 * Call while the connections are open.
 */
export async function expectRelayedThroughOurServer(
  report: RelayReport,
  turn: TurnFixture,
  sent: Pick<RelayProofOptions, 'fromOfferer' | 'fromAnswerer'>,
): Promise<void> {
  // The detail says why when it did not connect.
  expect({ outcome: report.outcome, detail: report.detail }).toEqual({
    outcome: 'connected',
    detail: expect.any(String),
  });
  expect(report.answerer.received).toEqual(sent.fromOfferer);
  expect(report.offerer.received).toEqual(sent.fromAnswerer);

  const { min, max } = turn.relayPorts();
  const onOurRelay = (candidate: CandidateStats) => ({
    candidateType: candidate.candidateType,
    address: candidate.address,
    inOurRelayRange: candidate.port >= min && candidate.port <= max,
  });
  const expected = { candidateType: 'relay', address: turn.address.host, inOurRelayRange: true };
  const bytes = (messages: string[]) => messages.reduce((sum, message) => sum + message.length, 0);
  for (const [peer, sentBytes, receivedBytes, controlling] of [
    [report.offerer, bytes(sent.fromOfferer), bytes(sent.fromAnswerer), true],
    [report.answerer, bytes(sent.fromAnswerer), bytes(sent.fromOfferer), false],
  ] as const) {
    // No host or srflx candidate was gathered, offered or used: relay-only really was relay-only.
    expect(peer.gatheredTypes.length).toBeGreaterThan(0);
    expect(peer.signallingErrors).toEqual([]);
    expect(new Set(peer.gatheredTypes)).toEqual(new Set(['relay']));
    expect(new Set(peer.statsCandidates.map((candidate) => candidate.candidateType))).toEqual(
      new Set(['relay']),
    );
    const selected = selectedOf(peer);
    // The offerer is the controlling agent: its selected pair is the one it nominated. The controlled
    // side may select the best writable pair before the nomination reaches it (one loaded CI run saw
    // that), so its flag says nothing about our server.
    if (controlling) expect(selected.nominated).toBe(true);
    // libwebrtc reports the state of the pair's latest check: a consent check in flight on the selected
    // pair makes it `in-progress` until the answer comes back.
    expect(['succeeded', 'in-progress']).toContain(selected.state);
    const ourUrl = `turn:${turn.address.host}:${turn.address.port}?transport=`;
    for (const pair of [selected, ...peer.usedPairs]) {
      expect(onOurRelay(pair.local)).toEqual(expected);
      expect(onOurRelay(pair.remote)).toEqual(expected);
      // The local relay candidate came from our server's URL (UDP or TCP to it).
      expect(pair.local.url?.slice(0, ourUrl.length)).toBe(ourUrl);
    }
    // The messages went over these pairs (plus DTLS, SCTP and ICE overhead).
    const total = (key: 'bytesSent' | 'bytesReceived') =>
      peer.usedPairs.reduce((sum, pair) => sum + pair[key], 0);
    expect(total('bytesSent')).toBeGreaterThan(sentBytes);
    expect(total('bytesReceived')).toBeGreaterThan(receivedBytes);
  }
  // Each side's remote candidate is one of the other side's relayed addresses: relay to relay. (Of its
  // used ones, not its selected one: each side's selection may be moving to a better pair just now.)
  const localsOf = (peer: PeerReport) =>
    [selectedOf(peer), ...peer.usedPairs].map((pair) => endpoint(pair.local));
  expect(localsOf(report.answerer)).toContain(endpoint(selectedOf(report.offerer).remote));
  expect(localsOf(report.offerer)).toContain(endpoint(selectedOf(report.answerer).remote));

  // The server's side of the same story.
  for (const peer of [report.offerer, report.answerer]) {
    const { port } = selectedOf(peer).local;
    expect({ port, bound: await udpPortIsBound(turn.address.host, port) }).toEqual({ port, bound: true });
  }
  const stats = turn.stats();
  expect(stats.allocationsActive).toBeGreaterThanOrEqual(2);
  expect(stats.permissionsActive).toBeGreaterThanOrEqual(2);
  expect(stats.packetsToPeer).toBeGreaterThan(0);
  expect(stats.packetsToClient).toBeGreaterThan(0);
  // The payloads crossed the relay: at least the messages themselves, both ways.
  expect(stats.bytesToPeer).toBeGreaterThan(bytes(sent.fromOfferer) + bytes(sent.fromAnswerer));
  // Every client was challenged before it was let in (the long-term credential mechanism ran).
  expect(stats.refusals[401]).toBeGreaterThanOrEqual(2);
  expect(stats.dropped.internal_error).toBe(0);
}

/** A refused credential: no relay candidate, no connection, and the server allocated nothing. */
export function expectRefusedByOurServer(report: RelayReport, turn: TurnFixture): void {
  expect({ outcome: report.outcome, detail: report.detail }).toEqual({
    outcome: 'no-candidates',
    detail: expect.any(String),
  });
  for (const peer of [report.offerer, report.answerer]) {
    expect(peer.gatheredTypes).toEqual([]);
    expect(peer.received).toEqual([]);
    expect(peer.selected).toBeUndefined();
    expect(peer.iceConnectionState).not.toMatch(/^(connected|completed)$/);
  }
  // The stack says why: our server answered 401 on its TURN URLs.
  const turnErrors = [...report.offerer.iceErrors, ...report.answerer.iceErrors].filter((error) =>
    error.url.startsWith('turn:'),
  );
  expect(turnErrors.map((error) => error.errorCode)).toContain(401);
  const stats = turn.stats();
  expect(stats.allocationsCreated).toBe(0);
  expect(stats.refusals[401]).toBeGreaterThan(0);
  expect(stats.packetsToPeer).toBe(0);
}

function selectedOf(peer: PeerReport): NonNullable<PeerReport['selected']> {
  expect(peer.selected).toBeDefined();
  return peer.selected as NonNullable<PeerReport['selected']>;
}

function endpoint(candidate: CandidateStats): string {
  return `${candidate.address}:${candidate.port}`;
}
