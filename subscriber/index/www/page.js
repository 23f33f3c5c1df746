/*  page.js — hvn-index's live fleet page.

    Everything comes from one stream, GET /v1/stream: its first event,
    "hello", holds every row as of the stream's start; each "changes"
    event after it holds the rows that changed (whole rows) and the uuids
    removed; "reload" asks for a new stream (after a snapshot changed too
    much to send as changes). When the stream breaks, the browser
    reconnects and the new hello replaces everything.

    Nothing from the index is ever parsed as HTML: every text goes through
    textContent or an attribute, every element through createElement, and
    the heat map is drawn on canvases. What the page holds is bounded by
    the fleet (one row and one square per node) and by RECENT_MAX changes.
*/
'use strict';

const PAGE_LIMIT = 10000;   // Rows per GET (the API's most)
const RECENT_MAX = 100;     // Latest changes kept
const TABLE_ROWS_MAX = 200; // Rows of the table drawn at once
const TABLE_EVERY_MS = 1000; // Table redrawn at most this often while live
const INT_FIELDS = new Set(['id', 'vcpus', 'vcpus_used', 'memory_mb', 'memory_mb_used',
  'local_gb', 'local_gb_used', 'free_ram_mb', 'free_disk_gb', 'current_workload',
  'running_vms', 'disk_available_least', 'hypervisor_version']);
const COLUMNS = [
  ['host', 'host'], ['hypervisor_hostname', 'hypervisor'], ['hypervisor_type', 'type'],
  ['vcpus_used', 'vCPU used'], ['vcpus', 'vCPUs'], ['memory_mb_used', 'RAM used MB'],
  ['memory_mb', 'RAM MB'], ['local_gb_used', 'disk used GB'], ['local_gb', 'disk GB'],
  ['running_vms', 'VMs'], ['free_ram_mb', 'free RAM MB'], ['free_disk_gb', 'free disk GB'],
  ['updated_at', 'updated'],
];
const UTIL = {
  vcpu: ['vcpus_used', 'vcpus'],
  ram: ['memory_mb_used', 'memory_mb'],
  disk: ['local_gb_used', 'local_gb'],
};

const nodes = new Map();  // uuid -> row
const cells = new Map();  // uuid -> {group, index}: its square
const groups = new Map(); // group name -> {name, section, label, canvas, ctx, uuids, cols}
let generation = 0;       // Bumped at each load
let live = false;         // The fleet is loaded: apply changes
let fields = [];          // Names of a row's values, from the hello
let picked = null;        // uuid whose detail is pinned
let sortKey = 'host';
let sortDesc = false;
let filters = [];
let tableDue = false;
let tableAt = 0;
let totalsDue = false;
let colourBy = 'vcpu';
let groupBy = 'hypervisor_type';

// What the page measures of itself (read by bench/page_bench.py): changes
// applied, time spent applying them, and the age of the last LAGS_MAX rows
// when applied (now minus their notification's timestamp).
const LAGS_MAX = 1000;
const meter = {messages: 0, rows: 0, applyMs: 0, lags: [], lagAt: 0, paintedMs: null};
window.hvnPage = meter;

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function setStatus(text, cls) {
  const s = $('status');
  s.textContent = text;
  s.className = 'status ' + (cls || '');
}

// ---------------------------------------------------------------------------
// Utilisation and grouping

function utilisation(row) {
  const [used, total] = UTIL[colourBy];
  const t = row[total];
  if (!t || t <= 0 || row[used] === null || row[used] === undefined) return null;
  return Math.max(0, Math.min(1, row[used] / t));
}

function colour(u) {
  return u === null ? '#444' : 'hsl(' + Math.round(120 * (1 - u)) + ', 65%, 42%)';
}

function groupOf(row) {
  if (groupBy === 'hypervisor_type') return row.hypervisor_type || '(none)';
  const host = String(row.host || '').split('.')[0];
  const prefix = host.replace(/[-_]?[0-9]+$/, '');
  return prefix || host || '(none)';
}

