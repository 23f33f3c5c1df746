/*  page.js — hvn-index's live fleet page.

    The fleet is read from GET /v1/compute_nodes (paged by marker) after the
    stream GET /v1/stream says hello; every "changes" message that arrived
    since is applied on top (a change carries the whole row, so applying
    one twice is harmless), then the page follows the stream. On "reload",
    or when the stream reconnects, the fleet is read again.

    Nothing from the index is ever parsed as HTML: every text goes through
    textContent or an attribute, every element through createElement. What
    the page holds is bounded by the fleet (one row and one cell per node)
    and by RECENT_MAX changes.
*/
'use strict';

const PAGE_LIMIT = 10000;   // Rows per GET (the API's most)
const RECENT_MAX = 100;     // Latest changes kept
const TABLE_ROWS_MAX = 500; // Rows of the table drawn at once
const TABLE_EVERY_MS = 250; // Table redrawn at most this often while live
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
const cells = new Map();  // uuid -> cell element
const groups = new Map(); // group name -> {section, cells}
let generation = 0;       // Bumped at each (re)load; stale loads give up
let live = false;         // The fleet is loaded: apply changes at once
let buffered = [];        // Changes that arrived while loading
let picked = null;        // uuid whose detail is pinned
let sortKey = 'host';
let sortDesc = false;
let filters = [];
let tableDue = false;
let tableAt = 0;
let totalsDue = false;

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
  const [used, total] = UTIL[$('colour-by').value];
  const t = row[total];
  if (!t || t <= 0 || row[used] === null || row[used] === undefined) return null;
  return Math.max(0, Math.min(1, row[used] / t));
}

function colour(u) {
  return u === null ? '#444' : 'hsl(' + Math.round(120 * (1 - u)) + ', 65%, 42%)';
}

function groupOf(row) {
  if ($('group-by').value === 'hypervisor_type') return row.hypervisor_type || '(none)';
  const host = String(row.host || '').split('.')[0];
  const prefix = host.replace(/[-_]?[0-9]+$/, '');
  return prefix || host || '(none)';
}

// ---------------------------------------------------------------------------
// The heat map

function paintCell(cell, row) {
  const u = utilisation(row);
  cell.style.backgroundColor = colour(u);
  cell.dataset.util = u === null ? '' : String(Math.round(u * 100));
  cell.title = String(row.host) + ' — ' + (u === null ? 'n/a' : Math.round(u * 100) + '%');
}

function groupFor(name) {
  let g = groups.get(name);
  if (g) return g;
  const section = el('div', 'group');
  section.dataset.group = name;
  section.append(el('div', 'group-name', name));
  const body = el('div', 'cells');
  section.append(body);
  g = {section, body, name};
  groups.set(name, g);
  // Keep groups in name order
  const after = [...groups.values()].filter((o) => o.name > name)
    .sort((a, b) => (a.name < b.name ? -1 : 1))[0];
  $('heatmap').insertBefore(section, after ? after.section : null);
  return g;
}

function placeCell(uuid, row) {
  let cell = cells.get(uuid);
  const name = groupOf(row);
  if (!cell) {
    cell = el('div', 'cell');
    cell.dataset.uuid = uuid;
    cells.set(uuid, cell);
  }
  if (cell.dataset.group !== name) {
    const old = groups.get(cell.dataset.group);
    groupFor(name).body.append(cell);
    cell.dataset.group = name;
    dropEmptyGroup(old);
  }
  paintCell(cell, row);
}

function dropEmptyGroup(g) {
  if (g && !g.body.firstChild) {
    g.section.remove();
    groups.delete(g.name);
  }
}

function removeCell(uuid) {
  const cell = cells.get(uuid);
  if (!cell) return;
  const g = groups.get(cell.dataset.group);
  cell.remove();
  cells.delete(uuid);
  dropEmptyGroup(g);
}

