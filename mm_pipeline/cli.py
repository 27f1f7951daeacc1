"""``mm-pipeline``: sample | validate | demo | embed | similar."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm


def _progress_bar(description: str):
    bar = tqdm(desc=description, unit="item", file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def cmd_sample(args: argparse.Namespace) -> int:
    from mm_pipeline.catalog.sample import generate_sample

    summary = generate_sample(Path(args.out), n=args.n, batches=args.batches, seed=args.seed,
                              progress=_progress_bar("images"))
    print(f"{summary.n_products} products in {len(summary.batch_files)} batches under {summary.out_dir} "
          f"({summary.n_dup_groups} re-listing groups, {summary.n_bad_rows} deliberately bad rows)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mm_pipeline.catalog.contract import BatchFileError, validate_batch

    try:
        result = validate_batch(args.batch, args.images)
    except BatchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.source}: {len(result.accepted)} accepted, {len(result.rejected)} rejected of {result.n_input}")
    if result.missing_columns:
        print(f"missing optional columns (filled with defaults): {', '.join(result.missing_columns)}")
    for row in result.rejected.itertuples():
        print(f"rejected nm={row.nm}: {row.reject_reason}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mm_pipeline.catalog.sample import generate_sample

    started = time.perf_counter()
    out = Path(args.out)
    if not any((out / "batches").glob("*.parquet")):
        generate_sample(out, n=args.n, batches=args.batches, seed=args.seed, progress=_progress_bar("images"))
    os.environ.setdefault("MM_INCOMING_DIR", str(out / "batches"))
    os.environ.setdefault("MM_IMAGES_DIR", str(out / "images"))

    import dagster as dg

    from mm_pipeline.defs.automation.runner import materialize_graph
    from mm_pipeline.definitions import defs
    from mm_pipeline.demo_summary import print_summary

    settings = defs.resources["settings"]
    with dg.DagsterInstance.get() as instance:
        outcome = materialize_graph(defs, instance, settings.batch_names())
    print_summary(settings.layout, outcome.batches)
    print(f"elapsed: {time.perf_counter() - started:.0f} s; runs recorded in DAGSTER_HOME={os.environ.get('DAGSTER_HOME')}"
          " (`make ui` shows them)")
    if not outcome.success:
        print(f"failed stages: {', '.join(outcome.failures)}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mm-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sample = sub.add_parser("sample", help="write the deterministic Russian sample catalogue")
    sample.add_argument("--out", default="data/sample")
    sample.add_argument("--n", type=int, default=3000)
    sample.add_argument("--batches", type=int, default=3)
    sample.add_argument("--seed", type=int, default=0)
    sample.set_defaults(func=cmd_sample)

    validate = sub.add_parser("validate", help="validate one batch file against the input contract")
    validate.add_argument("batch", type=Path)
    validate.add_argument("--images", type=Path, required=True)
    validate.set_defaults(func=cmd_validate)

    demo = sub.add_parser("demo", help="generate the sample (if absent) and materialize the whole graph")
    demo.add_argument("--out", default="data/sample")
    demo.add_argument("--n", type=int, default=3000)
    demo.add_argument("--batches", type=int, default=3)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
