"""Atomic writes: every artifact appears whole under its final name or not at all.

Files: writers get a unique temporary sibling (host + pid + random suffix, so concurrent runs never share
one) that ``os.replace`` moves into place. Folders and sets of files that belong together: each write goes
to a new version folder in a hidden ``.<name>.versions/`` beside the target, and the target is a symlink
swapped to it with one ``os.replace``. Readers see the complete old set or the complete new one; an
interrupted write leaves only hidden temporaries, which the next write on the same host sweeps away once
their process is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

VERSIONS_KEPT = 2  # the current version and the one before it
PRUNE_GRACE_S = 600.0  # younger versions stay too: a reader may have pinned one a moment ago
_HOST = socket.gethostname().replace(".", "-")


def _writer_tag() -> str:
    return f"{_HOST}.{os.getpid()}.{uuid.uuid4().hex[:8]}"


def _temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.name}.{_writer_tag()}.tmp")


def _process_gone(tag_parts: list[str]) -> bool:
    """Whether a temporary named ``…host.pid.rand…`` belongs to a finished process on this host."""
    if len(tag_parts) < 3 or tag_parts[-3] != _HOST or not tag_parts[-2].isdigit():
        return False  # another machine's writer (shared volume): not ours to judge
    try:
        os.kill(int(tag_parts[-2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _sweep_stale_temporaries(target: Path) -> None:
    prefix = f".{target.name}."
    for leftover in target.parent.glob(f"{prefix}*.tmp"):
        tag = leftover.name[len(prefix) : -len(".tmp")].split(".")
        if _process_gone(tag):
            _remove(leftover)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def atomic_path(target: Path | str) -> Iterator[Path]:
    """Yield a temporary file path; on success it replaces ``target`` atomically, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temporaries(target)
    tmp = _temp_sibling(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_paths(targets: Iterable[Path | str]) -> Iterator[list[Path]]:
    """Yield one temporary path per target, in order; when the block succeeds each replaces its target
    (``os.replace``, one after the other), when it raises no target changes and the temporaries are removed."""
    targets = [Path(t) for t in targets]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale_temporaries(target)
    temporaries = [_temp_sibling(t) for t in targets]
    try:
        yield temporaries
        for tmp, target in zip(temporaries, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in temporaries:
            tmp.unlink(missing_ok=True)


def versions_dir(target: Path | str) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.versions"


@contextmanager
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield an empty folder; when the block succeeds ``target`` (a symlink) is switched to it atomically.

    Concurrent writers each get their own folder and the last to finish wins; no reader ever finds
    ``target`` missing or half-written. Readers of several files pin the version first (:func:`pin`).
    """
    target = Path(target)
    versions = versions_dir(target)
    versions.mkdir(parents=True, exist_ok=True)
    writing = versions / f"tmp.{_writer_tag()}"
    writing.mkdir()
    try:
        yield writing
        finished = versions / f"v{time.time_ns():020d}.{writing.name[len('tmp.') :]}"
        os.replace(writing, finished)
        _point(target, finished)
    finally:
        _remove(writing)
    _prune(versions, target)


def _point(target: Path, version: Path) -> None:
    if target.exists() and not target.is_symlink():  # a plain folder from an older layout
        os.replace(target, versions_dir(target) / f"v{0:020d}.{_writer_tag()}")
    link = _temp_sibling(target)
    os.symlink(os.path.relpath(version, target.parent), link)
    os.replace(link, target)


def pin(folder: Path | str) -> Path:
    """The version folder ``folder`` points to now: read every file of one set through it."""
    return Path(folder).resolve()


def _prune(versions: Path, target: Path) -> None:
    current = target.resolve()
    finished = sorted((p for p in versions.glob("v*") if p != current), reverse=True)
    cutoff_ns = time.time_ns() - int(PRUNE_GRACE_S * 1e9)
    for old in finished[VERSIONS_KEPT - 1 :]:
        if int(old.name[1:].split(".")[0]) < cutoff_ns:
            _remove(old)
    for abandoned in versions.glob("tmp.*"):
        if _process_gone(abandoned.name.split(".")):
            _remove(abandoned)
    _sweep_stale_temporaries(target)


def write_npy_rows(
    target: Path | str, shape: tuple[int, ...], dtype: np.dtype | type, chunks: Iterable[np.ndarray]
) -> Path:
    """Fill a ``.npy`` of ``shape`` from consecutive row chunks through a memory map, then move it into place.

    Memory holds one chunk at a time whatever ``shape[0]`` is.
    """
    with atomic_path(target) as tmp:
        store = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
        start = 0
        for chunk in chunks:
            store[start : start + len(chunk)] = chunk
            start += len(chunk)
        store.flush()
        del store
    return Path(target)


def write_parquet(df: pd.DataFrame, target: Path | str, **options: Any) -> Path:
    """``df`` to ``target`` atomically; ``options`` go to pyarrow's ``write_table`` (e.g.
    ``use_dictionary``)."""
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False, **options)
    return Path(target)


def write_arrow(table: pa.Table, target: Path | str, **options: Any) -> Path:
    """``table`` to ``target`` atomically, its Arrow types kept (a fixed-size list stays one); ``options`` go to
    pyarrow's ``write_table``."""
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, **options)
    return Path(target)


def write_json(payload: Any, target: Path | str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    return Path(target)


def save_npy(array: np.ndarray, target: Path | str) -> Path:
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(target)
