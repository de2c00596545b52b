import * as wrtc from '@roamhq/wrtc';
import { expectRefusedByOurServer, expectRelayedThroughOurServer, proofMessages } from './expect-relay';
import { startTurnFixture, type TurnFixture } from './fixture';
import { openRelayPair, type PeerConnectionConstructor, type RelayPair } from './relay-proof';

/**
 * libwebrtc (Google's WebRTC, as Chrome ships it) in Node through @roamhq/wrtc: two relay-only peer
 * connections whose only way to each other is our TURN server.
 */

// wrtc's typings re-export the DOM's RTCPeerConnection, which this Node project has no lib for.
const PeerConnection = wrtc.RTCPeerConnection as unknown as PeerConnectionConstructor;

jest.setTimeout(20_000);

let turn: TurnFixture | undefined;
let pair: RelayPair | undefined;

afterEach(async () => {
  pair?.close();
  await turn?.close();
  pair = undefined;
  turn = undefined;
});

describe('@roamhq/wrtc through our TURN server', () => {
  it('connects two relay-only peers, carries data channel messages both ways, and selects relay candidates on our server', async () => {
    turn = await startTurnFixture();
    const messages = proofMessages();
    pair = await openRelayPair(PeerConnection, {
      iceServers: turn.iceServers,
      ...messages,
      giveUpAfterMs: 10_000,
    });
    await expectRelayedThroughOurServer(pair.report, turn, messages);
  });

  it('does not connect with a password the server did not mint (negative control)', async () => {
    turn = await startTurnFixture();
    pair = await openRelayPair(PeerConnection, {
      iceServers: turn.wrongIceServers,
      ...proofMessages(),
      giveUpAfterMs: 10_000,
    });
    expectRefusedByOurServer(pair.report, turn);
  });
});
