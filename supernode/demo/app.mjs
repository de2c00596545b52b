/**
 * The demo chat: the browser SDK (sdk.js) and the DOM, nothing else. The SDK keeps the session open
 * (resume with stored tokens, failover across the nodes, backoff); this file shows what it does.
 *
 * The protocol has no "list everyone online" (a directory of millions would not answer that), so
 * presence is per contact: the page looks each contact up every 2 s. People who write to you are
 * added to your contacts.
 *
 * "Direct (WebRTC)" opens a relay-only peer connection to a contact (direct.mjs): signalled through the
 * tier, then the chat goes over its data channel, relayed by the tier's TURN servers.
 */
import { DirectCall, parseSignal, RTC_TYPE } from './direct.mjs';
import { AuthClient, AuthError, ClientError, SupernodeClient, WebStorageCredentialStore } from './sdk.js';

const PRESENCE_EVERY_MS = 2000;
/** How often an audio call's packet counts are read from its stats. */
const AUDIO_STATS_EVERY_MS = 1000;
const MAX_TEXT = 2000;
const LAST_USER_KEY = 'supernode-demo:user';

const $ = (id) => document.getElementById(id);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const config = await (await fetch('./config.json')).json();
const auth = new AuthClient(config.authUrl, 10_000);
const store = new WebStorageCredentialStore();

/**
 * The nodes in the order this page tries them: `?node=2` starts with the second, else a random one,
 * so pages spread over the tier. The SDK moves down the list when a node fails.
 */
function nodeOrder() {
  const nodes = config.nodeUrls;
  const asked = Number(new URLSearchParams(location.search).get('node'));
  const first =
    Number.isInteger(asked) && asked >= 1 && asked <= nodes.length
      ? asked - 1
      : Math.floor(Math.random() * nodes.length);
  return [...nodes.slice(first), ...nodes.slice(0, first)];
}

const state = {
  client: undefined,
  user: undefined,
  /** The password typed on this page, kept only until the login it was typed for succeeds. */
  password: undefined,
  /** user -> { presence: 'online' | 'offline' | 'unknown', node } */
  contacts: new Map(),
  /** user -> [{ direction, text, delivery, via }]; via: 'tier' (the default) or 'webrtc' */
  conversations: new Map(),
  /** user -> DirectCall, the latest with each contact */
  direct: new Map(),
  /** user -> why there is no direct call (no TURN from this tier) */
  directNote: new Map(),
  selected: undefined,
  presenceTimer: undefined,
  audioTimer: undefined,
};

// --- status line and activity log ------------------------------------------------------------

function setStatus(kind, text, node) {
  const status = $('status');
  status.dataset.state = kind;
  status.dataset.node = node ?? '';
  status.textContent = text;
}

function logEvent(name, text) {
  const item = document.createElement('li');
  item.dataset.event = name;
  const what = document.createElement('span');
  what.className = 'what';
  what.textContent = name.replace('_', ' ');
  item.append(what, text);
  const events = $('events');
  events.prepend(item);
  while (events.children.length > 40) events.lastElementChild.remove();
}

// --- contacts and presence --------------------------------------------------------------------

function contactsKey() {
  return `supernode-demo:contacts:${state.user}`;
}

function saveContacts() {
  localStorage.setItem(contactsKey(), JSON.stringify([...state.contacts.keys()]));
}

function addContact(user) {
  if (user === state.user || state.contacts.has(user)) return;
  state.contacts.set(user, { presence: 'unknown', node: null });
  saveContacts();
  renderContacts();
  void refreshPresence(user);
}

