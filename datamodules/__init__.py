"""Datamodules: text corpora (baselines, atlas) and, later, prompt pairs."""

from datamodules.demo_corpus import DemoCorpusDataModule
from datamodules.text import TextDataModule

__all__ = ["DemoCorpusDataModule", "TextDataModule"]
