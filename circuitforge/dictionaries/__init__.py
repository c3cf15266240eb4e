"""Dictionary (SAE) training as a run of this project: the pure parts.

`specs` says what to train and builds sae-lens training SAEs; `tokens` cuts the corpus into
seeded token windows with a held-out split; `activations` reads every hook in one forward;
`centring` measures the data's mean and scale on a first slice; `training` is one step of one
SAE (sae-lens's `training_forward_pass`) with the dead-feature counters; `export` writes what
`sae_lens.SAE.load_from_disk` reads, with a sha256 manifest. `transcoders` says what per-layer
skip transcoders to train (resid_mid -> mlp_out; sae-lens's BatchTopK training class with a skip
connection) and folds their centring and scales into circuit-tracer's tensors;
`transcoder_set` writes and reads circuit-tracer's transcoder-set folder.
"""
