"""ActivationAtlasModule: profile every unit of one hook over a corpus (a predict run).

`python train.py predict --config configs/atlas/demo.yaml`. Nothing is trained: each predict
step runs the frozen model up to the profiled layer (`stop_at_layer`) on one batch of
documents and folds the activations into a `NeuronProfile` (exact top-k contexts, mean,
fraction active), so memory stays O(k x units) however large the corpus. Under a distributed
strategy (`strategy: ddp`) each process profiles its shard and the profiles are all-gathered
and merged exactly at the epoch end. The `AtlasExport` callback writes the result. Every
`snapshot_every_n_batches` each process saves its profile so far (`circuitforge.atlas.snapshot`);
an interrupted atlas continues from them with its command line and `--ckpt_path last`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from transformer_lens import HookedTransformer

from circuitforge.atlas.documents import DocumentBatch
from circuitforge.atlas.profile import NeuronProfile, check_id_space
from circuitforge.atlas.snapshot import FOLDER, read_snapshot, snapshot_path, write_snapshot
from circuitforge.model import hooks
from circuitforge.model.placement import DevicePlan, place_model
from circuitforge.model.spec import FrozenModelSpec
from lightning_modules.frozen_model_module import FrozenModelModule
from lightning_modules.frozen_model_strategy import FrozenModelStrategy
from lightning_modules.resume import SnapshotRun, check_snapshot


def profiled_hook(model: HookedTransformer, layer: int, hook: str) -> str:
    """`blocks.{layer}.{hook}`, checked against the model."""
    n_layers = model.cfg.n_layers
    if not 0 <= layer < n_layers:
        raise ValueError(f"layer {layer} out of range: the model has {n_layers} layers")
    name = hooks.block(layer, hook)
    if name not in model.hook_dict:
        points = [hooks.parse_hook(h) for h in model.hook_dict]
        here = sorted(p.point for p in points if p is not None and p.layer == layer)
        raise ValueError(f"the model has no hook {name!r}; hooks of block {layer}: {here}")
    if model.cfg.attention_dir != "causal":
        raise ValueError("the atlas right-pads documents, which needs causal attention")
    return name


@torch.no_grad()
def hook_width(model: HookedTransformer, name: str) -> int:
    """Units of the hook's last dimension (one token through the model finds it)."""
    layer = int(name.split(".")[1])
    seen: dict[str, int] = {}

    def width(act: Tensor, hook) -> None:
        seen["w"] = act.shape[-1]

    device = model.embed.W_E.device
    model.run_with_hooks(
        torch.zeros(1, 1, dtype=torch.long, device=device),
        fwd_hooks=[(name, width)],
        stop_at_layer=layer + 1,
    )
    return seen["w"]


class ActivationAtlasModule(SnapshotRun, FrozenModelModule):
    EXPERIMENT = "activation_atlas"
    SNAPSHOTS = FOLDER

    def __init__(
        self,
        model: FrozenModelSpec,
        layer: int,
        hook: str = "mlp.hook_post",
        k: int = 10,
        active_threshold: float = 0.0,
        skip_bos: bool = True,
        snapshot_every_n_batches: int = 50,
    ) -> None:
        """Args:
        model: the frozen language model.
        layer: the block whose units are profiled.
        hook: the hook inside the block (`mlp.hook_post`: the MLP neurons).
        k: contexts kept per unit.
        active_threshold: a unit is active on a token when its activation exceeds this.
        skip_bos: leave `<bos>` out of the top-k and the statistics.
        snapshot_every_n_batches: every n batches each process writes its profile so far to
            `{log_dir}/atlas_snapshot/rank_{r}.pt` (0: never). `--ckpt_path last` continues
            an interrupted run from them, skipping the batches they cover.
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        super().__init__(model)
        self.save_hyperparameters()
        self.layer, self.k = layer, k
        self.active_threshold, self.skip_bos = active_threshold, skip_bos
        self.hook_name = profiled_hook(self.frozen_model, layer, hook)
        self.units = hook_width(self.frozen_model, self.hook_name)
        self.snapshot_every = snapshot_every_n_batches
        self.profile: NeuronProfile | None = None
        self.stride = 0  # positions per document in the global token ids (max_tokens)
        self.batches_done = 0  # batches already in the profile (a resumed run skips them)
        self.snapshots: Path | None = None

    @property
    def injection_layer(self) -> int:  # where FrozenModelStrategy puts this module's tensors
        return self.layer

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "bind_tokenizer"):
            raise ValueError("ActivationAtlasModule needs data: DocumentDataModule")
        datamodule.bind_tokenizer(self.frozen_model.tokenizer)
        self.stride = datamodule.format.max_tokens
        check_id_space(len(datamodule.texts), self.stride)
        if not isinstance(self.trainer.strategy, FrozenModelStrategy):
            # ddp and friends: each process holds the whole frozen model on its own device.
            device = self.trainer.strategy.root_device
            place_model(
                self.frozen_model, DevicePlan.split(self.frozen_model.cfg.n_layers, [device])
            )

    def on_predict_epoch_start(self) -> None:
        # self.device is the profiled layer's device (the strategies put this module there)
        self.profile = NeuronProfile.empty(self.k, self.units, self.device)
        self.batches_done = 0
        log_dir = self.trainer.log_dir  # a collective under ddp: every process asks
        self.snapshots = Path(log_dir or self.trainer.default_root_dir) / FOLDER
        if self.resume_folder is not None:  # --ckpt_path: the interrupted run's snapshots
            rank = self.global_rank
            found = read_snapshot(self.resume_folder, rank)
            check_snapshot(snapshot_path(self.resume_folder, rank), found, self.run_record)
            self.profile = NeuronProfile.from_tensors(
                {k: v.to(self.device) for k, v in found["profile"].items()}
            )
            self.batches_done = found["batches_done"]
            self.resume_folder = None  # a second predict profiles everything again

    def predict_step(self, batch: DocumentBatch, batch_idx: int) -> None:
        assert self.profile is not None
        if batch_idx < self.batches_done:  # in the resumed snapshot already
            return
        captured: dict[str, Tensor] = {}

        def capture(act: Tensor, hook) -> None:
            captured["act"] = act

        model = self.frozen_model
        tokens = batch.tokens.to(model.embed.W_E.device)
        model.run_with_hooks(
            tokens, fwd_hooks=[(self.hook_name, capture)], stop_at_layer=self.layer + 1
        )
        self.profile.update(
            captured["act"],
            batch.to(captured["act"].device),
            self.stride,
            self.active_threshold,
            self.skip_bos,
        )

    def on_predict_batch_end(self, outputs, batch, batch_idx: int, dataloader_idx: int = 0) -> None:
        done = batch_idx + 1
        if done > self.batches_done:
            self.batches_done = done
            if self.snapshot_every and done % self.snapshot_every == 0:
                self.write_snapshot()

    def write_snapshot(self) -> None:
        assert self.profile is not None and self.snapshots is not None
        write_snapshot(
            self.snapshots, self.global_rank, self.run_record, self.profile, self.batches_done
        )

    def on_predict_epoch_end(self) -> None:
        assert self.profile is not None
        if self.trainer.world_size > 1:
            gathered = self.all_gather(self.profile.tensors())
            assert isinstance(gathered, dict)  # all_gather keeps the dict's keys
            self.profile = NeuronProfile.merge_gathered(gathered)
