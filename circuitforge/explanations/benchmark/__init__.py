"""Issue 26's benchmark of neuron explanations: every method's text E scored on held-out text.

One job per file:
    carriers.py       neutral carrier sentences with a slot for E (E's token span known)
    held_out.py       documents the atlas did not use: per-neuron 99.9th percentiles, the corpus's
                      cross-entropy, the contexts of S4
    sufficiency.py    S1 (the neuron's max on E over its 99.9th percentile) and S2 (the rank of the
                      true neuron among every neuron of the layer on E)
    output_effect.py  S3 (the neuron clamped at a KL target: change in log-prob of E's content
                      tokens; 1-of-3 against two other neurons' texts)
    prediction.py     S4 (E's prediction of the neuron's top-decile contexts by the model's own
                      surprisal, AUROC)
    fluency.py        E's own cross-entropy
    ranking.py        AUROC and ranks (one definition for S2 and S4)
    split.py          the development / held-out split of a layer's neurons, fixed by a seed
    methods.py        the methods by name: M0-M2 here, M4-M6 from `explanations.methods`
    controls.py       the control texts (another neuron's E, the mean vector's decoding, shuffled E)
    explained.py      the "explained" rule, fractions per method and their union, paired tests
                      against M0, bootstrap intervals
"""