// ---------------------------------------------------------------------------
// The heat map: one canvas per group, one CELL px square per node, in the
// group's order; a change repaints one square, a removal its group.

const CELL = 10;           // Square size, px
const PITCH = CELL + 2;    // Square and gap

function columns() {
  return Math.max(1, Math.floor(($('heatmap').clientWidth - 4) / PITCH));
}

function paintAt(g, i, whole) {
  const ctx = g.ctx;
  const x = (i % g.cols) * PITCH, y = Math.floor(i / g.cols) * PITCH;
  const uuid = g.uuids[i];
  const u = utilisation(nodes.get(uuid));
  if (!whole) ctx.clearRect(x, y, PITCH, PITCH);
  ctx.fillStyle = colour(u);
  ctx.fillRect(x + 1, y + 1, CELL, CELL);
  if (uuid === picked) {
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 2;
    ctx.strokeRect(x + 1, y + 1, CELL, CELL);
  }
}

function paintGroup(g) {
  g.cols = columns();
  const height = Math.max(1, Math.ceil(g.uuids.length / g.cols)) * PITCH;
  const width = g.cols * PITCH;
  if (g.canvas.width !== width || g.canvas.height !== height) {
    g.canvas.width = width;
    g.canvas.height = height;
  } else g.ctx.clearRect(0, 0, width, height);
  for (let i = 0; i < g.uuids.length; i++) paintAt(g, i, true);
  g.label.textContent = g.name + ' (' + g.uuids.length + ')';
}

function newGroup(name) {
  const section = el('div', 'group');
  const label = el('div', 'group-name', name);
  const canvas = el('canvas', 'cells');
  section.append(label, canvas);
  const g = {name, section, label, canvas, ctx: canvas.getContext('2d'), uuids: [], cols: 1};
  canvas.addEventListener('mousemove', (event) => onMapHover(g, event));
  canvas.addEventListener('click', (event) => onMapClick(g, event));
  groups.set(name, g);
  return g;
}

function groupFor(name) {
  let g = groups.get(name);
  if (g) return g;
  g = newGroup(name);
  const after = [...groups.values()].filter((o) => o.name > name)
    .sort((a, b) => (a.name < b.name ? -1 : 1))[0];
  $('heatmap').insertBefore(g.section, after ? after.section : null);
  return g;
}

function dropFromGroup(uuid) {
  const place = cells.get(uuid);
  if (!place) return;
  const g = place.group;
  g.uuids.splice(place.index, 1);
  for (let i = place.index; i < g.uuids.length; i++) cells.get(g.uuids[i]).index = i;
  cells.delete(uuid);
  if (!g.uuids.length) {
    g.section.remove();
    groups.delete(g.name);
  } else dirty.add(g);
}

const dirty = new Set(); // Groups to repaint whole at the next frame

function placeCell(uuid, row) {
  const name = groupOf(row);
  const place = cells.get(uuid);
  if (place && place.group.name === name) {
    if (!dirty.has(place.group)) paintAt(place.group, place.index);
    return;
  }
  if (place) dropFromGroup(uuid);
  const g = groupFor(name);
  g.uuids.push(uuid);
  cells.set(uuid, {group: g, index: g.uuids.length - 1});
  dirty.add(g);
}

function removeCell(uuid) {
  dropFromGroup(uuid);
}

function paintDirty() {
  for (const g of dirty) if (groups.get(g.name) === g) paintGroup(g);
  dirty.clear();
}

