"""Resumable fine-tuning: which job a checkpoint belongs to (:func:`fingerprint`), where a run stands
(:class:`TrainingState`), and the checkpoint files of one job (:class:`Checkpoints`).

A checkpoint directory holds ``last.pt`` (weights, optimizer state and :class:`TrainingState`, written every
``checkpoint_every`` steps and at each epoch end) and ``best.pt`` (the weights of the best epoch so far),
named by :data:`~mm_pipeline.model.files.LAST_CHECKPOINT_FILE` and
:data:`~mm_pipeline.model.files.BEST_CHECKPOINT_FILE` (under the data directory:
``Layout.checkpoint_last`` and ``Layout.checkpoint_best``). Both are replaced atomically, so a run killed at
any moment leaves the previous ones intact; a rerun of the same job resumes from ``last.pt``, a different job
starts afresh.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from ruclip.model import CLIP

from mm_pipeline.model.files import BEST_CHECKPOINT_FILE, LAST_CHECKPOINT_FILE
from mm_pipeline.model.pairs import PairedData
from mm_pipeline.storage import atomic_path

if TYPE_CHECKING:
    from mm_pipeline.model.train import TrainConfig


def fingerprint(config: TrainConfig, model_config: dict, data: PairedData, base_weights: Path) -> str:
    """Identifies a training job (16 hex digits): resuming is only allowed into the same recipe, data and
    starting weights. Raises ``FileNotFoundError`` when ``base_weights`` is missing."""
    digest = hashlib.sha256(json.dumps([asdict(config), model_config], sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(data.nm).tobytes())
    for start in range(0, len(data), 4096):
        digest.update(data.ids(np.arange(start, min(start + 4096, len(data)))).tobytes())
    stat = base_weights.stat()
    digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


@dataclass
class TrainingState:
    """Where a run stands: the next step to take (``step`` steps of ``epoch`` are done), the optimizer steps
    taken in all, and the validation scores of the finished epochs with the index of the best one."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1

    @property
    def best(self) -> dict | None:
        """The best epoch's scores, None before the first epoch ends."""
        return self.history[self.best_epoch] if self.best_epoch >= 0 else None


class Checkpoints:
    """The checkpoint files of training job ``job_id`` under ``directory`` (created)."""

    def __init__(self, directory: Path, job_id: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.last, self.best = directory / LAST_CHECKPOINT_FILE, directory / BEST_CHECKPOINT_FILE
        self.job_id = job_id

    def resume(self, clip: CLIP, optimizer: torch.optim.Optimizer) -> TrainingState | None:
        """Load the last checkpoint of this job into ``clip`` and ``optimizer`` and return where it stood;
        None (nothing loaded) when there is none, or only one of another job."""
        if not self.last.exists():
            return None
        saved = torch.load(self.last, map_location="cpu", weights_only=False)
        if saved["job_id"] != self.job_id:
            return None
        clip.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        return TrainingState(
            saved["epoch"], saved["step"], saved["global_step"], saved["history"], saved["best_epoch"]
        )

    def save(self, clip: CLIP, optimizer: torch.optim.Optimizer, state: TrainingState) -> None:
        """Replace the last checkpoint with ``clip``'s weights, the optimizer state and ``state``."""
        saved = {
            "job_id": self.job_id,
            "model": clip.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": state.epoch,
            "step": state.step,
            "global_step": state.global_step,
            "history": state.history,
            "best_epoch": state.best_epoch,
        }
        with atomic_path(self.last) as tmp:
            torch.save(saved, tmp)

    def save_best(self, clip: CLIP) -> None:
        """Keep ``clip``'s current weights as the best epoch's."""
        with atomic_path(self.best) as tmp:
            torch.save(copy.deepcopy(clip.state_dict()), tmp)

    def restore_best(self, clip: CLIP) -> None:
        """Move ``clip`` to the CPU with the best epoch's weights. Raises ``FileNotFoundError`` before any
        epoch was kept."""
        clip.to("cpu").load_state_dict(torch.load(self.best, map_location="cpu"))
