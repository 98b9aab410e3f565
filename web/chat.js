'use strict';

/*
 * Parley chat client.
 *
 * After login, one WebSocket carries everything. The page keeps just enough
 * state to re-render from it, and is written so that a dropped connection
 * loses nothing: messages are kept by seq (delivery is at least once), each
 * loaded conversation remembers up to which seq it holds everything (its
 * watermark) and fills from there whenever it learns of anything newer, and
 * unacknowledged sends and payments are replayed with the same clientMsgId
 * or idempotencyKey (the server deduplicates them).
 *
 * The server refuses more than 50 frames a second per session and closes
 * sessions that keep trying, so everything sent in bulk is paced: read
 * receipts are coalesced, history fills and sends have a bounded number in
 * flight, and refused requests are retried after a pause.
 */

const TOKEN_KEY = 'parley.token';
const OUTBOX_KEY = 'parley.outbox.';
const PAYMENTS_KEY = 'parley.payments.';
const PAY_OUTBOX_KEY = 'parley.payOutbox.';
const PAGE_SIZE = 50;
const INBOX_PAGE = 200; // the most the server gives in one page
const CATCHUP_LIMIT = 200;
const TYPING_SEND_MS = 2000;
const TYPING_SHOW_MS = 4000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 10000;
const STABLE_AFTER_MS = 10000;
const READ_SEND_MS = 500;
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10000;
const MAX_FILLS_IN_FLIGHT = 4;
const MAX_SENDS_IN_FLIGHT = 20;
// Messages kept per conversation. The oldest go first; scrolling up fetches
// them again. While the reader is scrolled up the soft cap waits (dropping
// what they are looking at would make the view jump), up to the hard cap.
const KEPT_MESSAGES = 2000;
const KEPT_MESSAGES_HARD = 10000;
const NEAR_TOP_PX = 60;
const NEAR_BOTTOM_PX = 80;
const USERNAME_RE = /^[a-z0-9_]{3,32}$/;
const AMOUNT_RE = /^(\d{1,10})(?:\.(\d{1,2}))?$/;
const MAX_TEXT_CHARS = 4096;
const KEPT_PAYMENTS = 30;
const CONFIRM_MS = 3000;        // how long an armed Leave waits for its second click
const KEPT_NOTES = 50;          // "carol left" lines kept per conversation; the oldest go first

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  expiresAt: 0,
  expiryTimer: 0,
  me: '',
  balance: null,

  // Connection. `wanted` is false once logged out: nothing reconnects then.
  wanted: false,
  ws: null,
  helloSeen: false,
  attempt: 0,
  reconnectTimer: 0,
  stableTimer: 0,            // resets `attempt` once a connection has lasted
  heartbeatSecs: 20,
  pingTimer: 0,
  lastFrameAt: 0,

  convs: new Map(),          // conversationId -> conversation (see newConv)
  openId: null,              // the open conversation, or null
  draftTo: null,             // username of a direct chat not created yet
  outbox: new Map(),         // clientMsgId -> unacked send
  pendingEls: new Map(),     // clientMsgId -> its element
  refs: new Map(),           // ref -> what the frame was for
  refSeq: 0,
  convRequest: null,         // ref of the `conversations` request in flight
  convListing: [],           // the pages of the inbox gathered so far
  convListingNewest: 0,      // the newest updatedAt of the listing's first page (ms)
  convRequestAgain: false,
  presence: new Map(),       // username -> 'online' | 'offline' (contacts only, as the server tells)
  lastSeen: new Map(),       // username -> ms their last session closed (offline contacts only)
  agoTimer: 0,               // one timer for the header's "last seen … ago"
  leaveArmed: null,          // conversationId whose Leave waits for a second click
  leaveTimer: 0,
  invitations: new Map(),    // conversationId -> pending invitation {conversation, from, createdAt}
  payments: new Map(),       // paymentId -> payment
  payOutbox: new Map(),      // idempotencyKey -> pay not yet answered
  lastTypingAt: 0,
  readDirty: new Set(),      // conversationIds whose read marker the server has not been told
  readTimer: 0,
  lastReadSentAt: 0,
  fillQueue: new Set(),      // conversationIds waiting for a fill slot
  fillsInFlight: 0,
};

/* ---------- small helpers ---------- */

function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

// crypto.randomUUID exists only in secure contexts; a plain-http deployment
// reached by IP address is not one, and must still get unique ids.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function formatMoney(minor) {
  if (typeof minor !== 'number' || !Number.isFinite(minor)) return '–';
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

/** "1.50" -> 150; null when the text is not a positive amount with at most two decimals. */
function parseAmount(text) {
  const m = AMOUNT_RE.exec(text.trim());
  if (!m) return null;
  const cents = Number(m[1]) * 100 + Number((m[2] || '0').padEnd(2, '0'));
  return cents > 0 ? cents : null;
}

function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function charCount(text) {
  return [...text].length;
}

function readJson(key) {
  try {
    return JSON.parse(localStorage.getItem(key));
  } catch {
    return null;
  }
}

function writeJson(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page still works, it just forgets on reload.
  }
}

let toastTimer = 0;
function toast(text) {
  const box = $('toasts');
  const item = h('p', { class: 'toast', text });
  box.append(item);
  while (box.children.length > 3) box.firstElementChild.remove();
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.replaceChildren(), 6000);
}

/* ---------- HTTP ---------- */

