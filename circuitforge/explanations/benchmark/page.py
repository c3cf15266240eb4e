"""The benchmark's HTML page (issue 26, item 5): one self-contained file, no server, no network.

At the top the per-method table and the summary figure (`figure.summary_figure`); below, one row
per neuron with each method's S1 (marked where the method explains the neuron), sortable by any
column; a click opens the neuron's card with every method's text E and its scores. Texts go in
with `textContent`, never as HTML.
"""

from __future__ import annotations

import html
import math

from circuitforge.explanations.benchmark.explained import table_lines
from circuitforge.explanations.benchmark.figure import summary_figure
from circuitforge.explanations.page import json_for_script

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
#neurons th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
tr.row:hover{background:#eef4ff;cursor:pointer}
td.yes{background:#d7f0d2;font-weight:600}.num{font-variant-numeric:tabular-nums}
#card{display:none;position:fixed;top:4%;left:5%;right:5%;max-height:88%;overflow:auto;
background:#fff;border:2px solid #446;box-shadow:0 4px 24px #0004;padding:1em;z-index:9}
.text{font-family:monospace;white-space:pre-wrap}
"""

SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('data').textContent);
const NAMES = DATA.names, rows = DATA.rows;
let sortKey = 'neuron', sortDown = false;
function el(tag, text, cls) { const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function fmt(v) { return (typeof v === 'number') ? (Number.isInteger(v) ? String(v) : v.toFixed(3))
                                                 : (v === null || v === undefined ? '-' : v); }
function value(r, k) {
  if (k === 'neuron') return r.neuron;
  if (k === 'explained') return NAMES.filter(m => r.methods[m].explained).length;
  return r.methods[k].s1;
}
function render() {
  const body = document.getElementById('rows'); body.textContent = '';
  const sorted = rows.slice().sort((a, b) => {
    const x = value(a, sortKey), y = value(b, sortKey);
    if (x === null) return 1; if (y === null) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * (sortDown ? -1 : 1);
  });
  for (const r of sorted) {
    const tr = el('tr', undefined, 'row'); tr.dataset.neuron = r.neuron;
    tr.appendChild(el('td', String(r.neuron), 'num'));
    tr.appendChild(el('td', NAMES.filter(m => r.methods[m].explained).join(' ') || '-'));
    for (const m of NAMES) {
      const s = r.methods[m];
      tr.appendChild(el('td', fmt(s.s1), s.explained ? 'num yes' : 'num'));
    }
    tr.onclick = () => openCard(r);
    body.appendChild(tr);
  }
  document.getElementById('count').textContent = rows.length + ' neurons';
}
function openCard(r) {
  const card = document.getElementById('card'); card.textContent = '';
  const close = el('button', 'close'); close.onclick = () => card.style.display = 'none';
  card.appendChild(close);
  card.appendChild(el('h2', 'neuron ' + r.neuron + ' of layer ' + r.layer));
  const t = el('table'); const head = el('tr');
  ['method', 'explained', 'S1', 'S2 rank', 'S3', 'S4', 'fluency', 'text E'].forEach(
    h => head.appendChild(el('th', h)));
  t.appendChild(head);
  for (const m of NAMES) {
    const s = r.methods[m]; const tr = el('tr', undefined, 'method'); tr.dataset.method = m;
    [m, s.explained ? 'yes' : 'no', fmt(s.s1), fmt(s.rank), fmt(s.s3), fmt(s.s4),
     fmt(s.fluency)].forEach(v => tr.appendChild(el('td', v)));
    tr.appendChild(el('td', s.text, 'text'));
    t.appendChild(tr);
  }
  card.appendChild(t); card.style.display = 'block';
}
const head = document.getElementById('head');
for (const [k, label] of [['neuron', 'neuron'], ['explained', 'explained by']].concat(
    NAMES.map(m => [m, 'S1 ' + m]))) {
  const th = el('th', label); th.dataset.key = k;
  th.onclick = () => { sortDown = (sortKey === k) ? !sortDown : true; sortKey = k; render(); };
  head.appendChild(th);
}
render();
"""


def _number(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else float(x)


def page_rows(rows: list[dict], flags: dict[str, list[bool]], names: list[str]) -> list[dict]:
    """The rows as the page reads them: per method its text, scores and explained flag."""
    out = []
    for i, r in enumerate(rows):
        methods = {}
        for m in names:
            s = r["methods"][m]
            methods[m] = {
                "text": s["text"], "s1": _number(s["s1"]), "rank": (s["s2"] or {}).get("rank"),
                "s3": _number(s["s3"]), "s4": _number(s["s4"]), "fluency": _number(s["fluency"]),
                "explained": flags[m][i],
            }  # fmt: skip
        out.append({"neuron": r["neuron"], "layer": r.get("layer"), "methods": methods})
    return out


def _markdown_table(lines: list[str]) -> str:
    """`explained.table_lines` (Markdown) as an HTML table."""
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines if "---" not in line]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells[1:]
    )
    return f"<table id='summary'><tr>{head}</tr>{body}</table>"


def benchmark_page(title: str, notes: list[str], summary: dict, rows: list[dict]) -> str:
    """The page of `rows` (the benchmark's) with `summary` (`explained.method_table` over them)."""
    names = [e["method"] for e in summary["methods"]]
    data = {"names": names, "rows": page_rows(rows, summary["explained"], names)}
    listed = "".join(f"<li>{html.escape(line)}</li>" for line in notes)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><ul>{listed}</ul>"
        f"{_markdown_table(table_lines(summary))}<h2>Summary</h2>"
        f"{summary_figure(summary, rows, names)}<h2>Neurons</h2><p id='count'></p>"
        "<table id='neurons'><thead><tr id='head'></tr></thead><tbody id='rows'></tbody></table>"
        "<div id='card'></div>"
        f"<script type='application/json' id='data'>{json_for_script(data)}</script>"
        f"<script>{SCRIPT}</script></body></html>"
    )
