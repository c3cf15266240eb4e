"""Dictionary (SAE) training as a run of this project: the pure parts.

`specs` says what to train and builds sae-lens training SAEs; `tokens` cuts the corpus into
seeded token windows with a held-out split; `activations` reads every hook in one forward;
`centring` measures the data's mean and scale on a first slice; `training` is one step of one
SAE (sae-lens's `training_forward_pass`) with the dead-feature counters; `export` writes what
`sae_lens.SAE.load_from_disk` reads, with a sha256 manifest.
"""
