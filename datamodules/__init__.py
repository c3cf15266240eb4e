"""Datamodules: text corpora (baselines, atlas) and, later, prompt pairs."""

from datamodules.text import TextDataModule

__all__ = ["TextDataModule"]
