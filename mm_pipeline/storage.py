"""Atomic file writes: every artifact appears whole under its final name or not at all.

Writers get a unique temporary name beside the target (pid + random suffix, so two concurrent runs never
share one) and the result is moved into place with ``os.replace``; an interrupted write leaves the previous
version readable and only a hidden ``.tmp`` file that readers never look at.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``target`` atomically, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` (a folder) when the block succeeds.

    The old folder is renamed aside and removed after the new one is in place, so readers see either the
    complete old folder or the complete new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        retired = _temp_sibling(target) if target.exists() else None
        if retired is not None:
            os.replace(target, retired)
        os.replace(tmp, target)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet(df: pd.DataFrame, target: Path | str) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(target)


def write_json(payload: Any, target: Path | str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return Path(target)


def save_npy(array: np.ndarray, target: Path | str) -> Path:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(target)


def file_size(path: Path | str) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
