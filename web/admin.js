// Parley admin console. Plain DOM, no library: every piece of server data is
// placed with textContent (never innerHTML), and nothing inline, so the page
// runs under the strict CSP the server sends.
'use strict';

const TOKEN_KEY = 'parley.admin.token';
const VIEWS_EVERY_MS = 2000;
const CHARTS_EVERY_MS = 1000;
const CHART_SECONDS = 120;
// A request that hangs would otherwise hold the in-flight flag forever and
// stop every later refresh; abort it and count it as "no answer".
const REQUEST_TIMEOUT_MS = 8000;
const CONFIRM_MS = 3000;
const SVG_NS = 'http://www.w3.org/2000/svg';

// Units as each series is recorded (src/series.rs): the counts are per
// second, the latency is one p99 in milliseconds per second.
const CHARTS = [
  { name: 'messages_committed', kind: 'count', unit: ' messages/s' },
  { name: 'delivery_p99_ms', kind: 'latency', unit: ' ms' },
  { name: 'errors', kind: 'count', unit: ' errors/s' },
  { name: 'actor_restarts', kind: 'count', unit: ' restarts/s' },
];

const state = {
  token: null,
  timers: [],
  views: { inFlight: false, again: false, down: false },
  charts: { inFlight: false, down: false, available: null },
  lastOk: null,
  faultsEnabled: null,
  // Bumped at logout so answers to requests of a previous login are ignored.
  epoch: 0,
};

const $ = (sel, root = document) => root.querySelector(sel);

// ---------------------------------------------------------------- helpers

/** Creates an element with a class and optional text. */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

function clock(date) {
  return `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
}

/** A time the operator can read at a glance; the full date goes in a title. */
function shortTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(d) : `${d.toISOString().slice(0, 10)} ${clock(d)}`;
}

function ago(iso) {
  const ms = Date.now() - new Date(iso).getTime();
  return Number.isFinite(ms) ? duration(Math.max(0, ms)) : '';
}

/** 1234 ms → "1.2 s", 90000 → "1 m 30 s". */
function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.floor(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} m`;
}

function micros(us) {
  if (us < 1000) return `${Math.round(us)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(us < 1e4 ? 2 : 1)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

/** Rounds for display; the alerts actor can answer -0.0. */
function num(v, digits = 2) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const r = Number(Number(v).toFixed(digits));
  return String(Object.is(r, -0) ? 0 : r);
}

/**
 * Minor units (cents, SPEC) as major units: 1250 → "12.50", -5 → "-0.05".
 * The chat page formats amounts the same way, so both pages agree.
 */
function formatMoney(minor) {
  if (typeof minor !== 'number' || !Number.isFinite(minor)) return '–';
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}`;
}

function shortId(id) {
  const s = String(id);
  return s.length > 13 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
}

/** Sets a cell's text and a label for the stacked phone layout. */
function cell(tag, label, text, className) {
  const c = el(tag, className, text);
  c.dataset.label = label;
  return c;
}

/**
 * Keeps one element per item, keyed, and updates it in place, so focus,
 * an open <details> or a pending inline confirm survive the 2-second refresh.
 */
function syncKeyed(container, items, keyOf, create, update) {
  if (!container.keyed) container.keyed = new Map();
  const rows = container.keyed;
  const wanted = new Set();
  let prev = null;
  for (const item of items) {
    const key = String(keyOf(item));
    wanted.add(key);
    let row = rows.get(key);
    if (!row) {
      row = create(item, key);
      rows.set(key, row);
    }
    update(row, item);
    const next = prev ? prev.nextSibling : container.firstChild;
    if (next !== row) container.insertBefore(row, next);
    prev = row;
  }
  for (const [key, row] of rows) {
    if (!wanted.has(key)) {
      row.remove();
      rows.delete(key);
    }
  }
}

/** Replaces a container's children, putting focus back where it was. */
function replaceKeepingFocus(container, build) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : null;
  clear(container);
  build(container);
  if (key) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

function traceButton(traceId, focusKey) {
  const b = el('button', 'link trace-link', shortId(traceId));
  b.type = 'button';
  b.title = traceId;
  b.dataset.trace = traceId;
  b.dataset.focusKey = focusKey || `trace-${traceId}`;
  b.setAttribute('aria-label', `Look up trace ${traceId}`);
  return b;
}

/** What a confirming button goes back to (see confirmClick). */
function rememberIdle(btn) {
  btn.dataset.idleText = btn.textContent;
  btn.dataset.idleLabel = btn.getAttribute('aria-label') || '';
}

/**
 * window.confirm would block (and headless tests cannot answer it), so a
 * button with a heavy effect asks itself: a first click arms it for a few
 * seconds, a second one runs `act`. `ask` is its label while armed.
 */
function confirmClick(btn, ask, act) {
  if (btn.dataset.confirming !== 'yes') {
    btn.dataset.confirming = 'yes';
    btn.textContent = 'Confirm?';
    btn.classList.add('confirming');
    btn.setAttribute('aria-label', ask);
    btn.confirmTimer = setTimeout(() => disarm(btn), CONFIRM_MS);
    return;
  }
  clearTimeout(btn.confirmTimer);
  act();
}

function disarm(btn) {
  clearTimeout(btn.confirmTimer);
  btn.dataset.confirming = '';
  btn.textContent = btn.dataset.idleText;
  btn.classList.remove('confirming');
  btn.disabled = false;
  btn.setAttribute('aria-label', btn.dataset.idleLabel);
}

// -------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  /** The server did not answer at all (or only a gateway did). */
  get noAnswer() {
    return this.status === 0 || this.status === 502 || this.status === 504;
  }
}

async function request(method, path, body, token) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), REQUEST_TIMEOUT_MS);
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      signal: ctl.signal,
    });
  } catch (e) {
    throw new ApiError(0, 'no_answer', 'the server did not answer');
  } finally {
    clearTimeout(timer);
  }
  let data = null;
  try {
    data = await res.json();
  } catch (e) {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(res.status, err ? err.code : 'http', err ? err.message : `HTTP ${res.status}`);
  }
  return { data, date: res.headers.get('date') };
}

