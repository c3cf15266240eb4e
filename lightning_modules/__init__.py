"""Thin LightningModules: the trainable intervention and its loss (logic lives in circuitforge/)."""

from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.residual_vector import ResidualVectorModule

__all__ = ["FrozenModelStrategy", "ResidualVectorModule"]