function rebuildMap() {
  $('heatmap').replaceChildren();
  cells.clear();
  groups.clear();
  dirty.clear();
  const byGroup = new Map();
  for (const [uuid, row] of nodes) {
    const name = groupOf(row);
    if (!byGroup.has(name)) byGroup.set(name, []);
    byGroup.get(name).push(row);
  }
  const fragment = document.createDocumentFragment();
  for (const name of [...byGroup.keys()].sort()) {
    const g = newGroup(name);
    const members = byGroup.get(name);
    members.sort((a, b) => (String(a.host) < String(b.host) ? -1 : 1));
    g.uuids = members.map((r) => r.uuid);
    g.uuids.forEach((uuid, index) => cells.set(uuid, {group: g, index}));
    fragment.append(g.section);
  }
  $('heatmap').append(fragment);
  for (const g of groups.values()) paintGroup(g);
}

function recolour() {
  for (const g of groups.values()) paintGroup(g);
}

function cellAt(g, event) {
  const r = g.canvas.getBoundingClientRect();
  const col = Math.floor((event.clientX - r.left) / PITCH);
  const i = Math.floor((event.clientY - r.top) / PITCH) * g.cols + col;
  return col < g.cols && i >= 0 && i < g.uuids.length ? g.uuids[i] : null;
}

// What the tests and the benchmark read of the map
meter.cellCount = () => cells.size;
meter.cellUuids = () => [...cells.keys()];
meter.cellUtil = (uuid) => {
  const row = nodes.get(uuid);
  if (!row || !cells.has(uuid)) return null;
  const u = utilisation(row);
  return u === null ? '' : String(Math.round(u * 100));
};
meter.cellPixel = (uuid) => {
  const place = cells.get(uuid);
  if (!place) return null;
  const g = place.group;
  const x = (place.index % g.cols) * PITCH + 1 + CELL / 2;
  const y = Math.floor(place.index / g.cols) * PITCH + 1 + CELL / 2;
  return [...g.ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
};

// ---------------------------------------------------------------------------
// The node's detail

function showDetail(uuid) {
  const table = $('detail');
  table.replaceChildren();
  const row = nodes.get(uuid);
  if (!row) {
    const tr = el('tr');
    tr.append(el('td', null, uuid ? 'removed: ' + uuid : ''));
    table.append(tr);
    return;
  }
  for (const key of Object.keys(row)) {
    const tr = el('tr');
    tr.append(el('th', null, key), el('td', null, row[key] === null ? 'null' : row[key]));
    table.append(tr);
  }
}

function onMapHover(g, event) {
  const uuid = cellAt(g, event);
  g.canvas.title = uuid ? String(nodes.get(uuid).host) : '';
  if (uuid && !picked) showDetail(uuid);
}

function onMapClick(g, event) {
  const uuid = cellAt(g, event);
  if (!uuid) return;
  const old = picked && cells.get(picked);
  picked = picked === uuid ? null : uuid;
  if (old) paintAt(old.group, old.index);
  const place = cells.get(uuid);
  paintAt(place.group, place.index);
  showDetail(uuid);
}

// ---------------------------------------------------------------------------
// Totals

function human(mb) {
  if (mb >= 1024 * 1024) return (mb / 1024 / 1024).toFixed(1) + ' TiB';
  if (mb >= 1024) return (mb / 1024).toFixed(1) + ' GiB';
  return mb + ' MiB';
}

function setTotal(id, used, total, text) {
  const e = $(id);
  e.dataset.used = String(used);
  if (total !== null) e.dataset.total = String(total);
  e.textContent = text;
}

function drawTotals() {
  totalsDue = false;
  let vu = 0, vt = 0, mu = 0, mt = 0, du = 0, dt = 0, vms = 0;
  for (const r of nodes.values()) {
    vu += r.vcpus_used || 0; vt += r.vcpus || 0;
    mu += r.memory_mb_used || 0; mt += r.memory_mb || 0;
    du += r.local_gb_used || 0; dt += r.local_gb || 0;
    vms += r.running_vms || 0;
  }
  setTotal('t-nodes', nodes.size, null, String(nodes.size));
  setTotal('t-vcpus', vu, vt, vu + ' / ' + vt);
  setTotal('t-ram', mu, mt, human(mu) + ' / ' + human(mt));
  setTotal('t-disk', du, dt, du + ' / ' + dt + ' GB');
  setTotal('t-vms', vms, null, String(vms));
}

// ---------------------------------------------------------------------------
// The table and its filters (the API's: field=value, field__gt= …)

const OPS = {
  '': (a, b) => a === b, ne: (a, b) => a !== b,
  gt: (a, b) => a !== null && a > b, ge: (a, b) => a !== null && a >= b,
  lt: (a, b) => a !== null && a < b, le: (a, b) => a !== null && a <= b,
};

function parseFilters(text) {
  const out = [];
  for (const part of text.split(/[&\s]+/)) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq < 0) throw new Error("'" + part + "' is not field=value");
    let key = part.slice(0, eq);
    const raw = decodeURIComponent(part.slice(eq + 1));
    let op = '';
    const m = key.match(/^(.*)__(gt|ge|lt|le|ne)$/);
    if (m) { key = m[1]; op = m[2]; }
    const sample = nodes.values().next().value;
    if (sample && !(key in sample)) throw new Error("unknown field '" + key + "'");
    let value = raw;
    if (INT_FIELDS.has(key)) {
      if (!/^-?[0-9]+$/.test(raw)) throw new Error("'" + key + "' takes a whole number");
      value = Number(raw);
    }
    out.push([key, OPS[op], value]);
  }
  return out;
}

