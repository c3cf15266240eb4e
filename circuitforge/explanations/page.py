"""A self-contained HTML page of a neuron-explanation sweep: one file, no server, no network.

The rows are embedded as JSON; a small script lists the neurons in a table that sorts by any
column (click its header) and opens a neuron's card (click its row) with both views side by
side: the atlas's top contexts and their SAE features, and what the optimised vector decodes
to and its SAE features, with the scores. Texts are put in with `textContent`, never as HTML.
"""

from __future__ import annotations

import html
import json

COLUMNS = [
    ("neuron", "neuron"),
    ("natural_max", "atlas max"),
    ("generation_score", "generation"),
    ("generation_baseline", "gen. random neuron"),
    ("generation_score_plain", "gen. plain"),
    ("agreement", "agreement"),
    ("agreement_baseline", "agr. shuffled"),
    ("stability_feature_overlap", "seed stability"),
    ("decoded", "decodes to"),
    ("triggers", "top contexts"),
]

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
tr.row:hover{background:#eef4ff;cursor:pointer}
#card{display:none;position:fixed;top:4%;left:5%;right:5%;max-height:88%;overflow:auto;
background:#fff;border:2px solid #446;box-shadow:0 4px 24px #0004;padding:1em;z-index:9}
.views{display:flex;gap:2em}.views>div{flex:1}
mark{background:#ffe27a}.ctx{font-family:monospace;white-space:pre-wrap;margin:.3em 0}
.feat{font-size:12px;color:#555}.num{font-variant-numeric:tabular-nums}
"""

SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const COLS = DATA.columns, rows = DATA.rows;
let sortKey = 'generation_score', sortDown = true;
function cell(r, k) {
  if (k === 'decoded') return r.contrastive_text[0];
  if (k === 'triggers') return r.top_contexts.map(c => c.trigger_token).join(' ');
  return r[k];
}
function fmt(v) { return (typeof v === 'number') ? (Number.isInteger(v) ? v : v.toFixed(3))
                                                 : (v === null || v === undefined ? '-' : v); }
function render() {
  const body = document.getElementById('rows'); body.textContent = '';
  const sorted = rows.slice().sort((a, b) => {
    let x = cell(a, sortKey), y = cell(b, sortKey);
    if (x === null) return 1; if (y === null) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * (sortDown ? -1 : 1);
  });
  for (const r of sorted) {
    const tr = document.createElement('tr'); tr.className = 'row';
    tr.dataset.neuron = r.neuron;
    for (const [k] of COLS) {
      const td = document.createElement('td'); td.textContent = fmt(cell(r, k));
      if (k !== 'decoded' && k !== 'triggers') td.className = 'num';
      tr.appendChild(td);
    }
    tr.onclick = () => openCard(r);
    body.appendChild(tr);
  }
  document.getElementById('count').textContent = rows.length + ' neurons';
}
function el(tag, text, cls) { const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function context(c) {
  const p = el('div', undefined, 'ctx'); const parts = c.context.split(/\[\[|\]\]/);
  parts.forEach((s, i) => p.appendChild(i % 2 ? el('mark', s) : document.createTextNode(s)));
  p.appendChild(el('span', '  ' + c.activation.toFixed(3), 'feat')); return p;
}
function features(list) {
  return el('div', 'SAE features: ' + (list.length ? list.map(f => '#' + f.feature + ' ('
    + f.value.toFixed(2) + ')').join(', ') : 'none'), 'feat');
}
function openCard(r) {
  const card = document.getElementById('card'); card.textContent = '';
  const close = el('button', 'close'); close.onclick = () => card.style.display = 'none';
  card.appendChild(close);
  card.appendChild(el('h2', 'neuron ' + r.neuron + ' of layer ' + r.layer));
  card.appendChild(el('div', 'atlas max ' + fmt(r.natural_max) + ' | generation ' +
    fmt(r.generation_score) + ' (random neuron ' + fmt(r.generation_baseline) + ') | agreement ' +
    fmt(r.agreement) + ' (shuffled ' + fmt(r.agreement_baseline) + ')'));
  const views = el('div', undefined, 'views');
  const left = el('div'); left.appendChild(el('h3', 'Observed: top dataset contexts'));
  r.top_contexts.forEach(c => left.appendChild(context(c)));
  left.appendChild(features(r.context_features));
  const right = el('div'); right.appendChild(el('h3', 'Caused: the optimised vector decodes to'));
  r.seeds.forEach((s, i) => {
    right.appendChild(el('div', 'seed ' + s + ' (activation ' + r.final_activation[i].toFixed(3)
      + ')', 'feat'));
    right.appendChild(el('p', r.contrastive_text[i], 'decoded'));
    right.appendChild(el('p', 'plain: ' + r.plain_text[i], 'feat'));
    right.appendChild(features(r.x_features[i]));
  });
  views.appendChild(left); views.appendChild(right); card.appendChild(views);
  card.style.display = 'block';
}
const head = document.getElementById('head');
for (const [k, label] of COLS) {
  const th = el('th', label); th.dataset.key = k;
  th.onclick = () => { sortDown = (sortKey === k) ? !sortDown : true; sortKey = k; render(); };
  head.appendChild(th);
}
render();
"""


def json_for_script(data: dict) -> str:
    # inside <script>, "</" would end the element: escape it (valid JSON either way)
    return json.dumps(data, allow_nan=False).replace("</", "<\\/")


def explanation_page(title: str, summary_lines: list[str], rows: list[dict]) -> str:
    data = {"columns": COLUMNS, "rows": rows}
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{summary}</ul><p id='count'></p>"
        "<table><thead><tr id='head'></tr></thead><tbody id='rows'></tbody></table>"
        "<div id='card'></div>"
        f"<script type='application/json' id='data'>{json_for_script(data)}</script>"
        f"<script>{SCRIPT}</script></body></html>"
    )
