"""What fine-tuning reports while it runs: the typed events passed to ``on_progress`` of
:func:`mm_pipeline.model.train.fine_tune`, one :class:`StepEvent` per optimizer step, one :class:`EpochEvent`
per validated epoch, and a :class:`ResumedEvent` first when a run continues from a checkpoint.

``as_dict()`` gives an event as one JSON-ready dict whose ``event`` key names its kind (``step``, ``epoch``,
``resumed``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar


class _Event:
    kind: ClassVar[str]

    def as_dict(self) -> dict:
        """``{"event": kind, **fields}``."""
        return {"event": self.kind, **asdict(self)}


@dataclass(frozen=True)
class StepEvent(_Event):
    kind: ClassVar[str] = "step"
    epoch: int
    step: int  # steps of this epoch done, counting this one (1 … steps)
    steps: int  # steps per epoch
    global_step: int  # optimizer steps of the whole run, counting this one
    loss: float  # this step's training loss
    lr: float  # the learning rate it was taken with
    items_per_s: float  # products trained on per second in this epoch so far


@dataclass(frozen=True)
class EpochEvent(_Event):
    kind: ClassVar[str] = "epoch"
    epoch: int
    val_loss: float  # held-out in-batch loss (NaN when the holdout has no batch of two)
    val_recall_at_1: float  # held-out image→text recall@1
    val_recall_at_5: float
    chance_recall_at_5: float  # recall@5 of a random ranking of the holdout
    best_epoch: int  # the best epoch so far, this one included

    def validation(self) -> dict[str, float]:
        """The held-out scores (``val_*``) alone."""
        return {
            "val_loss": self.val_loss,
            "val_recall_at_1": self.val_recall_at_1,
            "val_recall_at_5": self.val_recall_at_5,
        }


@dataclass(frozen=True)
class ResumedEvent(_Event):
    kind: ClassVar[str] = "resumed"
    epoch: int  # where the checkpoint left off: ``step`` steps of ``epoch`` done
    step: int


TrainingEvent = StepEvent | EpochEvent | ResumedEvent
