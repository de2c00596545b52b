/**
 * Direct (WebRTC) calls of the demo: one RTCPeerConnection per contact, relay-only
 * (`iceTransportPolicy: 'relay'`) through the tier's TURN servers, with the `iceServers` of the
 * login. The offer, answer and ICE candidates travel as ordinary messages through the tier, in a small
 * JSON envelope `{ type: 'rtc', call, signal, ... }`; a data channel then carries the chat. An audio
 * call adds the microphone (getUserMedia) to the same connection, where the browser allows it.
 */

export const RTC_TYPE = 'rtc';

const MAX_CALL_ID = 64;
const MAX_SDP = 20_000;
const MAX_CANDIDATE = 1_000;
const MAX_MID = 32;
const MAX_TEXT = 2000;

const isShortString = (value, max) => typeof value === 'string' && value.length > 0 && value.length <= max;

/** The signal in a message body if it is a well-formed one of ours; anything else is undefined. */
export function parseSignal(body) {
  if (body?.type !== RTC_TYPE || !isShortString(body.call, MAX_CALL_ID)) return undefined;
  const { call, signal } = body;
  if (signal === 'offer' || signal === 'answer')
    return isShortString(body.sdp, MAX_SDP) ? { call, signal, sdp: body.sdp } : undefined;
  if (signal === 'hangup') return { call, signal };
  if (signal !== 'candidate') return undefined;
  const candidate = body.candidate;
  // JSON leaves out an undefined sdpMid or sdpMLineIndex: both read as null then.
  const sdpMid = candidate?.sdpMid ?? null;
  const sdpMLineIndex = candidate?.sdpMLineIndex ?? null;
  const validMid = sdpMid === null || isShortString(sdpMid, MAX_MID);
  const validIndex =
    sdpMLineIndex === null || (Number.isInteger(sdpMLineIndex) && sdpMLineIndex >= 0 && sdpMLineIndex < 64);
  if (typeof candidate?.candidate !== 'string' || candidate.candidate.length > MAX_CANDIDATE)
    return undefined;
  if (!validMid || !validIndex) return undefined;
  return { call, signal, candidate: { candidate: candidate.candidate, sdpMid, sdpMLineIndex } };
}

function newCallId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One peer connection with one contact; the caller then runs `offer()`, the callee `answer(sdp)`.
 * `send(body)` carries a signal through the tier (rejects when it is not delivered); `onChange(call)`
 * hears every change of state or pair; `onText(text)` each data channel message; `onAudio(stream)` the
 * other side's audio. States: connecting, open, closed, failed (`reason` says why).
 */
