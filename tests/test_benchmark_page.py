"""The benchmark's summary figure and page (issue 26, item 5): the figure's marks against the
table and quantiles computed here with numpy, and the page in a real headless Chromium (no
network): it lists every neuron, sorts, opens a card with every method's text, draws the bars to
scale, and shows hostile texts as text."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from circuitforge.explanations.benchmark.explained import method_table
from circuitforge.explanations.benchmark.figure import PANEL, summary_figure
from circuitforge.explanations.benchmark.page import benchmark_page
from tests.browser import browser_page
from tests.test_benchmark_report import NAMES, _rows

HOSTILE = "</script><img src=x onerror=alert(1)> <b>bold</b>"


def _attributes(svg: str, tag: str, cls: str) -> list[dict[str, str]]:
    found = re.findall(rf"<{tag} class='{cls}'([^>]*)>", svg)
    return [dict(re.findall(r"([\w-]+)='([^']*)'", f)) for f in found]


def test_the_figure_draws_the_table_and_the_quantiles() -> None:
    rows = _rows()
    for i, r in enumerate(rows):  # spread S1 so the quantiles differ from each other
        r["methods"]["m0_context"]["s1"] = 0.1 * i
    summary = method_table(rows, NAMES, "m0_context")
    svg = summary_figure(summary, rows, NAMES)
    bars = _attributes(svg, "rect", "bar")
    assert [b["data-method"] for b in bars] == NAMES
    for bar, entry in zip(bars, summary["methods"]):
        assert float(bar["data-value"]) == entry["fraction_explained"]
        assert float(bar["width"]) == round(PANEL * entry["fraction_explained"], 2)
    # m0 explains the even neurons whose S1 (now 0.1 n) tops the control's 0.1: 2, 4, .., 18
    assert float(bars[0]["data-value"]) == 9 / 20
    boxes = {(b["data-score"], b["data-method"]): b for b in _attributes(svg, "g", "box")}
    assert len(boxes) == 3 * len(NAMES)
    q = [float(v) for v in boxes["s1", "m0_context"]["data-quantiles"].split()]
    expected = np.percentile([0.1 * i for i in range(20)], [5, 25, 50, 75, 95])
    np.testing.assert_allclose(q, expected, rtol=1e-9)
    ranks = [float(v) for v in boxes["s2_rank", "m2_patchscope"]["data-quantiles"].split()]
    own = [1 if n % 3 == 0 else 500 for n in range(20)]
    np.testing.assert_allclose(ranks, np.percentile(own, [5, 25, 50, 75, 95]), rtol=1e-9)


def test_the_page_in_chromium(tmp_path: Path) -> None:
    rows = _rows()
    rows[4]["methods"]["m2_patchscope"]["text"] = HOSTILE
    rows[4]["methods"]["m0_context"]["fluency"] = float("nan")  # shown as '-', not a JSON error
    summary = method_table(rows, NAMES, "m0_context")
    path = tmp_path / "page.html"
    path.write_text(benchmark_page("benchmark", ["a note"], summary, rows))
    with browser_page() as page:
        page.goto(path.as_uri())
        assert page.inner_text("#count") == "20 neurons"
        table = page.locator("tr.row")
        assert table.count() == 20
        shown = [int(n) for n in table.evaluate_all("rs => rs.map(r => r.dataset.neuron)")]
        assert shown == [r["neuron"] for r in rows]  # neuron order first
        page.click("th[data-key='m2_patchscope']")  # S1 of m2, highest first
        shown = [int(n) for n in table.evaluate_all("rs => rs.map(r => r.dataset.neuron)")]
        assert shown[:7] == [100 + n for n in range(20) if n % 3 == 0]
        # each explained cell marked: m0 explains the even neurons
        marked = page.locator("td.yes").count()
        assert marked == sum(sum(f) for f in summary["explained"].values())
        # the bars as the browser lays them out: widths in the ratio of the fractions
        widths = page.locator("rect.bar").evaluate_all(
            "bs => bs.map(b => b.getBoundingClientRect().width)"
        )
        fractions = [e["fraction_explained"] for e in summary["methods"]]
        np.testing.assert_allclose(np.array(widths) / widths[0], np.array(fractions) / fractions[0],
                                   rtol=1e-3)  # fmt: skip
        assert not page.is_visible("#card")
        page.click("tr.row[data-neuron='104']")
        assert page.is_visible("#card")
        card = page.inner_text("#card")
        assert "neuron 104 of layer None" not in card and "neuron 104" in card
        assert page.locator("#card tr.method").count() == len(NAMES)
        assert HOSTILE in card  # the hostile text shown as text
        assert page.locator("img").count() == 0 and page.locator("#card b").count() == 0
        assert page.errors == []
