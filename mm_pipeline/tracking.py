"""Weights & Biases configuration from the environment, decided before W&B is touched.

Runs are offline by default and kept under ``<MM_DATA_DIR>/wandb`` (``Layout.wandb_dir``, on the data volume
in every deployment), not in the working directory; ``WANDB_DIR`` overrides. ``WANDB_MODE=online`` without
``WANDB_API_KEY`` is refused at once, with what to set, instead of a W&B service error after ~20 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mm_pipeline.layout import Layout

PLACEHOLDER_KEY = "0" * 40  # offline/disabled W&B still wants a key-shaped string; never sent anywhere
ONLINE_MODES = frozenset(("online", "run", "shared"))  # W&B's names for uploading as the run goes
LOCAL_MODES = frozenset(("offline", "dryrun", "disabled"))


class TrackingConfigError(ValueError):
    """The W&B environment variables cannot work; the message says which and what to set."""


@dataclass(frozen=True)
class WandbSetup:
    mode: str
    dir: Path  # W&B writes its runs under <dir>/wandb
    api_key: str  # PLACEHOLDER_KEY in a local mode without a key

    @property
    def online(self) -> bool:
        return self.mode in ONLINE_MODES


def wandb_setup(env: Mapping[str, str], data_dir: Path | str) -> WandbSetup:
    """Mode (``WANDB_MODE``, default offline), runs folder (``WANDB_DIR``, default ``<data_dir>/wandb``,
    ``Layout.wandb_dir``) and key (``WANDB_API_KEY``). Raises :class:`TrackingConfigError` for an unknown mode
    or an online mode without a key."""
    mode = (env.get("WANDB_MODE") or "offline").strip().lower()
    folder = Path(env.get("WANDB_DIR") or Layout(Path(data_dir)).wandb_dir)
    if mode not in ONLINE_MODES | LOCAL_MODES:
        raise TrackingConfigError(
            f"WANDB_MODE={env['WANDB_MODE']!r} is not a W&B mode: use offline (the default), online or disabled"
        )
    key = (env.get("WANDB_API_KEY") or "").strip()
    if mode in ONLINE_MODES and (not key or key == PLACEHOLDER_KEY):
        raise TrackingConfigError(
            f"WANDB_MODE={mode} needs WANDB_API_KEY (your key from https://wandb.ai/authorize); set it, or use "
            f"WANDB_MODE=offline (runs kept under {folder}, upload later with `wandb sync`) or disabled"
        )
    return WandbSetup(mode, folder, key or PLACEHOLDER_KEY)
