"""Rehearse the hub configs offline before a first GPU run: stand-ins at the hub's names and shapes.

    .venv/bin/python scripts/rehearse_hub_runs.py              # build the cache, run every config
    .venv/bin/python scripts/rehearse_hub_runs.py --only gpt2  # the configs with "gpt2" in the name

Builds a temporary Hugging Face cache (`--hf-home`, default /tmp/circuitforge_rehearsal/hf) with
`google/gemma-2-2b`, Gemma Scope res/att/mlp, `NeelNanda/pile-10k`, `gpt2` and `gpt2-small-res-jb`
as the hub lays them out (random weights at the real shapes; `circuitforge.rehearsal`), then runs
each hub config with `HF_HUB_OFFLINE=1` on the CPU, one process at a time, only the device, the
step counts and the document counts overridden (and the log folder, so nothing lands in runs/).
Every run is watched: its wall time and peak resident memory (`/usr/bin/time -v`) are recorded,
and it is stopped when its memory passes `--memory-limit-gb`. A Gemma-2-2B config is not started
when the machine has less memory available than such a run needs (`GEMMA_RUN_GB`): it is
reported as not run, with the numbers. The summary goes to `{out}/rehearsal.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Measured here (docs/measurements/issue28_rehearsal.md): loading Gemma-2-2B in bf16 peaks at
# about 10 GB resident (6.9 GB anonymous); a run adds its activations.
GEMMA_RUN_GB = 9.5

CPU = ["--trainer.accelerator", "cpu"]
TWO_CPUS = [*CPU, "--trainer.strategy.init_args.devices", "[cpu, cpu]"]
ONE_CPU = [*CPU, "--trainer.strategy.init_args.devices", "[cpu]"]
FEW_PAIRS = ["--data.init_args.n_train", "8", "--data.init_args.batch_size", "4"]


@dataclass
class Run:
    name: str
    config: str
    subcommand: str
    overrides: list[str]
    gemma: bool = False
    resume: bool = False  # a second run with --ckpt_path last and one more epoch
    after: str | None = None  # a run whose results this one reads


@dataclass
class Outcome:
    name: str
    command: list[str]
    status: str  # ran | failed | not run
    wall_s: float | None = None
    peak_rss_gb: float | None = None
    detail: str = ""
    resumed: dict = field(default_factory=dict)


def hub_runs(out: Path) -> list[Run]:
    logs = str(out / "runs")
    patchscope = [
        *TWO_CPUS,
        "--trainer.max_epochs",
        "1",
        "--model.init_args.steps_per_epoch",
        "2",
        "--model.init_args.baseline.n_documents",
        "4",
    ]
    return [
        Run("gemma2_l8_n8526", "configs/patchscope/gemma2_l8_n8526.yaml", "fit", patchscope,
            gemma=True, resume=True),
        Run("gemma2_l11_n8526", "configs/patchscope/gemma2_l11_n8526.yaml", "fit", patchscope,
            gemma=True, resume=True),
        Run("gemma2_l12_atlas", "configs/atlas/gemma2_l12_pile10k.yaml", "predict", [
            *CPU, "--trainer.devices", "1", "--trainer.strategy", "auto",
            "--data.init_args.n_documents", "8", "--data.init_args.batch_size", "4",
            "--data.init_args.num_workers", "0"], gemma=True),
        Run("reactivation_gemma2_l12", "configs/atlas/reactivation_gemma2_l12.yaml", "validate", [
            *TWO_CPUS, "--model.init_args.baseline.n_documents", "4", "--model.init_args.atlas",
            f"{logs}/gemma2_l12_atlas/version_*/results/atlas.json"], gemma=True,
            after="gemma2_l12_atlas"),
        Run("feature_circuit_gemma2_ioi", "configs/feature_circuits/gemma2_ioi.yaml", "test", [
            *ONE_CPU, *FEW_PAIRS, "--data.init_args.n_validation", "8"], gemma=True),
        Run("analysis_gemma2_ioi_dla", "configs/analysis/gemma2_ioi_dla.yaml", "test",
            [*TWO_CPUS, *FEW_PAIRS], gemma=True),
        Run("analysis_gemma2_ioi_logit_lens", "configs/analysis/gemma2_ioi_logit_lens.yaml", "test",
            [*TWO_CPUS, *FEW_PAIRS], gemma=True),
        Run("analysis_gemma2_ioi_patching", "configs/analysis/gemma2_ioi_patching.yaml", "test",
            [*TWO_CPUS, *FEW_PAIRS], gemma=True),
        Run("feature_circuit_gpt2_ioi", "configs/feature_circuits/gpt2_ioi.yaml", "test", [
            *ONE_CPU, *FEW_PAIRS, "--data.init_args.n_validation", "8",
            "--model.init_args.ig_steps", "2"]),
        Run("analysis_gpt2_ioi_dla", "configs/analysis/gpt2_ioi_dla.yaml", "test",
            [*CPU, *FEW_PAIRS]),
        Run("analysis_gpt2_ioi_logit_lens", "configs/analysis/gpt2_ioi_logit_lens.yaml", "test",
            [*CPU, *FEW_PAIRS]),
        Run("edges_gpt2_ioi", "configs/edges/gpt2_ioi.yaml", "fit", [
            *CPU, "--trainer.max_epochs", "1", "--data.init_args.n_train", "32",
            "--data.init_args.n_validation", "16"]),
        Run("analysis_gpt2_ioi_patching", "configs/analysis/gpt2_ioi_patching.yaml", "test", [
            *CPU, *FEW_PAIRS, "--model.init_args.circuit",
            f"{logs}/edges_gpt2_ioi/version_*/results/circuit.json"], after="edges_gpt2_ioi"),
    ]  # fmt: skip


def available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1e6
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def tree_anon_kb(pid: int) -> int:
    """Anonymous resident memory (kB) of `pid` and its children: what no file backs."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.is_file():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^RssAnon:\s+(\d+)", status, re.M)
        total += int(found.group(1)) if found else 0
    return total


