/**
 * The local console's page: one HTML document with its script inline (no build step, nothing
 * fetched from the network). Flow: it loads uPlot from the runtime (/local/console/uPlot.*),
 * then every few seconds (?refresh=MS, default 2000) fetches /local/api/dashboard,
 * /local/api/bakes and /local/api/principals and redraws: each widget in its grid cell (24
 * columns, as CloudWatch lays out a dashboard body), graphs as uPlot time series (x: time),
 * the alarm widget as one chip per alarm with its state; beside it the bakes and the
 * principals' logs and sessions. window.__console holds the charts, for tests.
 */
export const CONSOLE_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Logrelay local console</title>
<link rel="stylesheet" href="/local/console/uPlot.min.css">
<style>
  body { font: 13px system-ui, sans-serif; margin: 0; background: #f3f4f6; color: #111; }
  header { padding: 8px 16px; background: #232f3e; color: #fff; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  header .meta { opacity: .8; }
  main { display: flex; gap: 12px; padding: 12px; align-items: flex-start; }
  #dashboard { flex: 3; min-width: 0; }
  aside { flex: 1; min-width: 300px; display: flex; flex-direction: column; gap: 12px; }
  .grid { display: grid; grid-template-columns: repeat(24, minmax(0, 1fr)); grid-auto-rows: 34px; gap: 6px; }
  .widget { background: #fff; border: 1px solid #d5d9de; border-radius: 4px; padding: 6px 8px; overflow: hidden; display: flex; flex-direction: column; }
  .widget h2.title { font-size: 13px; margin: 0 0 4px; }
  .widget .body { flex: 1; min-height: 0; overflow: auto; }
  .widget.text h1 { font-size: 16px; margin: 0 0 4px; }
  .widget.text p { margin: 0 0 4px; }
  .widget .error { color: #b00020; }
  .alarms { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 6px; }
  .alarm { padding: 3px 8px; border-radius: 3px; border: 1px solid #ccc; }
  .alarm.OK { background: #e6f4ea; border-color: #34a853; }
  .alarm.ALARM { background: #fce8e6; border-color: #d93025; }
  .alarm.INSUFFICIENT_DATA, .alarm.UNKNOWN { background: #f1f3f4; border-color: #9aa0a6; }
  .panel { background: #fff; border: 1px solid #d5d9de; border-radius: 4px; padding: 8px; }
  .panel h2 { font-size: 14px; margin: 0 0 6px; }
  .bake { border-top: 1px solid #eee; padding: 4px 0; }
  .phase { margin-left: 10px; }
  .verdict { font-weight: 600; }
  .verdict.APPROVED { color: #188038; } .verdict.REJECTED, .verdict.REVERTED { color: #d93025; } .verdict.BAKING { color: #1a73e8; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 1px 4px; border-bottom: 1px solid #eee; }
  .muted { color: #666; }
</style>
</head>
<body>
<header><h1>Logrelay local console</h1><span class="meta" id="meta">loading…</span></header>
<main>
  <section id="dashboard"></section>
  <aside>
    <div class="panel" id="bakes"><h2>Bakes</h2><div class="body muted">loading…</div></div>
    <div class="panel" id="principals"><h2>Logs and sessions</h2><div class="body muted">loading…</div></div>
  </aside>
</main>
<script src="/local/console/uPlot.iife.min.js"></script>
<script>
(function () {
  var REFRESH = Number(new URLSearchParams(location.search).get('refresh')) || 2000;
  var COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
  var state = { charts: {}, polls: 0, errors: 0 };
  window.__console = state;
  function esc(s) { return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) { return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]; }); }
  function get(path) { return fetch(path, { cache: 'no-store' }).then(function (r) { if (!r.ok) throw new Error(path + ': ' + r.status); return r.json(); }); }

  function widgetKey(d, i) { return d.name + '#' + i; }

  function renderDashboard(data) {
    var root = document.getElementById('dashboard');
    document.getElementById('meta').textContent = 'time scale ' + data.timeScale + 'x · refreshed ' + new Date().toLocaleTimeString() + ' · every ' + REFRESH / 1000 + ' s';
    data.dashboards.forEach(function (d) {
      var grid = root.querySelector('.grid[data-dashboard="' + CSS.escape(d.name) + '"]');
      var shape = JSON.stringify(d.widgets.map(function (w) { return [w.type, w.x, w.y, w.width, w.height, w.title]; }));
      if (!grid || grid.dataset.shape !== shape) {
        if (grid) grid.parentNode.removeChild(grid.previousSibling), grid.parentNode.removeChild(grid);
        var h = document.createElement('h2'); h.textContent = d.name + ' (' + d.start + ', in the stack\\'s time)'; h.style.margin = '0 0 6px'; h.style.fontSize = '14px';
        grid = document.createElement('div'); grid.className = 'grid'; grid.dataset.dashboard = d.name; grid.dataset.shape = shape;
        root.appendChild(h); root.appendChild(grid);
        d.widgets.forEach(function (w, i) {
          var el = document.createElement('section');
          el.className = 'widget ' + w.type; el.dataset.type = w.type; el.dataset.title = w.title; el.dataset.key = widgetKey(d, i);
          el.style.gridColumn = (w.x + 1) + ' / span ' + w.width; el.style.gridRow = (w.y + 1) + ' / span ' + w.height;
          el.innerHTML = (w.title ? '<h2 class="title">' + esc(w.title) + '</h2>' : '') + '<div class="body"></div>';
          grid.appendChild(el);
          delete state.charts[widgetKey(d, i)];
        });
      }
      d.widgets.forEach(function (w, i) {
        var el = grid.querySelector('[data-key="' + CSS.escape(widgetKey(d, i)) + '"]');
        var body = el.querySelector('.body');
        if (w.type === 'text') { if (body.innerHTML !== w.html) body.innerHTML = w.html; }
        else if (w.type === 'alarm') {
          body.innerHTML = '<ul class="alarms">' + w.alarms.map(function (a) {
            return '<li class="alarm ' + esc(a.state) + '" data-alarm="' + esc(a.name) + '" data-state="' + esc(a.state) + '" title="' + esc(a.reason) + '">' + esc(a.name) + ': <b>' + esc(a.state) + '</b></li>';
          }).join('') + '</ul>';
        } else if (w.type === 'metric') drawGraph(widgetKey(d, i), el, body, w);
        else body.innerHTML = '<span class="muted">' + esc(w.unsupported) + '</span>';
      });
    });
  }

  function drawGraph(key, el, body, w) {
    var data = [w.times].concat(w.series.map(function (s) { return s.values; }));
    var labels = w.series.map(function (s) { return s.label; }).join('|');
    var chart = state.charts[key];
    el.dataset.points = String(w.times.length);
    if (w.error) { body.innerHTML = '<span class="error">' + esc(w.error) + '</span>'; return; }
    if (chart && chart.__labels === labels) { chart.setData(data); return; }
    if (chart) chart.destroy();
    body.innerHTML = '';
    var width = Math.max(150, body.clientWidth - 4), height = Math.max(80, body.clientHeight - 34);
    chart = new uPlot({
      width: width, height: height,
      scales: { x: { time: true } },
      legend: { show: true },
      series: [{}].concat(w.series.map(function (s, j) { return { label: s.label, stroke: s.color || COLORS[j % COLORS.length], width: 1.5, spanGaps: false, points: { show: w.times.length < 60 } }; })),
      axes: [{}, { size: 46 }],
    }, data, body);
    chart.__labels = labels;
    chart.__title = w.title;
    state.charts[key] = chart;
  }

  function renderBakes(page) {
    var body = document.querySelector('#bakes .body');
    if (!page.bakes.length) { body.innerHTML = '<span class="muted">No bakes yet: POST /bakes starts one.</span>'; return; }
    body.classList.remove('muted');
    body.innerHTML = page.bakes.map(function (b) {
      return '<div class="bake" data-bake="' + esc(b.bakeId) + '" data-status="' + esc(b.status) + '"><b>' + esc(b.bakeId) + '</b> <span class="verdict ' + esc(b.status) + '">' + esc(b.status) + '</span> <span class="muted">' + esc(b.createdAt) + (b.endedAt ? ' → ' + esc(b.endedAt) : '') + '</span>' +
        (b.error ? '<div class="error">' + esc(b.error) + '</div>' : '') +
        b.phases.map(function (p, i) {
          return '<div class="phase" data-phase="' + i + '" data-verdict="' + esc(p.verdict) + '">phase ' + (i + 1) + ': ' + esc(p.profile) + ' v' + esc(p.version) + ' <span class="verdict ' + esc(p.verdict) + '">' + esc(p.verdict) + '</span>' + (p.reason ? '<div class="muted">' + esc(p.reason) + '</div>' : '') + '</div>';
        }).join('') + '</div>';
    }).join('');
  }

  function renderPrincipals(data) {
    var body = document.querySelector('#principals .body');
    body.classList.remove('muted');
    body.innerHTML = data.principals.map(function (p) {
      var rows = p.logs.map(function (l) {
        var head = '<tr class="log" data-log="' + esc(l.logId) + '"><td colspan="4"><b>' + esc(l.logId) + '</b> <span class="muted">seq ' + esc(l.firstSeq) + '..' + esc(l.lastSeq) + '</span></td></tr>';
        return head + l.sessions.map(function (s) {
          return '<tr class="session" data-session="' + esc(s.sessionId) + '"><td class="muted">' + esc(String(s.sessionId).slice(0, 12)) + '…</td><td>' + esc(s.lag) + '</td><td>' + esc(s.inFlight) + '</td><td>' + esc(s.deadLettered) + '</td></tr>';
        }).join('');
      }).join('');
      return '<div class="principal" data-principal="' + esc(p.name) + '"><h3 style="margin:6px 0 2px;font-size:13px">' + esc(p.name) + (p.admin ? ' (admin)' : '') + '</h3>' +
        (rows ? '<table><tr><th>session</th><th>lag</th><th>in flight</th><th>dead-lettered</th></tr>' + rows + '</table>' : '<span class="muted">no logs</span>') + '</div>';
    }).join('');
  }

  function poll() {
    Promise.all([get('/local/api/dashboard').then(renderDashboard), get('/local/api/bakes').then(renderBakes), get('/local/api/principals').then(renderPrincipals)])
      .then(function () { state.polls++; }, function (e) { state.errors++; document.getElementById('meta').textContent = 'refresh failed: ' + e.message + ' (retrying)'; })
      .then(function () { setTimeout(poll, REFRESH); });
  }
  poll();
})();
</script>
</body>
</html>
`;
