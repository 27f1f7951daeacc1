"""``make quality``: the whole graph on every real catalogue in ../shared/data, one quality table each.

    python benchmarks/quality.py                      # flipkart1050, lamoda_hats and any other set found
    python benchmarks/quality.py --sets lamoda_hats --epochs 2

Each set (``products.parquet`` + ``images/<nm>.jpg``) runs through ``mm-pipeline run`` in a subprocess, as
one batch named after the set: its incoming folder (a link to the products file), data dir and Dagster
instance live in a temporary folder that is removed afterwards, so nothing is copied into the repository.
The run's progress and summary stream to stdout, Dagster's event log goes to a file whose tail is shown
when a stage fails. Then :func:`mm_pipeline.quality.format_report` prints the set's table: every task ×
fused / text / image / lexical / TF-IDF / pixels / TF-IDF+pixels / base fused, best-probe F1 and neighbour
precision@5 with their standard errors, duplicates pair F1 and recall@5, and the run's wall and CPU time
(CPU time is what to compare when other work shares the cores), then each quality target with a pass or MISS
per task (:func:`mm_pipeline.quality.target_lines`). Absent sets are skipped with a message.
W&B is disabled (the runs are thrown away). By default the shared sets run (each reported as skipped when
absent), then every other folder of ``--data`` holding a ``products.parquet``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mm_pipeline.layout import Layout
from mm_pipeline.quality import QUALITY_SECONDS, SET_FILE, cpu_model, find_sets, format_report

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SETS = ("flipkart1050", "lamoda_hats")


def run_set(folder: Path, epochs: int | None) -> tuple[int, str]:
    """``mm-pipeline run`` on one set in a temporary folder: ``(exit code, report)``."""
    name = folder.name
    with tempfile.TemporaryDirectory(prefix=f"mm_quality_{name}_") as temporary:
        work = Path(temporary)
        incoming = work / "incoming"
        incoming.mkdir()
        (incoming / f"{name}.parquet").symlink_to(folder / SET_FILE)
        command = [sys.executable, "-m", "mm_pipeline.cli", "run", "--incoming", str(incoming)]
        command += ["--images", str(folder / "images"), "--data-dir", str(work / "data")]
        command += ["--epochs", str(epochs)] if epochs else []
        env = {**os.environ, "WANDB_MODE": "disabled", "WANDB_DIR": str(work / "wandb")}
        log = work / "dagster.log"
        started, cpu_before = time.perf_counter(), _children_cpu_seconds()
        with log.open("w") as stderr:
            code = subprocess.call(command, cwd=REPO, env=env, stderr=stderr)
        wall, cpu = time.perf_counter() - started, _children_cpu_seconds() - cpu_before
        if code != 0:
            print(f"--- {name}: exit code {code}; last lines of the event log:", flush=True)
            print("\n".join(log.read_text(errors="replace").splitlines()[-40:]), flush=True)
        return code, format_report(name, Layout(work / "data"), wall, cpu)


def _children_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes: unlike wall time, not inflated when other
    work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding the sets")
    parser.add_argument(
        "--sets", nargs="+", help="set names (default: the shared sets, then any other found)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the recipe's)")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}", flush=True)
    started, failures, reports, shared_seconds = time.perf_counter(), 0, [], {}
    for name in args.sets or find_sets(args.data, SETS):
        folder = args.data / name
        if not (folder / SET_FILE).exists():
            print(f"skipping {name}: {folder / SET_FILE} is absent", flush=True)
            continue
        print(f"\n=== {name}", flush=True)
        set_started = time.perf_counter()
        code, report = run_set(folder, args.epochs)
        failures += code != 0
        reports.append(report)
        if name in SETS and code == 0:
            shared_seconds[name] = time.perf_counter() - set_started
        print(f"\n{report}\n(cells: value±standard error; – not measured)", flush=True)
    print(f"\nmake quality: {len(reports)} set(s) in {time.perf_counter() - started:.0f} s on {cpu_model()}")
    # the time target is for the shared sets as shipped: all run to the end, with the recipe's epochs
    if set(shared_seconds) == set(SETS) and args.epochs is None:
        seconds = sum(shared_seconds.values())
        verdict = "within" if seconds <= QUALITY_SECONDS else "OVER"
        print(f"the shared sets took {seconds:.0f} s: {verdict} the {QUALITY_SECONDS} s target")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
