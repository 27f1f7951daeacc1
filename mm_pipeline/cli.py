"""``mm-pipeline``: sample | validate | demo | run | embed | similar."""

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

    summary = generate_sample(
        Path(args.out), n=args.n, batches=args.batches, seed=args.seed, progress=_progress_bar("images")
    )
    print(
        f"{summary.n_products} products in {len(summary.batch_files)} batches under {summary.out_dir} "
        f"({summary.n_dup_groups} re-listing groups, {summary.n_bad_rows} deliberately bad rows)"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mm_pipeline.catalog.contract import BatchFileError, one_line, validate_batch

    try:
        result = validate_batch(args.batch, args.images)
    except BatchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # whatever the input, one line and never a traceback
        print(f"error: {args.batch}: unexpected {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1
    print(
        f"{result.source}: {len(result.accepted)} accepted, {len(result.rejected)} rejected of {result.n_input}"
    )
    if result.missing_columns:
        print(f"missing optional columns (filled with defaults): {', '.join(result.missing_columns)}")
    for line in result.rejection_lines():
        print(line)
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

    from mm_pipeline.defs.resources import PipelineSettings

    with dg.DagsterInstance.get() as instance:
        return _materialize_and_report(
            PipelineSettings.from_env(),
            instance,
            started,
            f"runs recorded in DAGSTER_HOME={os.environ.get('DAGSTER_HOME')} (`make ui` shows them)",
        )


def cmd_run(args: argparse.Namespace) -> int:
    """The whole graph on a user's catalogue, in its own data dir and Dagster instance."""
    import contextlib
    import tempfile

    started = time.perf_counter()
    for flag, folder in (("--incoming", args.incoming), ("--images", args.images)):
        if not folder.is_dir():
            print(f"error: {flag} {folder} is not a directory", file=sys.stderr)
            return 2
    if not any(p for p in args.incoming.glob("*.parquet") if not p.name.startswith(".")):
        print(f"error: no batch files (*.parquet) in {args.incoming}", file=sys.stderr)
        return 2
    env = {
        **os.environ,
        "MM_DATA_DIR": str(args.data_dir),
        "MM_INCOMING_DIR": str(args.incoming),
        "MM_IMAGES_DIR": str(args.images),
    }
    if args.epochs is not None:
        if args.epochs < 1:
            print(f"error: --epochs must be at least 1, got {args.epochs}", file=sys.stderr)
            return 2
        env["MM_TRAIN_EPOCHS"] = str(args.epochs)
    os.environ.setdefault("WANDB_DIR", str(args.data_dir / "wandb"))
    Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)

    import dagster as dg

    from mm_pipeline.defs.resources import PipelineSettings

    settings = PipelineSettings.from_env(env)
    kept = args.dagster_home is not None
    where = (
        f"runs recorded in the Dagster instance at {args.dagster_home}"
        if kept
        else "runs were recorded in a temporary Dagster instance, now removed (--dagster-home DIR keeps them)"
    )
    folder = contextlib.nullcontext(str(args.dagster_home)) if kept else tempfile.TemporaryDirectory()
    with folder as home:
        Path(home).mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.from_config(home) as instance:
            return _materialize_and_report(settings, instance, started, where)


def _materialize_and_report(settings, instance, started: float, where: str) -> int:
    """``demo`` and ``run``: every stage in order with progress on stdout, then the summary; 1 if a stage failed.

    ``settings`` is a ``PipelineSettings``, ``instance`` an open ``DagsterInstance``; ``started`` is the
    ``time.perf_counter()`` the elapsed time counts from and ``where`` says where the runs are recorded.
    """
    from mm_pipeline.definitions import build_defs
    from mm_pipeline.defs.automation.runner import materialize_graph
    from mm_pipeline.demo_summary import print_summary

    outcome = materialize_graph(build_defs(settings), instance, settings.batch_names())
    print_summary(settings.layout, outcome.batches, outcome.checks)
    print(f"elapsed: {time.perf_counter() - started:.0f} s; {where}")
    if not outcome.success:
        print(f"failed stages: {', '.join(outcome.failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed new products with the ONNX artifact alone (no torch), same validation and cleaning as the assets."""
    from concurrent.futures import ThreadPoolExecutor

    from mm_pipeline.catalog.contract import BatchFileError, one_line, validate_batch
    from mm_pipeline.inference.encoders import OnnxEncoders, ParityError, choose_variant, write_embeddings
    from mm_pipeline.prep.images import load_letterboxed
    from mm_pipeline.prep.text import clean_products
    from mm_pipeline.storage import pin, write_parquet

    try:
        result = validate_batch(args.products, args.images)
    except BatchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    rejected_path = out.with_name(out.stem + ".rejected.parquet")
    write_parquet(result.rejected, rejected_path)
    for line in result.rejection_lines():
        print(line, file=sys.stderr)
    model_dir = pin(args.model)
    try:
        encoders = OnnxEncoders(model_dir, choose_variant(model_dir, args.variant))
    except ParityError as exc:
        print(f"error: {one_line(exc, limit=400)}", file=sys.stderr)
        return 2
    products = clean_products(result.accepted)
    files = products["image_file"].tolist()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:

        def load_images(start: int, stop: int):
            import numpy as np

            return np.stack(
                list(pool.map(lambda f: load_letterboxed(f, encoders.image_size), files[start:stop]))
            )

        stats = write_embeddings(
            encoders,
            products["nm"].to_numpy(),
            products["text"].tolist(),
            load_images,
            out,
            chunk_size=args.chunk_size,
            progress=_progress_bar("products"),
        )
    print(
        f"{stats.count} products embedded ({stats.products_per_second:.1f}/s, model {encoders.model_version}) "
        f"-> {out}; {len(result.rejected)} rejected -> {rejected_path}"
    )
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    import pandas as pd

    from mm_pipeline.evaluation.similarity import SimilarityIndex
    from mm_pipeline.inference.encoders import read_vectors
    from mm_pipeline.layout import Layout
    from mm_pipeline.storage import pin

    layout = Layout(Path(args.data_dir))
    if not (layout.index_dir / "fused.faiss").exists():
        print(
            f"error: no similarity index under {layout.index_dir}; materialize similarity_index first",
            file=sys.stderr,
        )
        return 2
    folder = pin(layout.index_dir)
    index = SimilarityIndex.load(folder / "fused.faiss")
    lookup = pd.read_parquet(folder / "lookup.parquet").set_index("nm")
    if args.nm not in lookup.index:
        print(f"error: nm {args.nm} is not in the index ({len(lookup)} products)", file=sys.stderr)
        return 2
    nm, fused = read_vectors(layout.embeddings(lookup.loc[args.nm, "batch"]), "fused")
    query = fused[nm == args.nm]
    scores, ids = index.search(query, args.k + 1)
    print(f"nearest to {args.nm} «{lookup.loc[args.nm, 'title']}» ({index.kind} index, {index.n} products):")
    for score, nm in zip(scores[0], ids[0], strict=True):
        if nm >= 0 and nm != args.nm:
            print(f"{nm:>12}  {score:6.3f}  {lookup.loc[nm, 'title']}")
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

    run = sub.add_parser(
        "run", help="materialize the whole graph on your own catalogue (batch files + images)"
    )
    run.add_argument("--incoming", type=Path, required=True, help="folder of batch files (*.parquet)")
    run.add_argument("--images", type=Path, required=True, help="folder the image paths are relative to")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("MM_DATA_DIR", "data")),
        help="where store/ is written (default: MM_DATA_DIR or data)",
    )
    run.add_argument(
        "--dagster-home",
        type=Path,
        default=None,
        help="Dagster instance folder that keeps the runs (default: a temporary instance)",
    )
    run.add_argument(
        "--epochs", type=int, default=None, help="training epochs (default: MM_TRAIN_EPOCHS or recipe)"
    )
    run.set_defaults(func=cmd_run)

    embed = sub.add_parser(
        "embed", help="embed a products file with an exported ONNX model folder (no torch)"
    )
    embed.add_argument("--products", type=Path, required=True)
    embed.add_argument("--images", type=Path, required=True)
    embed.add_argument("--model", type=Path, default=Path("data/store/onnx"), help="the onnx_model folder")
    embed.add_argument("--out", type=Path, required=True)
    embed.add_argument(
        "--variant", choices=("int8", "fp32"), default="int8", help="preferred; fp32 when int8 failed parity"
    )
    embed.add_argument("--chunk-size", type=int, default=256)
    embed.set_defaults(func=cmd_embed)

    similar = sub.add_parser("similar", help="nearest products of an nm from the similarity index")
    similar.add_argument("--nm", type=int, required=True)
    similar.add_argument("--k", type=int, default=10)
    similar.add_argument("--data-dir", default=os.environ.get("MM_DATA_DIR", "data"))
    similar.set_defaults(func=cmd_similar)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
