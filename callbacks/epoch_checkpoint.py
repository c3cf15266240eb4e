"""The run's one checkpoint callback: `last.ckpt` and the newest epoch's checkpoint, nothing else.

Lightning's ModelCheckpoint keeps a checkpoint the run resumed from, so a resume from an epoch
checkpoint (say `last.ckpt` was damaged) left `epoch=3` beside `epoch=4`; and a kill in the
middle of a write leaves its `.tmp` behind. After each save this one removes both.
"""

from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from circuitforge.atomic_files import remove_stale_temporaries


class EpochCheckpoint(ModelCheckpoint):
    def _save_checkpoint(self, trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and self.dirpath is not None:
            folder = Path(self.dirpath)
            current = (filepath, self.best_model_path, self.last_model_path)
            keep = {Path(p).name for p in current if p}
            for stale in folder.glob("epoch=*.ckpt"):
                if stale.name not in keep:
                    stale.unlink(missing_ok=True)
            remove_stale_temporaries(folder)