function renderContacts() {
  const list = $('contacts');
  list.replaceChildren(
    ...[...state.contacts].map(([user, contact]) => {
      const item = document.createElement('li');
      item.dataset.user = user;
      item.dataset.presence = contact.presence;
      if (user === state.selected) item.classList.add('selected');
      const dot = document.createElement('span');
      dot.className = 'dot';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = user;
      const presence = document.createElement('span');
      presence.className = 'presence';
      presence.textContent =
        contact.presence === 'online' ? `online · ${contact.node ?? 'via the tier'}` : contact.presence;
      const call = state.direct.get(user);
      item.dataset.direct = call?.state ?? 'none';
      const direct = document.createElement('button');
      direct.type = 'button';
      direct.className = 'secondary direct-button';
      direct.textContent = call?.isOpen ? 'Direct (WebRTC) · open' : 'Direct (WebRTC)';
      direct.title = "A WebRTC data channel, relayed by the tier's TURN servers";
      direct.addEventListener('click', (event) => {
        event.stopPropagation();
        void startDirect(user, { audio: false });
      });
      const audio = document.createElement('button');
      audio.type = 'button';
      audio.className = 'secondary audio-button';
      audio.textContent = 'Audio call';
      audio.title = "The same, with your microphone's audio";
      audio.addEventListener('click', (event) => {
        event.stopPropagation();
        void startDirect(user, { audio: true });
      });
      const actions = document.createElement('span');
      actions.className = 'direct-actions';
      actions.append(direct, audio);
      item.append(dot, name, presence, actions);
      item.addEventListener('click', () => select(user));
      return item;
    }),
  );
}

async function refreshPresence(user) {
  const client = state.client;
  const contact = state.contacts.get(user);
  if (!client?.session || !contact) return;
  try {
    const answer = await client.lookup(user);
    contact.presence = answer.online ? 'online' : 'offline';
    contact.node = answer.node;
  } catch {
    contact.presence = 'unknown';
  }
  renderContacts();
}

function refreshAllPresence() {
  for (const user of state.contacts.keys()) void refreshPresence(user);
}

// --- conversations ----------------------------------------------------------------------------

function conversation(user) {
  let messages = state.conversations.get(user);
  if (!messages) {
    messages = [];
    state.conversations.set(user, messages);
  }
  return messages;
}

function select(user) {
  state.selected = user;
  $('peer-name').textContent = `Chat with ${user}`;
  $('message-input').disabled = false;
  $('send-button').disabled = false;
  $('message-input').focus();
  renderContacts();
  renderMessages();
  renderDirect();
}

const DELIVERY_TEXT = {
  sending: 'sending…',
  delivered: 'delivered',
  offline: 'not delivered: offline',
  failed: 'not delivered',
  disconnected: 'not sent: reconnecting',
  sent: 'sent via WebRTC (TURN relay)',
  unsent: 'not sent: the direct connection closed',
};

function renderMessages() {
  const list = $('messages');
  const messages = state.selected ? conversation(state.selected) : [];
  list.replaceChildren(
    ...messages.map((message) => {
      const item = document.createElement('li');
      item.className = `message ${message.direction}`;
      item.dataset.via = message.via ?? 'tier';
      item.textContent = message.text;
      const meta = document.createElement('span');
      meta.className = 'meta';
      if (message.direction === 'out') {
        item.dataset.delivery = ['delivered', 'sending', 'sent'].includes(message.delivery)
          ? message.delivery
          : 'failed';
        meta.textContent = DELIVERY_TEXT[message.delivery];
        item.append(meta);
      } else if (message.via === 'webrtc') {
        meta.textContent = 'via WebRTC (TURN relay)';
        item.append(meta);
      }
      return item;
    }),
  );
  list.scrollTop = list.scrollHeight;
}

async function send(text) {
  const to = state.selected;
  const call = state.direct.get(to);
  if (call?.isOpen) {
    const message = { direction: 'out', text, via: 'webrtc', delivery: 'sent' };
    try {
      call.sendText(text);
    } catch {
      message.delivery = 'unsent';
    }
    conversation(to).push(message);
    renderMessages();
    return;
  }
  const message = { direction: 'out', text, delivery: 'sending' };
  conversation(to).push(message);
  renderMessages();
  try {
    const ack = await state.client.sendWithAck(to, encoder.encode(JSON.stringify({ type: 'chat', text })));
    message.delivery = ack.delivered > 0 ? 'delivered' : 'failed';
  } catch (error) {
    if (error instanceof ClientError) message.delivery = 'disconnected';
    else message.delivery = error?.code === 'unknown_recipient' ? 'offline' : 'failed';
  }
  renderMessages();
}

