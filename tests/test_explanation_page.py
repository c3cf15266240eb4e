"""The neuron-explanation page in a real headless Chromium: it loads from the file alone (any
network request is refused), lists every neuron, sorts by a score, and a click opens a card
with both views."""

from __future__ import annotations

from pathlib import Path

from tests.browser import browser_page


def test_the_page_lists_the_neurons_sorts_and_opens_a_card(sweep, tmp_path):
    cli, out = sweep
    page_file = Path(cli.trainer.log_dir) / "results" / "neuron_explanations.html"
    with browser_page() as page:
        page.goto(page_file.as_uri())
        rows = page.locator("tr.row")
        assert rows.count() == len(out["rows"]) == 6
        assert page.inner_text("#count") == "6 neurons"
        # sorted by generation score, highest first
        shown = [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.neuron)")]
        by_score = sorted(out["rows"], key=lambda r: -(r["generation_score"] or -1e9))
        assert shown == [r["neuron"] for r in by_score]
        page.click("th[data-key=neuron]")  # sort by neuron, descending
        shown = [int(n) for n in rows.evaluate_all("rs => rs.map(r => r.dataset.neuron)")]
        assert shown == [5, 4, 3, 2, 1, 0]
        assert not page.is_visible("#card")
        page.click("tr.row[data-neuron='2']")
        assert page.is_visible("#card")
        card = page.inner_text("#card")
        row = out["rows"][2]
        assert "neuron 2 of layer 3" in card
        assert "Observed: top dataset contexts" in card and "Caused:" in card
        assert row["contrastive_text"][1].strip() in card
        assert page.locator("#card mark").count() == len(row["top_contexts"])
        page.screenshot(path=str(tmp_path / "card.png"))  # kept in pytest's tmp folder
        assert (tmp_path / "card.png").stat().st_size > 10_000
        assert page.errors == []


def test_texts_are_shown_as_text_never_as_markup(tmp_path):
    """A decoding or context holding `</script>` or tags must not end the data or inject HTML."""
    from circuitforge.explanations.page import explanation_page

    hostile = "</script><img src=x onerror=alert(1)> <b>bold</b>"
    row = {
        "neuron": 0, "layer": 1, "natural_max": 2.0, "generation_score": 0.5,
        "generation_baseline": 0.1, "generation_score_plain": None, "agreement": 0.2,
        "agreement_baseline": 0.0, "stability_feature_overlap": None, "seeds": [0],
        "final_activation": [1.5], "contrastive_text": [hostile], "plain_text": [hostile],
        "x_features": [[{"feature": 3, "value": 1.0}]], "context_features": [],
        "top_contexts": [{"context": "a [[" + hostile + "]] b", "trigger_token": hostile,
                          "activation": 2.0}],
    }  # fmt: skip
    path = tmp_path / "page.html"
    path.write_text(explanation_page("t <i>x</i>", ["line </script>"], [row]))
    with browser_page() as page:
        page.goto(path.as_uri())
        assert page.locator("tr.row").count() == 1
        page.click("tr.row")
        assert hostile in page.inner_text("#card")
        assert page.locator("#card img, #card b, h1 i").count() == 0
        assert page.locator("#card mark").inner_text() == hostile
        assert page.errors == []
