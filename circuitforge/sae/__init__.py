"""Sparse autoencoders: find the one that reads where a vector is injected, and decompose it."""
