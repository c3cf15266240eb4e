"""Thin LightningModules: the trainable intervention and its loss (logic lives in circuitforge/)."""

from lightning_modules.activation_atlas import ActivationAtlasModule
from lightning_modules.activation_patching import ActivationPatchingModule
from lightning_modules.dictionary_pilot import DictionaryPilot
from lightning_modules.dictionary_training import DictionaryTraining
from lightning_modules.direct_logit_attribution import DirectLogitAttributionModule
from lightning_modules.edge_coefficients import EdgeCoefficientsModule
from lightning_modules.explanation_benchmark import ExplanationBenchmarkModule
from lightning_modules.feature_circuit import FeatureCircuitModule
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.language_model_pretraining import LanguageModelPretraining
from lightning_modules.logit_lens import LogitLensModule
from lightning_modules.neuron_explanations import NeuronExplanationModule
from lightning_modules.residual_vector import ResidualVectorModule
from lightning_modules.transcoder_training import TranscoderTraining

__all__ = [
    "DictionaryPilot",
    "DictionaryTraining",
    "NeuronExplanationModule",
    "ActivationAtlasModule",
    "ActivationPatchingModule",
    "DirectLogitAttributionModule",
    "EdgeCoefficientsModule",
    "ExplanationBenchmarkModule",
    "FeatureCircuitModule",
    "LanguageModelPretraining",
    "LogitLensModule",
    "FrozenModelStrategy",
    "ResidualVectorModule",
    "TranscoderTraining",
]
