const G = JSON.parse(document.getElementById('graph-data').textContent);
const svg = document.getElementById('graph'), NS = 'http://www.w3.org/2000/svg';
const xs = [...new Set(G.nodes.map(n => n.x))].sort((a, b) => a - b);
const ys = [...new Set(G.nodes.map(n => n.y))].sort((a, b) => a - b);
const cell = {}; G.nodes.forEach(n => { const k = n.x + ',' + n.y; (cell[k] = cell[k] || []).push(n); });
const colW = Math.max(70, Math.min(160, 1100 / Math.max(1, xs.length)));
const rowH = Math.max(40, Math.min(90, 640 / Math.max(1, ys.length)));
const W = 90 + colW * xs.length, H = 50 + rowH * ys.length;
svg.setAttribute('width', W); svg.setAttribute('height', H);
const pos = {};
for (const k in cell) {
  const group = cell[k].sort((a, b) => Math.abs(b.score || 0) - Math.abs(a.score || 0));
  group.forEach((n, i) => {
    const per = Math.max(1, Math.floor((colW - 10) / 12));
    pos[n.id] = [80 + colW * xs.indexOf(n.x) + 8 + 12 * (i % per),
                 H - 30 - rowH * ys.indexOf(n.y) - 10 * Math.floor(i / per)];
  });
}
function add(tag, attrs, parent) { const e = document.createElementNS(NS, tag);
  for (const a in attrs) e.setAttribute(a, attrs[a]); (parent || svg).appendChild(e); return e; }
G.xLabels = G.xLabels || {}; G.yLabels = G.yLabels || {};
xs.forEach((x, i) => { const t = add('text', {x: 80 + colW * i + 4, y: H - 8, class: 'axis'});
  t.textContent = G.xLabels[x] !== undefined ? G.xLabels[x] : x; });
ys.forEach((y, i) => { const t = add('text', {x: 4, y: H - 26 - rowH * i, class: 'axis'});
  t.textContent = G.yLabels[y] !== undefined ? G.yLabels[y] : y; });
const topWeight = Math.max(1e-12, ...G.links.map(l => Math.abs(l.weight)));
const lines = G.links.filter(l => pos[l.source] && pos[l.target]).map(l => {
  const [x1, y1] = pos[l.source], [x2, y2] = pos[l.target];
  const e = add('line', {x1, y1, x2, y2, stroke: l.weight > 0 ? '#2a5bdc' : '#dc3c28',
    'stroke-width': 0.5 + 3 * Math.abs(l.weight) / topWeight, 'stroke-opacity': 0.15 + 0.7 * Math.abs(l.weight) / topWeight});
  e.dataset.source = l.source; e.dataset.target = l.target; return e; });
const topScore = Math.max(1e-12, ...G.nodes.map(n => Math.abs(n.score || 0)));
const tip = document.getElementById('tip');
G.nodes.forEach(n => {
  const [cx, cy] = pos[n.id];
  const c = add('circle', {cx, cy, r: 3 + 4 * Math.abs(n.score || 0) / topScore,
    fill: n.kind === 'error' ? '#999' : ((n.score || 0) >= 0 ? '#6d8fe8' : '#e8826d')});
  c.dataset.id = n.id;
  c.onmouseenter = ev => { tip.textContent = n.label + (n.score !== undefined && n.score !== null
    ? '  (' + n.score.toFixed(3) + ')' : ''); tip.style.display = 'block';
    tip.style.left = ev.clientX + 12 + 'px'; tip.style.top = ev.clientY + 12 + 'px'; };
  c.onmouseleave = () => { tip.style.display = 'none'; };
  c.onclick = () => select(n, c);
});
function row(table, k, v) { const tr = document.createElement('tr');
  const a = document.createElement('td'); a.textContent = k; const b = document.createElement('td');
  b.textContent = (typeof v === 'number') ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : (Array.isArray(v) ? v.join(' | ') : v);
  tr.append(a, b); table.appendChild(tr); }
function contexts(d, examples) {  // [{tokens, activations}]: each token shaded by its activation
  d.appendChild(document.createElement('h4')).textContent = 'top contexts';
  const top = Math.max(1e-12, ...examples.flatMap(e => e.activations));
  examples.forEach(e => { const p = document.createElement('p'); p.className = 'context';
    e.tokens.forEach((tok, i) => { const s = document.createElement('span'); s.textContent = tok;
      const a = Math.max(0, e.activations[i]) / top; s.style.background = `rgba(255,140,0,${a.toFixed(3)})`;
      s.title = e.activations[i].toFixed(3); p.appendChild(s); });
    d.appendChild(p); });
}
function select(n, c) {
  document.querySelectorAll('circle.on').forEach(e => e.classList.remove('on')); c.classList.add('on');
  lines.forEach(l => l.style.display = (l.dataset.source === n.id || l.dataset.target === n.id) ? '' : 'none');
  const d = document.getElementById('details'); d.textContent = '';
  const h = document.createElement('h3'); h.textContent = n.label; d.appendChild(h);
  const t = document.createElement('table'); d.appendChild(t);
  row(t, 'id', n.id); if (n.score !== undefined && n.score !== null) row(t, 'score', n.score);
  for (const k in (n.details || {})) row(t, k, n.details[k]);
  if (n.contexts && n.contexts.length) contexts(d, n.contexts);
  const links = G.links.filter(l => l.source === n.id || l.target === n.id)
    .sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).slice(0, 12);
  const lt = document.createElement('table'); d.appendChild(document.createElement('h4')).textContent = 'strongest links';
  d.appendChild(lt); links.forEach(l => row(lt, l.source === n.id ? '-> ' + l.target : '<- ' + l.source, l.weight));
  const all = document.createElement('button'); all.textContent = 'show all links';
  all.onclick = () => lines.forEach(l => l.style.display = ''); d.appendChild(all);
}
document.getElementById('count').textContent = G.nodes.length + ' nodes, ' + G.links.length + ' links';
