"""The gradient Patchscope: where X is injected, what it is optimised for, how it is decoded.

- `prompt.py`: find the placeholder token of a prompt (and refuse bad prompts);
- `injection.py`: THE place a vector enters the residual stream;
- `objective.py`: the target neuron's activation, running only the blocks that matter;
- `recipe.py`: THE optimisation recipe (loss, Adam rate, norm constraint, one `step`) of the
  single-neuron run and the layer sweep;
- `generation.py`: plain and contrastive greedy decoding with the vector injected at prefill.
"""
