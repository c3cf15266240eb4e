"""Screenshot one of our feature-circuit pages in the tests' headless Chromium, a node clicked.

    python scripts/screenshot_feature_page.py --run runs/<name>/version_N --out page.png

Opens `results/feature_circuit.html` (file://, no network, as `tests/browser.py`), clicks the
feature node with the largest |score| (its details, links and top contexts show), and saves a
full-page screenshot; prints what the page shows and any page errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser import browser_page  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="a run folder (or its results/)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    results = args.run if (args.run / "feature_circuit.html").exists() else args.run / "results"
    circuit = json.loads((results / "feature_circuit.json").read_text())
    features = [n for n in circuit["nodes"] if n["feature"] != "error"]
    node = max(features, key=lambda n: abs(n["score"]))
    with browser_page(1600, 1000) as page:
        page.goto((results / "feature_circuit.html").resolve().as_uri())
        page.click(f"circle[data-id='{node['id']}']")
        contexts = page.locator("#details p.context").count()
        page.screenshot(path=str(args.out), full_page=True)
        print(
            f"{page.locator('circle').count()} nodes drawn; clicked {node['id']}: "
            f"{contexts} contexts"
        )
        print(f"page errors: {page.errors}")
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
