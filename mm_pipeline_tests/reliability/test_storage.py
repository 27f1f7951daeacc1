"""Atomic files and folders: killed, concurrent and repeated writers never expose a partial artifact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mm_pipeline import storage
from mm_pipeline.storage import VERSIONS_KEPT, atomic_dir, atomic_path, pin, versions_dir

# Writes a folder of two files that must agree; with a pause file it stops halfway, waiting to be killed.
WRITE_SET = """
import sys, time
from pathlib import Path
from mm_pipeline.storage import atomic_dir
target, token, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
pause = Path(sys.argv[4]) if len(sys.argv) > 4 else None
for i in range(rounds):
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text(f"{token}-{i}")
        if pause is not None:
            pause.write_text("halfway")
            time.sleep(600)
        (tmp / "b.txt").write_text(f"{token}-{i}")
"""


def write_set(target: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITE_SET, str(target), *args], stderr=subprocess.PIPE)


def read_set(target: Path) -> str:
    version = pin(target)
    a, b = (version / "a.txt").read_text(), (version / "b.txt").read_text()
    assert a == b, f"mixed versions: {a} / {b}"
    return a


def test_folder_replaced_as_a_whole_and_old_versions_pruned(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "PRUNE_GRACE_S", 0.0)
    target = tmp_path / "model"
    for i in range(4):
        with atomic_dir(target) as tmp:
            (tmp / "a.txt").write_text(f"v{i}")
            (tmp / "b.txt").write_text(f"v{i}")
        assert read_set(target) == f"v{i}"
    assert target.is_symlink()
    kept = sorted(p.name for p in versions_dir(target).iterdir())
    assert len(kept) == VERSIONS_KEPT and target.resolve().name == kept[-1]


def test_failed_block_keeps_the_previous_folder(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("good")
        (tmp / "b.txt").write_text("good")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("bad")
        raise RuntimeError("export failed")
    assert read_set(target) == "good"
    assert not list(versions_dir(target).glob("tmp.*"))


def test_plain_folder_from_an_older_layout_is_taken_over(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "a.txt").write_text("legacy")
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("new")
        (tmp / "b.txt").write_text("new")
    assert read_set(target) == "new" and target.is_symlink()


def test_killed_writer_leaves_the_previous_folder_and_is_swept_next_time(tmp_path):
    target = tmp_path / "model"
    assert write_set(target, "old", "1").wait(timeout=60) == 0
    pause = tmp_path / "pause"
    victim = write_set(target, "new", "1", str(pause))
    deadline = time.monotonic() + 60
    while not pause.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pause.exists(), victim.stderr.read()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert read_set(target) == "old-0"
    assert len(list(versions_dir(target).glob("tmp.*"))) == 1  # the killed writer's half folder, hidden

    assert write_set(target, "rerun", "1").wait(timeout=60) == 0
    assert read_set(target) == "rerun-0"
    assert not list(versions_dir(target).glob("tmp.*"))


def test_concurrent_writers_never_expose_a_missing_or_mixed_folder(tmp_path):
    target = tmp_path / "model"
    assert write_set(target, "seed", "1").wait(timeout=60) == 0
    writers = [write_set(target, f"w{n}", "40") for n in range(3)]
    seen = set()
    while any(w.poll() is None for w in writers):
        seen.add(read_set(target))  # raises on a missing file or a mix of two writers
    assert all(w.wait() == 0 for w in writers), [w.stderr.read() for w in writers]
    assert len({v.split("-")[0] for v in seen}) >= 2, "the writers never overlapped"
    assert read_set(target).endswith("-39")
    assert not list(versions_dir(target).glob("tmp.*"))


def test_file_temporaries_of_dead_writers_are_swept(tmp_path):
    target = tmp_path / "table.parquet"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    with atomic_path(target) as tmp:
        tmp.write_text("first")
    stale = tmp.with_name(tmp.name.replace(f".{os.getpid()}.", f".{dead.stdout.strip()}."))
    stale.write_text("half")
    live = tmp.with_name(tmp.name.replace(".tmp", "x.tmp"))  # our own pid: a writer still running
    live.write_text("in progress")
    with atomic_path(target) as tmp:
        tmp.write_text("second")
    assert target.read_text() == "second"
    assert not stale.exists() and live.exists()