function rebuildMap() {
  const map = $('heatmap');
  map.replaceChildren();
  cells.clear();
  groups.clear();
  const byGroup = new Map();
  for (const [uuid, row] of nodes) {
    const name = groupOf(row);
    if (!byGroup.has(name)) byGroup.set(name, []);
    byGroup.get(name).push([uuid, row]);
  }
  const fragment = document.createDocumentFragment();
  for (const name of [...byGroup.keys()].sort()) {
    const section = el('div', 'group');
    section.dataset.group = name;
    section.append(el('div', 'group-name', name + ' (' + byGroup.get(name).length + ')'));
    const body = el('div', 'cells');
    section.append(body);
    groups.set(name, {section, body, name});
    const members = byGroup.get(name).sort((a, b) => (String(a[1].host) < String(b[1].host) ? -1 : 1));
    for (const [uuid, row] of members) {
      const cell = el('div', 'cell');
      cell.dataset.uuid = uuid;
      cell.dataset.group = name;
      paintCell(cell, row);
      cells.set(uuid, cell);
      body.append(cell);
    }
    fragment.append(section);
  }
  map.append(fragment);
}

function recolour() {
  for (const [uuid, cell] of cells) paintCell(cell, nodes.get(uuid));
}

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

function onMapHover(event) {
  const uuid = event.target.dataset && event.target.dataset.uuid;
  if (uuid && !picked) showDetail(uuid);
}

function onMapClick(event) {
  const uuid = event.target.dataset && event.target.dataset.uuid;
  if (!uuid) return;
  const old = picked && cells.get(picked);
  if (old) old.classList.remove('picked');
  picked = picked === uuid ? null : uuid;
  if (picked) event.target.classList.add('picked');
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
    requestAnimationFrame(drawTotals);
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
  list.prepend(li);
  while (list.childElementCount > RECENT_MAX) list.lastElementChild.remove();
}

// ---------------------------------------------------------------------------
// Changes

function apply(message) {
  for (const row of message.nodes) {
    const old = nodes.get(row.uuid);
    if (old && old.created_at !== undefined && row.created_at === undefined)
      row.created_at = old.created_at;
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
  if (picked || message.nodes.length || message.deleted.length) {
    if (picked) showDetail(picked);
    schedule();
  }
}

async function fetchFleet(gen) {
  const fleet = new Map();
  let marker = null;
  for (;;) {
    const url = '/v1/compute_nodes?limit=' + PAGE_LIMIT + (marker ? '&marker=' + marker : '');
    const response = await fetch(url, {cache: 'no-store'});
    if (!response.ok) throw new Error('GET ' + url + ': ' + response.status);
    const rows = (await response.json()).compute_nodes;
    if (gen !== generation) return null;
    for (const r of rows) fleet.set(r.uuid, r);
    if (rows.length < PAGE_LIMIT) return fleet;
    marker = rows[rows.length - 1].uuid;
  }
}

async function load() {
  const gen = ++generation;
  live = false;
  buffered = [];
  setStatus('loading…', '');
  let fleet;
  try {
    fleet = await fetchFleet(gen);
  } catch (e) {
    setStatus('cannot read the fleet: ' + e.message, 'down');
    return;
  }
  if (!fleet) return;
  nodes.clear();
  for (const [uuid, row] of fleet) nodes.set(uuid, row);
  rebuildMap();
  for (const message of buffered) apply(message);
  buffered = [];
  live = true;
  drawTotals();
  drawTable();
  document.body.dataset.ready = String(gen);
  setStatus('live', 'live');
}

function connect() {
  const stream = new EventSource('/v1/stream');
  stream.addEventListener('hello', () => load());
  stream.addEventListener('reload', () => load());
  stream.addEventListener('changes', (event) => {
    const message = JSON.parse(event.data);
    if (live) apply(message);
    else buffered.push(message);
  });
  stream.onerror = () => {
    live = false;
    setStatus('reconnecting…', 'down');
  };
}

function start() {
  drawHead();
  $('colour-by').addEventListener('change', recolour);
  $('group-by').addEventListener('change', rebuildMap);
  $('filter').addEventListener('input', onFilter);
  $('nodes-head').addEventListener('click', onSort);
  $('heatmap').addEventListener('mouseover', onMapHover);
  $('heatmap').addEventListener('click', onMapClick);
  connect();
}

start();
