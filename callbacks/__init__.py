"""Callbacks observe the run and write its results at epoch ends."""

from callbacks.optimization_report import OptimizationReport
from callbacks.patchscope_generation import PatchscopeGeneration
from callbacks.sae_decomposition import SAEDecomposition

__all__ = ["OptimizationReport", "PatchscopeGeneration", "SAEDecomposition"]
