"""Callbacks observe the run and write its results at epoch ends."""

from callbacks.analysis_export import AnalysisExport
from callbacks.atlas_export import AtlasExport
from callbacks.circuit_export import CircuitExport
from callbacks.dictionary_export import DictionaryExport
from callbacks.explanation_benchmark_export import ExplanationBenchmarkExport
from callbacks.feature_circuit_export import FeatureCircuitExport
from callbacks.language_model_evaluation import LanguageModelEvaluation
from callbacks.model_directory_export import ModelDirectoryExport
from callbacks.neuron_explanation_export import NeuronExplanationExport
from callbacks.optimization_report import OptimizationReport
from callbacks.patchscope_generation import PatchscopeGeneration
from callbacks.reactivation_report import ReactivationReport
from callbacks.sae_decomposition import SAEDecomposition
from callbacks.transcoder_export import TranscoderExport

__all__ = [
    "DictionaryExport",
    "ExplanationBenchmarkExport",
    "NeuronExplanationExport",
    "AnalysisExport",
    "AtlasExport",
    "CircuitExport",
    "FeatureCircuitExport",
    "LanguageModelEvaluation",
    "ModelDirectoryExport",
    "OptimizationReport",
    "PatchscopeGeneration",
    "ReactivationReport",
    "SAEDecomposition",
    "TranscoderExport",
]
