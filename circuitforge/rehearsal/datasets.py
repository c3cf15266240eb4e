"""Stand-in `NeelNanda/pile-10k`: our corpus's texts as the dataset's parquet file and README."""

from __future__ import annotations

from pathlib import Path

from circuitforge.rehearsal import hub_cache

PILE_10K = "NeelNanda/pile-10k"
PILE_10K_PARQUET = "data/train-00000-of-00001-4746b8785c874cc7.parquet"
PILE_10K_README = """---
dataset_info:
  features:
  - name: text
    dtype: string
  - name: meta
    struct:
    - name: pile_set_name
      dtype: string
  splits:
  - name: train
    num_examples: {n}
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
Stand-in for NeelNanda/pile-10k (circuitforge rehearsal): our corpus's texts, not the Pile.
"""


def write_pile_10k(hub_dir: Path, texts: list[str]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "text": texts,
            "meta": [{"pile_set_name": "circuitforge-english-corpus"} for _ in texts],
        }
    )
    hub_cache.add_text(
        hub_dir,
        PILE_10K,
        "README.md",
        PILE_10K_README.format(n=len(texts), size=sum(len(t.encode()) for t in texts)),
        "dataset",
    )
    return hub_cache.add_file(
        hub_dir, PILE_10K, PILE_10K_PARQUET, lambda p: pq.write_table(table, p), "dataset"
    )
