"""Open one of our attribution-graph JSON files in circuit-tracer's own graph frontend, offline.

Lays out a data folder the way circuit-tracer's local server expects (``<slug>.json`` plus
``graph-metadata.json`` listing it, see ``circuit_tracer/utils/create_graph_files.py``), serves it
with ``circuit_tracer/frontend/local_server.py``'s handler on 127.0.0.1, opens ``index.html`` in
headless Chromium, waits for ``.link-graph text.node`` elements, clicks one feature node and saves
a screenshot. The page's CDN scripts cannot be reached here: each is answered from ``--vendor DIR``
(a file with the URL's basename) when that folder has it, else the request is aborted and reported.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path


def frontend_paths(ct_frontend: Path) -> tuple[Path, Path]:
    """(circuit_tracer/frontend, its assets/) from either of the two folders."""
    ct_frontend = ct_frontend.resolve()
    if (ct_frontend / "index.html").exists():
        return ct_frontend.parent, ct_frontend
    return ct_frontend, ct_frontend / "assets"


@functools.cache
def ct_server_module(frontend_dir: Path):
    """circuit-tracer's local_server and utils modules (stdlib only), or (None, None)."""
    sys.path.insert(0, str(frontend_dir.parent.parent))
    try:
        from circuit_tracer.frontend import local_server, utils
    except Exception as exc:  # noqa: BLE001 - report and fall back
        print(f"circuit-tracer server not importable ({exc!r}); using http.server")
        return None, None
    print(f"using {local_server.__file__} (torch imported: {'torch' in sys.modules})")
    return local_server, utils


class FallbackHandler(http.server.SimpleHTTPRequestHandler):
    """Same paths as circuit-tracer's CircuitGraphHandler: /data/ and /graph_data/ -> data dir."""

    def __init__(self, *args, data_dir, frontend_dir, **kwargs):
        self.data_dir = data_dir
        super().__init__(*args, directory=str(frontend_dir), **kwargs)

    def translate_path(self, path):
        for prefix in ("/data/", "/graph_data/"):
            if path.startswith(prefix):
                return os.path.join(self.data_dir, path[len(prefix) :].split("?")[0])
        return super().translate_path(path)

    def log_message(self, format, *args):
        pass


def start_server(frontend_dir: Path, assets: Path, data_dir: Path):
    ls, _ = ct_server_module(frontend_dir)
    if ls is not None:
        handler = functools.partial(
            ls.CircuitGraphHandler, frontend_dir=assets, data_dir=str(data_dir), features_dir=None
        )
        httpd = ls.ReusableTCPServer(("127.0.0.1", 0), handler)
    else:
        handler = functools.partial(FallbackHandler, data_dir=str(data_dir), frontend_dir=assets)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def lay_out(graph_path: Path, data_dir: Path, frontend_dir: Path) -> tuple[str, int]:
    """The graph as `<slug>.json`; with a `features/` folder beside it (our feature files), that
    folder too, and the copy's `scan` set to `./data/features`: circuit-tracer's frontend reads
    a feature panel from `{scan}/{index}.json` when the scan is a local path (it does not read
    Neuronpedia's `metadata.feature_details.feature_json_base_url`)."""
    graph = json.loads(graph_path.read_text())
    slug = graph["metadata"]["slug"]
    features = graph_path.parent / "features"
    if features.is_dir():
        shutil.copytree(features, data_dir / "features")
        graph["metadata"]["scan"] = "./data/features"
    (data_dir / f"{slug}.json").write_text(json.dumps(graph))
    _, ct_utils = ct_server_module(frontend_dir)
    if ct_utils is not None:
        ct_utils.add_graph_metadata(graph["metadata"], str(data_dir))
    else:
        (data_dir / "graph-metadata.json").write_text(json.dumps({"graphs": [graph["metadata"]]}))
    return slug, len(graph["nodes"])


def render(url: str, origin: str, vendor: Path | None, out: Path, timeout_ms: int) -> dict:
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    failed: list[str] = []
    vendored: list[str] = []

    def route(r):
        u = r.request.url
        if u.startswith(origin):
            return r.continue_()
        local = vendor / u.split("?")[0].rsplit("/", 1)[-1] if vendor else None
        if local is not None and local.is_file():
            vendored.append(f"{u} <- {local}")
            return r.fulfill(path=str(local), content_type="application/javascript")
        return r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        page.on(
            "console",
            lambda m: (
                errors.append(f"{m.text} [{m.location.get('url', '')}]")
                if m.type == "error"
                else None
            ),
        )
        page.on(
            "requestfailed",
            lambda q: failed.append(f"{q.method} {q.url} ({q.failure})"),
        )
        page.on(
            "response",
            lambda r: failed.append(f"HTTP {r.status} {r.url}") if r.status >= 400 else None,
        )
        page.route("**/*", route)
        page.goto(url)
        sel = ".link-graph text.node"
        try:
            page.wait_for_function(
                f"document.querySelectorAll('{sel}').length > 0", timeout=timeout_ms
            )
        except Exception as exc:  # noqa: BLE001 - a page that never renders is a result
            errors.append(f"(script) no {sel} within {timeout_ms} ms: {type(exc).__name__}")
        page.wait_for_timeout(1500)
        n_nodes = page.locator(sel).count()
        clicked = None
        if n_nodes:
            idx = page.evaluate(
                """s => d3.selectAll(s).data().findIndex(
                    d => d.feature_type == 'cross layer transcoder')""",
                sel,
            )
            node = page.locator(sel).nth(max(idx, 0))
            box = node.bounding_box()
            if box:
                page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_timeout(2500)
                clicked = page.evaluate(
                    """s => { const c = d3.selectAll(s).filter('.clicked').data()[0];
                        return c ? c.nodeId + ' (' + c.feature_type + ')' : null }""",
                    sel,
                )
        examples = page.locator(".text-wrapper").count()  # rows of the feature panel
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    return dict(
        nodes=n_nodes, clicked=clicked, examples=examples, errors=errors, failed=failed,
        vendored=vendored,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", type=Path, required=True)
    ap.add_argument("--ct-frontend", type=Path, required=True, help="circuit_tracer/frontend")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vendor", type=Path, default=None, help="local copies of CDN scripts")
    ap.add_argument("--timeout-ms", type=int, default=30000)
    args = ap.parse_args()

    frontend_dir, assets = frontend_paths(args.ct_frontend)
    with tempfile.TemporaryDirectory(prefix="ct-graph-data-") as tmp:
        data_dir = Path(tmp)
        slug, json_nodes = lay_out(args.graph, data_dir, frontend_dir)
        httpd = start_server(frontend_dir, assets, data_dir)
        origin = f"http://127.0.0.1:{httpd.server_address[1]}/"
        url = f"{origin}index.html?slug={slug}"
        print(f"data dir: {sorted(os.listdir(data_dir))}; page: {url}")
        try:
            res = render(url, origin, args.vendor, args.out, args.timeout_ms)
        finally:
            httpd.shutdown()
            httpd.server_close()
    print(f"rendered node elements: {res['nodes']} (JSON nodes: {json_nodes})")
    print(f"clicked node: {res['clicked']}; its feature panel shows {res['examples']} examples")
    for key in ("vendored", "errors", "failed"):
        print(f"{key} ({len(res[key])}):")
        for line in res[key]:
            print(f"  {line}")
    print(f"screenshot: {args.out}")


if __name__ == "__main__":
    main()
