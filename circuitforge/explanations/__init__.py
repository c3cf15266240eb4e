"""The causal atlas: every neuron of a layer explained two ways (its top dataset contexts and
what an optimised residual vector decodes to), and each explanation scored by the model."""