function receive({ from, payload }) {
  let body;
  try {
    body = JSON.parse(decoder.decode(payload));
  } catch {
    return; // not one of ours
  }
  if (body?.type === RTC_TYPE) {
    const signal = parseSignal(body);
    if (signal) onSignal(from, signal);
    return;
  }
  if (body?.type !== 'chat' || typeof body.text !== 'string') return;
  addContact(from);
  conversation(from).push({ direction: 'in', text: body.text.slice(0, MAX_TEXT) });
  if (!state.selected) select(from);
  else if (state.selected === from) renderMessages();
}

// --- direct (WebRTC) calls --------------------------------------------------------------------

const DIRECT_TEXT = {
  connecting: "connecting through the tier's TURN…",
  open: 'open: messages go over the data channel',
  closed: 'closed',
  failed: 'failed',
};

async function sendSignal(to, body) {
  const client = state.client;
  if (!client) throw new Error('signed out');
  const ack = await client.sendWithAck(to, encoder.encode(JSON.stringify(body)));
  if (ack.delivered === 0) throw new Error(`${to} is not online`);
}

/** One end of the selected pair, e.g. "relay udp 203.0.113.7:50000". */
function describeEnd(end) {
  return end ? [end.type, end.protocol, `${end.address}:${end.port}`].filter(Boolean).join(' ') : '?';
}

function renderDirect() {
  const panel = $('direct');
  const user = state.selected;
  panel.hidden = !user;
  if (!user) return;
  const call = state.direct.get(user);
  panel.dataset.state = call?.state ?? 'none';
  panel.dataset.call = call?.id ?? '';
  panel.dataset.localType = call?.pair?.local?.type ?? '';
  panel.dataset.remoteType = call?.pair?.remote?.type ?? '';
  panel.dataset.localAddress = call?.pair?.local ? `${call.pair.local.address}:${call.pair.local.port}` : '';
  panel.dataset.remoteAddress = call?.pair?.remote
    ? `${call.pair.remote.address}:${call.pair.remote.port}`
    : '';
  let text = `Direct (WebRTC) with ${user}: `;
  if (!call) text += state.directNote.get(user) ?? 'not connected; chat goes through the tier.';
  else {
    text += DIRECT_TEXT[call.state];
    if (call.reason) text += ` (${call.reason})`;
  }
  $('direct-status').textContent = text;
  $('direct-pair').textContent = call?.pair
    ? `Selected candidate pair: ${describeEnd(call.pair.local)} ↔ ${describeEnd(call.pair.remote)}`
    : '';
  $('direct-hangup').hidden = !(call?.state === 'connecting' || call?.state === 'open');
  panel.dataset.audio = call?.audio ? 'on' : 'off';
  panel.dataset.audioSent = String(call?.audio?.sent ?? 0);
  panel.dataset.audioReceived = String(call?.audio?.received ?? 0);
  $('direct-audio').textContent = call?.audio
    ? `Audio through TURN: ${call.audio.sent} packets sent, ${call.audio.received} received${call.audioNote ? ` (${call.audioNote})` : ''}`
    : '';
}

/** The browser's microphone; rejects when there is none or the person (or the browser) says no. */
function microphone() {
  if (!navigator.mediaDevices?.getUserMedia)
    return Promise.reject(new Error('this page cannot use a microphone (not a secure context?)'));
  return navigator.mediaDevices.getUserMedia({ audio: true, video: false });
}

/** The other side's audio, played as it comes; a browser that blocks autoplay keeps it silent. */
function play(call, stream) {
  call.player ??= new Audio();
  call.player.srcObject = stream;
  void call.player
    .play()
    .catch(() => logEvent('webrtc', `${call.peer}: the browser did not start the audio`));
}

async function refreshAudio() {
  for (const call of state.direct.values()) {
    if (!call.isOpen || !(call.microphone || call.player)) continue;
    await call.readAudio();
    if (state.selected === call.peer) renderDirect();
  }
}

