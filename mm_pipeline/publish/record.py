"""The publish record: every published version kept as a parquet file plus its manifest (no Dagster here).

``published/embeddings.parquet`` is always the current version and ``published/manifest.json`` describes
it. Each version also stays under ``published/versions/<version>.{parquet,json}``: the newest
:data:`KEEP_VERSIONS` are kept, so a consumer can pin one (open ``versions/<version>.parquet``) and an
operator can compare what changed. Every file is written under a temporary name and moved into place; a
version's manifest is written after its parquet file, so a listed version is always complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from mm_pipeline.layout import Layout
from mm_pipeline.storage import atomic_path, write_arrow, write_json

KEEP_VERSIONS = 5  # the current version and the four before it


@dataclass(frozen=True)
class PublishedVersion:
    version: str
    manifest: dict
    path: Path


def new_version_id(now: datetime | None = None) -> str:
    """Sortable, unique per microsecond: ``20260131T020501123456Z``."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def _any(version_file: Callable[[str], Path]) -> str:
    """The glob pattern of a kept version's file (``layout.published_version`` or its manifest)."""
    return version_file("*").name


def list_versions(layout: Layout) -> list[dict]:
    """Manifests of the kept versions, newest first."""
    folder = layout.published_versions_dir
    if not folder.exists():
        return []
    manifests = [
        json.loads(p.read_text())
        for p in sorted(folder.glob(_any(layout.published_version_manifest)), reverse=True)
    ]
    return [m for m in manifests if layout.published_version(m["version"]).exists()]


def current_manifest(layout: Layout) -> dict | None:
    path = layout.published_manifest
    return json.loads(path.read_text()) if path.exists() else None


def changes(previous: dict | None, manifest: dict) -> dict:
    """What an operator wants to know first: products, batches and model versions versus the last version."""
    if previous is None:
        return {"previous_version": None}
    before = {b["batch"]: b["products"] for b in previous.get("batches", [])}
    after = {b["batch"]: b["products"] for b in manifest["batches"]}
    return {
        "previous_version": previous["version"],
        "products_delta": manifest["products"] - previous.get("products", 0),
        "batches_added": sorted(after.keys() - before.keys()),
        "batches_removed": sorted(before.keys() - after.keys()),
        "batches_resized": sorted(b for b in after.keys() & before.keys() if after[b] != before[b]),
        "model_versions_before": previous.get("model_versions", []),
        "fused_dims_before": previous.get("fused_dims"),
    }


def publish_version(
    layout: Layout,
    published: pa.Table,
    manifest: dict,
    keep: int = KEEP_VERSIONS,
    now: datetime | None = None,
) -> PublishedVersion:
    """Write ``published`` as a new version with ``manifest`` (plus version, time, file hash, changes), make it
    the current one, and prune versions beyond the newest ``keep``."""
    now = now or datetime.now(UTC)
    version = new_version_id(now)
    data_path = layout.published_version(version)
    # dictionary pages for the repeated strings only: on vector floats they cost size and time
    # (as in write_embeddings)
    strings = [c for c in ("model_version", "batch") if c in published.column_names]
    write_arrow(published, data_path, use_dictionary=strings)
    full = {
        "version": version,
        "published_at": now.isoformat(),
        **manifest,
        "file": str(data_path.relative_to(layout.published_dir)),
        "sha256": _sha256(data_path),
        "changes": changes(current_manifest(layout), manifest),
    }
    write_json(full, layout.published_version_manifest(version))
    _link_or_copy(data_path, layout.published_embeddings)
    write_json(full, layout.published_manifest)
    prune(layout, keep)
    return PublishedVersion(version, full, layout.published_embeddings)


def prune(layout: Layout, keep: int = KEEP_VERSIONS) -> list[str]:
    """Remove versions older than the newest ``keep`` (manifest first, so a listed version is never partial)."""
    folder = layout.published_versions_dir
    if not folder.exists():
        return []
    files = [
        *folder.glob(_any(layout.published_version_manifest)),
        *folder.glob(_any(layout.published_version)),
    ]
    versions = sorted({p.stem for p in files})
    removed = versions[: max(len(versions) - keep, 0)]
    for version in removed:
        layout.published_version_manifest(version).unlink(missing_ok=True)
        layout.published_version(version).unlink(missing_ok=True)
    return removed
