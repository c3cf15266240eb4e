"""The edge circuit's page in a real headless Chromium: the kept circuit as a graph, a click on
a node shows its links."""

from __future__ import annotations

import json

from lightning_modules.trainer_access import log_dir
from tests.browser import browser_page
from tests.test_edge_runs import ablation_args, fit


def test_the_edge_circuit_page_draws_the_kept_edges(tmp_path):
    cli = fit(tmp_path, "configs/edges/tracr_hist.yaml", *ablation_args("zero"))
    results = log_dir(cli.trainer) / "results"
    circuit = json.loads((results / "circuit.json").read_text())
    kept = [e for e in circuit["edges"] if e["kept"]]
    nodes = {e["src"] for e in kept} | {e["dest"] for e in kept}
    with browser_page() as page:
        page.goto((results / "circuit.html").as_uri())
        assert page.locator("line").count() == len(kept) == 6
        assert page.locator("circle").count() == len(nodes)
        page.click("circle[data-id='logits']")
        assert page.inner_text("#details h3") == "logits"
        into_logits = [e for e in kept if e["dest"] == "logits"]
        assert page.locator("#details table").nth(1).locator("tr").count() == len(into_logits)
        page.screenshot(path=str(results / "circuit_page.png"))
        assert page.errors == []