function directOptions(peer, iceServers, id) {
  let logged;
  return {
    peer,
    id,
    iceServers,
    send: (body) => sendSignal(peer, body),
    onChange: (call) => {
      if (state.direct.get(peer) !== call) return;
      if (logged !== call.state) {
        logged = call.state;
        logEvent('webrtc', `${peer}: ${call.state}${call.reason ? ` (${call.reason})` : ''}`);
      }
      renderContacts();
      renderDirect();
    },
    onText: (text) => {
      conversation(peer).push({ direction: 'in', text, via: 'webrtc' });
      if (state.selected === peer) renderMessages();
    },
    onAudio: (stream) => {
      const call = state.direct.get(peer);
      if (call) play(call, stream);
    },
  };
}

/** The login's (or, after a reload, the stored tokens') TURN servers; undefined when the tier has none. */
function iceServersOrNote(user) {
  const iceServers = state.client?.iceServers;
  if (iceServers?.length) return iceServers;
  state.directNote.set(user, 'not available: the login answer carried no iceServers (is TURN on?).');
  renderDirect();
  return undefined;
}

async function startDirect(user, { audio }) {
  select(user);
  const iceServers = iceServersOrNote(user);
  if (!iceServers) return;
  let stream;
  if (audio) {
    try {
      stream = await microphone();
    } catch (error) {
      state.directNote.set(user, `no audio call: no microphone (${error?.message ?? error}).`);
      renderDirect();
      return;
    }
  }
  state.direct.get(user)?.hangUp();
  const call = new DirectCall(directOptions(user, iceServers));
  state.direct.set(user, call);
  call.onChange(call);
  await call.offer(stream);
}

function onSignal(from, signal) {
  const existing = state.direct.get(from);
  if (signal.signal !== 'offer') {
    if (existing?.id === signal.call) void existing.handle(signal);
    return;
  }
  // Both called at once: the call of the name first in order goes on, the other side answers it.
  if (existing?.role === 'caller' && existing.state === 'connecting' && state.user < from) return;
  addContact(from);
  if (!state.selected) select(from);
  const iceServers = iceServersOrNote(from);
  if (!iceServers) {
    void sendSignal(from, { type: RTC_TYPE, call: signal.call, signal: 'hangup' }).catch(() => {});
    return;
  }
  existing?.close('replaced by a new call');
  const call = new DirectCall(directOptions(from, iceServers, signal.call));
  state.direct.set(from, call);
  call.onChange(call);
  // The browser asks the person before it gives the microphone: that prompt is their consent.
  void call.answer(signal.sdp, microphone);
}

function hangUpAll() {
  for (const call of state.direct.values()) call.hangUp();
  state.direct.clear();
  state.directNote.clear();
}

// --- the session ------------------------------------------------------------------------------

function showChat() {
  $('login').hidden = true;
  $('chat').hidden = false;
  $('me').hidden = false;
  $('me-name').textContent = state.user;
}

function showLogin(message) {
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('username').value = state.user ?? $('username').value;
  $('password').value = '';
}