/**
 * An admin call. 401 anywhere means the token is gone: back to the login
 * form. 403 "admin rights required" means the account is not (or no longer)
 * an admin; other 403s (fault injection disabled) are the caller's to show.
 */
async function api(method, path, body) {
  const epoch = state.epoch;
  try {
    return await request(method, path, body, state.token);
  } catch (e) {
    if (epoch === state.epoch && state.token) {
      if (e.status === 401) showLogin('Your session has ended; sign in again.');
      else if (e.status === 403 && /admin rights/i.test(e.message)) showLogin('this account is not an admin');
    }
    throw e;
  }
}

// ------------------------------------------------------------ login / out

function showLogin(message) {
  stopTimers();
  state.token = null;
  state.epoch += 1;
  sessionStorage.removeItem(TOKEN_KEY);
  $('#console').hidden = true;
  $('#topbar-info').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message || '';
  resetConsole();
  $('#admin-password').value = '';
  $('#admin-username').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const username = $('#admin-username').value.trim();
  const password = $('#admin-password').value;
  const errorBox = $('#login-error');
  if (!username || !password) {
    errorBox.textContent = 'Enter a username and a password.';
    return;
  }
  const btn = $('#admin-login-btn');
  btn.disabled = true;
  errorBox.textContent = '';
  try {
    const { data } = await request('POST', '/api/login', { username, password });
    await enter(data.token);
  } catch (e) {
    errorBox.textContent = e.status === 401 ? 'Wrong username or password.' : `Could not sign in: ${e.message}`;
  } finally {
    btn.disabled = false;
  }
}

/** Checks the token belongs to an admin, then opens the console. */
async function enter(token) {
  const { data: me } = await request('GET', '/api/me', undefined, token);
  if (!me.admin) {
    showLogin('this account is not an admin');
    return;
  }
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $('#login').hidden = true;
  $('#console').hidden = false;
  $('#topbar-info').hidden = false;
  $('#login-error').textContent = '';
  startTimers();
}

async function resume() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    showLogin('');
    return;
  }
  try {
    await enter(token);
  } catch (e) {
    showLogin(e.status === 401 ? '' : `Could not reach the server: ${e.message}`);
  }
}

function resetConsole() {
  for (const id of ['#breaker-rows', '#session-rows', '#conversation-rows', '#payment-rows', '#alert-list']) {
    const c = $(id);
    clear(c);
    c.keyed = null;
  }
  clear($('#tree'));
  clear($('#restarts-summary'));
  clear($('#trace-timeline'));
  lastTreeSig = '';
  state.lastOk = null;
  state.views.down = false;
  state.charts.down = false;
  state.charts.available = null;
  state.faultsEnabled = null;
  for (const c of CHARTS) {
    const fig = chartFigure(c.name);
    clear($('svg', fig));
    $('.chart-now', fig).textContent = '';
    fig.chartValues = null;
    fig.pointed = null;
    $('.chart-readout', fig).textContent = '';
  }
  $('#node').textContent = '…';
  setRefreshStatus();
}

// ---------------------------------------------------------------- refresh

function visible() {
  return document.visibilityState === 'visible';
}

function startTimers() {
  stopTimers();
  state.timers.push(setInterval(() => visible() && refreshViews(false), VIEWS_EVERY_MS));
  state.timers.push(setInterval(() => visible() && refreshCharts(), CHARTS_EVERY_MS));
  onVisibility();
}

