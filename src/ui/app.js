// drender dashboard: jobs list, submit/cancel, one job's frame grid on a canvas, live by long-poll.
// Plain JavaScript, no framework, no build step; embedded in the drender binary (scripts/embed.sh).
// Every text that comes from a job goes through textContent, never innerHTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'drender.token';
  // Frame cell states (the letters of GET /jobs/<id>/frames).
  const ST = { pending: 0, running: 1, done: 2, failed: 3, copy: 4, skipped: 5 };
  const ST_LETTER = { p: 0, r: 1, d: 2, f: 3, c: 4, s: 5 };
  const ST_NAME = ['pending', 'running', 'done', 'failed', 'speculative copy', 'skipped'];

  const app = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    info: null,
    jobs: new Map(), // id -> status object
    ids: [], // newest first
    epoch: '',
    version: 0,
    selected: null, // job id shown below the list
    bytes: 0, // response bytes pulled (body + status line/headers, estimated)
    requests: 0,
    errors: [],
    authWaiters: [],
  };

  class AuthError extends Error {}

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // One API call with the Bearer header (never in the URL, never a cookie). 401 asks for the token.
  async function api(method, path, body) {
    const headers = {};
    if (app.token) headers.Authorization = 'Bearer ' + app.token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
    const text = await r.text();
    app.requests++;
    app.bytes += text.length + 200; // ~200 bytes of status line and headers
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (e) {
      data = null;
    }
    if (r.status === 401) {
      askToken(app.token ? 'That token was refused.' : '');
      throw new AuthError('token needed');
    }
    return { status: r.status, data };
  }

  // ---- token ----
  function askToken(msg) {
    app.token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    $('app').hidden = true;
    $('login').hidden = false;
    $('login-msg').textContent = msg || '';
    $('login-msg').className = 'msg err';
    setConn('token needed', 'down');
    $('login-token').focus();
  }
  function tokenReady() {
    if (!$('login').hidden) return new Promise((r) => app.authWaiters.push(r));
    return Promise.resolve();
  }
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    app.token = $('login-token').value.trim();
    $('login-token').value = '';
    if (!app.token) return;
    sessionStorage.setItem(TOKEN_KEY, app.token);
    $('login').hidden = true;
    const w = app.authWaiters.splice(0);
    w.forEach((f) => f());
  });

  function setConn(text, cls) {
    const c = $('conn');
    c.textContent = text;
    c.className = 'badge ' + (cls || '');
  }

  // ---- formatting ----
  function fmtDur(s) {
    if (typeof s !== 'number' || !isFinite(s) || s < 0) return '—';
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), x = s % 60;
    if (h) return h + 'h' + String(m).padStart(2, '0') + 'm';
    if (m) return m + 'm' + String(x).padStart(2, '0') + 's';
    return x + 's';
  }
  // The scene of a job: the file name of "blend" (the server's path) without ".blend", else
  // "scene", else the output pattern's stem.
  function sceneOf(j) {
    if (typeof j.blend === 'string') return j.blend.split('/').pop().replace(/\.blend$/i, '');
    if (typeof j.scene === 'string') return j.scene;
    if (typeof j.output === 'string') {
      const base = j.output.split('/').pop();
      return base.replace(/_?#+.*$/, '').replace(/\.[A-Za-z0-9]+$/, '') || base;
    }
    return '';
  }
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  const frames = (j) => j.frames || {};

  // ---- jobs list ----
  function renderJobs() {
    const body = $('jobs-body');
    const rows = [];
    for (const id of app.ids) {
      const j = app.jobs.get(id);
      if (!j) continue;
      const f = frames(j);
      const tr = el('tr');
      tr.dataset.id = id;
      if (id === app.selected) tr.className = 'sel';
      tr.append(el('td', id));
      const st = el('td');
      st.append(el('span', j.cancelRequested && !finished(j) ? 'cancelling' : j.state, 'state ' + j.state));
      tr.append(st);
      const sc = el('td', sceneOf(j), 'scene');
      sc.title = sceneOf(j);
      tr.append(sc);
      tr.append(el('td', (f.done || 0) + (f.skipped || 0) + ' / ' + (f.failed || 0) + ' / ' + (f.total || 0)));
      const pc = el('td');
      const pr = el('progress');
      pr.max = 1;
      pr.value = typeof j.progress === 'number' ? j.progress : 0;
      pc.append(pr, el('span', ' ' + Math.floor(pr.value * 100) + '%'));
      tr.append(pc);
      tr.append(el('td', fmtDur(j.elapsedSeconds)));
      tr.append(el('td', j.state === 'running' ? fmtDur(j.etaSeconds) : '—'));
      tr.append(el('td', j.priority));
      const act = el('td');
      if (app.info && !app.info.readOnly && !finished(j) && !j.cancelRequested) {
        const b = el('button', 'Cancel', 'cancel');
        b.dataset.cancel = id;
        act.append(b);
      }
      tr.append(act);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
    $('jobs-empty').hidden = rows.length > 0;
  }
  const finished = (j) => j.state === 'done' || j.state === 'failed' || j.state === 'cancelled';

  $('jobs-body').addEventListener('click', async (ev) => {
    const b = ev.target.closest('button[data-cancel]');
    if (b) {
      ev.stopPropagation();
      b.disabled = true;
      try {
        const r = await api('DELETE', '/jobs/' + encodeURIComponent(b.dataset.cancel));
        if (r.status >= 300) showMsg('submit-msg', (r.data && r.data.error) || 'cancel failed', true);
      } catch (e) {
        if (!(e instanceof AuthError)) b.disabled = false;
      }
      return;
    }
    const tr = ev.target.closest('tr[data-id]');
    if (tr) location.hash = 'job=' + encodeURIComponent(tr.dataset.id);
  });

  function showMsg(id, text, isErr) {
    const m = $(id);
    m.textContent = text;
    m.className = 'msg ' + (isErr ? 'err' : 'ok');
  }

  // ---- submit ----
  $('submit-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { blend: $('f-blend').value.trim() };
    const fr = $('f-frames').value.trim();
    const m = /^(\d+)\s*-\s*(\d+)$/.exec(fr);
    if (m) {
      body.from = Number(m[1]);
      body.to = Number(m[2]);
    } else if (/^\d+$/.test(fr)) {
      body.from = body.to = Number(fr);
    } else {
      body.frames = fr;
    }
    body.format = $('f-format').value;
    if ($('f-samples').value) body.samples = Number($('f-samples').value);
    if ($('f-priority').value) body.priority = Number($('f-priority').value);
    $('f-go').disabled = true;
    try {
      const r = await api('POST', '/render', body);
      if (r.status === 202 && r.data && r.data.jobId) {
        showMsg('submit-msg', 'queued as ' + r.data.jobId, false);
        location.hash = 'job=' + encodeURIComponent(r.data.jobId);
      } else {
        showMsg('submit-msg', (r.data && r.data.error) || 'HTTP ' + r.status, true);
      }
    } catch (e) {
      if (!(e instanceof AuthError)) showMsg('submit-msg', 'cannot reach the server', true);
    } finally {
      $('f-go').disabled = false;
    }
  });

  // ---- the frame grid (canvas) ----
  // Per-frame data, index order: frame number, state, node rank, attempts, seconds, when the
  // running attempt started (performance.now() ms), errors by index.
  const grid = {
    n: 0,
    frame: new Int32Array(0),
    state: new Uint8Array(0),
    node: new Int32Array(0),
    attempts: new Uint16Array(0),
    seconds: new Float32Array(0),
    started: new Float64Array(0),
    errors: new Map(),
    hosts: {},
    approx: true, // built from counts only (the server publishes no per-frame data)
    version: 0,
    cell: 10,
    gap: 1,
    cols: 1,
    colors: [],
    hover: -1,
    pinned: -1,
  };
  const canvas = $('grid');
  const ctx = canvas.getContext('2d', { alpha: false });

  function readColors() {
    const cs = getComputedStyle(document.documentElement);
    grid.colors = ['pending', 'running', 'done', 'failed', 'copy', 'skipped'].map((k) =>
      cs.getPropertyValue('--c-' + k).trim());
    grid.bg = cs.getPropertyValue('--panel').trim();
    grid.hi = cs.getPropertyValue('--c-hover').trim();
  }

  function resizeGrid(n) {
    grid.n = n;
    grid.frame = new Int32Array(n);
    grid.state = new Uint8Array(n);
    grid.node = new Int32Array(n);
    grid.attempts = new Uint16Array(n);
    grid.seconds = new Float32Array(n);
    grid.started = new Float64Array(n);
    grid.errors = new Map();
  }

  // Lay the cells out for the canvas's width: as big as fits in ~420 px of height, 4..28 px.
  function layout() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(200, canvas.parentElement.clientWidth);
    const n = Math.max(1, grid.n);
    let cell = Math.floor(Math.sqrt((w * 420) / n)) - 1;
    cell = Math.max(4, Math.min(28, cell));
    grid.gap = cell >= 8 ? 2 : 1;
    grid.cell = cell;
    grid.cols = Math.max(1, Math.floor((w + grid.gap) / (cell + grid.gap)));
    const rows = Math.ceil(n / grid.cols);
    const h = Math.max(cell, rows * (cell + grid.gap));
    canvas.style.height = h + 'px';
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    grid.w = w;
    grid.h = h;
  }

  function drawCell(i) {
    const c = grid.cell, g = grid.gap, x = (i % grid.cols) * (c + g), y = Math.floor(i / grid.cols) * (c + g);
    ctx.fillStyle = grid.bg;
    ctx.fillRect(x, y, c, c);
    ctx.fillStyle = grid.colors[grid.state[i]];
    ctx.fillRect(x, y, c, c);
    if ((i === grid.hover || i === grid.pinned) && c >= 6) {
      ctx.strokeStyle = grid.hi;
      ctx.lineWidth = 1;
      ctx.strokeRect(x + 0.5, y + 0.5, c - 1, c - 1);
    }
    if (c >= 22 && (grid.state[i] === ST.running || grid.state[i] === ST.copy) && grid.started[i]) {
      ctx.fillStyle = '#000';
      ctx.font = '9px system-ui, sans-serif';
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      ctx.fillText(String(Math.floor((performance.now() - grid.started[i]) / 1000)), x + c / 2, y + c / 2 + 0.5);
    }
  }

  // Full draw: one fillStyle per state, then the decorations.
  function drawAll() {
    ctx.fillStyle = grid.bg;
    ctx.fillRect(0, 0, grid.w, grid.h);
    const c = grid.cell, g = grid.gap, cols = grid.cols;
    for (let s = 0; s < grid.colors.length; s++) {
      ctx.fillStyle = grid.colors[s];
      for (let i = 0; i < grid.n; i++) {
        if (grid.state[i] !== s) continue;
        ctx.fillRect((i % cols) * (c + g), Math.floor(i / cols) * (c + g), c, c);
      }
    }
    for (let i = 0; i < grid.n; i++) if (grid.state[i] === ST.running || grid.state[i] === ST.copy) drawCell(i);
    if (grid.hover >= 0) drawCell(grid.hover);
    if (grid.pinned >= 0) drawCell(grid.pinned);
  }

  // Parse a frame spec "1-20,25,30-40:2" into frame numbers.
  function parseSpec(spec) {
    const out = [];
    for (const part of String(spec).split(',')) {
      const m = /^\s*(-?\d+)(?:\s*-\s*(-?\d+)(?::(\d+))?)?\s*$/.exec(part);
      if (!m) continue;
      const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]), st = Number(m[3] || 1);
      for (let f = a; f <= b && out.length < 1000000; f += st) out.push(f);
    }
    return out;
  }

  // Apply one GET /jobs/<id>/frames answer (full or changes since a version); returns the cells
  // to redraw, or null when everything must be (a full answer).
  //
  // The route (phase 2: the orchestrator publishes per-frame state; GET /info then lists
  // "frames" in "features", and "thumbs" once GET /jobs/<id>/frames/<n>/thumb exists):
  //   GET /jobs/<id>/frames?since=V&wait=S   long-poll like /updates, answers when version > V
  //   {"jobId": "...", "version": 7, "full": true,     full when V is 0 or unknown
  //    "frames": "1-10000" | [1, 2, ...],             full only: frame numbers in cell order
  //    "index": [3, 17],                              delta only: the cells that changed
  //    "state": "pprdd",                              a letter per listed cell: p pending,
  //                                                   r running, c speculative copy running,
  //                                                   d done, f failed, s skipped
  //    "node": [0, 1, 2], "attempts": [0, 1, 1],      rank (0 = none) and attempts per cell
  //    "seconds": [0, 0, 3.2],                        render seconds of the last attempt
  //    "runningFor": [0, 1.5, 0],                     seconds the running attempt has run
  //    "errors": {"17": "last error text"},           by cell index, only cells that have one
  //    "hosts": {"1": "node-a"}}                      rank -> host, when it changes
  function applyFrames(u) {
    const now = performance.now();
    let idx = null;
    if (u.full) {
      const fr = Array.isArray(u.frames) ? u.frames : parseSpec(u.frames || '');
      resizeGrid(fr.length);
      grid.frame.set(fr);
    } else {
      idx = u.index || [];
    }
    const letters = u.state || '';
    const count = idx ? idx.length : grid.n;
    for (let k = 0; k < count; k++) {
      const i = idx ? idx[k] : k;
      if (i < 0 || i >= grid.n) continue;
      const s = ST_LETTER[letters[k]];
      if (s !== undefined) grid.state[i] = s;
      if (u.node) grid.node[i] = u.node[k] | 0;
      if (u.attempts) grid.attempts[i] = u.attempts[k] | 0;
      if (u.seconds) grid.seconds[i] = +u.seconds[k] || 0;
      if (u.runningFor) grid.started[i] = u.runningFor[k] > 0 ? now - u.runningFor[k] * 1000 : 0;
      else if (s === ST.running || s === ST.copy) { if (!grid.started[i]) grid.started[i] = now; }
      else grid.started[i] = 0;
    }
    if (u.errors) for (const k of Object.keys(u.errors)) grid.errors.set(Number(k), String(u.errors[k]));
    if (u.hosts) Object.assign(grid.hosts, u.hosts);
    if (typeof u.version === 'number') grid.version = u.version;
    grid.approx = false;
    return idx;
  }

  function redraw(idx) {
    if (idx === null || idx === undefined) {
      layout();
      drawAll();
    } else {
      for (let k = 0; k < idx.length; k++) drawCell(idx[k]);
    }
  }

  // Without per-frame data: cells in count order (done, skipped, failed, running, pending).
  function approxFromJob(j) {
    const f = frames(j);
    const n = Math.min(f.total || 0, 200000);
    if (n !== grid.n) resizeGrid(n);
    const now = performance.now();
    let i = 0;
    const fill = (count, s) => {
      for (let k = 0; k < count && i < n; k++, i++) {
        if (s === ST.running && grid.state[i] !== ST.running) grid.started[i] = now;
        if (s !== ST.running) grid.started[i] = 0;
        grid.state[i] = s;
        grid.frame[i] = -1;
      }
    };
    fill(f.done || 0, ST.done);
    fill(f.skipped || 0, ST.skipped);
    fill(f.failed || 0, ST.failed);
    fill(f.running || 0, ST.running);
    fill(n, ST.pending);
    grid.approx = true;
  }

  // Where the mouse is, as a cell index (or -1).
  function cellAt(ev) {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top, p = grid.cell + grid.gap;
    const col = Math.floor(x / p), row = Math.floor(y / p);
    if (col < 0 || col >= grid.cols || x % p > grid.cell || y % p > grid.cell) return -1;
    const i = row * grid.cols + col;
    return i < grid.n ? i : -1;
  }

  function cellLines(i) {
    const s = grid.state[i];
    const lines = [];
    if (grid.approx) {
      lines.push(['cell', i + 1 + ' of ' + grid.n], ['state', ST_NAME[s]], ['note', 'per-frame details need a newer server']);
      return lines;
    }
    lines.push(['frame', grid.frame[i]], ['state', ST_NAME[s]]);
    if (grid.node[i]) {
      const host = grid.hosts[grid.node[i]];
      lines.push(['node', 'rank ' + grid.node[i] + (host ? ' on ' + host : '')]);
    }
    if (grid.attempts[i]) lines.push(['attempts', grid.attempts[i]]);
    if ((s === ST.running || s === ST.copy) && grid.started[i])
      lines.push(['running for', fmtDur((performance.now() - grid.started[i]) / 1000)]);
    else if (grid.seconds[i]) lines.push(['seconds', grid.seconds[i].toFixed(2)]);
    if (grid.errors.has(i)) lines.push(['last error', grid.errors.get(i)]);
    return lines;
  }

  canvas.addEventListener('mousemove', (ev) => {
    const i = cellAt(ev);
    const old = grid.hover;
    grid.hover = i;
    if (old >= 0) drawCell(old);
    if (i >= 0) drawCell(i);
    const tip = $('tip');
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    tip.textContent = cellLines(i).map((l) => l[0] + ': ' + l[1]).join('\n');
    tip.hidden = false;
    const r = canvas.getBoundingClientRect();
    tip.style.left = Math.min(ev.clientX - r.left + 14, grid.w - 220) + 'px';
    tip.style.top = ev.clientY - r.top + 14 + 'px';
  });
  canvas.addEventListener('mouseleave', () => {
    const old = grid.hover;
    grid.hover = -1;
    if (old >= 0) drawCell(old);
    $('tip').hidden = true;
  });
  canvas.addEventListener('click', (ev) => {
    const i = cellAt(ev);
    const old = grid.pinned;
    grid.pinned = i;
    if (old >= 0) drawCell(old);
    if (i >= 0) drawCell(i);
    showDetail(i);
  });

  let detailUrl = null;
  async function showDetail(i) {
    const d = $('detail');
    if (i < 0) {
      d.hidden = true;
      return;
    }
    d.hidden = false;
    $('detail-title').textContent = grid.approx ? 'Cell ' + (i + 1) : 'Frame ' + grid.frame[i];
    const list = $('detail-list');
    list.replaceChildren();
    for (const [k, v] of cellLines(i)) list.append(el('dt', k), el('dd', v));
    const img = $('detail-img');
    img.hidden = true;
    $('detail-noimg').hidden = true;
    if (detailUrl) URL.revokeObjectURL(detailUrl);
    detailUrl = null;
    if (grid.approx || (grid.state[i] !== ST.done && grid.state[i] !== ST.skipped)) return;
    // The thumbnail when the server makes them, else the frame itself (browsers show PNG/JPEG/WEBP).
    const base = '/jobs/' + encodeURIComponent(app.selected) + '/frames/' + grid.frame[i];
    const url = hasFeature('thumbs') ? base + '/thumb' : base;
    try {
      const headers = app.token ? { Authorization: 'Bearer ' + app.token } : {};
      const r = await fetch(url, { headers, cache: 'no-store', credentials: 'omit' });
      if (!r.ok) throw new Error('HTTP ' + r.status);
      const blob = await r.blob();
      app.bytes += blob.size;
      if (grid.pinned !== i) return;
      detailUrl = URL.createObjectURL(blob);
      img.onerror = () => {
        img.hidden = true;
        $('detail-noimg').hidden = false;
      };
      img.src = detailUrl;
      img.hidden = false;
    } catch (e) {
      $('detail-noimg').hidden = false;
    }
  }

  // ---- one job ----
  function renderJob() {
    const id = app.selected;
    const sec = $('job');
    const j = id ? app.jobs.get(id) : null;
    if (!j) {
      sec.hidden = true;
      return;
    }
    sec.hidden = false;
    $('job-id').textContent = id;
    const st = $('job-state');
    st.textContent = j.state;
    st.className = 'state ' + j.state;
    const f = frames(j);
    const rows = [
      ['scene', sceneOf(j)],
      ['output', j.output || '—'],
      ['submitted', j.submitted || '—'],
      ['frames', (f.total || 0) + ' total: ' + (f.done || 0) + ' done, ' + (f.skipped || 0) + ' skipped, ' +
        (f.failed || 0) + ' failed, ' + (f.running || 0) + ' running, ' + (f.pending || 0) + ' pending'],
      ['elapsed', fmtDur(j.elapsedSeconds)],
    ];
    if (!finished(j)) rows.push(['ETA', fmtDur(j.etaSeconds)]);
    if (finished(j)) {
      const el2 = j.elapsedSeconds;
      const made = (f.done || 0);
      rows.push(['summary', j.state + ': ' + made + ' rendered, ' + (f.skipped || 0) + ' already there, ' +
        (f.failed || 0) + ' failed' + (el2 > 0 && made ? ', ' + (made / el2).toFixed(2) + ' frames/s' : '')]);
    }
    if (Array.isArray(j.failedFrames) && j.failedFrames.length)
      rows.push(['failed frames', j.failedFrames.map((x) => (x && typeof x === 'object'
        ? 'frame ' + x.frame + (x.attempts ? ' (' + x.attempts + ' attempts)' : '') + (x.error ? ': ' + x.error : '')
        : String(x))).join('; ')]);
    if (j.error) rows.push(['error', j.error]);
    const dl = $('job-summary');
    dl.replaceChildren();
    for (const [k, v] of rows) dl.append(el('dt', k), el('dd', v));

    if (!hasFeature('frames')) {
      approxFromJob(j);
      $('grid-note').textContent =
        'This server does not publish per-frame states yet: cells are shown in count order, not by frame number.';
      redraw(null);
    } else {
      $('grid-note').textContent = '';
    }

    const nodes = Array.isArray(j.nodes) ? j.nodes : [];
    const trs = nodes.map((nd) => {
      const tr = el('tr');
      const busy = typeof nd.busyShare === 'number' ? Math.round(nd.busyShare * 100) + '%' : '—';
      const live = typeof nd.lost === 'boolean' ? (nd.lost ? 'lost' : 'live') : nd.state || 'live';
      tr.append(el('td', nd.rank), el('td', nd.host), el('td', nd.currentFrame === null || nd.currentFrame === undefined ? '—' : nd.currentFrame),
        el('td', nd.framesDone), el('td', busy), el('td', live));
      return tr;
    });
    $('nodes-body').replaceChildren(...trs);
  }

  const hasFeature = (f) => !!(app.info && Array.isArray(app.info.features) && app.info.features.includes(f));

  function route() {
    const m = /^#job=(.+)$/.exec(location.hash);
    const id = m ? decodeURIComponent(m[1]) : null;
    if (id !== app.selected) {
      app.selected = id;
      grid.pinned = grid.hover = -1;
      grid.version = 0;
      resizeGrid(0);
      $('detail').hidden = true;
      framesGen++;
      if (id && hasFeature('frames')) framesLoop(framesGen);
    }
    renderJobs();
    renderJob();
  }
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => redraw(null));

  // ---- live updates: long-poll GET /updates, only the jobs changed since our version ----
  function applyUpdates(u) {
    if (u.epoch !== app.epoch || u.full) {
      app.jobs.clear();
      app.epoch = u.epoch;
    }
    for (const j of u.jobs || []) if (j && typeof j.jobId === 'string') app.jobs.set(j.jobId, j);
    app.ids = (u.ids || []).filter((id) => app.jobs.has(id));
    for (const id of [...app.jobs.keys()]) if (!app.ids.includes(id)) app.jobs.delete(id);
    app.version = u.version;
    renderJobs();
    renderJob();
  }

  async function pollLoop() {
    let backoff = 500;
    for (;;) {
      await tokenReady();
      const t0 = performance.now();
      try {
        if (!app.info) await loadInfo();
        const q = '/updates?epoch=' + encodeURIComponent(app.epoch) + '&since=' + app.version + '&wait=20';
        const r = await api('GET', q);
        if (r.status !== 200) throw new Error((r.data && r.data.error) || 'HTTP ' + r.status);
        applyUpdates(r.data);
        setConn('live', 'live');
        backoff = 500;
      } catch (e) {
        if (e instanceof AuthError) continue;
        setConn('reconnecting…', 'down');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
        continue;
      }
      // Changes can come many times a second: take them at most once a second.
      const dt = performance.now() - t0;
      if (dt < 1000) await sleep(1000 - dt);
    }
  }

  // Phase 2: GET /jobs/<id>/frames?since=V long-poll for the selected job (when the server has it).
  let framesGen = 0;
  const framesTimes = [];
  async function framesLoop(gen) {
    let backoff = 500;
    while (gen === framesGen) {
      await tokenReady();
      const t0 = performance.now();
      try {
        const id = app.selected;
        const r = await api('GET', '/jobs/' + encodeURIComponent(id) + '/frames?since=' + grid.version + '&wait=20');
        if (gen !== framesGen) return;
        if (r.status === 404) return;
        if (r.status === 204) { // queued: no per-frame state yet
          await sleep(1000);
          continue;
        }
        if (r.status !== 200) throw new Error('HTTP ' + r.status);
        const ta = performance.now();
        redraw(applyFrames(r.data));
        // what applying a real answer cost, for the test hook (the last 200)
        framesTimes.push({ ms: performance.now() - ta, full: !!r.data.full,
          cells: r.data.full ? grid.n : (r.data.index || []).length });
        if (framesTimes.length > 200) framesTimes.shift();
        backoff = 500;
      } catch (e) {
        if (e instanceof AuthError) continue;
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 10000);
        continue;
      }
      const dt = performance.now() - t0;
      if (dt < 1000) await sleep(1000 - dt);
    }
  }

  async function loadInfo() {
    const r = await api('GET', '/info');
    if (r.status !== 200) throw new Error('HTTP ' + r.status);
    app.info = r.data;
    $('app').hidden = false;
    $('mode').textContent = app.info.readOnly ? 'read-only (--http)' : 'service (--serve)';
    $('submit').hidden = !!app.info.readOnly;
    $('footer').textContent = 'drender ' + app.info.version;
    const dl = $('scenes');
    dl.replaceChildren(...(app.info.scenes || []).map((s) => {
      const o = el('option');
      o.value = s;
      return o;
    }));
    if (!$('f-blend').value && app.info.scenes && app.info.scenes.length) $('f-blend').value = app.info.scenes[0];
    readColors();
    app.selected = undefined; // let route() start the frames loop now that features are known
    route();
  }

  // Live seconds on running cells.
  setInterval(() => {
    if (!app.selected || $('job').hidden) return;
    const idx = [];
    for (let i = 0; i < grid.n; i++) if (grid.state[i] === ST.running || grid.state[i] === ST.copy) idx.push(i);
    if (idx.length && grid.cell >= 22) redraw(idx);
  }, 1000);

  // ---- test hook (used by tests/e2e/dashboard.py; holds no data the page does not show) ----
  window.drenderTest = {
    stats: () => ({ bytes: app.bytes, requests: app.requests, version: app.version, epoch: app.epoch, jobs: app.ids.length }),
    gridInfo: () => ({ n: grid.n, approx: grid.approx, cell: grid.cell, cols: grid.cols,
      counts: ST_NAME.map((_, s) => grid.state.reduce((a, x) => a + (x === s ? 1 : 0), 0)) }),
    // Applied answers of GET /jobs/<id>/frames: [{ms, full, cells}], oldest first.
    framesTimes: () => framesTimes.slice(),
    // Load a synthetic N-frame job into the grid; returns ms to apply and draw it.
    synthetic(n) {
      framesGen++; // the selected job's own updates would replace it
      $('job').hidden = false;
      const t0 = performance.now();
      redraw(applyFrames({ full: true, version: 1, frames: '1-' + n, state: 'p'.repeat(n) }));
      return performance.now() - t0;
    },
    // Apply one changes-since update touching K random cells; returns ms to apply and draw it.
    update(k) {
      const index = [], node = [], secs = [];
      let st = '';
      for (let x = 0; x < k; x++) {
        index.push(Math.floor(Math.random() * grid.n));
        st += 'prdfcs'[x % 6];
        node.push(1 + (x % 8));
        secs.push(Math.random() * 30);
      }
      const t0 = performance.now();
      redraw(applyFrames({ full: false, version: grid.version + 1, index, state: st, node, seconds: secs }));
      return performance.now() - t0;
    },
    // A full redraw (resize, or a full answer), in ms.
    full() {
      const t0 = performance.now();
      redraw(null);
      return performance.now() - t0;
    },
  };

  readColors();
  pollLoop();
})();