function onFilter() {
  try {
    filters = parseFilters($('filter').value.trim());
    $('filter-error').textContent = '';
  } catch (e) {
    $('filter-error').textContent = e.message;
  }
  drawTable();
}

function compare(a, b) {
  const x = a[sortKey], y = b[sortKey];
  if (x === y) return a.uuid < b.uuid ? -1 : 1;
  if (x === null || x === undefined) return 1;
  if (y === null || y === undefined) return -1;
  const c = x < y ? -1 : 1;
  return sortDesc ? -c : c;
}

function drawHead() {
  const head = $('nodes-head');
  head.replaceChildren();
  for (const [key, label] of COLUMNS) {
    const th = el('th', key === sortKey ? (sortDesc ? 'desc' : 'asc') : '', label);
    th.dataset.key = key;
    head.append(th);
  }
}

function onSort(event) {
  const key = event.target.dataset && event.target.dataset.key;
  if (!key) return;
  if (key === sortKey) sortDesc = !sortDesc;
  else { sortKey = key; sortDesc = false; }
  drawHead();
  drawTable();
}

function drawTable() {
  tableDue = false;
  tableAt = performance.now();
  const rows = [];
  for (const r of nodes.values())
    if (filters.every(([k, op, v]) => op(r[k], v))) rows.push(r);
  rows.sort(compare);
  const body = document.createDocumentFragment();
  for (const r of rows.slice(0, TABLE_ROWS_MAX)) {
    const tr = el('tr');
    tr.dataset.uuid = r.uuid;
    for (const [key] of COLUMNS)
      tr.append(el('td', INT_FIELDS.has(key) ? 'num' : null, r[key] === null ? '' : r[key]));
    body.append(tr);
  }
  $('nodes-body').replaceChildren(body);
  $('shown').textContent = rows.length > TABLE_ROWS_MAX
    ? rows.length + ' match, the first ' + TABLE_ROWS_MAX + ' shown'
    : rows.length + ' match';
}

function schedule() {
  if (!totalsDue) {
    totalsDue = true;
    requestAnimationFrame(() => { paintDirty(); drawTotals(); });
  }
  if (!tableDue) {
    tableDue = true;
    const wait = Math.max(0, TABLE_EVERY_MS - (performance.now() - tableAt));
    setTimeout(() => requestAnimationFrame(drawTable), wait);
  }
}

// ---------------------------------------------------------------------------
// Latest changes