function stopTimers() {
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function onVisibility() {
  // Catch up at once when the tab comes back instead of waiting a tick.
  if (visible() && state.token) {
    refreshViews(false);
    refreshCharts();
  }
}

const VIEWS = [
  { section: 'supervision', path: () => '/admin/supervision', render: renderSupervision },
  { section: 'breakers', path: () => '/admin/breakers', render: renderBreakers },
  { section: 'alerts', path: () => '/admin/alerts', render: renderAlerts },
  { section: 'sessions', path: () => '/admin/sessions', render: renderSessions },
  { section: 'conversations', path: () => '/admin/conversations', render: renderConversations },
  {
    section: 'payments',
    path: () => {
      const s = $('#payments-status').value;
      return s ? `/admin/payments?status=${encodeURIComponent(s)}` : '/admin/payments';
    },
    render: renderPayments,
  },
];

/**
 * One refresh of every view, requests in parallel. A tick that finds the
 * previous refresh still running is skipped; an operator's action asks for
 * one more refresh (`queue`) so its effect shows as soon as possible.
 */
async function refreshViews(queue) {
  const v = state.views;
  if (v.inFlight) {
    if (queue) v.again = true;
    return;
  }
  v.inFlight = true;
  const epoch = state.epoch;
  try {
    const tasks = VIEWS.map((view) => refreshView(view, epoch));
    if (state.faultsEnabled === null) tasks.push(refreshFaultsStatus(epoch));
    const results = await Promise.all(tasks);
    if (epoch !== state.epoch) return;
    v.down = results.some((r) => r === 'no_answer');
    if (!v.down) state.lastOk = new Date();
    setRefreshStatus();
  } finally {
    v.inFlight = false;
    if (v.again && epoch === state.epoch) {
      v.again = false;
      refreshViews(false);
    }
  }
}

/** Fetches and renders one section; a failure keeps its last data, marked stale. */
async function refreshView(view, epoch) {
  const section = document.getElementById(view.section);
  const errBox = $('.section-error', section);
  const path = view.path();
  try {
    const { data } = await api('GET', path);
    // The payments filter may have changed while this was in flight.
    if (epoch !== state.epoch || path !== view.path()) return 'ignored';
    view.render(data);
    section.classList.remove('stale');
    errBox.textContent = '';
    return 'ok';
  } catch (e) {
    if (epoch !== state.epoch) return 'ignored';
    section.classList.add('stale');
    errBox.textContent = e.noAnswer
      ? 'No answer from the server; showing the last data received.'
      : `Could not refresh: ${e.message}`;
    return e.noAnswer ? 'no_answer' : 'error';
  }
}

function setRefreshStatus() {
  const box = $('#refresh-status');
  const stale = state.views.down || state.charts.down;
  box.dataset.state = stale ? 'stale' : 'ok';
  document.body.classList.toggle('is-stale', stale);
  const when = state.lastOk ? clock(state.lastOk) : null;
  if (stale) {
    box.textContent = when ? `No answer from the server · data from ${when}` : 'No answer from the server';
  } else {
    box.textContent = when ? `Updated ${when}` : 'Loading…';
  }
}

// ------------------------------------------------------------ supervision

let lastTreeSig = '';

function renderSupervision(data) {
  $('#node').textContent = data.node || '?';
  // The tree only changes when actors come, go or fail; rebuilding it only
  // then keeps the page still and a focused trace button focused.
  const sig = JSON.stringify([data.tree, data.restarts]);
  if (sig === lastTreeSig) return;
  lastTreeSig = sig;
  replaceKeepingFocus($('#tree'), (box) => {
    const ul = el('ul', 'tree-root');
    ul.appendChild(treeNode(data.tree));
    box.appendChild(ul);
  });
  renderRestartSummary(data.restarts || []);
}

function treeNode(node) {
  const li = el('li', `tree-node status-${node.status}`);
  li.dataset.node = node.name;
  const isSup = Array.isArray(node.children);
  li.appendChild(el('span', 'node-name', node.name));
  if (node.label) li.appendChild(el('span', 'node-user', node.label));
  li.appendChild(el('span', 'node-kind', node.kind));
  if (node.strategy) li.appendChild(el('span', 'node-strategy', node.strategy));
  const status = el('span', `node-status badge badge-${node.status}`, node.status);
  li.appendChild(status);
  const restarts = el('span', 'node-restarts', node.restarts);
  restarts.title = `${node.restarts} restart${node.restarts === 1 ? '' : 's'}`;
  li.appendChild(restarts);
  if (isSup && node.maxRestarts !== undefined) {
    li.appendChild(el('span', 'node-limit', `max ${node.maxRestarts} in ${num(node.windowSecs, 1)} s`));
  }
  if (node.lastFailure) li.appendChild(failureLine(node.name, node.lastFailure));
  if (isSup) {
    const kids = el('ul', 'tree-children');
    node.children.forEach((c) => kids.appendChild(treeNode(c)));
    const hidden = (node.childCount || 0) - node.children.length;
    if (hidden > 0) kids.appendChild(el('li', 'tree-more', `+ ${hidden} more not listed`));
    if (node.children.length || hidden > 0) li.appendChild(kids);
  }
  return li;
}

function failureLine(name, f) {
  const box = el('div', 'node-failure');
  box.appendChild(el('span', 'failure-label', 'last failure'));
  box.appendChild(el('span', 'failure-reason', f.reason));
  if (f.at) {
    const t = el('time', 'failure-at', shortTime(f.at));
    t.dateTime = f.at;
    t.title = f.at;
    box.appendChild(t);
  }
  if (f.location) box.appendChild(el('code', 'failure-location', f.location));
  if (f.traceId) box.appendChild(traceButton(f.traceId, `fail-${name}`));
  return box;
}

function renderRestartSummary(restarts) {
  const box = $('#restarts-summary');
  clear(box);
  if (!restarts.length) {
    box.appendChild(el('p', 'empty', 'No restart since the process started.'));
    return;
  }
  const ul = el('ul', 'restart-summary');
  for (const r of restarts) {
    const li = el('li');
    li.appendChild(el('strong', null, r.count));
    li.appendChild(document.createTextNode(` ${r.kind} · ${r.reason}`));
    ul.appendChild(li);
  }
  box.appendChild(ul);
}

// ----------------------------------------------------------------- charts

function chartFigure(name) {
  return document.querySelector(`#charts figure[data-series="${name}"]`);
}

async function refreshCharts() {
  const c = state.charts;
  if (c.inFlight) return;
  c.inFlight = true;
  const epoch = state.epoch;
  try {
    const listed = await seriesAvailable(epoch);
    if (epoch !== state.epoch) return;
    const results = await Promise.all(CHARTS.map((chart) => {
      if (listed === 'no_answer') return 'no_answer';
      if (listed && !listed.has(chart.name)) {
        drawNoData(chartFigure(chart.name));
        return 'ok';
      }
      return refreshChart(chart, epoch);
    }));
    if (epoch !== state.epoch) return;
    c.down = results.some((r) => r === 'no_answer');
    setRefreshStatus();
  } finally {
    c.inFlight = false;
  }
}

/**
 * The names of the series the server has. While one of ours is missing (a
 * server without delivery_p99_ms yet) the small list is asked again each
 * tick instead of the series itself: asking for a missing series would log
 * a 404 in the console every second and count as an error answer in the
 * very `errors` series we chart.
 */
async function seriesAvailable(epoch) {
  const c = state.charts;
  if (c.available && CHARTS.every((ch) => c.available.has(ch.name))) return c.available;
  try {
    const { data } = await api('GET', '/admin/metrics/series');
    if (epoch !== state.epoch) return null;
    c.available = new Set((data.series || []).map((x) => x.name));
    return c.available;
  } catch (e) {
    // Without the list, ask for each series and let a 404 say "no data".
    return e.noAnswer ? 'no_answer' : null;
  }
}

async function refreshChart(chart, epoch) {
  const fig = chartFigure(chart.name);
  try {
    const { data, date } = await api('GET', `/admin/metrics/series?name=${chart.name}&seconds=${CHART_SECONDS}`);
    if (epoch !== state.epoch) return 'ignored';
    fig.classList.remove('stale');
    drawChart(fig, chart, data.points || [], serverSecond(date, data.points || []));
    return 'ok';
  } catch (e) {
    if (epoch !== state.epoch) return 'ignored';
    if (e.status === 404) {
      // The series may not exist on this server yet: say so, keep asking.
      if (state.charts.available) state.charts.available.delete(chart.name);
      fig.classList.remove('stale');
      drawNoData(fig);
      return 'ok';
    }
    fig.classList.add('stale');
    return e.noAnswer ? 'no_answer' : 'error';
  }
}

/**
 * The x axis ends at the server's current second, not the browser's: the
 * Date header is the server clock (a second's precision is what we need).
 */
function serverSecond(dateHeader, points) {
  let now = Math.floor((dateHeader ? Date.parse(dateHeader) : Date.now()) / 1000);
  if (!Number.isFinite(now)) now = Math.floor(Date.now() / 1000);
  for (const p of points) if (p.t > now) now = p.t;
  return now;
}

/** One value per second of the window: 0 for an empty second of a count, a gap (null) for latency. */
function fillSeconds(chart, points, now) {
  const start = now - CHART_SECONDS + 1;
  const values = new Array(CHART_SECONDS).fill(chart.kind === 'count' ? 0 : null);
  for (const p of points) {
    const i = p.t - start;
    if (i < 0 || i >= CHART_SECONDS) continue;
    // Counts record 1.0 per event, so the sum is the count; for the p99
    // series each second holds one sample, its max.
    values[i] = chart.kind === 'count' ? p.sum : p.max;
  }
  return values;
}

/** 0.7 → 1, 13 → 20, 230 → 250: a round top for the y axis. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * exp) return m * exp;
  return 10 * exp;
}

const CH = { w: 360, h: 140, left: 34, right: 6, top: 10, bottom: 20 };

function chartFrame(node, top) {
  const plotH = CH.h - CH.top - CH.bottom;
  const x0 = CH.left;
  const x1 = CH.w - CH.right;
  const y0 = CH.top + plotH;
  node.setAttribute('viewBox', `0 0 ${CH.w} ${CH.h}`);
  node.appendChild(svg('line', { x1: x0, y1: CH.top, x2: x1, y2: CH.top, class: 'grid-line' }));
  node.appendChild(svg('line', { x1: x0, y1: CH.top + plotH / 2, x2: x1, y2: CH.top + plotH / 2, class: 'grid-line' }));
  node.appendChild(svg('line', { x1: x0, y1: y0, x2: x1, y2: y0, class: 'axis' }));
  node.appendChild(svg('line', { x1: x0, y1: CH.top, x2: x0, y2: y0, class: 'axis' }));
  const maxLabel = svg('text', { x: x0 - 4, y: CH.top + 4, class: 'tick tick-y' });
  maxLabel.textContent = top;
  node.appendChild(maxLabel);
  const zero = svg('text', { x: x0 - 4, y: y0, class: 'tick tick-y' });
  zero.textContent = '0';
  node.appendChild(zero);
  const left = svg('text', { x: x0, y: CH.h - 5, class: 'tick tick-start' });
  left.textContent = `−${CHART_SECONDS} s`;
  node.appendChild(left);
  const right = svg('text', { x: x1, y: CH.h - 5, class: 'tick tick-end' });
  right.textContent = 'now';
  node.appendChild(right);
  return { x0, x1, y0, plotH, step: (x1 - x0) / CHART_SECONDS };
}

function drawChart(fig, chart, points, now) {
  const values = fillSeconds(chart, points, now);
  fig.chartValues = values;
  fig.chartStart = now - CHART_SECONDS + 1;
  const present = values.filter((v) => v !== null);
  const top = niceMax(present.length ? Math.max(...present) : 0);
  const node = $('svg', fig);
  clear(node);
  const f = chartFrame(node, num(top));
  const y = (v) => f.y0 - (v / top) * f.plotH;
  if (chart.kind === 'count') drawBars(node, f, values, y);
  else drawLine(node, f, values, y);
  // The current second is still filling up; the one before is the last
  // complete reading.
  const last = values[CHART_SECONDS - 2];
  const caption = $('.chart-now', fig);
  if (chart.kind === 'count') caption.textContent = `now ${num(last)}${chart.unit} · max ${num(Math.max(...values))}`;
  else caption.textContent = last === null ? 'now – · no delivery in the last second' : `now ${num(last)}${chart.unit}`;
  node.setAttribute('aria-label', `${$('figcaption', fig).firstChild.textContent.trim()}: ${caption.textContent}`);
  showPointed(fig, chart);
}

function drawBars(node, f, values, y) {
  const g = svg('g', { class: 'bars' });
  const w = Math.max(f.step - 0.6, 0.8);
  values.forEach((v, i) => {
    if (!v) return;
    const top = y(v);
    g.appendChild(svg('rect', { x: (f.x0 + i * f.step).toFixed(2), y: top.toFixed(2), width: w.toFixed(2), height: Math.max(f.y0 - top, 1).toFixed(2) }));
  });
  node.appendChild(g);
}

function drawLine(node, f, values, y) {
  let d = '';
  let penDown = false;
  const dots = svg('g', { class: 'dots' });
  values.forEach((v, i) => {
    if (v === null) {
      penDown = false;
      return;
    }
    const x = (f.x0 + (i + 0.5) * f.step).toFixed(2);
    const yy = y(v).toFixed(2);
    d += `${penDown ? 'L' : 'M'}${x} ${yy} `;
    penDown = true;
    // A lone second between gaps would be invisible as a line.
    dots.appendChild(svg('circle', { cx: x, cy: yy, r: 1.6 }));
  });
  if (d) node.appendChild(svg('path', { d: d.trim(), class: 'line' }));
  node.appendChild(dots);
}

function drawNoData(fig) {
  const node = $('svg', fig);
  clear(node);
  const f = chartFrame(node, '–');
  const t = svg('text', { x: (f.x0 + f.x1) / 2, y: CH.top + f.plotH / 2 + 4, class: 'no-data' });
  t.textContent = 'no data';
  node.appendChild(t);
  $('.chart-now', fig).textContent = 'no data (series not available)';
  fig.chartValues = null;
  showPointed(fig, null);
}

// ------------------------------------------------------- chart read-outs

/**
 * One second of a chart can be pointed at: by a mouse or pen, by a finger
 * (a tap, or dragging sideways), or with the arrow keys once the chart has
 * focus. The read-out line under it gives that second's clock time and
 * value with its unit; the pointed position stays while the chart redraws.
 */
function wireChart(chart) {
  const fig = chartFigure(chart.name);
  const node = $('svg', fig);
  fig.pointed = null;
  const second = (ev) => {
    const r = node.getBoundingClientRect();
    if (!r.width) return null;
    const x = ((ev.clientX - r.left) / r.width) * CH.w;
    const step = (CH.w - CH.left - CH.right) / CHART_SECONDS;
    return Math.min(CHART_SECONDS - 1, Math.max(0, Math.floor((x - CH.left) / step)));
  };
  const point = (i) => {
    fig.pointed = i;
    showPointed(fig, chart);
  };
  node.addEventListener('pointermove', (ev) => point(second(ev)));
  node.addEventListener('pointerdown', (ev) => point(second(ev)));
  // A finger lifted leaves its reading on screen until focus moves away.
  node.addEventListener('pointerleave', (ev) => ev.pointerType === 'mouse' && point(null));
  node.addEventListener('focus', () => fig.pointed === null && point(CHART_SECONDS - 2));
  node.addEventListener('blur', () => point(null));
  node.addEventListener('keydown', (ev) => {
    const i = fig.pointed === null ? CHART_SECONDS - 2 : fig.pointed;
    const to = {
      ArrowLeft: i - 1,
      ArrowRight: i + 1,
      PageUp: i - 10,
      PageDown: i + 10,
      Home: 0,
      End: CHART_SECONDS - 1,
    }[ev.key];
    if (ev.key === 'Escape') point(null);
    else if (to !== undefined) point(Math.min(CHART_SECONDS - 1, Math.max(0, to)));
    else return;
    ev.preventDefault();
  });
}

/** Draws the cursor and the read-out for the pointed second, if any. */
function showPointed(fig, chart) {
  const node = $('svg', fig);
  const old = $('.cursor', node);
  if (old) old.remove();
  const out = $('.chart-readout', fig);
  const i = fig.pointed;
  if (i === null || i === undefined) {
    out.textContent = '';
    return;
  }
  if (!chart || !fig.chartValues) {
    out.textContent = 'no data';
    return;
  }
  const step = (CH.w - CH.left - CH.right) / CHART_SECONDS;
  const x = (CH.left + (i + 0.5) * step).toFixed(2);
  node.appendChild(svg('line', { x1: x, y1: CH.top, x2: x, y2: CH.h - CH.bottom, class: 'cursor' }));
  const v = fig.chartValues[i];
  const value = v === null ? 'no delivery' : `${num(v)}${chart.unit}`;
  const partial = i === CHART_SECONDS - 1 ? ' (this second, still counting)' : '';
  out.textContent = `${clock(new Date((fig.chartStart + i) * 1000))} · ${value}${partial}`;
}

// --------------------------------------------------------------- breakers

function renderBreakers(data) {
  syncKeyed($('#breaker-rows'), data.items || [], (b) => b.name, createBreakerRow, updateBreakerRow);
}

function createBreakerRow(b) {
  const tr = el('tr');
  tr.dataset.breaker = b.name;
  tr.appendChild(cell('th', 'Breaker', b.name, 'breaker-name')).scope = 'row';
  const stateCell = cell('td', 'State');
  stateCell.appendChild(el('span', 'breaker-state badge'));
  stateCell.appendChild(el('span', 'breaker-wait'));
  tr.appendChild(stateCell);
  tr.appendChild(cell('td', 'Window', null, 'breaker-window span-all'));
  const trCell = cell('td', 'Transitions', null, 'breaker-transitions span-all');
  tr.appendChild(trCell);
  const actions = cell('td', 'Force', null, 'breaker-actions span-all');
  for (const [target, label] of [['forced_open', 'Open'], ['closed', 'Close'], ['disabled', 'Disable']]) {
    const btn = el('button', 'btn-small', label);
    btn.type = 'button';
    btn.dataset.force = target;
    btn.dataset.focusKey = `${b.name}-${target}`;
    const what = `breaker ${b.name} ${target.replace('_', ' ')}`;
    btn.setAttribute('aria-label', `Force ${what}`);
    rememberIdle(btn);
    btn.addEventListener('click', () => confirmClick(btn, `Confirm forcing ${what}`, () => forceBreaker(b.name, target, btn)));
    actions.appendChild(btn);
  }
  tr.appendChild(actions);
  return tr;
}

function updateBreakerRow(tr, b) {
  const s = b.status;
  const stateEl = $('.breaker-state', tr);
  const st = s ? s.state : 'no answer';
  stateEl.textContent = st;
  stateEl.className = `breaker-state badge badge-${s ? s.state : 'unknown'}`;
  $('.breaker-wait', tr).textContent =
    s && s.openRemainingMs !== null && s.openRemainingMs !== undefined ? ` probe in ${duration(s.openRemainingMs)}` : '';
  for (const btn of tr.querySelectorAll('button[data-force]')) {
    btn.classList.toggle('current', !!s && btn.dataset.force === s.state);
  }
  const win = $('.breaker-window', tr);
  clear(win);
  if (s) {
    const dl = el('dl', 'figures');
    const figs = [
      ['calls', s.calls],
      ['failures', s.failures],
      ['failure rate', `${num(s.failureRate, 1)}%`],
      ['slow', s.slowCalls],
      ['slow rate', `${num(s.slowCallRate, 1)}%`],
      ['rejected', s.rejected],
      ['trips', s.trips],
    ];
    for (const [k, v] of figs) {
      if (v === undefined) continue;
      const pair = el('div');
      pair.appendChild(el('dt', null, k));
      pair.appendChild(el('dd', null, v));
      dl.appendChild(pair);
    }
    win.appendChild(dl);
  }
  const trs = $('.breaker-transitions', tr);
  clear(trs);
  const list = s && s.transitions ? s.transitions.slice(-4).reverse() : [];
  if (!list.length) {
    trs.appendChild(el('span', 'empty', 'none'));
  } else {
    const ul = el('ul', 'transitions');
    for (const t of list) {
      const li = el('li');
      li.appendChild(el('span', 'transition-states', `${t.from} → ${t.to}`));
      li.appendChild(transitionTime(t));
      li.appendChild(el('span', 'transition-reason', t.reason));
      ul.appendChild(li);
    }
    trs.appendChild(ul);
    if (s.transitions.length > list.length) trs.appendChild(el('span', 'note', `${s.transitions.length - list.length} older`));
  }
}

/** A transition's clock time, the full timestamp in its title. */
function transitionTime(t) {
  const d = new Date(t.at);
  if (!t.at || Number.isNaN(d.getTime())) {
    // A server that does not send `at` only says how long after the breaker started.
    const rel = el('span', 'transition-at', ` at t+${duration(t.atMs)}`);
    rel.title = 'time since this breaker (actor incarnation) started';
    return rel;
  }
  const at = el('time', 'transition-at', ` at ${shortTime(t.at)}`);
  at.dateTime = t.at;
  at.title = `${d.toLocaleString()} (${t.at})`;
  return at;
}

async function forceBreaker(name, target, btn) {
  const section = $('#breakers');
  const errBox = $('.section-error', section);
  btn.disabled = true;
  btn.textContent = 'Forcing…';
  btn.classList.remove('confirming');
  try {
    const { data } = await api('POST', `/admin/breakers/${encodeURIComponent(name)}`, { state: target });
    const row = $('#breaker-rows').keyed && $('#breaker-rows').keyed.get(name);
    if (row && data) updateBreakerRow(row, data);
    errBox.textContent = '';
  } catch (e) {
    errBox.textContent = `Could not force ${name} to ${target}: ${e.message}`;
  } finally {
    disarm(btn);
    refreshViews(true);
  }
}

// ----------------------------------------------------------------- alerts

function renderAlerts(data) {
  syncKeyed($('#alert-list'), data.items || [], (a) => a.name, createAlert, updateAlert);
}

function ruleText(r) {
  if (!r) return '';
  const series = r.ratioOf ? `${r.series}/${r.ratioOf}` : r.series;
  const hold = r.forSecs ? ` for ${r.forSecs} s` : '';
  return `${r.stat}(${series}) over ${r.windowSecs} s ${r.above ? '>' : '<'} ${num(r.threshold)}${hold}`;
}

function createAlert(a) {
  const li = el('li', 'alert');
  li.dataset.alert = a.name;
  const head = el('div', 'alert-head');
  head.appendChild(el('span', 'alert-name', a.name));
  head.appendChild(el('span', 'alert-severity'));
  head.appendChild(el('span', 'alert-state badge'));
  head.appendChild(el('span', 'alert-value'));
  li.appendChild(head);
  li.appendChild(el('div', 'alert-rule'));
  const details = el('details', 'alert-history');
  details.appendChild(el('summary'));
  details.appendChild(el('ol', 'history'));
  li.appendChild(details);
  return li;
}

function updateAlert(li, a) {
  const st = $('.alert-state', li);
  st.textContent = a.state;
  st.className = `alert-state badge badge-${a.state}`;
  li.className = `alert alert-${a.state}`;
  const sev = $('.alert-severity', li);
  sev.textContent = a.rule ? a.rule.severity : '';
  sev.className = `alert-severity sev-${a.rule ? a.rule.severity : 'none'}`;
  $('.alert-value', li).textContent = `value ${num(a.value)}`;
  $('.alert-rule', li).textContent = ruleText(a.rule);
  const history = a.history || [];
  $('summary', li).textContent = history.length ? `History (${history.length})` : 'History (none yet)';
  const sig = JSON.stringify(history);
  const ol = $('ol.history', li);
  if (ol.dataset.sig === sig) return;
  ol.dataset.sig = sig;
  clear(ol);
  for (const h of history.slice().reverse()) {
    const item = el('li');
    const t = el('time', null, shortTime(h.at * 1000));
    t.dateTime = new Date(h.at * 1000).toISOString();
    item.appendChild(t);
    item.appendChild(el('span', `history-change to-${h.to}`, ` ${h.from} → ${h.to}`));
    item.appendChild(el('span', 'history-value', ` (value ${num(h.value)})`));
    ol.appendChild(item);
  }
}

// --------------------------------------------------------------- sessions

function renderSessions(data) {
  const items = (data.items || []).slice().sort((a, b) => String(a.since).localeCompare(String(b.since)));
  syncKeyed($('#session-rows'), items, (s) => s.sessionId, createSessionRow, updateSessionRow);
  $('#sessions-count').textContent = `(${data.total})`;
  $('#sessions-empty').hidden = data.total > 0;
  const more = $('#sessions-more');
  more.hidden = !(data.total > items.length);
  more.textContent = `${data.total} sessions connected; ${items.length} listed.`;
  updateTargetHints();
}

function createSessionRow(s) {
  const tr = el('tr');
  tr.dataset.sessionId = s.sessionId;
  const user = cell('td', 'User', null, 'session-user');
  user.appendChild(el('strong', null, s.username));
  const id = el('span', 'id', shortId(s.sessionId));
  id.title = s.sessionId;
  user.appendChild(id);
  tr.appendChild(user);
  tr.appendChild(cell('td', 'Node', s.node, 'session-node'));
  tr.appendChild(cell('td', 'Since', null, 'session-since'));
  tr.appendChild(cell('td', 'Queued', null, 'num session-queued'));
  const act = cell('td', 'Actions', null, 'session-actions');
  const btn = el('button', 'btn-small btn-danger-quiet disconnect', 'Disconnect');
  btn.type = 'button';
  btn.dataset.focusKey = `disc-${s.sessionId}`;
  btn.setAttribute('aria-label', `Disconnect ${s.username}'s session ${s.sessionId}`);
  rememberIdle(btn);
  btn.addEventListener('click', () => onDisconnectClick(btn, s));
  act.appendChild(btn);
  tr.appendChild(act);
  return tr;
}

function updateSessionRow(tr, s) {
  const since = $('.session-since', tr);
  since.textContent = `${shortTime(s.since)} (${ago(s.since)})`;
  since.title = s.since;
  $('.session-queued', tr).textContent = s.queuedFrames;
}

function onDisconnectClick(btn, s) {
  confirmClick(btn, `Confirm disconnecting ${s.username}'s session ${s.sessionId}`, () => disconnect(btn, s));
}

async function disconnect(btn, s) {
  const errBox = $('.section-error', $('#sessions'));
  btn.disabled = true;
  btn.textContent = 'Closing…';
  btn.classList.remove('confirming');
  try {
    await api('DELETE', `/admin/sessions/${encodeURIComponent(s.sessionId)}`);
    errBox.textContent = '';
  } catch (e) {
    errBox.textContent = `Could not disconnect ${s.username}: ${e.message}`;
    disarm(btn);
  }
  refreshViews(true);
}

// ---------------------------------------------------------- conversations

function renderConversations(data) {
  const items = (data.items || []).slice().sort((a, b) => String(a.conversationId).localeCompare(String(b.conversationId)));
  syncKeyed($('#conversation-rows'), items, (c) => c.conversationId, createConversationRow, updateConversationRow);
  $('#conversations-count').textContent = `(${data.active} active)`;
  $('#conversations-empty').hidden = items.length > 0;
  updateTargetHints();
}

function createConversationRow(c) {
  const tr = el('tr');
  tr.dataset.conversationId = c.conversationId;
  const id = cell('td', 'Conversation', null, 'conv-id');
  id.appendChild(el('strong', 'conv-name'));
  const code = el('span', 'id', shortId(c.conversationId));
  code.title = c.conversationId;
  id.appendChild(code);
  id.appendChild(el('span', 'conv-kind'));
  tr.appendChild(id);
  tr.appendChild(cell('td', 'State', null, 'conv-state'));
  tr.appendChild(cell('td', 'Online', null, 'conv-online'));
  tr.appendChild(cell('td', 'Last seq', null, 'num conv-seq'));
  tr.appendChild(cell('td', 'In flight', null, 'num conv-inflight'));
  tr.appendChild(cell('td', 'Idle', null, 'conv-idle'));
  return tr;
}

function updateConversationRow(tr, c) {
  $('.conv-kind', tr).textContent = c.kind ? ` ${c.kind}` : '';
  // A direct conversation's stored name is "alice,bob".
  const name = typeof c.name === 'string' ? c.name : '';
  $('.conv-name', tr).textContent = c.kind === 'direct' ? name.split(',').join(' · ') : name;
  $('.conv-state', tr).textContent = c.state;
  const members = c.members || [];
  const online = c.membersOnline || [];
  const on = $('.conv-online', tr);
  on.textContent = `${online.length}/${members.length}${online.length ? ` · ${online.join(', ')}` : ''}`;
  on.title = members.join(', ');
  $('.conv-seq', tr).textContent = c.lastSeq;
  $('.conv-inflight', tr).textContent = c.inflight;
  $('.conv-idle', tr).textContent = duration(c.idleMs || 0);
}

// --------------------------------------------------------------- payments

function renderPayments(data) {
  const items = data.items || [];
  syncKeyed($('#payment-rows'), items, (p) => p.paymentId, createPaymentRow, updatePaymentRow);
  $('#payments-empty').hidden = items.length > 0;
}

function createPaymentRow(p) {
  const tr = el('tr');
  tr.dataset.paymentId = p.paymentId;
  const id = cell('td', 'Payment', shortId(p.paymentId), 'id pay-id');
  id.title = p.paymentId;
  tr.appendChild(id);
  tr.appendChild(cell('td', 'From → to', `${p.from} → ${p.to}`, 'pay-parties'));
  tr.appendChild(cell('td', 'Amount', formatMoney(p.amount), 'num pay-amount'));
  tr.appendChild(cell('td', 'Status', null, 'pay-status'));
  tr.appendChild(cell('td', 'Step', null, 'pay-step'));
  tr.appendChild(cell('td', 'Updated', null, 'pay-updated'));
  const trace = cell('td', 'Trace', null, 'pay-trace');
  if (p.traceId) trace.appendChild(traceButton(p.traceId, `pay-${p.paymentId}`));
  tr.appendChild(trace);
  return tr;
}

function updatePaymentRow(tr, p) {
  const st = $('.pay-status', tr);
  clear(st);
  st.appendChild(el('span', `badge badge-${p.status}`, p.status));
  if (p.reason) st.appendChild(el('span', 'pay-reason', ` ${p.reason}`));
  $('.pay-step', tr).textContent = p.step || '';
  const up = $('.pay-updated', tr);
  up.textContent = shortTime(p.updatedAt);
  up.title = p.updatedAt;
}

// ------------------------------------------------------------------ trace

const TRACE_RE = /^[0-9a-f]{32}$/;

function lookUpTrace(traceId) {
  $('#trace-id').value = traceId;
  $('#trace').scrollIntoView({ behavior: 'smooth', block: 'start' });
  runTrace();
}

async function runTrace() {
  const box = $('#trace-timeline');
  const id = $('#trace-id').value.trim();
  if (!TRACE_RE.test(id) || /^0+$/.test(id)) {
    showTraceMessage('A trace id is 32 lowercase hexadecimal characters (not all zeros).', 'error');
    return;
  }
  const btn = $('#trace-btn');
  btn.disabled = true;
  showTraceMessage('Looking up…', 'note');
  try {
    const { data } = await api('GET', `/admin/traces/${id}`);
    replaceKeepingFocus(box, (b) => buildTimeline(b, data));
  } catch (e) {
    if (e.status === 404) showTraceMessage('no such trace (it may have aged out)', 'error');
    else showTraceMessage(`Could not look up the trace: ${e.message}`, 'error');
  } finally {
    btn.disabled = false;
  }
}

function showTraceMessage(text, kind) {
  const box = $('#trace-timeline');
  clear(box);
  box.appendChild(el('p', kind, text));
}

/** "…08.505112Z" → microseconds since the epoch (Date.parse stops at ms). */
function parseMicros(iso) {
  const m = /\.(\d+)/.exec(iso);
  const ms = Date.parse(iso);
  if (!m) return ms * 1000;
  const frac = (m[1] + '000000').slice(0, 6);
  return Math.floor(ms / 1000) * 1e6 + Number(frac);
}

function buildTimeline(box, data) {
  const hops = (data.hops || []).map((h, i) => ({ ...h, i, startUs: parseMicros(h.start) }));
  const head = el('p', 'timeline-head');
  head.appendChild(el('code', 'id', data.traceId));
  if (!hops.length) {
    head.appendChild(document.createTextNode(' — no hops recorded (yet).'));
    box.appendChild(head);
    return;
  }
  hops.sort((a, b) => a.startUs - b.startUs || a.i - b.i);
  const t0 = hops[0].startUs;
  const end = Math.max(...hops.map((h) => h.startUs + (h.durationUs || 0)));
  const span = Math.max(end - t0, 1);
  head.appendChild(document.createTextNode(` — ${hops.length} hop${hops.length === 1 ? '' : 's'} over ${micros(span)}`));
  box.appendChild(head);
  if (data.hopsNotKept > 0) {
    box.appendChild(el('p', 'note', `${data.hopsNotKept} later hop${data.hopsNotKept === 1 ? ' was' : 's were'} not kept.`));
  }
  const scale = el('div', 'timeline-scale');
  scale.setAttribute('aria-hidden', 'true');
  scale.appendChild(el('span', null, 'hop (actor, event, node, start · duration)'));
  const ends = el('div', 'scale');
  ends.appendChild(el('span', null, '0'));
  ends.appendChild(el('span', null, micros(span / 2)));
  ends.appendChild(el('span', null, micros(span)));
  scale.appendChild(ends);
  box.appendChild(scale);
  const ol = el('ol', 'hops');
  for (const h of hops) ol.appendChild(hopRow(h, t0, span));
  box.appendChild(ol);
}

function hopRow(h, t0, span) {
  const li = el('li', `hop comp-${String(h.component).replace(/[^a-z_]/g, '')}`);
  const label = el('div', 'hop-label');
  const who = el('span', 'hop-actor', h.actor || h.component);
  who.title = h.actor || '';
  label.appendChild(who);
  label.appendChild(el('span', 'hop-event', h.event));
  label.appendChild(el('span', 'hop-node', h.node));
  label.appendChild(el('span', 'hop-time', `+${micros(h.startUs - t0)} · ${micros(h.durationUs || 0)}`));
  li.appendChild(label);
  const track = el('div', 'hop-track');
  const bar = el('div', 'hop-bar');
  const left = ((h.startUs - t0) / span) * 100;
  const width = ((h.durationUs || 0) / span) * 100;
  // CSS gives the bar a minimum width; keep a zero-length hop at the very
  // end inside the track.
  bar.style.left = `min(${left.toFixed(3)}%, calc(100% - 4px))`;
  bar.style.width = `${width.toFixed(3)}%`;
  bar.title = `${h.component}: ${h.event}, ${micros(h.durationUs || 0)}`;
  track.appendChild(bar);
  li.appendChild(track);
  return li;
}

// ----------------------------------------------------------------- faults

async function refreshFaultsStatus(epoch) {
  try {
    const { data } = await api('GET', '/admin/faults');
    if (epoch !== state.epoch) return 'ignored';
    setFaultsEnabled(!!data.enabled);
    return 'ok';
  } catch (e) {
    if (epoch !== state.epoch) return 'ignored';
    if (e.status === 404) {
      // A server without this route: offer the form; arming answers 403
      // when injection is off.
      setFaultsEnabled(true);
      const note = $('#faults-unknown');
      note.textContent = 'This server does not say whether fault injection is enabled; arming a fault will tell.';
      note.hidden = false;
      return 'ok';
    }
    $('#faults-unknown').textContent = `Could not tell whether fault injection is enabled: ${e.message}`;
    return e.noAnswer ? 'no_answer' : 'error';
  }
}

function setFaultsEnabled(on) {
  state.faultsEnabled = on;
  $('#faults-unknown').hidden = true;
  $('#faults-disabled').hidden = on;
  $('#fault-form').hidden = !on;
}

function onFaultKind() {
  $('#fault-delay-field').hidden = $('#fault-kind').value !== 'delay';
}

/** Offers the ids on screen as targets, besides the bare kinds. */
function updateTargetHints() {
  const list = $('#fault-targets');
  const values = ['conversation', 'payment', 'session', 'directory', 'breaker', 'breaker:payment_provider', 'breaker:webhook'];
  for (const id of ($('#conversation-rows').keyed || new Map()).keys()) values.push(`conversation:${id}`);
  for (const id of ($('#session-rows').keyed || new Map()).keys()) values.push(`session:${id}`);
  const sig = values.join('\n');
  if (list.dataset.sig === sig) return;
  list.dataset.sig = sig;
  clear(list);
  for (const v of values.slice(0, 60)) {
    const o = el('option');
    o.value = v;
    list.appendChild(o);
  }
}

async function onFault(ev) {
  ev.preventDefault();
  const out = $('#fault-result');
  out.className = 'result';
  const target = $('#fault-target').value.trim();
  const kind = $('#fault-kind').value;
  const count = Number($('#fault-count').value || '1');
  const body = { target, kind, count };
  if (!target) return faultError('Enter a target.');
  if (!Number.isInteger(count) || count < 1 || count > 1000) return faultError('Count is 1 to 1000.');
  if (kind === 'delay') {
    const ms = Number($('#fault-delay').value);
    if (!Number.isInteger(ms) || ms < 1 || ms > 60000) return faultError('Delay is 1 to 60000 ms.');
    body.delayMs = ms;
  }
  const btn = $('#fault-btn');
  btn.disabled = true;
  try {
    const { data } = await api('POST', '/admin/faults', body);
    out.textContent = `Armed: ${data.kind} × ${data.count} on ${data.target} (at ${clock(new Date())}).`;
    out.classList.add('ok');
  } catch (e) {
    faultError(`Not armed: ${e.message}${e.status ? ` (${e.status})` : ''}`);
  } finally {
    btn.disabled = false;
  }
}

function faultError(text) {
  const out = $('#fault-result');
  out.textContent = text;
  out.className = 'result error';
}

// ------------------------------------------------------------------- wire

function init() {
  $('#login-form').addEventListener('submit', onLogin);
  $('#logout-btn').addEventListener('click', () => showLogin(''));
  $('#payments-status').addEventListener('change', () => {
    const rows = $('#payment-rows');
    clear(rows);
    rows.keyed = null;
    refreshViews(true);
  });
  $('#trace-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    runTrace();
  });
  $('#fault-form').addEventListener('submit', onFault);
  $('#fault-kind').addEventListener('change', onFaultKind);
  // One listener for every trace link, however often their lists are rebuilt.
  $('#console').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-trace]');
    if (b) lookUpTrace(b.dataset.trace);
  });
  document.addEventListener('visibilitychange', onVisibility);
  CHARTS.forEach(wireChart);
  onFaultKind();
  updateTargetHints();
  resume();
}

init();
