from circuitforge.model.spec import FrozenModelSpec, load_frozen_model

__all__ = ["FrozenModelSpec", "load_frozen_model"]