function start(user) {
  state.user = user;
  localStorage.setItem(LAST_USER_KEY, user);
  state.contacts = new Map(
    (JSON.parse(localStorage.getItem(contactsKey()) ?? '[]') ?? []).map((u) => [
      u,
      { presence: 'unknown', node: null },
    ]),
  );
  const client = new SupernodeClient({
    username: user,
    nodes: nodeOrder(),
    auth,
    credentials: store,
    password: () => state.password,
    // Demo-sized waits: a person is watching.
    backoff: { baseMs: 250, capMs: 5000 },
    connectTimeoutMs: 5000,
    loginSpreadMs: 0,
  });
  state.client = client;

  client.on('connected', ({ url, node, resumed }) => {
    setStatus(
      'connected',
      `Online on ${node} (${url})${resumed ? ' · resumed with stored tokens' : ''}`,
      node,
    );
    logEvent('connected', `${node}${resumed ? ', resumed (no password)' : ''}`);
    showChat();
    refreshAllPresence();
  });
  client.on('disconnected', ({ node, code }) => {
    setStatus('reconnecting', `Lost ${node} (${code}); reconnecting…`);
    logEvent('disconnected', `${node}, code ${code}`);
  });
  client.on('rehomed', ({ from, to }) => logEvent('rehomed', `${from.node} → ${to.node}`));
  client.on('retry_scheduled', ({ step, delayMs, reason }) => {
    if (!client.session) setStatus('reconnecting', `Reconnecting: ${step} in ${delayMs} ms (${reason})`);
    logEvent('retry_scheduled', `${step} in ${delayMs} ms (${reason})`);
  });
  client.on('token_refreshed', () => logEvent('token_refreshed', 'new access token'));
  client.on('password_login', () => {
    state.password = undefined;
    logEvent('password_login', 'logged in with the password');
  });
  client.on('budget_exhausted', ({ waitMs }) => logEvent('budget_exhausted', `waiting ${waitMs} ms more`));
  client.on('store_failed', () => logEvent('store_failed', 'localStorage failed; tokens kept in memory'));
  client.on('credentials_required', ({ reason }) => {
    setStatus('offline', 'Signed out: log in to continue');
    showLogin(
      reason === 'invalid_credentials'
        ? 'Wrong username or password.'
        : reason === 'account_disabled'
          ? 'This account is disabled.'
          : undefined,
    );
  });
  client.on('gave_up', ({ reason }) => logEvent('gave_up', reason));
  client.on('stopped', ({ reason }) => {
    setStatus('offline', reason === 'replaced' ? 'Signed in elsewhere: this page stopped' : 'Stopped');
  });
  client.on('message', receive);
  client.on('server_error', (error) => logEvent('server_error', error.code));

  clearInterval(state.presenceTimer);
  state.presenceTimer = setInterval(refreshAllPresence, PRESENCE_EVERY_MS);
  clearInterval(state.audioTimer);
  state.audioTimer = setInterval(() => void refreshAudio(), AUDIO_STATS_EVERY_MS);
  setStatus('reconnecting', 'Connecting…');
  renderContacts();
  client.start();
}

async function logout() {
  const client = state.client;
  state.client = undefined;
  clearInterval(state.presenceTimer);
  clearInterval(state.audioTimer);
  hangUpAll();
  const tokens = await store.load(state.user);
  await client?.stop();
  await store.clear(state.user);
  localStorage.removeItem(LAST_USER_KEY);
  if (tokens) await auth.logout(tokens.refreshToken).catch(() => {});
  state.conversations.clear();
  state.selected = undefined;
  $('chat').hidden = true;
  $('me').hidden = true;
  $('events').replaceChildren();
  setStatus('offline', 'Not signed in');
  showLogin();
}

function describeAuthError(error) {
  if (!(error instanceof AuthError)) return 'The auth service cannot be reached.';
  return error.message;
}

async function signIn(signup) {
  const user = $('username').value.trim();
  const password = $('password').value;
  $('login-error').textContent = '';
  if (!$('login-form').reportValidity()) return;
  if (signup) {
    try {
      await auth.signup(user, password);
    } catch (error) {
      $('login-error').textContent = describeAuthError(error);
      return;
    }
  }
  state.password = password;
  // Asked again after credentials_required: the same client retries with the new password.
  if (state.client && state.user === user) state.client.retryNow();
  else {
    await state.client?.stop();
    start(user);
  }
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  void signIn(false);
});
$('signup-button').addEventListener('click', () => void signIn(true));
$('logout').addEventListener('click', () => void logout());
$('direct-hangup').addEventListener('click', () => {
  state.direct.get(state.selected)?.hangUp();
});
$('add-contact').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('contact-name').value.trim();
  if (!name) return;
  addContact(name);
  select(name);
  $('contact-name').value = '';
});
$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('message-input').value.trim().slice(0, MAX_TEXT);
  if (!text || !state.selected) return;
  $('message-input').value = '';
  void send(text);
});

// A returning visitor with stored tokens resumes without typing anything.
const lastUser = localStorage.getItem(LAST_USER_KEY);
if (lastUser && (await store.load(lastUser))) {
  $('login').hidden = true;
  start(lastUser);
} else showLogin();
document.body.dataset.ready = 'true';
