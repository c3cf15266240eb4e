# make demo   - gradient Patchscope on the embedded demo model (offline, CPU, under a minute)
# make test   - ruff (format + lint) and the default test suite (slow tests excluded)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export WANDB_MODE := disabled

.PHONY: setup demo demo-assets test test-slow bench clean

setup: $(STAMP)

# torch first, pinned: an unpinned torch would pull gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
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
	$(PY) -m pytest

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(PY) bench/patchscope.py
	$(PY) bench/edges.py
	OMP_NUM_THREADS=1 $(PY) bench/atlas.py
	OMP_NUM_THREADS=1 $(PY) bench/feature_circuits.py
	OMP_NUM_THREADS=1 $(PY) bench/analysis.py

clean:
	rm -rf runs lightning_logs