async function api(path, { method = 'GET', body, auth = true } = {}) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (auth) headers.Authorization = `Bearer ${state.token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || `HTTP ${res.status}`);
    err.status = res.status;
    err.code = data && data.error && data.error.code;
    if (auth && res.status === 401) logout('Your session has ended. Please log in again.');
    throw err;
  }
  return data;
}

/* ---------- login, register, logout ---------- */

function loadStoredToken() {
  const raw = localStorage.getItem(TOKEN_KEY);
  if (!raw) return null;
  const parsed = readJson(TOKEN_KEY);
  if (parsed && typeof parsed.token === 'string') return parsed;
  return { token: raw };
}

function tokenExpired() {
  return state.expiresAt > 0 && Date.now() >= state.expiresAt;
}

function scheduleExpiry() {
  clearTimeout(state.expiryTimer);
  if (!state.expiresAt) return;
  // setTimeout overflows past ~24.8 days; re-check then instead.
  const wait = Math.min(state.expiresAt - Date.now(), 2 ** 31 - 1);
  state.expiryTimer = setTimeout(() => {
    if (tokenExpired()) logout('Your session has expired. Please log in again.');
    else scheduleExpiry();
  }, Math.max(wait, 0));
}

function authInput() {
  return { username: $('username').value.trim().toLowerCase(), password: $('password').value };
}

// Checked here too so that obvious mistakes never reach the server (and
// never show up as failed requests in the console).
function validateAuth({ username, password }) {
  if (!USERNAME_RE.test(username)) return 'Usernames are 3–32 characters: a–z, 0–9 or _.';
  if (charCount(password) < 8 || charCount(password) > 128) return 'Passwords have 8 to 128 characters.';
  return '';
}

function setAuthBusy(busy) {
  $('login-btn').disabled = busy;
  $('register-btn').disabled = busy;
}

async function doLogin(creds) {
  const data = await api('/api/login', { method: 'POST', body: creds, auth: false });
  const stored = { token: data.token, expiresAt: data.expiresAt, username: creds.username };
  writeJson(TOKEN_KEY, stored);
  $('password').value = '';
  startApp(stored);
}

/**
 * Runs `attempt` with the typed credentials when they are valid, the form
 * busy meanwhile; `failure` words what went wrong under the form.
 */
async function submitAuth(attempt, failure) {
  const creds = authInput();
  const problem = validateAuth(creds);
  $('auth-error').textContent = problem;
  if (problem) return;
  setAuthBusy(true);
  try {
    await attempt(creds);
  } catch (err) {
    $('auth-error').textContent = failure(err);
  } finally {
    setAuthBusy(false);
  }
}

async function onLogin(event) {
  event.preventDefault();
  await submitAuth(doLogin, (err) =>
    err.status === 401 ? 'Wrong username or password.' : err.message,
  );
}

async function onRegister() {
  const register = async (creds) => {
    await api('/api/register', { method: 'POST', body: creds, auth: false });
    await doLogin(creds);
  };
  await submitAuth(register, (err) => (err.status === 409 ? 'That username is taken.' : err.message));
}

function showApp(loggedIn) {
  $('auth').hidden = loggedIn;
  $('app').hidden = !loggedIn;
}

async function startApp(stored) {
  state.token = stored.token;
  state.expiresAt = stored.expiresAt ? Date.parse(stored.expiresAt) || 0 : 0;
  state.me = stored.username || '';
  if (tokenExpired()) {
    logout('Your session has expired. Please log in again.');
    return;
  }
  state.wanted = true;
  scheduleExpiry();
  showApp(true);
  renderAccount();
  try {
    await refreshMe();
  } catch (err) {
    if (err.status === 401) return; // api() already logged out
  }
  if (!state.wanted) return;
  restoreLocal();
  connect();
  refreshStoredPayments();
}

/**
 * `forget`: the user chose to log out, so what this page kept for them in
 * localStorage goes too (the machine may be shared). A session that merely
 * expired keeps its unsent messages and payment for the next login.
 */
function logout(message = '', forget = false) {
  state.wanted = false;
  clearTimeout(state.expiryTimer);
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.stableTimer);
  stopHeartbeat();
  const ws = state.ws;
  state.ws = null;
  state.helloSeen = false;
  if (ws) ws.close(1000, 'logout');
  localStorage.removeItem(TOKEN_KEY);
  if (forget && state.me) {
    for (const prefix of [OUTBOX_KEY, PAYMENTS_KEY, PAY_OUTBOX_KEY]) localStorage.removeItem(prefix + state.me);
  }
  resetState();
  setConn('closed', 'Offline');
  showApp(false);
  $('auth-error').textContent = message;
}

function resetState() {
  for (const conv of state.convs.values()) clearConvTimers(conv);
  for (const entry of state.outbox.values()) clearTimeout(entry.retryTimer);
  for (const pay of state.payOutbox.values()) clearTimeout(pay.retryTimer);
  clearTimeout(state.readTimer);
  Object.assign(state, {
    token: null, expiresAt: 0, me: '', balance: null, attempt: 0,
    openId: null, draftTo: null, convRequest: null, convRequestAgain: false, lastTypingAt: 0,
    readTimer: 0, lastReadSentAt: 0, fillsInFlight: 0,
  });
  state.readDirty.clear();
  state.fillQueue.clear();
  state.convs.clear();
  state.invitations.clear();
  state.outbox.clear();
  state.pendingEls.clear();
  state.refs.clear();
  state.presence.clear();
  state.lastSeen.clear();
  clearTimeout(state.agoTimer);
  disarmLeave();
  state.payments.clear();
  state.payOutbox.clear();
  $('conversation-list').replaceChildren();
  $('messages').replaceChildren();
  $('payments').replaceChildren();
  for (const id of ['pay-error', 'new-error', 'conv-error']) $(id).textContent = '';
  renderAll();
}

async function refreshMe() {
  const me = await api('/api/me');
  state.me = me.username;
  state.balance = me.balance;
  renderAccount();
}

function refreshBalance() {
  refreshMe().catch(() => {});
}

/* ---------- what survives a reload ---------- */

function restoreLocal() {
  const saved = readJson(OUTBOX_KEY + state.me);
  if (Array.isArray(saved)) {
    for (const e of saved) {
      if (e && e.clientMsgId && e.text && !state.outbox.has(e.clientMsgId)) {
        state.outbox.set(e.clientMsgId, { ...e, status: e.status === 'failed' ? 'failed' : 'pending' });
      }
    }
  }
  const payments = readJson(PAYMENTS_KEY + state.me);
  if (Array.isArray(payments)) {
    for (const p of payments.slice(0, KEPT_PAYMENTS)) if (p && p.paymentId) state.payments.set(p.paymentId, p);
  }
  // A payment sent just before a reload is sent again with the same key:
  // the server answers with the payment it already has, or makes it once.
  const pays = readJson(PAY_OUTBOX_KEY + state.me);
  if (Array.isArray(pays)) {
    for (const p of pays) {
      if (p && typeof p.key === 'string' && typeof p.to === 'string' && Number.isInteger(p.amount)) {
        state.payOutbox.set(p.key, { to: p.to, amount: p.amount, ref: null, retryTimer: 0, retryDelay: 0 });
      }
    }
  }
  renderPayments();
}

function savePayOutbox() {
  if (!state.me) return;
  const items = [...state.payOutbox].map(([key, { to, amount }]) => ({ key, to, amount }));
  writeJson(PAY_OUTBOX_KEY + state.me, items);
}

function saveOutbox() {
  if (!state.me) return;
  const items = [...state.outbox.values()].map(({ clientMsgId, conversationId, to, text, status, error }) =>
    ({ clientMsgId, conversationId, to, text, status, error }));
  writeJson(OUTBOX_KEY + state.me, items);
}

function savePayments() {
  if (!state.me) return;
  const newestFirst = [...state.payments.values()].sort(byPaymentNewest).slice(0, KEPT_PAYMENTS);
  writeJson(PAYMENTS_KEY + state.me, newestFirst);
}

// Payments still pending when the page was last open may have finished since.
async function refreshStoredPayments() {
  for (const p of [...state.payments.values()]) {
    if (p.status !== 'pending') continue;
    try {
      upsertPayment(await api(`/api/payments/${encodeURIComponent(p.paymentId)}`));
    } catch {
      // Unknown to this server (or no longer ours): keep what we knew.
    }
  }
}

/* ---------- WebSocket: connect, heartbeat, reconnect ---------- */

function setConn(connState, text) {
  const el = $('conn-status');
  el.dataset.state = connState;
  el.textContent = text;
}

function isOpen() {
  return !!state.ws && state.helloSeen && state.ws.readyState === WebSocket.OPEN;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  if (!state.wanted || !state.token) return;
  if (tokenExpired()) {
    logout('Your session has expired. Please log in again.');
    return;
  }
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  state.helloSeen = false;
  setConn('connecting', 'Connecting…');
  ws.addEventListener('message', (ev) => {
    if (state.ws === ws) onFrameText(ev.data);
  });
  ws.addEventListener('close', () => {
    if (state.ws === ws) onSocketGone();
  });
}

/** The socket closed (or was given up on): reset what was in flight and retry. */
function onSocketGone() {
  const hadHello = state.helloSeen;
  state.ws = null;
  state.helloSeen = false;
  clearTimeout(state.stableTimer);
  stopHeartbeat();
  state.convRequest = null;
  // Every request in flight died with the socket; `hello` starts over.
  for (const conv of state.convs.values()) {
    conv.loadingLatest = false;
    conv.loadingOlder = false;
    conv.filling = false;
    clearTimeout(conv.fillTimer);
    clearTimeout(conv.latestTimer);
    conv.fillTimer = 0;
    conv.latestTimer = 0;
  }
  state.fillQueue.clear();
  state.fillsInFlight = 0;
  for (const entry of state.outbox.values()) entry.ref = null;
  for (const pay of state.payOutbox.values()) pay.ref = null;
  state.refs.clear();
  renderAll();
  if (!state.wanted) return;
  if (hadHello) scheduleReconnect();
  else checkAuthThenReconnect();
}

// A browser cannot see the HTTP status of a refused upgrade, so a socket
// that closes before `hello` may mean the token is no longer accepted.
async function checkAuthThenReconnect() {
  try {
    await api('/api/me');
  } catch (err) {
    if (err.status === 401 || !state.wanted) return;
  }
  scheduleReconnect();
}

function scheduleReconnect() {
  if (!state.wanted) return;
  clearTimeout(state.reconnectTimer);
  const base = BACKOFF_FIRST_MS * 2 ** Math.min(state.attempt, 10);
  // Jitter (up to half the base) spreads out clients that were all dropped
  // at the same moment; the first retry still waits at least 0.5 s.
  const delay = Math.round(Math.min(BACKOFF_MAX_MS, base + Math.random() * base / 2));
  state.attempt += 1;
  const secs = Math.max(1, Math.round(delay / 1000));
  setConn('closed', `Offline · reconnecting in ${secs} s`);
  state.reconnectTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  if (state.wanted && !state.ws) {
    state.attempt = 0;
    connect();
  }
}

function startHeartbeat() {
  stopHeartbeat();
  const every = Math.max(1000, state.heartbeatSecs * 500);
  state.pingTimer = setInterval(() => {
    // Nothing heard for two heartbeats: the link is dead even if the browser
    // has not noticed yet, so drop it and reconnect.
    if (Date.now() - state.lastFrameAt > state.heartbeatSecs * 2000 + every) {
      const ws = state.ws;
      onSocketGone();
      if (ws) ws.close(4000, 'no answer');
      return;
    }
    sendFrame({ type: 'ping' }, { kind: 'ping' });
    pruneRefs();
  }, every);
}

function stopHeartbeat() {
  clearInterval(state.pingTimer);
  state.pingTimer = 0;
}

/**
 * Sends one frame with a fresh `ref`, remembering `ctx` so that the reply
 * or an `error` can be tied back to what the user did. Returns the ref, or
 * null when there is no open session (the caller decides what waits).
 */
function sendFrame(frame, ctx) {
  if (!isOpen()) return null;
  state.refSeq += 1;
  const ref = `r${state.refSeq}`;
  if (ctx) state.refs.set(ref, { ...ctx, at: Date.now() });
  state.ws.send(JSON.stringify({ ...frame, ref }));
  return ref;
}

function takeRef(ref) {
  if (!ref) return null;
  const ctx = state.refs.get(ref) || null;
  state.refs.delete(ref);
  return ctx;
}

// read, typing and ping may get no reply, so their refs are dropped by age.
// The others always get one (or die with the socket), and what they guard
// (a fill or send in flight) must not be forgotten while still pending.
const UNANSWERED_KINDS = new Set(['read', 'typing', 'ping']);
function pruneRefs() {
  const old = Date.now() - 120000;
  for (const [ref, ctx] of state.refs) {
    if (ctx.at < old && UNANSWERED_KINDS.has(ctx.kind)) state.refs.delete(ref);
  }
}

/* ---------- incoming frames ---------- */

function onFrameText(text) {
  state.lastFrameAt = Date.now();
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  const handler = frame && HANDLERS[frame.type];
  if (handler) handler(frame);
}

const HANDLERS = {
  hello: onHello,
  ack: onAck,
  message: onMessage,
  history: onHistory,
  conversations: onConversations,
  created: onCreated,
  invited: onInvited,
  member_joined: onMemberJoined,
  left: onLeft,
  member_left: onMemberLeft,
  read: onRead,
  typing: onTyping,
  presence: onPresence,
  conversation_added: onConversationAdded,
  invitation: onInvitation,
  accepted: onInvitationAnswered,
  declined: onInvitationAnswered,
  payment: onPayment,
  pong: (f) => takeRef(f.ref),
  error: onError,
};

function onHello(f) {
  state.helloSeen = true;
  // Not reset here: a server that greets and then closes (over a limit, say)
  // would otherwise be reconnected to every half second.
  clearTimeout(state.stableTimer);
  state.stableTimer = setTimeout(() => { state.attempt = 0; }, STABLE_AFTER_MS);
  state.heartbeatSecs = Number(f.heartbeatSecs) > 0 ? Number(f.heartbeatSecs) : 20;
  if (f.username) state.me = f.username;
  startHeartbeat();
  setConn('open', 'Connected');
  // Presence is pushed only on change, and the server now re-announces who
  // is online (and when the others were last seen): anything remembered
  // from before may be stale.
  state.presence.clear();
  state.lastSeen.clear();
  requestConversations();
  refreshInvitations();
  catchUp();
  pumpSends();
  for (const [key, pay] of state.payOutbox) if (!pay.retryTimer) sendPay(key, pay);
  for (const conv of state.convs.values()) if (conv.lastReadSeq > conv.readSent) state.readDirty.add(conv.id);
  scheduleReadFlush();
  refreshBalance();
  renderAll();
}

/**
 * Asks every loaded conversation for what came after its watermark, also
 * when it looks complete (an empty one included): whatever was sent while
 * the socket was down is known only to the server.
 */
function catchUp() {
  const open = openConv();
  if (open && !open.loaded) loadLatest(open);
  for (const conv of state.convs.values()) {
    conv.fillBackoff = 0;
    if (conv.loaded) requestFill(conv, true);
  }
}

function onAck(f) {
  takeRef(f.ref);
  const entry = state.outbox.get(f.clientMsgId);
  if (!entry) return; // a repeated ack for a send already settled
  state.outbox.delete(f.clientMsgId);
  state.pendingEls.delete(f.clientMsgId);
  saveOutbox();
  clearTimeout(entry.retryTimer);
  const conv = ensureConv(f.conversationId, { sender: state.me, receiver: entry.to });
  // Rendered from the ack right away; the `message` frame that follows has
  // the same seq and is dropped as a duplicate.
  addMessage(conv, {
    conversationId: f.conversationId, messageId: f.messageId, seq: f.seq, sender: state.me,
    text: entry.text, kind: 'text', sentAt: f.sentAt, traceId: f.traceId,
  });
  requestFill(conv);
  pumpSends();
  if (entry.to) {
    for (const other of state.outbox.values()) {
      if (!other.conversationId && other.to === entry.to) other.conversationId = conv.id;
    }
    if (state.draftTo === entry.to) {
      openConversation(conv.id);
      return;
    }
  }
  afterMessagesChanged(conv, { stick: 'bottom' });
}

function onMessage(f) {
  const conv = ensureConv(f.conversationId, f);
  if (!addMessage(conv, f)) return;
  // A seq past the watermark + 1 means something in between was missed.
  requestFill(conv);
  afterMessagesChanged(conv);
}

function onHistory(f) {
  const ctx = takeRef(f.ref);
  // A history frame without a request of ours (none is sent) changes nothing.
  if (!ctx || ctx.kind !== 'history') return;
  if (ctx.purpose === 'fill') fillSlotFreed();
  const conv = state.convs.get(f.conversationId);
  if (!conv) return;
  const messages = Array.isArray(f.messages) ? f.messages : [];
  if (ctx.purpose === 'latest') onLatestPage(conv, ctx, messages, !!f.hasMore);
  else if (ctx.purpose === 'older') onOlderPage(conv, messages);
  else onFillPage(conv, ctx, messages, !!f.hasMore);
}

/** The newest page of a conversation opened for the first time: it is loaded from here on. */
function onLatestPage(conv, ctx, messages, hasMore) {
  conv.loadingLatest = false;
  conv.latestBackoff = 0;
  if (conv.loaded) {
    // Loaded meanwhile (an empty conversation, by `created`): just a fill.
    onFillPage(conv, { afterSeq: conv.contiguousTo }, messages, hasMore);
    return;
  }
  // Live messages held from before sit below this page, past a gap: they
  // are let go and come back as older history when scrolled to.
  dropBelow(conv, ctx.afterSeq + 1);
  for (const m of messages) addMessage(conv, m);
  conv.loaded = true;
  conv.start = ctx.afterSeq + 1;
  conv.contiguousTo = ctx.afterSeq;
  advanceWatermark(conv);
  requestFill(conv, hasMore);
  afterMessagesChanged(conv, { stick: 'bottom', now: true });
  if (conv.id === state.openId) fillViewport(conv);
}

function onOlderPage(conv, messages) {
  conv.loadingOlder = false;
  if (conv.loaded) {
    for (const m of messages) if (Number(m.seq) < conv.start) addMessage(conv, m, true);
    while (conv.start > 1 && conv.messages.has(conv.start - 1)) conv.start -= 1;
  }
  afterMessagesChanged(conv, { stick: 'keep', now: true });
}

/** A page asked for from the watermark: keep going while it advances and more is known to exist. */
function onFillPage(conv, ctx, messages, hasMore) {
  conv.filling = false;
  if (!conv.loaded) return;
  for (const m of messages) addMessage(conv, m);
  advanceWatermark(conv);
  const progressed = conv.contiguousTo > ctx.afterSeq;
  if (progressed || (!hasMore && conv.contiguousTo >= fillTarget(conv))) {
    conv.fillBackoff = 0;
    conv.fillStalls = 0;
  }
  if (hasMore && progressed) requestFill(conv, true);
  else if (conv.contiguousTo < fillTarget(conv)) {
    // The server had nothing past the watermark although a higher seq is
    // known (a list read ahead of its commit, say): ask again in a while,
    // but not for ever.
    conv.fillStalls = (conv.fillStalls || 0) + 1;
    if (conv.fillStalls <= 5) scheduleFillRetry(conv);
  }
  afterMessagesChanged(conv);
}

/**
 * One page of the inbox (newest activity first). Pages are gathered until
 * the last (`hasMore` false), then the whole list is applied at once, so a
 * conversation missing from it really was left.
 */
function onConversations(f) {
  const ctx = takeRef(f.ref);
  const page = Array.isArray(f.items) ? f.items : [];
  if (!ctx || ctx.kind !== 'conversations') return;
  const items = ctx.first ? page : [...state.convListing, ...page];
  if (ctx.first) state.convListingNewest = page.length ? Date.parse(page[0].updatedAt) : 0;
  const last = page[page.length - 1];
  if (f.hasMore && last) {
    state.convListing = items;
    state.convRequest = sendFrame(
      { type: 'conversations', limit: INBOX_PAGE, before: last.updatedAt, beforeId: last.conversationId },
      { kind: 'conversations', first: false },
    );
    return;
  }
  state.convRequest = null;
  state.convListing = [];
  const seen = new Set();
  items.forEach((item, index) => {
    const conv = upsertConv(item);
    const updated = Date.parse(item.updatedAt);
    if (updated > conv.activity) conv.activity = updated;
    // Earlier in the list is newer: it wins a tie in `byActivity`.
    conv.order = items.length - index;
    conv.listed = true;
    seen.add(conv.id);
  });
  // A conversation that was in an earlier list and is missing now was left
  // from another session. One known only from a frame (`created`, a message)
  // may be newer than this list, so it stays; so does, when the list came in
  // several pages, one active since the first was read (it moved ahead of
  // the later pages' cursor).
  const paged = !ctx.first;
  for (const conv of [...state.convs.values()]) {
    const movedUp = paged && conv.activity > state.convListingNewest;
    if (!seen.has(conv.id) && conv.listed && !movedUp) removeConv(conv.id);
  }
  if (state.draftTo) {
    const direct = findDirect(state.draftTo);
    if (direct && !hasDraftSends(state.draftTo)) openConversation(direct.id);
  }
  const stubs = [...state.convs.values()].filter((c) => c.stub && c.stubTries < 5);
  for (const stub of stubs) stub.stubTries += 1;
  if (state.convRequestAgain || stubs.length > 0) {
    state.convRequestAgain = false;
    setTimeout(requestConversations, stubs.length > 0 ? 500 : 0);
  }
  renderAll();
}

function onCreated(f) {
  const ctx = takeRef(f.ref);
  const conv = upsertConv(f.conversation);
  if (conv.lastSeq === 0 && !conv.loaded) markLoadedEmpty(conv); // nothing to fetch
  if (ctx && ctx.kind === 'create') {
    // Those named who are not members were invited (they share no
    // conversation with this user yet): they join when they accept.
    const joined = new Set((f.conversation && f.conversation.members) || []);
    const invited = (ctx.members || []).filter((m) => !joined.has(m));
    if (invited.length) toast(`Invited ${invited.join(', ')}: they join when they accept.`);
    $('new-group-name').value = '';
    $('new-group-members').value = '';
    $('new-error').textContent = '';
    openConversation(conv.id);
  } else {
    renderAll();
  }
}

/** A group this user was just made a member of, from another session or user. */
function onConversationAdded(f) {
  if (!f.conversation || !f.conversation.conversationId) return;
  // Accepted, maybe on another tab: no longer an invitation.
  if (state.invitations.delete(f.conversation.conversationId)) renderInvitations();
  const conv = upsertConv(f.conversation);
  if (conv.lastSeq === 0 && !conv.loaded) markLoadedEmpty(conv); // nothing to fetch
  renderAll();
}

function onInvited(f) {
  takeRef(f.ref);
  $('invite-user').value = '';
  $('conv-error').textContent = '';
  if (f.pending) {
    // Not a contact: they join once they accept (SPEC v2 invitations).
    toast(`Invited ${f.username}: they join when they accept.`);
    return;
  }
  addMember(f.conversationId, f.username);
  toast(`Invited ${f.username}.`);
}

/* ---------- invitations (SPEC v2): groups of people this user shares no conversation with ---------- */

/** The pending list, from the server (after each connect: frames sent while offline are gone). */
async function refreshInvitations() {
  try {
    const data = await api('/api/invitations');
    state.invitations.clear();
    for (const inv of (data && data.items) || []) {
      if (inv && inv.conversation && inv.conversation.conversationId) {
        state.invitations.set(inv.conversation.conversationId, inv);
      }
    }
    renderInvitations();
  } catch (e) {
    if (e.status !== 401) toast(`Could not load invitations: ${e.message}`);
  }
}

function onInvitation(f) {
  if (!f.conversation || !f.conversation.conversationId) return;
  state.invitations.set(f.conversation.conversationId, f);
  renderInvitations();
  toast(`${f.from} invited you to ${f.conversation.name}.`);
}

/** accepted or declined: the invitation is gone (an accepted group arrives as conversation_added). */
function onInvitationAnswered(f) {
  takeRef(f.ref);
  state.invitations.delete(f.conversationId);
  renderInvitations();
}

function answerInvitation(id, kind, li) {
  for (const b of li.querySelectorAll('button')) b.disabled = true;
  if (!sendFrame({ type: kind, conversationId: id }, { kind, conversationId: id })) {
    for (const b of li.querySelectorAll('button')) b.disabled = false;
    toast('Offline: try again once connected.');
  }
}

function renderInvitations() {
  const ul = $('invitation-list');
  const items = [...state.invitations.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  const known = new Map([...ul.children].map((li) => [li.dataset.conversationId, li]));
  reconcileList(ul, items, (inv) => {
    const id = inv.conversation.conversationId;
    const existing = known.get(id);
    if (existing) return existing;
    const accept = h('button', { type: 'button', class: 'primary', text: 'Accept' });
    const decline = h('button', { type: 'button', class: 'quiet', text: 'Decline' });
    const li = h('li', { class: 'invitation', 'data-conversation-id': id },
      h('span', { class: 'invitation-text', text: `${inv.conversation.name}, from ${inv.from}` }),
      h('span', { class: 'invitation-actions' }, accept, decline));
    accept.addEventListener('click', () => answerInvitation(id, 'accept', li));
    decline.addEventListener('click', () => answerInvitation(id, 'decline', li));
    return li;
  });
  $('invitations-panel').hidden = items.length === 0;
}

function onMemberJoined(f) {
  if (!state.convs.has(f.conversationId)) {
    requestConversations();
    return;
  }
  if (f.username !== state.me) addNote(state.convs.get(f.conversationId), `${f.username} joined`);
  addMember(f.conversationId, f.username);
}

function onLeft(f) {
  takeRef(f.ref);
  removeConv(f.conversationId);
  renderAll();
}

function onMemberLeft(f) {
  if (f.username === state.me) {
    removeConv(f.conversationId);
  } else {
    const conv = state.convs.get(f.conversationId);
    if (!conv) return;
    conv.members = conv.members.filter((m) => m !== f.username);
    conv.reads.delete(f.username);
    stopTyping(conv, f.username);
    addNote(conv, `${f.username} left`);
  }
  renderAll();
}

/**
 * A system line ("carol left") in the conversation, after the messages
 * held when it happened. Live only: history has no such entries, so a
 * reload shows none.
 */
function addNote(conv, text) {
  const el = h('li', { class: 'system-note', text });
  conv.notes.push({ afterSeq: maxSeq(conv), el });
  if (conv.notes.length > KEPT_NOTES) conv.notes.shift();
}

function onRead(f) {
  const conv = state.convs.get(f.conversationId);
  if (!conv || f.username === state.me) return;
  noteRead(conv, f.username, Number(f.seq));
  inferOnline(f.username);
  if (conv.id === state.openId) requestRender();
}

/**
 * A member's read marker as the server keeps it: the highest seq they
 * marked read or sent (a sender has read their own message; the server
 * moved the marker with the commit, so no `read` frame says so). Ours
 * counts unread; the others' say "Seen by". Markers only grow.
 */
function noteRead(conv, name, seq) {
  if (!Number.isInteger(seq) || seq < 1) return;
  if (name === state.me) {
    conv.lastReadSeq = Math.max(conv.lastReadSeq, seq);
    conv.readSent = Math.max(conv.readSent, seq); // the server has it: nothing to send
  } else if (seq > (conv.reads.get(name) || 0)) {
    conv.reads.set(name, seq);
  }
}

/** Every member's marker from a conversation object (`readBy`), so "Seen by" survives a reload. */
function noteReadBy(conv, readBy) {
  if (!readBy || typeof readBy !== 'object') return; // optional: older servers send none
  for (const name of [...conv.reads.keys()]) if (!Object.hasOwn(readBy, name)) conv.reads.delete(name);
  for (const [name, seq] of Object.entries(readBy)) if (name !== state.me) noteRead(conv, name, Number(seq));
}

function onTyping(f) {
  const conv = state.convs.get(f.conversationId);
  if (!conv || f.username === state.me) return;
  clearTimeout(conv.typing.get(f.username));
  conv.typing.set(f.username, setTimeout(() => stopTyping(conv, f.username), TYPING_SHOW_MS));
  if (conv.id === state.openId) renderTyping();
  inferOnline(f.username);
}

/**
 * The server tells new contacts each other's presence, but a status it
 * sent may have been lost with a dropped connection before this one said
 * hello. Typing and read receipts come only from a live session, so they
 * prove the user online; and their going offline will be pushed, as they
 * are contacts. An explicit status from the server is never overridden.
 */
function inferOnline(username) {
  if (state.presence.has(username)) return;
  state.presence.set(username, 'online');
  renderConvList();
  renderConversationHeader();
}

function onPresence(f) {
  if (!f.username) return;
  const online = f.status === 'online';
  state.presence.set(f.username, online ? 'online' : 'offline');
  const at = Date.parse(f.lastSeen);
  if (!online && Number.isFinite(at)) state.lastSeen.set(f.username, at);
  else state.lastSeen.delete(f.username);
  renderConvList();
  renderConversationHeader();
}

function onPayment(f) {
  const ctx = takeRef(f.ref);
  if (ctx && ctx.kind === 'pay') {
    dropPay(ctx.key);
    $('pay-error').textContent = '';
    $('pay-amount').value = '';
  }
  const { type, ref, ...payment } = f;
  upsertPayment(payment);
  refreshBalance();
}

function onError(f) {
  const ctx = takeRef(f.ref);
  const message = f.message || f.code || 'Something went wrong';
  if (!ctx) {
    toast(message);
    return;
  }
  switch (ctx.kind) {
    case 'send':
      if (f.code === 'rate_limited') retrySendLater(ctx.clientMsgId);
      else failSend(ctx.clientMsgId, message);
      break;
    case 'history':
      onHistoryError(ctx, f.code, message);
      break;
    case 'conversations':
      state.convRequest = null;
      if (f.code === 'rate_limited') setTimeout(requestConversations, RETRY_FIRST_MS);
      else toast(`Could not load conversations: ${message}`);
      break;
    case 'pay':
      if (f.code === 'rate_limited') retryPayLater(ctx.key);
      else {
        dropPay(ctx.key);
        $('pay-error').textContent = payErrorText(f.code, message);
      }
      break;
    case 'read':
      // Refused: the server still has the older marker, so tell it again.
      if (f.code === 'rate_limited' || f.code === 'unavailable' || f.code === 'internal') readRefused(ctx);
      break;
    case 'create':
      $('new-error').textContent = message;
      break;
    case 'invite':
    case 'leave':
      $('conv-error').textContent = message;
      break;
    case 'accept':
    case 'decline': {
      // Gone already (answered elsewhere) or refused (a full quota): the
      // server's list is the truth, and what is still there can be tried again.
      toast(message);
      const li = $('invitation-list').querySelector(`li[data-conversation-id="${ctx.conversationId}"]`);
      if (li) for (const b of li.querySelectorAll('button')) b.disabled = false;
      refreshInvitations();
      break;
    }
    default:
      // read, typing and ping failures change nothing the user can act on.
      break;
  }
}

const FINAL_HISTORY_CODES = new Set(['forbidden', 'not_found', 'bad_request']);

/**
 * A refused history request is asked again after a pause (1 s doubling to
 * 10 s) for as long as the socket stays up: a fill that gave up would leave
 * a gap for good. Not being a member any more is final.
 */
function onHistoryError(ctx, code, message) {
  if (ctx.purpose === 'fill') fillSlotFreed();
  const conv = state.convs.get(ctx.conversationId);
  if (!conv) return;
  const final = FINAL_HISTORY_CODES.has(code);
  if (ctx.purpose === 'fill') {
    conv.filling = false;
    if (final) requestConversations();
    else scheduleFillRetry(conv);
  } else if (ctx.purpose === 'latest') {
    conv.loadingLatest = false;
    if (final) toast(`Could not load messages: ${message}`);
    else scheduleLatestRetry(conv);
    if (conv.id === state.openId) renderMessages();
  } else {
    conv.loadingOlder = false;
    if (final) toast(`Could not load messages: ${message}`);
    // The next scroll asks again; after a refusal, so does a timer (the
    // reader may be sitting at the top already).
    else setTimeout(() => { if (conv.id === state.openId) onMessagesScroll(); }, RETRY_FIRST_MS);
    if (conv.id === state.openId) renderMessages();
  }
}

function nextDelay(previous) {
  return previous ? Math.min(RETRY_MAX_MS, previous * 2) : RETRY_FIRST_MS;
}

function payErrorText(code, message) {
  if (code === 'insufficient_funds') return 'Not enough money for this payment.';
  if (code === 'not_found') return 'No such user.';
  if (code === 'unavailable') return 'Payments are unavailable right now; try again later.';
  return message;
}

/* ---------- conversations ---------- */

function newConv(id) {
  return {
    id,
    kind: 'group',
    name: '',
    members: [],
    lastSeq: 0,
    lastReadSeq: 0,
    readSent: 0,           // the highest read marker the server has been sent (or told us of)
    messages: new Map(),   // seq -> message
    seqs: [],              // the keys of `messages`, ascending
    els: new Map(),        // seq -> element, kept so re-renders move nodes, not rebuild them
    reads: new Map(),      // other member -> highest seq they have read
    typing: new Map(),     // other member -> timer hiding their indicator
    notes: [],             // live system lines ({ afterSeq, el }), at most KEPT_NOTES
    loaded: false,         // the latest page has arrived (older pages come on scroll)
    // Once loaded, every seq from `start` to `contiguousTo` is held; anything
    // held above that sits past a gap that a fill is closing. Older pages
    // lower `start`; dropping the oldest raises it.
    start: 1,
    contiguousTo: 0,
    filling: false,        // a fill from the watermark is in flight
    fillTimer: 0,
    fillBackoff: 0,
    fillStalls: 0,
    loadingLatest: false,
    latestTimer: 0,
    latestBackoff: 0,
    loadingOlder: false,
    stub: false,           // known from a frame, not yet from a conversation list
    stubTries: 0,
    listed: false,         // has appeared in a `conversations` answer
    order: -1,
    activity: 0,
    li: null,
  };
}

function upsertConv(item) {
  let conv = state.convs.get(item.conversationId);
  if (!conv) {
    conv = newConv(item.conversationId);
    state.convs.set(conv.id, conv);
  }
  conv.kind = item.kind === 'direct' ? 'direct' : 'group';
  conv.name = item.name || '';
  conv.members = Array.isArray(item.members) ? [...item.members] : [];
  // The list may have been read before a message we already hold was committed.
  conv.lastSeq = Math.max(conv.lastSeq, Number(item.lastSeq) || 0);
  conv.lastReadSeq = Math.max(conv.lastReadSeq, Number(item.lastReadSeq) || 0);
  conv.readSent = Math.max(conv.readSent, Number(item.lastReadSeq) || 0);
  noteReadBy(conv, item.readBy);
  conv.stub = false;
  requestFill(conv);
  return conv;
}

/** The conversation a frame names; if unknown, a placeholder while the list is fetched again. */
function ensureConv(id, hint = {}) {
  let conv = state.convs.get(id);
  if (conv) return conv;
  conv = newConv(id);
  conv.stub = true;
  if (hint.receiver && hint.sender) {
    conv.kind = 'direct';
    conv.members = [hint.sender, hint.receiver].sort();
  }
  state.convs.set(id, conv);
  requestConversations();
  return conv;
}

function removeConv(id) {
  const conv = state.convs.get(id);
  if (!conv) return;
  clearConvTimers(conv);
  if (conv.li) conv.li.remove();
  state.convs.delete(id);
  state.fillQueue.delete(id);
  state.readDirty.delete(id);
  if (state.openId === id) closeConversation();
}

function addMember(conversationId, username) {
  const conv = state.convs.get(conversationId);
  if (!conv || conv.members.includes(username)) return;
  conv.members = [...conv.members, username].sort();
  renderAll();
}

function requestConversations() {
  if (state.convRequest) {
    state.convRequestAgain = true;
    return;
  }
  state.convListing = [];
  state.convRequest = sendFrame(
    { type: 'conversations', limit: INBOX_PAGE },
    { kind: 'conversations', first: true },
  );
}

function requestHistory(conv, purpose, afterSeq, limit) {
  return sendFrame(
    { type: 'history', conversationId: conv.id, afterSeq, limit },
    { kind: 'history', conversationId: conv.id, purpose, afterSeq },
  );
}

function loadLatest(conv) {
  if (conv.loaded || conv.loadingLatest || conv.latestTimer) return;
  const afterSeq = Math.max(0, conv.lastSeq - PAGE_SIZE);
  if (requestHistory(conv, 'latest', afterSeq, PAGE_SIZE)) conv.loadingLatest = true;
}

function scheduleLatestRetry(conv) {
  clearTimeout(conv.latestTimer);
  conv.latestBackoff = nextDelay(conv.latestBackoff);
  conv.latestTimer = setTimeout(() => {
    conv.latestTimer = 0;
    if (conv.id === state.openId) loadLatest(conv);
  }, conv.latestBackoff);
}

function loadOlder(conv) {
  if (!conv.loaded || conv.loadingOlder || conv.start <= 1) return;
  // Seqs have no gaps, so the page before `start` is exactly known.
  const afterSeq = Math.max(0, conv.start - 1 - PAGE_SIZE);
  const limit = conv.start - 1 - afterSeq;
  if (requestHistory(conv, 'older', afterSeq, limit)) {
    conv.loadingOlder = true;
    renderMessages();
  }
}

/** The highest seq known to exist: from the conversation list, or held past a gap. */
function fillTarget(conv) {
  return Math.max(conv.lastSeq, maxSeq(conv));
}

/**
 * Asks for what follows the watermark of a loaded conversation when a
 * higher seq is known to exist (or always, with `force`: after a
 * reconnect, or when the last page said there is more). One fill per
 * conversation at a time, a few conversations at a time, the open one
 * first; a fill waiting out a refusal is left to its timer.
 */
function requestFill(conv, force = false) {
  if (!conv.loaded || conv.filling || conv.fillTimer) return;
  if (!force && conv.contiguousTo >= fillTarget(conv)) return;
  state.fillQueue.add(conv.id);
  pumpFills();
}

function pumpFills() {
  if (!isOpen()) return;
  while (state.fillsInFlight < MAX_FILLS_IN_FLIGHT && state.fillQueue.size > 0) {
    const id = state.fillQueue.has(state.openId) ? state.openId : state.fillQueue.values().next().value;
    state.fillQueue.delete(id);
    const conv = state.convs.get(id);
    if (!conv || !conv.loaded || conv.filling || conv.fillTimer) continue;
    if (!requestHistory(conv, 'fill', conv.contiguousTo, CATCHUP_LIMIT)) return;
    conv.filling = true;
    state.fillsInFlight += 1;
  }
}

function fillSlotFreed() {
  state.fillsInFlight = Math.max(0, state.fillsInFlight - 1);
  pumpFills();
}

function scheduleFillRetry(conv) {
  clearTimeout(conv.fillTimer);
  conv.fillBackoff = nextDelay(conv.fillBackoff);
  conv.fillTimer = setTimeout(() => {
    conv.fillTimer = 0;
    if (state.convs.get(conv.id) === conv) requestFill(conv, true);
  }, conv.fillBackoff);
}

/** A loaded conversation with nothing in it yet: the watermark sits at 0. */
function markLoadedEmpty(conv) {
  conv.loaded = true;
  conv.start = 1;
  conv.contiguousTo = 0;
  advanceWatermark(conv);
}

function advanceWatermark(conv) {
  while (conv.messages.has(conv.contiguousTo + 1)) conv.contiguousTo += 1;
}

/** Forgets the held messages with seq < `seq`. */
function dropBelow(conv, seq) {
  let n = 0;
  while (n < conv.seqs.length && conv.seqs[n] < seq) n += 1;
  dropOldest(conv, n);
}

function dropOldest(conv, n) {
  if (n <= 0) return;
  // Their elements leave the pane with the next render (removing them here
  // would force a layout for every message that arrives over the cap).
  for (const seq of conv.seqs.splice(0, n)) {
    conv.messages.delete(seq);
    conv.els.delete(seq);
  }
  if (!conv.loaded) return;
  // What is gone is older history now, so the held range starts at the
  // oldest message kept; if that was past the watermark, the gap below it
  // is older history too, and the watermark moves up to meet it.
  if (conv.seqs.length > 0) conv.start = Math.max(conv.start, conv.seqs[0]);
  else conv.start = Math.max(conv.start, conv.contiguousTo + 1);
  if (conv.contiguousTo < conv.start - 1) conv.contiguousTo = conv.start - 1;
  advanceWatermark(conv);
}

/**
 * Keeps memory bounded under traffic: past the cap, the oldest messages
 * go. A conversation never opened needs no more than its latest page
 * (opening it fetches that page again anyway).
 */
function trimMessages(conv, atBottom = false) {
  const cap = conv.loaded ? KEPT_MESSAGES : PAGE_SIZE;
  if (conv.seqs.length <= cap) return;
  const reading = conv.id === state.openId && !atBottom && !nearBottom();
  if (reading && conv.seqs.length <= KEPT_MESSAGES_HARD) return;
  dropOldest(conv, conv.seqs.length - cap);
}

function nearBottom() {
  const list = $('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
}

function clearConvTimers(conv) {
  clearTypingTimers(conv);
  clearTimeout(conv.fillTimer);
  clearTimeout(conv.latestTimer);
  conv.fillTimer = 0;
  conv.latestTimer = 0;
}

/** A short latest page may not fill the pane, and then there is nothing to scroll. */
function fillViewport(conv) {
  const list = $('messages');
  if (list.scrollHeight <= list.clientHeight + NEAR_TOP_PX) loadOlder(conv);
}

/**
 * Holds one message. Below `start` of a loaded conversation only an older
 * page may add (anything else there would sit past a gap nobody fills).
 */
function addMessage(conv, m, older = false) {
  const seq = Number(m.seq);
  if (!Number.isInteger(seq) || seq < 1 || conv.messages.has(seq)) return false;
  if (conv.loaded && seq < conv.start && !older) return false;
  conv.messages.set(seq, m);
  insertSeq(conv.seqs, seq);
  if (conv.loaded && seq === conv.contiguousTo + 1) advanceWatermark(conv);
  conv.lastSeq = Math.max(conv.lastSeq, seq);
  noteRead(conv, m.sender, seq);
  const t = Date.parse(m.sentAt);
  if (t > conv.activity) conv.activity = t;
  if (m.sender !== state.me) stopTyping(conv, m.sender, false);
  return true;
}

// Messages mostly arrive in order, so this is nearly always a push.
function insertSeq(seqs, seq) {
  let lo = seqs.length;
  if (lo > 0 && seqs[lo - 1] > seq) {
    lo = 0;
    let hi = seqs.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seqs[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
  }
  seqs.splice(lo, 0, seq);
}

/**
 * `now`: render at once (an older page must be laid out before the scroll
 * position is corrected, the first page before checking that it fills the
 * pane). Otherwise the next frame renders everything that changed since.
 */
function afterMessagesChanged(conv, opts = {}) {
  if (opts.stick !== 'keep') trimMessages(conv, opts.stick === 'bottom');
  const open = conv.id === state.openId;
  if (open) markRead();
  if (opts.now) {
    if (open) renderOpenConversation({ stick: opts.stick });
    renderConvList();
  } else {
    requestRender(open ? opts.stick : undefined);
  }
}

/*
 * Rendering after each live message would lay out the whole pane once per
 * message, which a busy conversation turns into seconds of blocked page.
 * So incoming traffic is rendered at most once a frame; the timer covers a
 * hidden tab, where frames stop but the title's unread count should not.
 */
const pendingRender = { scheduled: false, stick: undefined };

function requestRender(stick) {
  if (stick === 'bottom') pendingRender.stick = 'bottom';
  if (pendingRender.scheduled) return;
  pendingRender.scheduled = true;
  requestAnimationFrame(flushRender);
  setTimeout(flushRender, 250);
}

function flushRender() {
  if (!pendingRender.scheduled) return;
  const { stick } = pendingRender;
  pendingRender.scheduled = false;
  pendingRender.stick = undefined;
  if (openConv()) renderOpenConversation({ stick });
  renderConvList();
}

function renderOpenConversation(opts) {
  renderMessages(opts);
  renderTyping();
  renderReadState();
}

function maxSeq(conv) {
  return conv.seqs.length ? conv.seqs[conv.seqs.length - 1] : 0;
}

function openConv() {
  return state.openId ? state.convs.get(state.openId) || null : null;
}

function otherMember(conv) {
  return conv.members.find((m) => m !== state.me) || conv.members[0] || '';
}

function convTitle(conv) {
  if (conv.kind === 'direct') return otherMember(conv) || conv.name || 'Direct chat';
  return conv.name || (conv.stub ? 'New group…' : 'Group');
}

function findDirect(username) {
  for (const conv of state.convs.values()) {
    if (conv.kind === 'direct' && conv.members.includes(username) &&
        (username !== state.me || conv.members.length === 1)) return conv;
  }
  return null;
}

function hasDraftSends(username) {
  for (const e of state.outbox.values()) if (!e.conversationId && e.to === username) return true;
  return false;
}

function unread(conv) {
  return Math.max(0, conv.lastSeq - conv.lastReadSeq);
}

function openConversation(id) {
  const conv = state.convs.get(id);
  if (!conv) return;
  const prev = openConv();
  state.openId = id;
  // Its cap waited while it was being read; it is not being read now.
  if (prev && prev !== conv) trimMessages(prev);
  state.draftTo = null;
  $('conv-error').textContent = '';
  $('messages').replaceChildren();
  if (!conv.loaded) loadLatest(conv);
  renderAll({ stick: 'bottom' });
  markRead();
}

function openDraft(username) {
  state.openId = null;
  state.draftTo = username;
  $('conv-error').textContent = '';
  $('messages').replaceChildren();
  renderAll({ stick: 'bottom' });
  $('message-input').focus();
}

function closeConversation() {
  const prev = openConv();
  state.openId = null;
  state.draftTo = null;
  if (prev) trimMessages(prev);
  $('messages').replaceChildren();
}

/**
 * Tells the server (and so our other devices and the unread counts) that
 * the open conversation has been seen up to its newest message. Only while
 * the page is actually visible: a message that arrives into a background
 * tab is not read.
 */
function markRead() {
  const conv = openConv();
  if (!conv || document.visibilityState !== 'visible') return;
  const top = maxSeq(conv);
  if (top <= conv.lastReadSeq) return;
  conv.lastReadSeq = top;
  renderConvList();
  state.readDirty.add(conv.id);
  scheduleReadFlush();
}

/**
 * One `read` per message would spend the session's frame budget in a busy
 * conversation, so receipts go out at most every READ_SEND_MS, each with
 * the newest marker of its conversation (trailing edge: the last one is
 * never lost).
 */
function scheduleReadFlush() {
  if (state.readTimer || state.readDirty.size === 0) return;
  const wait = Math.max(0, state.lastReadSentAt + READ_SEND_MS - Date.now());
  state.readTimer = setTimeout(flushReads, wait);
}

function flushReads() {
  state.readTimer = 0;
  if (!isOpen()) return; // `hello` flushes what is left
  for (const id of [...state.readDirty]) {
    state.readDirty.delete(id);
    const conv = state.convs.get(id);
    if (!conv || conv.lastReadSeq <= conv.readSent) continue;
    const seq = conv.lastReadSeq;
    const ctx = { kind: 'read', conversationId: id, seq, prev: conv.readSent };
    if (!sendFrame({ type: 'read', conversationId: id, seq }, ctx)) {
      state.readDirty.add(id);
      return;
    }
    conv.readSent = seq;
    state.lastReadSentAt = Date.now();
  }
}

function readRefused(ctx) {
  const conv = state.convs.get(ctx.conversationId);
  if (!conv || conv.readSent !== ctx.seq) return;
  conv.readSent = ctx.prev;
  state.readDirty.add(conv.id);
  clearTimeout(state.readTimer);
  state.readTimer = setTimeout(flushReads, RETRY_FIRST_MS);
}

function stopTyping(conv, username, render = true) {
  if (!conv.typing.has(username)) return;
  clearTimeout(conv.typing.get(username));
  conv.typing.delete(username);
  if (render && conv.id === state.openId) renderTyping();
}

function clearTypingTimers(conv) {
  for (const timer of conv.typing.values()) clearTimeout(timer);
  conv.typing.clear();
}

/* ---------- sending ---------- */

function transmit(entry) {
  const frame = { type: 'send', text: entry.text, clientMsgId: entry.clientMsgId };
  if (entry.conversationId) frame.conversationId = entry.conversationId;
  else frame.to = entry.to;
  entry.ref = sendFrame(frame, { kind: 'send', clientMsgId: entry.clientMsgId });
  return !!entry.ref;
}

/**
 * Sends what is pending, oldest first, with at most MAX_SENDS_IN_FLIGHT
 * unanswered (a long outbox replayed at once would run into the frame
 * limit). A send waiting out a refusal holds back the later ones of its
 * conversation, so they still arrive in the order they were written.
 */
function pumpSends() {
  if (!isOpen()) return;
  let inFlight = 0;
  for (const e of state.outbox.values()) if (e.ref) inFlight += 1;
  const held = new Set();
  for (const e of state.outbox.values()) {
    if (inFlight >= MAX_SENDS_IN_FLIGHT) break;
    if (e.status !== 'pending' || e.ref) continue;
    const key = e.conversationId || `to:${e.to}`;
    if (e.retryTimer) held.add(key);
    if (held.has(key)) continue;
    if (!transmit(e)) break;
    inFlight += 1;
  }
}

/**
 * Refused for load (`rate_limited`): `resend` runs after the entry's next
 * backoff pause. One timer an entry: a second refusal restarts it.
 */
function retryLater(entry, resend) {
  entry.ref = null;
  clearTimeout(entry.retryTimer);
  entry.retryDelay = nextDelay(entry.retryDelay);
  entry.retryTimer = setTimeout(() => {
    entry.retryTimer = 0;
    resend();
  }, entry.retryDelay);
}

/** The same clientMsgId goes again after a pause. */
function retrySendLater(clientMsgId) {
  const entry = state.outbox.get(clientMsgId);
  if (entry) retryLater(entry, pumpSends);
}

function onComposerSubmit(event) {
  event.preventDefault();
  const input = $('message-input');
  const text = input.value.trim();
  if (!text) return;
  if (charCount(text) > MAX_TEXT_CHARS) {
    toast(`Messages are at most ${MAX_TEXT_CHARS} characters.`);
    return;
  }
  const conv = openConv();
  if (!conv && !state.draftTo) return;
  const entry = {
    clientMsgId: uuid(),
    conversationId: conv ? conv.id : null,
    to: conv ? null : state.draftTo,
    text,
    status: 'pending',
    error: null,
  };
  state.outbox.set(entry.clientMsgId, entry);
  saveOutbox();
  pumpSends();
  input.value = '';
  renderMessages({ stick: 'bottom' });
}

function failSend(clientMsgId, message) {
  const entry = state.outbox.get(clientMsgId);
  if (!entry) return;
  entry.status = 'failed';
  entry.error = message;
  entry.ref = null;
  saveOutbox();
  pumpSends();
  renderMessages();
}

function retrySend(clientMsgId) {
  const entry = state.outbox.get(clientMsgId);
  if (!entry) return;
  entry.status = 'pending';
  entry.error = null;
  clearTimeout(entry.retryTimer);
  entry.retryTimer = 0;
  entry.retryDelay = 0;
  saveOutbox();
  pumpSends();
  renderMessages();
}

function discardSend(clientMsgId) {
  const entry = state.outbox.get(clientMsgId);
  if (entry) clearTimeout(entry.retryTimer);
  state.outbox.delete(clientMsgId);
  state.pendingEls.delete(clientMsgId);
  saveOutbox();
  renderMessages();
}

function onComposerInput() {
  const conv = openConv();
  if (!conv || !$('message-input').value) return;
  const now = Date.now();
  if (now - state.lastTypingAt < TYPING_SEND_MS) return;
  if (sendFrame({ type: 'typing', conversationId: conv.id }, { kind: 'typing' })) state.lastTypingAt = now;
}

function parseUsername(text) {
  const name = text.trim().toLowerCase();
  return USERNAME_RE.test(name) ? name : null;
}

/**
 * The other user named in the input `inputId`, or null with the reason in
 * `err`: `missing` when it is not a username, `self` when it is the user's own.
 */
function otherUser(inputId, err, missing, self) {
  const name = parseUsername($(inputId).value);
  if (!name) err.textContent = missing;
  else if (name === state.me) err.textContent = self;
  else return name;
  return null;
}

function onNewDirect(event) {
  event.preventDefault();
  const err = $('new-error');
  const name = otherUser(
    'new-direct-user',
    err,
    'Enter a username (3–32 characters: a–z, 0–9 or _).',
    'That is you. Pick someone else.',
  );
  if (!name) return;
  err.textContent = '';
  const existing = findDirect(name);
  if (existing) {
    $('new-direct-user').value = '';
    openConversation(existing.id);
    return;
  }
  checkUserThenDraft(name);
}

/**
 * A chat with someone new opens only once the server says they exist, so a
 * mistyped name is said at once, not when the first message fails. If the
 * check itself fails (the server is unreachable), the draft opens anyway and
 * the send reports what it finds.
 */
async function checkUserThenDraft(name) {
  const err = $('new-error');
  const button = $('new-direct-btn');
  button.disabled = true;
  try {
    await api(`/api/users/${encodeURIComponent(name)}`);
  } catch (e) {
    if (e.code === 'not_found') {
      err.textContent = `There is no user named "${name}".`;
      return;
    }
    if (e.status === 401) return;
  } finally {
    button.disabled = false;
  }
  $('new-direct-user').value = '';
  const existing = findDirect(name);
  if (existing) openConversation(existing.id);
  else openDraft(name);
}

function onNewGroup(event) {
  event.preventDefault();
  const err = $('new-error');
  const name = $('new-group-name').value.trim();
  if (!name || charCount(name) > 128) {
    err.textContent = 'Give the group a name (up to 128 characters).';
    return;
  }
  const members = [...new Set($('new-group-members').value.split(/[\s,]+/)
    .map((m) => m.trim().toLowerCase()).filter(Boolean))];
  const bad = members.find((m) => !USERNAME_RE.test(m));
  if (bad) {
    err.textContent = `"${bad}" is not a valid username.`;
    return;
  }
  const named = members.filter((m) => m !== state.me);
  if (!sendFrame({ type: 'create', name, members: named }, { kind: 'create', members: named })) {
    err.textContent = 'Not connected. Try again when the connection is back.';
    return;
  }
  err.textContent = '';
}

function onInvite(event) {
  event.preventDefault();
  const conv = openConv();
  if (!conv || conv.kind !== 'group') return;
  const name = parseUsername($('invite-user').value);
  if (!name) {
    $('conv-error').textContent = 'Enter a username to invite.';
    return;
  }
  const ok = sendFrame({ type: 'invite', conversationId: conv.id, username: name }, { kind: 'invite' });
  $('conv-error').textContent = ok ? '' : 'Not connected. Try again when the connection is back.';
}

/**
 * Leaving takes two clicks (window.confirm would block, and headless tests
 * cannot answer it): the first arms the button for a few seconds, the
 * second leaves. Opening another conversation disarms it.
 */
function onLeave() {
  const conv = openConv();
  if (!conv || conv.kind !== 'group') return;
  if (state.leaveArmed !== conv.id) {
    disarmLeave();
    state.leaveArmed = conv.id;
    const btn = $('leave-btn');
    btn.textContent = 'Confirm leave?';
    btn.classList.add('confirming');
    btn.setAttribute('aria-label', `Confirm leaving ${convTitle(conv)}`);
    state.leaveTimer = setTimeout(disarmLeave, CONFIRM_MS);
    return;
  }
  disarmLeave();
  const ok = sendFrame({ type: 'leave', conversationId: conv.id }, { kind: 'leave' });
  $('conv-error').textContent = ok ? '' : 'Not connected. Try again when the connection is back.';
}

function disarmLeave() {
  clearTimeout(state.leaveTimer);
  state.leaveArmed = null;
  const btn = $('leave-btn');
  btn.textContent = 'Leave group';
  btn.classList.remove('confirming');
  btn.removeAttribute('aria-label');
}

/* ---------- payments ---------- */

function onPay(event) {
  event.preventDefault();
  const err = $('pay-error');
  const to = otherUser('pay-to', err, 'Enter the username to pay.', 'You cannot pay yourself.');
  if (!to) return;
  const amount = parseAmount($('pay-amount').value);
  if (amount === null) {
    err.textContent = 'Enter an amount like 1.50 (more than 0, at most two decimals).';
    return;
  }
  if (!isOpen()) {
    err.textContent = 'Not connected. Try again when the connection is back.';
    return;
  }
  // One payment at a time, so a double click cannot pay twice.
  if (state.payOutbox.size > 0) {
    err.textContent = 'The previous payment is still being sent.';
    return;
  }
  err.textContent = '';
  const key = uuid();
  const pay = { to, amount, ref: null, retryTimer: 0, retryDelay: 0 };
  // Kept (in localStorage too) until the server answers: if the connection
  // drops or the page reloads first, the same key is sent again, and the
  // server never pays twice.
  state.payOutbox.set(key, pay);
  savePayOutbox();
  sendPay(key, pay);
}

function sendPay(key, pay) {
  if (pay.ref) return;
  pay.ref = sendFrame({ type: 'pay', to: pay.to, amount: pay.amount, idempotencyKey: key }, { kind: 'pay', key });
}

function dropPay(key) {
  const pay = state.payOutbox.get(key);
  if (!pay) return;
  clearTimeout(pay.retryTimer);
  state.payOutbox.delete(key);
  savePayOutbox();
}

/** The same idempotency key goes again after a pause, unless it was settled meanwhile. */
function retryPayLater(key) {
  const pay = state.payOutbox.get(key);
  if (!pay) return;
  retryLater(pay, () => {
    if (state.payOutbox.get(key) === pay) sendPay(key, pay);
  });
}

function upsertPayment(p) {
  if (!p || !p.paymentId) return;
  const known = state.payments.get(p.paymentId);
  // Frames can cross: never let an older `pending` overwrite a final status.
  if (known && known.status !== 'pending' && p.status === 'pending') return;
  state.payments.set(p.paymentId, { ...known, ...p });
  if (state.payments.size > KEPT_PAYMENTS) {
    const keep = [...state.payments.values()].sort(byPaymentNewest).slice(0, KEPT_PAYMENTS);
    state.payments = new Map(keep.map((x) => [x.paymentId, x]));
  }
  savePayments();
  renderPayments();
}

function byPaymentNewest(a, b) {
  return String(b.paymentId).localeCompare(String(a.paymentId));
}

/* ---------- rendering ---------- */

function renderAll(opts) {
  renderAccount();
  renderConvList();
  renderConversation(opts);
  renderPayments();
}

function renderAccount() {
  $('me').textContent = state.me;
  const balance = $('balance');
  balance.textContent = formatMoney(state.balance);
  if (typeof state.balance === 'number') balance.dataset.amount = String(state.balance);
  else delete balance.dataset.amount;
}

function presenceDot(username) {
  const online = state.presence.get(username) === 'online';
  // No status at all means "not heard of yet", not "offline".
  return h('span', {
    class: 'presence',
    'data-online': String(online),
    title: `${username}: ${presenceText(username)}`,
    'aria-label': online ? 'online' : 'offline',
    role: 'img',
  });
}

/** online / last seen 2 min ago / offline / not seen online yet. */
function presenceText(username) {
  const status = state.presence.get(username);
  if (status === 'online') return 'online';
  const at = state.lastSeen.get(username);
  if (at !== undefined) return `last seen ${ago(at)}`;
  return status === 'offline' ? 'offline' : 'not seen online yet';
}

function ago(ms) {
  const minutes = Math.floor((Date.now() - ms) / 60000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  return `on ${new Date(ms).toLocaleDateString()}`;
}

/**
 * A "last seen … ago" in the header goes stale as time passes: one timer
 * for the page re-renders the header when the minute turns (never one per
 * contact; the list's dots carry it only in their titles).
 */
function scheduleAgoRefresh(at) {
  clearTimeout(state.agoTimer);
  if (at === undefined) return;
  const elapsed = Date.now() - at;
  const wait = elapsed < 3600000 ? 60000 - (elapsed % 60000) : 3600000 - (elapsed % 3600000);
  state.agoTimer = setTimeout(renderConversationHeader, wait + 50);
}

function byActivity(a, b) {
  if (a.activity !== b.activity) return b.activity - a.activity;
  return b.order - a.order;
}

/**
 * Puts the element `liFor` gives for each item into `ul` in the items'
 * order, moving only what is out of place (so focus and scroll survive),
 * and removes the elements no item claimed.
 */
function reconcileList(ul, items, liFor) {
  let cursor = ul.firstChild;
  for (const item of items) {
    const li = liFor(item);
    if (li === cursor) cursor = cursor.nextSibling;
    else ul.insertBefore(li, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

function renderConvList() {
  const ul = $('conversation-list');
  const convs = [...state.convs.values()].sort(byActivity);
  reconcileList(ul, convs, (conv) => {
    const li = conv.li || (conv.li = convItem(conv));
    updateConvItem(conv, li);
    return li;
  });
  $('no-conversations').hidden = convs.length > 0;
  const total = convs.reduce((n, c) => n + unread(c), 0);
  document.title = total > 0 ? `(${total}) Parley` : 'Parley';
}

function convItem(conv) {
  const li = h('li', { 'data-conversation-id': conv.id, class: 'conv' });
  const button = h('button', { type: 'button', class: 'conv-open' },
    h('span', { class: 'conv-name' }),
    h('span', { class: 'unread', 'data-count': '0' }));
  li.append(button);
  li.addEventListener('click', () => openConversation(conv.id));
  return li;
}

function updateConvItem(conv, li) {
  const button = li.firstElementChild;
  let dot = button.querySelector('.presence');
  if (conv.kind === 'direct') {
    const fresh = presenceDot(otherMember(conv));
    if (dot) dot.replaceWith(fresh);
    else button.prepend(fresh);
  } else if (dot) {
    dot.remove();
  }
  button.querySelector('.conv-name').textContent = convTitle(conv);
  const count = unread(conv);
  const badge = button.querySelector('.unread');
  badge.dataset.count = String(count);
  badge.textContent = String(count);
  badge.hidden = count === 0;
  badge.setAttribute('aria-label', `${count} unread`);
  li.classList.toggle('has-unread', count > 0);
  li.classList.toggle('group', conv.kind === 'group');
  if (conv.id === state.openId) li.setAttribute('aria-current', 'true');
  else li.removeAttribute('aria-current');
}

function renderConversation(opts) {
  const conv = openConv();
  const open = !!conv || !!state.draftTo;
  $('conversation').hidden = !open;
  $('no-conversation').hidden = open;
  document.body.classList.toggle('show-conversation', open);
  if (!open) return;
  renderConversationHeader();
  renderMessages(opts);
  renderTyping();
  renderReadState();
}

function renderConversationHeader() {
  const conv = openConv();
  if (!conv && !state.draftTo) return;
  const title = conv ? convTitle(conv) : state.draftTo;
  $('conversation-title').textContent = title;
  const sub = $('conversation-sub');
  const members = $('members');
  members.replaceChildren();
  const isGroup = !!conv && conv.kind === 'group';
  if (state.leaveArmed && state.leaveArmed !== (conv && conv.id)) disarmLeave();
  if (isGroup) {
    clearTimeout(state.agoTimer);
    sub.replaceChildren(`Group · ${conv.members.length} member${conv.members.length === 1 ? '' : 's'}`);
    for (const name of conv.members) {
      const self = name === state.me;
      members.append(h('li', { class: 'member' },
        self ? null : presenceDot(name),
        h('span', { text: self ? `${name} (you)` : name })));
    }
  } else {
    // One other person: their presence goes in the subtitle, and the
    // member list holds just them.
    const other = conv ? otherMember(conv) : state.draftTo;
    let text = presenceText(other);
    scheduleAgoRefresh(state.presence.get(other) === 'online' ? undefined : state.lastSeen.get(other));
    if (!conv) text = `new conversation · ${text}`;
    sub.replaceChildren(presenceDot(other), h('span', { text }));
    members.append(h('li', { class: 'member' }, presenceDot(other), h('span', { text: other })));
  }
  members.hidden = !isGroup;
  $('group-tools').hidden = !isGroup;
  $('invite-user').disabled = !isGroup;
  $('invite-btn').disabled = !isGroup;
  $('leave-btn').disabled = !isGroup;
}

function messageEl(m) {
  const own = m.sender === state.me;
  const classes = ['message'];
  if (own) classes.push('own');
  if (m.kind === 'payment') classes.push('payment');
  const el = h('li', {
    class: classes.join(' '),
    'data-seq': m.seq,
    'data-sender': m.sender,
    'data-message-id': m.messageId,
    tabindex: 0,
    'aria-expanded': 'false',
  });
  const meta = h('div', { class: 'meta' },
    h('span', { class: 'sender', text: m.sender }),
    h('time', { class: 'time', datetime: m.sentAt, title: new Date(m.sentAt).toLocaleString(), text: formatTime(m.sentAt) }));
  if (m.kind === 'payment') meta.append(h('span', { class: 'pay-badge', text: paymentBadge(m.text) }));
  const text = m.kind === 'payment' ? paymentText(m.text) : m.text;
  el.append(meta, h('div', { class: 'text', text }));
  withDetails(el, m);
  return el;
}

/**
 * A message's details (its ids, to copy for an operator's trace lookup),
 * shown on click, Enter or Space; clicks inside them (selecting, copying)
 * leave them open.
 */
function withDetails(el, m) {
  const trace = h('code', { class: 'trace-id', text: m.traceId || '–' });
  const copy = h('button', { type: 'button', class: 'copy-trace quiet', text: 'Copy', 'aria-label': 'Copy the trace ID' });
  const details = h('dl', { class: 'details', hidden: true },
    h('dt', { text: 'Message ID' }), h('dd', {}, h('code', { text: m.messageId || '–' })),
    h('dt', { text: 'Trace ID' }), h('dd', {}, trace, copy));
  copy.disabled = !m.traceId;
  copy.addEventListener('click', () => copyText(trace, copy));
  details.addEventListener('click', (e) => e.stopPropagation());
  details.addEventListener('keydown', (e) => e.stopPropagation());
  const toggle = () => {
    details.hidden = !details.hidden;
    el.setAttribute('aria-expanded', String(!details.hidden));
  };
  el.addEventListener('click', toggle);
  el.addEventListener('keydown', (e) => {
    if (e.target !== el || (e.key !== 'Enter' && e.key !== ' ')) return;
    e.preventDefault();
    toggle();
  });
  el.append(details);
}

// The clipboard needs a secure context (and may be refused): the text is
// selected in any case, so it can be copied by hand.
function copyText(code, button) {
  const range = document.createRange();
  range.selectNodeContents(code);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
  if (!navigator.clipboard) return;
  navigator.clipboard.writeText(code.textContent).then(
    () => { button.textContent = 'Copied'; },
    () => { button.textContent = 'Selected'; });
}

// The server writes payment messages as "paid 12.50 to <user>" (major
// units); messages stored before it did read "paid 1250 to <user>" (minor
// units). Both are shown in major units, so one amount reads one way.
const PAID_RE = /^paid (\d+)(?:\.(\d{2}))? to (.*)$/s;

function paidMinor(text) {
  const m = PAID_RE.exec(text || '');
  if (!m) return null;
  return { minor: m[2] === undefined ? Number(m[1]) : Number(m[1]) * 100 + Number(m[2]), to: m[3] };
}

function paymentText(text) {
  const p = paidMinor(text);
  return p ? `paid ${formatMoney(p.minor)} to ${p.to}` : text;
}

function paymentBadge(text) {
  const p = paidMinor(text);
  return p ? `Payment · ${formatMoney(p.minor)}` : 'Payment';
}

function pendingEl(entry) {
  let el = state.pendingEls.get(entry.clientMsgId);
  if (!el) {
    el = h('li', { class: 'message own pending', 'data-client-msg-id': entry.clientMsgId },
      h('div', { class: 'meta' },
        h('span', { class: 'sender', text: state.me }),
        h('span', { class: 'time' })),
      h('div', { class: 'text', text: entry.text }),
      h('div', { class: 'pending-actions' }));
    state.pendingEls.set(entry.clientMsgId, el);
  }
  const failed = entry.status === 'failed';
  el.classList.toggle('failed', failed);
  let status = 'waiting for connection';
  if (failed) status = 'not sent';
  else if (isOpen()) status = 'sending…';
  el.querySelector('.time').textContent = status;
  const actions = el.querySelector('.pending-actions');
  actions.hidden = !failed;
  if (failed && !actions.firstChild) {
    const retry = h('button', { type: 'button', class: 'retry-btn quiet', text: 'Retry' });
    retry.addEventListener('click', () => retrySend(entry.clientMsgId));
    const drop = h('button', { type: 'button', class: 'discard-btn quiet', text: 'Discard' });
    drop.addEventListener('click', () => discardSend(entry.clientMsgId));
    actions.append(h('span', { class: 'send-error' }), retry, drop);
  }
  if (failed) actions.firstChild.textContent = entry.error || 'Not sent.';
  return el;
}

function pendingFor(conv) {
  const out = [];
  for (const e of state.outbox.values()) {
    const mine = conv
      ? e.conversationId === conv.id ||
        (!e.conversationId && conv.kind === 'direct' && conv.members.includes(e.to))
      : !e.conversationId && e.to === state.draftTo;
    if (mine) out.push(e);
  }
  return out;
}

function topMarker(conv) {
  const marker = $('messages-top') || h('li', { id: 'messages-top', class: 'messages-top' });
  let text = '';
  if (!conv) text = 'No messages yet.';
  else if (conv.loadingOlder || (!conv.loaded && (conv.loadingLatest || conv.latestTimer))) text = 'Loading messages…';
  else if (!conv.loaded) text = '';
  else if (conv.start <= 1 && conv.messages.size === 0) text = 'No messages yet. Say hello.';
  else if (conv.start <= 1) text = 'Start of the conversation.';
  else text = 'Scroll up for earlier messages.';
  marker.textContent = text;
  return marker;
}

/**
 * Brings #messages in line with the open conversation. Existing nodes are
 * moved, never rebuilt, so prepending an older page or appending a live
 * message touches only what changed. `stick`: 'bottom' scrolls to the end,
 * 'keep' holds the visible messages still while older ones are prepended;
 * by default the view follows new messages only if it was at the end.
 */
function renderMessages({ stick } = {}) {
  const conv = openConv();
  if (!conv && !state.draftTo) return;
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_BOTTOM_PX;
  const prevHeight = list.scrollHeight;
  const prevTop = list.scrollTop;

  const wanted = [topMarker(conv)];
  if (conv) {
    const readUpTo = Math.max(0, ...conv.reads.values());
    let note = 0;
    for (const seq of conv.seqs) {
      while (note < conv.notes.length && conv.notes[note].afterSeq < seq) wanted.push(conv.notes[note++].el);
      let el = conv.els.get(seq);
      if (!el) {
        el = messageEl(conv.messages.get(seq));
        conv.els.set(seq, el);
      }
      if (el.classList.contains('own')) el.classList.toggle('read', seq <= readUpTo);
      wanted.push(el);
    }
    while (note < conv.notes.length) wanted.push(conv.notes[note++].el);
  }
  for (const entry of pendingFor(conv)) wanted.push(pendingEl(entry));

  reconcileList(list, wanted, (el) => el);

  if (stick === 'keep') list.scrollTop = prevTop + (list.scrollHeight - prevHeight);
  else if (stick === 'bottom' || atBottom) list.scrollTop = list.scrollHeight;
}

function renderTyping() {
  const conv = openConv();
  const el = $('typing');
  const names = conv ? [...conv.typing.keys()] : [];
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  el.textContent = text;
  el.hidden = !text;
}

function renderReadState() {
  const conv = openConv();
  const el = $('read-state');
  if (!conv || conv.messages.size === 0) {
    el.textContent = '';
    return;
  }
  const latest = maxSeq(conv);
  const sender = conv.messages.get(latest).sender;
  const readers = [...conv.reads]
    .filter(([name, seq]) => seq >= latest && name !== sender && name !== state.me)
    .map(([name]) => name)
    .sort();
  el.textContent = readers.length ? `Seen by ${readers.join(', ')}` : '';
}

function renderPayments() {
  const ul = $('payments');
  const items = [...state.payments.values()].sort(byPaymentNewest);
  const known = new Map([...ul.children].map((li) => [li.dataset.paymentId, li]));
  reconcileList(ul, items, (p) => {
    const li = known.get(p.paymentId) || paymentItem(p);
    updatePaymentItem(li, p);
    return li;
  });
  $('no-payments').hidden = items.length > 0;
}

function paymentItem(p) {
  return h('li', { 'data-payment-id': p.paymentId, class: 'payment-item' },
    h('span', { class: 'pay-who' }),
    h('span', { class: 'pay-amount' }),
    h('span', { class: 'status' }),
    h('span', { class: 'pay-reason' }));
}

function updatePaymentItem(li, p) {
  const outgoing = p.from === state.me;
  li.querySelector('.pay-who').textContent = outgoing ? `To ${p.to}` : `From ${p.from}`;
  li.querySelector('.pay-amount').textContent = `${outgoing ? '−' : '+'}${formatMoney(p.amount)}`;
  const status = li.querySelector('.status');
  status.textContent = p.status;
  status.dataset.status = p.status;
  li.querySelector('.pay-reason').textContent = p.reason ? `(${p.reason})` : '';
  li.title = p.updatedAt ? `Updated ${new Date(p.updatedAt).toLocaleString()}` : '';
}

/* ---------- wiring ---------- */

function onMessagesScroll() {
  const conv = openConv();
  if (conv && $('messages').scrollTop < NEAR_TOP_PX) loadOlder(conv);
}

function init() {
  $('auth-form').addEventListener('submit', onLogin);
  $('register-btn').addEventListener('click', onRegister);
  $('logout-btn').addEventListener('click', () => logout('', true));
  $('new-direct-form').addEventListener('submit', onNewDirect);
  $('new-group-form').addEventListener('submit', onNewGroup);
  $('invite-form').addEventListener('submit', onInvite);
  $('leave-btn').addEventListener('click', onLeave);
  $('composer').addEventListener('submit', onComposerSubmit);
  $('message-input').addEventListener('input', onComposerInput);
  $('pay-form').addEventListener('submit', onPay);
  $('messages').addEventListener('scroll', onMessagesScroll, { passive: true });
  $('back-btn').addEventListener('click', () => {
    closeConversation();
    renderAll();
  });
  document.addEventListener('visibilitychange', markRead);
  window.addEventListener('online', reconnectNow);
  window.addEventListener('storage', (ev) => {
    // Logged out in another tab: follow it.
    if (ev.key === TOKEN_KEY && !ev.newValue && state.wanted) logout();
  });

  const stored = loadStoredToken();
  if (stored) startApp(stored);
  else showApp(false);
}

init();
