"""Datamodules: text corpora (baselines, atlas) and, later, prompt pairs."""

from datamodules.activation_tokens import ActivationTokensDataModule
from datamodules.cached_activations import CachedActivationsDataModule
from datamodules.demo_corpus import DemoCorpusDataModule
from datamodules.documents import DocumentDataModule
from datamodules.neuron_batches import NeuronBatchDataModule
from datamodules.prompt_pairs import PromptPairDataModule
from datamodules.text import TextDataModule

__all__ = [
    "ActivationTokensDataModule",
    "CachedActivationsDataModule",
    "DocumentDataModule",
    "NeuronBatchDataModule",
    "PromptPairDataModule",
    "DemoCorpusDataModule",
    "TextDataModule",
]
