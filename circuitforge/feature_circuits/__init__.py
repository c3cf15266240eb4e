"""Sparse feature circuits (Marks et al. 2024): SAE-feature nodes, gradient edges, ablations."""