function diff(old, row) {
  const parts = [];
  for (const key of Object.keys(row)) {
    if (key === 'updated_at' || key === 'created_at') continue;
    if (old[key] !== row[key]) parts.push(key + ' ' + old[key] + '→' + row[key]);
  }
  return parts.join(', ');
}

function noteRecent(kind, row, what) {
  const list = $('recent');
  const li = el('li', kind);
  li.append(el('span', 'when', new Date().toLocaleTimeString()), el('span', 'kind', kind),
    el('span', 'host', row.host));
  if (what) li.append(el('span', 'what', ' ' + what));
  li.dataset.uuid = row.uuid;
  li.dataset.at = String(Date.now());
  list.prepend(li);
  while (list.childElementCount > RECENT_MAX) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------------
// Changes

function age(row) {
  const t = Date.parse(String(row.updated_at).replace(' ', 'T').slice(0, 23) + 'Z');
  return Number.isNaN(t) ? null : Date.now() - t;
}

function rowOf(values) {
  const row = {};
  for (let i = 0; i < fields.length; i++) row[fields[i]] = values[i];
  return row;
}

function apply(message) {
  const started = performance.now();
  meter.messages++;
  meter.rows += message.rows.length + message.deleted.length;
  for (const values of message.rows) {
    const row = rowOf(values);
    const lag = age(row);
    if (lag !== null) meter.lags[meter.lagAt++ % LAGS_MAX] = lag;
    const old = nodes.get(row.uuid);
    nodes.set(row.uuid, row);
    placeCell(row.uuid, row);
    if (!old) noteRecent('added', row, '');
    else {
      const what = diff(old, row);
      if (what) noteRecent('updated', row, what);
    }
  }
  for (const uuid of message.deleted) {
    const old = nodes.get(uuid);
    if (!old) continue;
    nodes.delete(uuid);
    removeCell(uuid);
    noteRecent('removed', old, '');
  }
  if (picked || message.rows.length || message.deleted.length) {
    if (picked) showDetail(picked);
    schedule();
  }
  meter.applyMs += performance.now() - started;
}

function load(hello) {
  fields = hello.fields;
  meter.phases = {helloMs: performance.now()};
  nodes.clear();
  for (const values of hello.rows) {
    const row = rowOf(values);
    nodes.set(row.uuid, row);
  }
  rebuildMap();
  meter.phases.mapMs = performance.now();
  live = true;
  drawTotals();
  setStatus('live', 'live');
  const gen = ++generation;
  // The totals and the map are painted first; the table follows
  requestAnimationFrame(() => setTimeout(() => {
    if (meter.paintedMs === null) meter.paintedMs = performance.now();
    drawTable();
    meter.phases.tableMs = performance.now();
    document.body.dataset.ready = String(gen);
  }, 0));
}

let stream = null;

function connect() {
  if (stream) stream.close();
  live = false;
  setStatus('loading…', '');
  stream = new EventSource('/v1/stream');
  stream.addEventListener('hello', (event) => load(JSON.parse(event.data)));
  stream.addEventListener('reload', () => connect());
  stream.addEventListener('changes', (event) => {
    if (live) apply(JSON.parse(event.data));
  });
  stream.onerror = () => {
    live = false;
    setStatus('reconnecting…', 'down');
  };
}

function start() {
  drawHead();
  colourBy = $('colour-by').value;
  groupBy = $('group-by').value;
  $('colour-by').addEventListener('change', () => { colourBy = $('colour-by').value; recolour(); });
  $('group-by').addEventListener('change', () => { groupBy = $('group-by').value; rebuildMap(); });
  $('filter').addEventListener('input', onFilter);
  $('nodes-head').addEventListener('click', onSort);
  let width = 0;
  window.addEventListener('resize', () => {
    if ($('heatmap').clientWidth !== width) {
      width = $('heatmap').clientWidth;
      recolour();
    }
  });
  connect();
}

start();