def first_to_go() -> None:
    """The out-of-memory killer's first choice is the rehearsal, not the machine's other work."""
    Path("/proc/self/oom_score_adj").write_text("1000")


def run_watched(
    command: list[str], env: dict, limit_gb: float, log: Path
) -> tuple[int, float, float, str]:
    """(exit code, wall s, peak RSS GB from /usr/bin/time -v, note); killed above `limit_gb`."""
    timed = ["/usr/bin/time", "-v", *command]
    start = time.time()
    note = ""
    with log.open("w") as out:
        proc = subprocess.Popen(
            timed,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=first_to_go,
        )
        stop = threading.Event()

        def watch() -> None:
            nonlocal note
            while not stop.wait(0.5):
                if tree_anon_kb(proc.pid) > limit_gb * 1e6:
                    note = f"stopped: anonymous memory above {limit_gb} GB"
                    os.killpg(proc.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        code = proc.wait()
        stop.set()
    wall = time.time() - start
    text = log.read_text(errors="replace")
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    peak = int(found.group(1)) / 1e6 if found else float("nan")
    if code == 0 and "Exit status: 0" not in text and "Command exited with non-zero" in text:
        code = 1
    exited = re.search(r"Command exited with non-zero status (\d+)", text)
    return (int(exited.group(1)) if exited else code), wall, peak, note


def last_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^(error: |\w+(Error|Exception)\b)", line)]
    return (errors or lines or [""])[-1][:300]


def rehearse(args: argparse.Namespace) -> list[Outcome]:
    from circuitforge.data.texts import load_texts
    from circuitforge.rehearsal.build import build_all

    out: Path = args.out
    hf_home: Path = args.hf_home
    out.mkdir(parents=True, exist_ok=True)
    texts = load_texts(str(ROOT / "assets/english_corpus/corpus.jsonl.gz"))[:10_000]
    layers = {"res": [0, 7, 10, 11, 12, 25], "att": [0, 12, 25], "mlp": [0, 12, 25]}
    wanted = args.only.split(",")
    chosen = [run for run in hub_runs(out) if any(w in run.name for w in wanted)]
    parts = ["gpt2"] if not any(run.gemma for run in chosen) else None  # gpt2: 2.3 GB, Gemma: 9 GB
    built = build_all(hf_home, texts, layers, only=parts)
    print(f"stand-ins in {hf_home}: built now {built}", flush=True)
    env = {
        **os.environ,
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "WANDB_MODE": "disabled",
    }
    outcomes: dict[str, Outcome] = {}
    for run in chosen:
        command = [sys.executable, "train.py", run.subcommand, "--config", run.config]
        command += [*run.overrides, "--trainer.logger.init_args.save_dir", str(out / "runs")]
        if run.name == "feature_circuit_gemma2_ioi":  # 78 SAEs at 16k are 23.5 GB in fp32
            command += gemma_scope_layers_override(run.config, layers)
        outcome = Outcome(run.name, command, "not run")
        outcomes[run.name] = outcome
        if run.after and outcomes.get(run.after, Outcome("", [], "")).status != "ran":
            outcome.detail = f"needs {run.after}, which did not run"
        elif run.gemma and available_gb() < GEMMA_RUN_GB:
            outcome.detail = (
                f"{available_gb():.1f} GB available, a Gemma-2-2B run needs about "
                f"{GEMMA_RUN_GB} GB (the bf16 load alone peaks near 10 GB)"
            )
        else:
            print(f"{run.name}: {' '.join(command[1:])}", flush=True)
            code, wall, peak, note = run_watched(
                command, env, args.memory_limit_gb, out / f"{run.name}.log"
            )
            outcome.status = "ran" if code == 0 else "failed"
            outcome.wall_s, outcome.peak_rss_gb = round(wall, 1), round(peak, 2)
            outcome.detail = note or ("" if code == 0 else last_error(out / f"{run.name}.log"))
            if code != 0 and "terminated by signal 9" in (out / f"{run.name}.log").read_text():
                outcome.detail = note or "killed (signal 9): the machine ran out of memory"
            if code == 0 and run.resume:
                again = [*command, "--trainer.max_epochs", "2", "--ckpt_path", "last"]
                code, wall, peak, note = run_watched(
                    again, env, args.memory_limit_gb, out / f"{run.name}.resume.log"
                )
                detail = "" if code == 0 else last_error(out / f"{run.name}.resume.log")
                outcome.resumed = {
                    "status": "ran" if code == 0 else "failed",
                    "wall_s": round(wall, 1),
                    "peak_rss_gb": round(peak, 2),
                    "detail": note or detail,
                }
        print(f"  -> {outcome.status} {outcome.wall_s} s {outcome.peak_rss_gb} GB {outcome.detail}")
        (out / "rehearsal.json").write_text(
            json.dumps([asdict(o) for o in outcomes.values()], indent=2)
        )
    return list(outcomes.values())


def gemma_scope_layers_override(config: str, layers: dict[str, list[int]]) -> list[str]:
    """The feature circuit's SAE groups cut to the layers the stand-ins hold (memory)."""
    import yaml

    saes = yaml.safe_load((ROOT / config).read_text())["model"]["init_args"]["saes"]
    for group in saes:
        kind = next(k for k in layers if f"-{k}-" in group["source"]["release"])
        group["layers"] = layers[kind]
    return ["--model.init_args.saes", json.dumps(saes)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--hf-home", type=Path, default=Path("/tmp/circuitforge_rehearsal/hf"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/circuitforge_rehearsal/out"))
    parser.add_argument(
        "--only",
        default="",
        help="run only the configs whose name contains one of these (comma-separated)",
    )
    parser.add_argument("--memory-limit-gb", type=float, default=12.0)
    parser.add_argument(
        "--measure", action="store_true", help="only measure Gemma-2-2B's blocks (fp32, bf16)"
    )
    args = parser.parse_args(argv)
    if args.measure:
        from circuitforge.rehearsal.measure import measure

        args.out.mkdir(parents=True, exist_ok=True)
        table = json.dumps(measure(), indent=2)
        (args.out / "gemma2_costs.json").write_text(table)
        print(table)
        return 0
    outcomes = rehearse(args)
    failed = [
        o.name for o in outcomes if o.status == "failed" or o.resumed.get("status") == "failed"
    ]
    not_run = [o.name for o in outcomes if o.status == "not run"]
    print(f"ran {sum(o.status == 'ran' for o in outcomes)}, failed {failed}, not run {not_run}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
