/**
 * The console page: plain HTML, CSS and a script, no framework and no build step. They live in this
 * module as text (not files beside it) so the one-file bundle (supernode/build/) carries them too.
 * The script opens one EventSource on /console/events and redraws from each snapshot; it builds the
 * page with textContent only, so nothing a node answers is ever parsed as HTML.
 */

export const CONSOLE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Supernode Tier console</title>
<link rel="stylesheet" href="/console/console.css">
<link rel="icon" href="/console/favicon.svg" type="image/svg+xml">
</head>
<body>
<header>
  <h1>Supernode Tier <span class="dim">operator console</span></h1>
  <div id="live" class="live" data-live="connecting">connecting</div>
</header>
<main>
  <section class="cards" aria-label="Summary">
    <div class="card"><div class="label">Nodes ready</div><div class="value" id="nodes-ready">-</div></div>
    <div class="card"><div class="label">Draining</div><div class="value" id="nodes-draining">-</div></div>
    <div class="card"><div class="label">Gone or bad data</div><div class="value" id="nodes-gone">-</div></div>
    <div class="card"><div class="label">Sessions</div><div class="value" id="sessions-total">-</div></div>
    <div class="card"><div class="label">Directory records</div><div class="value" id="records-total">-</div></div>
    <div class="card"><div class="label">Hashes in flight</div><div class="value" id="auth-inflight">-</div></div>
    <div class="card"><div class="label">C (logins/s)</div><div class="value" id="auth-capacity">-</div></div>
    <div class="card"><div class="label">Shed per second</div><div class="value" id="auth-shed-rate">-</div></div>
  </section>
  <section>
    <h2>Supernodes</h2>
    <table id="nodes">
      <thead><tr><th>Node</th><th>State</th><th>Sessions</th><th>Users</th><th>Directory records</th><th>Mesh links</th><th>Refusals (last min / since start)</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section class="columns">
    <div>
      <h2>Auth admission</h2>
      <div id="auth" class="auth"></div>
    </div>
    <div>
      <h2>Refusals in the last minute</h2>
      <table id="refusals"><thead><tr><th>Where</th><th>Reason</th><th>Count</th></tr></thead><tbody></tbody></table>
    </div>
  </section>
  <section>
    <h2>Last drill</h2>
    <div id="charts" class="charts"></div>
  </section>
