"""The benchmark's report (issue 26): the union without the controls, the neurons where a method
and M0 disagree or where it alone explains, and the table script reading a run's snapshot."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from circuitforge.explanations.benchmark.explained import method_table
from circuitforge.explanations.benchmark.report import (
    criteria,
    disagreements,
    proper_methods,
    sole_explanations,
    union_flags,
)
from circuitforge.explanations.snapshot import write_progress

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["m0_context", "m2_patchscope", "m4_vocab_proj", "control_random_neuron"]


def _score(s1: float, s1_control: float, rank: int, s3: float, s3_control: float) -> dict:
    return {
        "text": f"text {s1} {rank}", "s1": s1, "s1_control": s1_control,
        "s2": {"rank": rank, "top1": rank == 1, "top10": rank <= 10,
               "reciprocal_rank": 1 / rank, "auroc": 0.9},
        "s3": s3, "s3_control": s3_control, "one_of_three": {"0.25": True, "0.5": False},
        "s4": 0.5, "fluency": 3.0,
    }  # fmt: skip


def _rows() -> list[dict]:
    """20 neurons; method m explains neuron n when n % (2 + index of m) == 0 (high S1, S3,
    rank 1), else low scores; every control sits at 0.1 (the 95th percentile is 0.1)."""
    rows = []
    for n in range(20):
        methods = {}
        for j, m in enumerate(NAMES):
            good = n % (2 + j) == 0
            methods[m] = _score(2.0 if good else 0.05, 0.1, 1 if good else 500,
                                1.0 if good else 0.0, 0.1)  # fmt: skip
        rows.append({"neuron": 100 + n, "methods": methods,
                     "seconds_per_neuron": {m: 1.0 for m in NAMES} | {"scoring": 2.0}})  # fmt: skip
    return rows


def _by_hand(ours: int, other: int) -> list[int]:
    return [100 + n for n in range(20) if (n % (2 + ours) == 0) != (n % (2 + other) == 0)]


def test_disagreements_and_sole_explanations_match_a_hand_count() -> None:
    rows = _rows()
    flags = method_table(rows, NAMES, "m0_context")["explained"]
    assert flags["m0_context"] == [n % 2 == 0 for n in range(20)]  # the rule itself, as built
    found = disagreements(rows, flags, "m2_patchscope", "m0_context", limit=100)
    assert [e["neuron"] for e in found] == _by_hand(1, 0)
    assert [e["neuron"] for e in disagreements(rows, flags, "m2_patchscope", "m0_context", 3)] == (
        _by_hand(1, 0)[:3]
    )
    first = found[0]
    assert first["texts"] == {m: rows[first["neuron"] - 100]["methods"][m]["text"]
                              for m in ("m2_patchscope", "m0_context")}  # fmt: skip
    proper = proper_methods(NAMES)
    assert proper == NAMES[:3]
    # m2 (n % 3 == 0) alone: not even (m0), not a multiple of 4 (m4); the control does not count
    sole = sole_explanations(rows, flags, "m2_patchscope", proper, limit=100)
    assert [e["neuron"] for e in sole] == [100 + n for n in (3, 9, 15)]
    union = union_flags(flags, proper)
    assert union == [n % 2 == 0 or n % 3 == 0 or n % 4 == 0 for n in range(20)]
    assert union != union_flags(flags, NAMES)  # the control (n % 5) would add neuron 5
    # each condition alone: m2's S1, S2 and S3 all pass together on n % 3 == 0 (7 of 20)
    assert criteria(rows, "m2_patchscope") == {"s1": 7 / 20, "s2_top10": 7 / 20, "s3": 7 / 20}
    rows[1]["methods"]["m2_patchscope"]["s2"]["top10"] = True  # S2 alone passes one more
    rows[3]["methods"]["m2_patchscope"]["s3"] = None  # S3 missing fails
    assert criteria(rows, "m2_patchscope") == {"s1": 7 / 20, "s2_top10": 8 / 20, "s3": 6 / 20}
    with pytest.raises(ValueError, match="no explained flags"):
        union_flags(flags, ["m9_missing"])


def _script():
    spec = importlib.util.spec_from_file_location(
        "benchmark_table", ROOT / "scripts/benchmark_table.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_script_reads_an_unfinished_run(tmp_path: Path, capsys) -> None:
    rows = _rows()
    write_progress(tmp_path / "benchmark_snapshot", 0, None, rows[:12], None)
    write_progress(tmp_path / "benchmark_snapshot", 1, None, rows[12:], {"chunk": 9})
    script = _script()
    found_rows, _ = script.read_rows(tmp_path)
    assert [r["neuron"] for r in found_rows] == [r["neuron"] for r in rows]
    found = script.report(found_rows, "m2_patchscope", 10)
    direct = method_table(rows, NAMES, "m0_context")
    assert found["summary"]["methods"] == direct["methods"]
    assert found["union_of_methods"]["fraction_explained"] == pytest.approx(
        sum(n % 2 == 0 or n % 3 == 0 or n % 4 == 0 for n in range(20)) / 20
    )
    script.main([str(tmp_path), "--json", str(tmp_path / "out.json"),
                 "--svg", str(tmp_path / "f.svg")])  # fmt: skip
    out = capsys.readouterr().out
    assert "### m2_patchscope alone explains: 3" in out and (tmp_path / "out.json").is_file()
    assert (tmp_path / "f.svg").read_text().count("class='bar'") == len(NAMES)
    with pytest.raises(FileNotFoundError, match="neither"):
        script.read_rows(tmp_path / "empty")
