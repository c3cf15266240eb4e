"""circuitforge core: everything that is not Lightning glue.

Model loading and placement (`model/`), the Patchscope pieces (`patchscope/`), SAE matching and
decomposition (`sae/`), text data and baselines (`data/`), result files (`results.py`).
"""