</main>
<footer>Read-only. Each node's and the auth service's <code>GET /status</code>, polled every <span id="poll-ms">-</span> ms by the console server and pushed here over server-sent events. Last update <span id="updated">-</span>.</footer>
<script src="/console/console.js" defer></script>
</body>
</html>
`;

/** A small mark for the tab, so the browser does not ask for /favicon.ico. */
export const CONSOLE_ICON =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><circle cx="8" cy="8" r="7" fill="#17202b"/><circle cx="8" cy="8" r="3" fill="#1a7f37"/></svg>';

export const CONSOLE_CSS = `
:root { --ink: #1b2430; --dim: #5b6675; --line: #d8dee6; --bg: #f5f7fa; --card: #fff;
  --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e; --info: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
header { display: flex; align-items: center; justify-content: space-between; padding: 14px 24px; background: #17202b; color: #fff; }
header h1 { margin: 0; font-size: 18px; font-weight: 600; }
header .dim { color: #9fb0c3; font-weight: 400; }
.live { font-size: 13px; padding: 3px 10px; border-radius: 12px; background: #44505e; }
.live[data-live="live"] { background: var(--ok); }
.live[data-live="reconnecting"] { background: var(--bad); }
main { padding: 16px 24px; max-width: 1400px; }
h2 { font-size: 15px; margin: 20px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .label { color: var(--dim); font-size: 12px; }
.card .value { font-size: 24px; font-weight: 600; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 6px; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--dim); font-weight: 600; background: #eef1f5; }
td.num { font-variant-numeric: tabular-nums; }
.node-id { font-weight: 600; }
.url, .problem { color: var(--dim); font-size: 12px; }
.problem { color: var(--bad); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; }
.badge.ready, .badge.up, .badge.live { background: var(--ok); }
.badge.not_ready, .badge.draining, .badge.connecting { background: var(--warn); }
.badge.gone, .badge.refused, .badge.bad_data, .badge.down { background: var(--bad); }
.bar { height: 6px; background: #e6eaf0; border-radius: 3px; margin-top: 4px; min-width: 80px; }
.bar > span { display: block; height: 100%; background: var(--info); border-radius: 3px; }
.links .badge { margin: 0 4px 4px 0; font-weight: 500; }
.columns { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
.auth { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.auth dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0 0; }
.auth dt { color: var(--dim); }
.auth dd { margin: 0; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
.charts figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.charts img { width: 100%; height: auto; }
.charts figcaption, .empty { color: var(--dim); font-size: 12px; }
footer { padding: 12px 24px 24px; color: var(--dim); font-size: 12px; }
@media (max-width: 900px) { .columns { grid-template-columns: 1fr; } }
`;

// Kept to ES2020 without template literals: this text is itself inside one.
export const CONSOLE_JS = `(function () {
  'use strict';
  var byId = function (id) { return document.getElementById(id); };
  /** Last node id seen per URL, so a node that has gone is still named. */
  var names = {};

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var key in attrs) if (attrs[key] !== undefined) node.setAttribute(key, String(attrs[key]));
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
    });
    return node;
  }
  function text(id, value) { byId(id).textContent = String(value); }
  function badge(state, label) { return el('span', { class: 'badge ' + state }, [label || state.replace('_', ' ')]); }
  function bar(fraction) {
    var fill = el('span', {}, []);
    // Through the CSSOM: the page's CSP forbids style attributes.
    fill.style.width = (Math.max(0, Math.min(1, fraction || 0)) * 100).toFixed(1) + '%';
    return el('div', { class: 'bar' }, [fill]);
  }
  function sum(counts) { var n = 0; for (var k in counts) n += counts[k]; return n; }
  function fixed(n, digits) { return Number(n).toFixed(digits); }

  function renderNodes(nodes) {
    var body = byId('nodes').tBodies[0];
    var maxRecords = 1;
    nodes.forEach(function (n) { if (n.status) maxRecords = Math.max(maxRecords, n.status.directoryRecords); });
    var rows = nodes.map(function (n) {
      var s = n.status;
      if (s) names[n.url] = s.nodeId;
      var name = names[n.url] || '?';
      var cells;
      if (s) {
        var links = s.links.length === 0
          ? [el('span', { class: 'url' }, [s.meshed ? 'no peers' : 'not meshed'])]
          : s.links.map(function (l) { return el('span', { class: 'badge ' + l.state, 'data-peer': l.peer, 'data-link': l.state }, [l.peer + ': ' + l.state]); });
        cells = [
          el('td', { class: 'num sessions', 'data-value': s.sessions }, [s.sessions + ' / ' + s.capacity, bar(s.sessions / Math.max(1, s.capacity))]),
          el('td', { class: 'num users', 'data-value': s.users }, [s.users]),
          el('td', { class: 'num records', 'data-value': s.directoryRecords }, [s.directoryRecords, bar(s.directoryRecords / maxRecords)]),
          el('td', { class: 'links' }, links),
          el('td', { class: 'num refusals' }, [sum(n.recentRefusals) + ' / ' + sum(s.refusals)]),
        ];
      } else {
        cells = [el('td', { class: 'problem', colspan: 5 }, [n.problem || ''])];
      }
      var reasons = s && n.state === 'not_ready' ? el('div', { class: 'url' }, [s.reasons.join(', ')]) : null;
      return el('tr', { 'data-node': name, 'data-url': n.url, 'data-state': n.state }, [
        el('td', {}, [el('div', { class: 'node-id' }, [name]), el('div', { class: 'url' }, [n.url])]),
        el('td', { class: 'state' }, [badge(n.state), reasons]),
      ].concat(cells));
    });
    body.replaceChildren.apply(body, rows);
    var count = function (states) { return nodes.filter(function (n) { return states.indexOf(n.state) >= 0; }).length; };
    text('nodes-ready', count(['ready']) + ' / ' + nodes.length);
    text('nodes-draining', count(['draining']));
    text('nodes-gone', count(['gone', 'refused', 'bad_data']));
    text('sessions-total', nodes.reduce(function (t, n) { return t + (n.status ? n.status.sessions : 0); }, 0));
    text('records-total', nodes.reduce(function (t, n) { return t + (n.status ? n.status.directoryRecords : 0); }, 0));
  }

  function renderAuth(auth) {
    var box = byId('auth');
    if (!auth) {
      box.replaceChildren(el('div', { class: 'empty' }, ['No auth service given (--auth-url).']));
      ['auth-inflight', 'auth-capacity', 'auth-shed-rate'].forEach(function (id) { text(id, '-'); });
      return;
    }
    var s = auth.status;
    var head = el('div', { 'data-auth-state': auth.state }, [badge(auth.state), ' ', el('span', { class: 'url' }, [auth.url])]);
    if (!s) {
      box.replaceChildren(head, el('div', { class: 'problem' }, [auth.problem || '']));
      ['auth-inflight', 'auth-capacity', 'auth-shed-rate'].forEach(function (id) { text(id, '-'); });
      return;
    }
    var p = s.hashPool;
    var rows = [
      ['Hashes in flight', p.inFlight + ' of ' + p.concurrency],
      ['Queued', p.queued + ' of ' + p.maxQueue],
      ['C, hash capacity', fixed(p.capacityPerSec, 1) + ' logins/s (' + fixed(p.runMsEwma, 0) + ' ms a hash)'],
      ['Shed rate', fixed(auth.shedPerSec, 1) + ' /s'],
      ['Logins admitted', s.logins.admitted],
      ['Logins succeeded', s.logins.succeeded],
      ['Shed since start', s.logins.shed],
      ['Token refreshes', s.logins.refreshes],
    ];
    var list = el('dl', {}, []);
    rows.forEach(function (r) { list.appendChild(el('dt', {}, [r[0]])); list.appendChild(el('dd', {}, [r[1]])); });
    box.replaceChildren(head, list);
    text('auth-inflight', p.inFlight + ' / ' + p.concurrency);
    text('auth-capacity', fixed(p.capacityPerSec, 1));
    text('auth-shed-rate', fixed(auth.shedPerSec, 1));
  }

  function renderRefusals(snapshot) {
    var rows = [];
    snapshot.nodes.forEach(function (n) {
      for (var reason in n.recentRefusals) rows.push([names[n.url] || n.url, reason, n.recentRefusals[reason]]);
    });
    if (snapshot.auth) for (var reason in snapshot.auth.recentRefusals) rows.push(['auth', reason, snapshot.auth.recentRefusals[reason]]);
    rows.sort(function (a, b) { return b[2] - a[2]; });
    var body = byId('refusals').tBodies[0];
    if (rows.length === 0) body.replaceChildren(el('tr', {}, [el('td', { colspan: 3, class: 'empty' }, ['None.'])]));
    else body.replaceChildren.apply(body, rows.map(function (r) {
      return el('tr', { 'data-reason': r[1] }, [el('td', {}, [r[0]]), el('td', {}, [r[1]]), el('td', { class: 'num' }, [r[2]])]);
    }));
  }

  /** Charts change only when a drill runs: redrawn only then, so the images do not reload every second. */
  var chartKey = '';
  function renderCharts(charts) {
    var key = charts.map(function (c) { return c.name + c.writtenAt; }).join('|');
    if (key === chartKey && byId('charts').childElementCount > 0) return;
    chartKey = key;
    var box = byId('charts');
    if (charts.length === 0) {
      box.replaceChildren(el('div', { class: 'empty' }, ['No drill chart yet: npm run drill writes them.']));
      return;
    }
    box.replaceChildren.apply(box, charts.map(function (c) {
      return el('figure', {}, [
        el('img', { src: c.url, alt: c.drill + ' drill chart' }),
        el('figcaption', {}, [c.drill + ' drill, ' + new Date(c.writtenAt).toLocaleString() + ' (' + c.name + ')']),
      ]);
    }));
  }

  function render(snapshot) {
    renderNodes(snapshot.nodes);
    renderAuth(snapshot.auth);
    renderRefusals(snapshot);
    renderCharts(snapshot.charts);
    text('poll-ms', snapshot.pollMs);
    text('updated', new Date(snapshot.at).toLocaleTimeString());
    document.body.setAttribute('data-updated', snapshot.at);
  }

  var live = byId('live');
  function setLive(state, label) { live.setAttribute('data-live', state); live.textContent = label; }
  var source = new EventSource('/console/events');
  source.onopen = function () { setLive('live', 'live'); };
  source.onerror = function () { setLive('reconnecting', 'reconnecting'); };
  source.onmessage = function (event) {
    var snapshot;
    try { snapshot = JSON.parse(event.data); } catch (err) { return; }
    setLive('live', 'live');
    render(snapshot);
  };
})();
`;
