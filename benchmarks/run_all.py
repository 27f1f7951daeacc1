"""``make bench``: every benchmark in one go, each printing its ratios measured side by side.

python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("bench_embeddings.py", "bench_training.py", "bench_probes.py", "bench_index.py")


def main() -> int:
    extra = sys.argv[1:]
    failures = 0
    for script in BENCHMARKS:
        print(f"\n=== {script} {' '.join(extra)}", flush=True)
        started = time.perf_counter()
        failures += subprocess.call([sys.executable, str(HERE / script), *extra]) != 0
        print(f"=== {script}: {time.perf_counter() - started:.0f} s", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