export class DirectCall {
  /** `id`: the caller's offer's, for the callee; a new one for the caller. */
  constructor({ peer, id, iceServers, send, onChange, onText, onAudio }) {
    this.peer = peer;
    this.role = id === undefined ? 'caller' : 'callee';
    this.id = id ?? newCallId();
    this.state = 'connecting';
    this.reason = '';
    /** The selected candidate pair once connected: { local, remote }, each { type, address, port, protocol }. */
    this.pair = undefined;
    this.sendSignal = send;
    this.onChange = onChange;
    this.onText = onText;
    /** Our microphone, when this is an audio call and the browser gave it. */
    this.microphone = undefined;
    /** RTP packets of the audio, both ways, from the connection's stats (readAudio). */
    this.audio = undefined;
    /** Why this side of an audio call only listens. */
    this.audioNote = '';
    /** The element the application plays the other side's audio with, if any. */
    this.player = undefined;
    /** Candidates of the other side that came before its description was applied. */
    this.remoteCandidates = [];
    this.hasRemoteDescription = false;
    /** Our candidates wait until our description has reached the other side. */
    this.localCandidates = [];
    this.descriptionSent = false;
    this.pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });
    this.pc.onicecandidate = ({ candidate }) => {
      if (!candidate) return;
      const plain = {
        candidate: candidate.candidate,
        sdpMid: candidate.sdpMid,
        sdpMLineIndex: candidate.sdpMLineIndex,
      };
      if (this.descriptionSent) void this.signal({ signal: 'candidate', candidate: plain });
      else this.localCandidates.push(plain);
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === 'connected') void this.readPair();
      else if (state === 'failed') this.fail("could not connect through the tier's TURN servers");
    };
    this.pc.ontrack = ({ track, streams }) => {
      if (track.kind === 'audio') onAudio?.(streams[0] ?? new MediaStream([track]));
    };
  }

  /** Whether the offer of this call asks for audio. */
  static offersAudio(sdp) {
    return /^m=audio /m.test(sdp);
  }

  /** As the caller: a data channel (and `microphone`'s audio), and the offer through the tier. */
  async offer(microphone) {
    this.attach(this.pc.createDataChannel('chat'));
    this.addMicrophone(microphone);
    try {
      await this.pc.setLocalDescription(await this.pc.createOffer());
      await this.sendDescription('offer');
    } catch (error) {
      this.fail(`could not start the call: ${error?.message ?? error}`);
    }
  }

  /**
   * As the callee: answers the offer the caller sent through the tier. For an audio call,
   * `getMicrophone()` is asked for ours; without it (refused, no device) this side only listens.
   */
  async answer(sdp, getMicrophone) {
    this.pc.ondatachannel = ({ channel }) => this.attach(channel);
    try {
      await this.applyDescription({ type: 'offer', sdp });
      if (getMicrophone && DirectCall.offersAudio(sdp)) {
        try {
          this.addMicrophone(await getMicrophone());
        } catch (error) {
          this.audioNote = `listening only: no microphone (${error?.message ?? error})`;
        }
      }
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      await this.sendDescription('answer');
    } catch (error) {
      this.fail(`could not answer the call: ${error?.message ?? error}`);
    }
  }

  /** A signal of this call from the other side. */
  async handle(signal) {
    try {
      if (signal.signal === 'answer' && this.role === 'caller' && !this.hasRemoteDescription)
        await this.applyDescription({ type: 'answer', sdp: signal.sdp });
      else if (signal.signal === 'candidate') {
        if (this.hasRemoteDescription) await this.pc.addIceCandidate(signal.candidate);
        else this.remoteCandidates.push(signal.candidate);
      } else if (signal.signal === 'hangup') this.close('hung up by the other side');
    } catch (error) {
      this.fail(`bad ${signal.signal} from ${this.peer}: ${error?.message ?? error}`);
    }
  }

  get isOpen() {
    return this.state === 'open';
  }

  /** Sends one chat message over the data channel; throws when the channel is not open. */
  sendText(text) {
    if (!this.isOpen) throw new Error('the direct connection is not open');
    this.channel.send(text);
  }

  /** Ends the call here and tells the other side (best effort: it also sees the connection go). */
  hangUp() {
    if (this.state === 'closed' || this.state === 'failed') return;
    void this.sendSignal({ type: RTC_TYPE, call: this.id, signal: 'hangup' }).catch(() => {});
    this.close('hung up');
  }

  close(reason) {
    if (this.state === 'closed' || this.state === 'failed') return;
    this.release();
    this.change('closed', reason);
  }

  fail(reason) {
    if (this.state === 'closed' || this.state === 'failed') return;
    this.release();
    this.change('failed', reason);
  }

  release() {
    this.pc.close();
    for (const track of this.microphone?.getTracks() ?? []) track.stop();
    if (this.player) this.player.srcObject = null;
  }

  addMicrophone(stream) {
    if (!stream) return;
    this.microphone = stream;
    for (const track of stream.getAudioTracks()) this.pc.addTrack(track, stream);
  }

  /** Audio RTP packets sent and received so far, or undefined when the call has no audio. */
  async readAudio() {
    let stats;
    try {
      stats = await this.pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    let audio;
    stats.forEach((report) => {
      if (report.kind !== 'audio') return;
      audio ??= { sent: 0, received: 0 };
      if (report.type === 'outbound-rtp') audio.sent += report.packetsSent ?? 0;
      if (report.type === 'inbound-rtp') audio.received += report.packetsReceived ?? 0;
    });
    this.audio = audio;
  }

  change(state, reason = '') {
    this.state = state;
    this.reason = reason;
    this.onChange(this);
  }

  attach(channel) {
    this.channel = channel;
    channel.onopen = async () => {
      // ICE may move to another pair later (a better one, or after a network change): show that one.
      this.pc.sctp?.transport?.iceTransport?.addEventListener('selectedcandidatepairchange', () => {
        void this.readPair();
      });
      await this.readPair();
      if (this.state === 'connecting') this.change('open');
    };
    channel.onclose = () => this.close('the data channel closed');
    channel.onmessage = ({ data }) => {
      if (typeof data === 'string') this.onText(data.slice(0, MAX_TEXT));
    };
  }

  async applyDescription(description) {
    await this.pc.setRemoteDescription(description);
    this.hasRemoteDescription = true;
    for (const candidate of this.remoteCandidates.splice(0)) await this.pc.addIceCandidate(candidate);
  }

  async sendDescription(signal) {
    if (!(await this.signal({ signal, sdp: this.pc.localDescription.sdp }))) return;
    this.descriptionSent = true;
    for (const candidate of this.localCandidates.splice(0))
      void this.signal({ signal: 'candidate', candidate });
  }

  /** Whether the signal reached the other side; if not, the call has failed. */
  async signal(body) {
    try {
      await this.sendSignal({ type: RTC_TYPE, call: this.id, ...body });
      return true;
    } catch (error) {
      this.fail(`signalling through the tier failed: ${error?.message ?? error}`);
      return false;
    }
  }

  /** The pair ICE selected, from the connection's stats (the transport's selectedCandidatePairId). */
  async readPair() {
    let stats;
    try {
      stats = await this.pc.getStats();
    } catch {
      return; // closed meanwhile
    }
    let pair;
    stats.forEach((report) => {
      if (report.type === 'transport' && report.selectedCandidatePairId)
        pair = stats.get(report.selectedCandidatePairId);
    });
    // Browsers without selectedCandidatePairId: the nominated pair that succeeded.
    if (!pair)
      stats.forEach((report) => {
        if (report.type === 'candidate-pair' && report.nominated && report.state === 'succeeded')
          pair ??= report;
      });
    if (!pair) return;
    const side = (id) => {
      const candidate = stats.get(id);
      return (
        candidate && {
          type: candidate.candidateType,
          address: candidate.address ?? candidate.ip,
          port: candidate.port,
          protocol: candidate.relayProtocol ?? candidate.protocol,
        }
      );
    };
    this.pair = { local: side(pair.localCandidateId), remote: side(pair.remoteCandidateId) };
    this.onChange(this);
  }
}
