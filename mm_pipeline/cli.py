"""``mm-pipeline``: sample | validate | demo | run | embed | similar | status."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

# MM_ONNX_VARIANT's values (inference.encoders: auto and VARIANT_ORDER), spelled out so that building the parser
# does not import ONNX Runtime
EMBED_VARIANTS = ("auto", "int8", "int8-static", "fp32", "bf16")


def _path_problem(flag: str, path: Path, kind: str) -> str | None:
    """Why ``path`` cannot be the ``flag`` argument, or ``None``. ``kind``: ``"input folder"`` (must be one),
    ``"output file"`` (not a folder) or ``"output folder"`` (not a file); an output must not lie under a file."""
    if kind == "input folder":
        return None if path.is_dir() else f"{flag} {path} is not a directory"
    if kind == "output file" and path.is_dir():
        return f"{flag} {path} is a directory; give a file name"
    if kind == "output folder" and path.exists() and not path.is_dir():
        return f"{flag} {path} is a file; give a directory"
    taken = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    return None if taken is None else f"{flag} {path}: {taken} is a file, not a directory"


def _env(name: str, default: str) -> str:
    """An ``MM_*`` setting as the pipeline reads it: empty means unset."""
    return os.environ.get(name) or default


def _onnx_settings() -> tuple[int, str]:
    """``(MM_WORKERS, MM_DEVICE)`` as the assets read them: threads for ONNX Runtime and image decoding
    (:func:`mm_pipeline.environment.read_workers`, which raises ValueError for a value that is not a positive
    integer), and where ONNX Runtime runs (``auto`` when unset)."""
    from mm_pipeline.environment import read_workers

    return read_workers(), _env("MM_DEVICE", "auto")


def _max_image_pixels() -> int:
    """``MM_MAX_IMAGE_PIXELS`` as the ingest assets read it: the largest photo (width x height) decoded.
    Raises ValueError naming the variable for a value that is not a positive integer."""
    from mm_pipeline.environment import read_positive_int
    from mm_pipeline.prep.images import DEFAULT_MAX_PIXELS

    return read_positive_int("MM_MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)


def _every_row_rejected(result) -> bool:
    """Whether every row of a batch that has rows was rejected (a ``ValidationResult``); says so if it was."""
    if result.n_input and result.accepted.empty:
        print(f"error: {result.source}: every row was rejected", file=sys.stderr)
        return True
    return False


def _report_problems(*problems: str | None) -> bool:
    """Print each problem as one ``error:`` line; whether there was any."""
    found = [problem for problem in problems if problem]
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    return bool(found)


def _progress_bar(description: str):
    bar = tqdm(desc=description, unit="item", file=sys.stderr, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def _sample_size_error(args: argparse.Namespace) -> bool:
    """``sample``/``demo``: print a one-line usage error and say so when ``--n`` cannot fill ``--batches``."""
    from mm_pipeline.sample import MIN_PRODUCTS_PER_BATCH

    if args.n >= MIN_PRODUCTS_PER_BATCH * args.batches:
        return False
    print(
        f"mm-pipeline {args.command}: error: argument --n: {args.n} products cannot fill {args.batches} "
        f"batches (at least {MIN_PRODUCTS_PER_BATCH} per batch); see mm-pipeline {args.command} --help",
        file=sys.stderr,
    )
    return True


def cmd_sample(args: argparse.Namespace) -> int:
    from mm_pipeline.sample import generate_sample

    if _sample_size_error(args):
        return 2
    replaced = any((Path(args.out) / "batches").glob("*.parquet"))
    summary = generate_sample(
        Path(args.out), n=args.n, batches=args.batches, seed=args.seed, progress=_progress_bar("images")
    )
    batches = len(summary.batch_files)
    print(
        f"{summary.n_products} products in {batches} batch{'es' if batches != 1 else ''} under {summary.out_dir}"
        f"{' (replacing the sample that was there)' if replaced else ''} "
        f"({summary.n_dup_groups} re-listing groups, {summary.n_bad_rows} deliberately bad rows)"
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """One batch through the ingest assets' validation and cleaning; ``--out DIR`` writes what they keep."""
    from mm_pipeline.catalog.contract import BatchFileError, batch_name, validate_batch
    from mm_pipeline.prep.text import clean_products, one_line
    from mm_pipeline.storage import write_parquet

    if _report_problems(
        _path_problem("--images", args.images, "input folder"),
        None if args.out is None else _path_problem("--out", args.out, "output folder"),
    ):
        return 2
    try:
        max_pixels = _max_image_pixels()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        batch_name(args.batch)  # a file the sensor would refuse to register is refused here too
        result = validate_batch(args.batch, args.images, max_image_pixels=max_pixels)
        accepted = clean_products(result.accepted)
    except BatchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # whatever the input, one line and never a traceback
        print(f"error: {args.batch}: unexpected {type(exc).__name__}: {one_line(exc)}", file=sys.stderr)
        return 1
    print(
        f"{result.source}: {len(result.accepted)} accepted, {len(result.rejected)} rejected of {result.n_input}"
    )
    for note in result.file_notes:
        print(f"note: {note}")
    if result.missing_columns:
        print(f"missing optional columns (left unknown): {', '.join(result.missing_columns)}")
    for line in result.rejection_lines():
        print(line)
    if args.out is not None:
        accepted_path = write_parquet(accepted, args.out / "accepted.parquet")
        rejected_path = write_parquet(result.rejected, args.out / "rejected.parquet")
        print(f"accepted rows (with data_issues and the model's text) -> {accepted_path}")
        print(f"rejected rows (with reject_reason) -> {rejected_path}")
    return 1 if _every_row_rejected(result) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from mm_pipeline.sample import generate_sample

    started = time.perf_counter()
    out = Path(args.out)
    if not any((out / "batches").glob("*.parquet")):
        if _sample_size_error(args):
            return 2
        generate_sample(out, n=args.n, batches=args.batches, seed=args.seed, progress=_progress_bar("images"))

    from mm_pipeline.defs.resources import PipelineSettings

    # the sample's folders unless MM_INCOMING_DIR / MM_IMAGES_DIR say otherwise; the settings travel to
    # build_defs, the environment is left as it was
    sample = {"MM_INCOMING_DIR": str(out / "batches"), "MM_IMAGES_DIR": str(out / "images")}
    settings = PipelineSettings.from_env({**sample, **{k: v for k, v in os.environ.items() if v}})
    if args.dagster_home is not None:
        return _materialize_in(
            settings, started, args.dagster_home, f"the Dagster instance at {args.dagster_home}"
        )
    home = os.environ.get("DAGSTER_HOME")
    shown = f"DAGSTER_HOME={home} (`make ui` shows them)"
    return _materialize_in(settings, started, Path(home) if home else None, shown)


def cmd_run(args: argparse.Namespace) -> int:
    """The whole graph on a user's catalogue, in its own data dir and Dagster instance."""
    started = time.perf_counter()
    if _report_problems(
        *(
            _path_problem(flag, folder, "input folder")
            for flag, folder in (("--incoming", args.incoming), ("--images", args.images))
        )
    ):
        return 2
    from mm_pipeline.catalog.contract import BatchFileError, batch_name

    files = sorted(p for p in args.incoming.glob("*.parquet") if not p.name.startswith("."))
    if not files:
        print(f"error: no batch files (*.parquet) in {args.incoming}", file=sys.stderr)
        return 2
    refused = []
    for path in files:
        try:
            batch_name(path)
        except BatchFileError as exc:
            refused.append(str(exc))
    if len(refused) == len(files):  # the runner would skip them all and run an empty graph
        print(f"error: no usable batch file in {args.incoming}: {'; '.join(refused)}", file=sys.stderr)
        return 2
    env = {
        **os.environ,
        "MM_DATA_DIR": str(args.data_dir),
        "MM_INCOMING_DIR": str(args.incoming),
        "MM_IMAGES_DIR": str(args.images),
    }
    if args.epochs is not None:  # at least 1 (argparse)
        env["MM_TRAIN_EPOCHS"] = str(args.epochs)

    from mm_pipeline.defs.resources import PipelineSettings

    settings = PipelineSettings.from_env(env)
    shown = f"the Dagster instance at {args.dagster_home}"
    return _materialize_in(settings, started, args.dagster_home, shown)


def _materialize_in(settings, started: float, home: Path | None, shown: str) -> int:
    """:func:`_materialize_and_report` in the Dagster instance whose folder is ``home`` (created when absent;
    ``shown`` names it in the summary), or with ``home`` None in a temporary one, removed afterwards."""
    import contextlib
    import tempfile

    import dagster as dg

    if home is None:
        folder = tempfile.TemporaryDirectory()
        where = (
            "runs were recorded in a temporary Dagster instance, now removed (--dagster-home DIR keeps them)"
        )
    else:
        folder, where = contextlib.nullcontext(str(home)), f"runs recorded in {shown}"
    with folder as path:
        Path(path).mkdir(parents=True, exist_ok=True)
        with dg.DagsterInstance.from_config(path) as instance:
            return _materialize_and_report(settings, instance, started, where)


def _materialize_and_report(settings, instance, started: float, where: str) -> int:
    """``demo`` and ``run``: every stage in order with progress on stdout, then the summary; 1 if a stage failed.

    ``settings`` is a ``PipelineSettings``, ``instance`` an open ``DagsterInstance``; ``started`` is the
    ``time.perf_counter()`` the elapsed time counts from and ``where`` says where the runs are recorded.
    """
    from mm_pipeline.definitions import build_defs
    from mm_pipeline.defs.in_process.runner import materialize_graph
    from mm_pipeline.demo_summary import print_summary

    names, refused = settings.incoming_batches()
    for problem in refused:
        print(f"warning: not registered: {problem}", file=sys.stderr)
    outcome = materialize_graph(build_defs(settings), instance, names)
    print_summary(settings.layout, outcome.batches, outcome.checks)
    print(f"elapsed: {time.perf_counter() - started:.0f} s; {where}")
    if not outcome.success:
        print(f"failed stages: {', '.join(outcome.failures)}", file=sys.stderr)
        return 1
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed new products with the ONNX artifact alone (no torch), same validation and cleaning as the assets."""
    from concurrent.futures import ThreadPoolExecutor

    from mm_pipeline.catalog.contract import BatchFileError, validate_batch
    from mm_pipeline.inference.encoders import (
        OnnxEncoders,
        ParityError,
        execution_providers,
        resolve_variant,
        write_embeddings,
    )
    from mm_pipeline.prep.images import load_letterboxed
    from mm_pipeline.prep.text import clean_products, one_line
    from mm_pipeline.storage import pin, write_parquet

    out = Path(args.out)
    rejected_path = out.with_name(out.stem + ".rejected.parquet")
    overwrites = args.products.exists() and any(
        path.exists() and path.samefile(args.products) for path in (out, rejected_path)
    )
    if _report_problems(
        _path_problem("--images", args.images, "input folder"),
        _path_problem("--model", args.model, "input folder"),
        _path_problem("--out", out, "output file") or _path_problem("--out", rejected_path, "output file"),
        f"--out {out} would overwrite --products {args.products}" if overwrites else None,
    ):
        return 2
    model_dir = pin(args.model)
    try:  # the model is checked before any output is written
        workers, device = _onnx_settings()
        choice = resolve_variant(model_dir, args.variant, workers, execution_providers(device))
        encoders = OnnxEncoders(model_dir, choice.variant, threads=workers, device=device)
        max_pixels = _max_image_pixels()
        result = validate_batch(args.products, args.images, max_image_pixels=max_pixels)
    except BatchFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ParityError, ValueError, RuntimeError) as exc:  # RuntimeError: MM_DEVICE=cuda without CUDA
        print(f"error: {one_line(exc, limit=400)}", file=sys.stderr)
        return 2
    write_parquet(result.rejected, rejected_path)
    for line in result.rejection_lines():
        print(line, file=sys.stderr)
    print(f"ONNX variant {choice.variant}: {choice.reason}", file=sys.stderr)
    products = clean_products(result.accepted)
    files = products["image_file"].tolist()
    with ThreadPoolExecutor(max_workers=workers) as pool:

        def load_images(start: int, stop: int):
            import numpy as np

            return np.stack(
                list(
                    pool.map(
                        lambda f: load_letterboxed(f, encoders.image_size, max_pixels), files[start:stop]
                    )
                )
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
    if stats.mostly_unknown_texts:
        print(
            f"{stats.mostly_unknown_texts} products have text mostly unknown to the model's tokenizer: "
            "their fused vectors leave the text channel out"
        )
    return 1 if _every_row_rejected(result) else 0


def _index_problem(layout, lookup) -> str | None:
    """Why the index's rows cannot be served (a repeated nm, a batch's embeddings missing or made by another
    model than the index's) and what to rematerialize, or ``None``."""
    from mm_pipeline.publish.vectors import one_row_per_nm_problem, require_model_version

    rebuild = "rematerialize similarity_index"
    problem = one_row_per_nm_problem(lookup["nm"], lookup["batch"])
    if problem:
        return f"the index has {problem}; {rebuild}"
    versions = sorted(lookup["model_version"].unique()) if "model_version" in lookup.columns else []
    if len(versions) > 1:
        return f"the index mixes model versions {', '.join(versions)}; {rebuild}"
    paths = {batch: layout.embeddings(batch) for batch in sorted(lookup["batch"].unique())}
    missing = [f"{batch} ({path})" for batch, path in paths.items() if not path.exists()]
    if missing:
        return (
            f"the index serves batches whose embeddings are missing: {', '.join(missing)}; "
            "rematerialize embeddings for them, then similarity_index"
        )
    try:
        require_model_version(paths, versions[0] if versions else None)
    except (ValueError, OSError) as exc:  # stale batches (named), an unreadable embeddings file
        return f"{exc}; {rebuild}"
    return None


def _missing(what: str, fix: str) -> str:
    """That ``what`` is missing, how to get it, and where else to look."""
    return f"{what}; {fix} first, or point --data-dir (or MM_DATA_DIR) at the data dir of a run"


def _nothing_under(what: str, fix: str) -> int:
    """Say that ``what`` is missing (:func:`_missing`); exit status 2."""
    print(f"error: {_missing(what, fix)}", file=sys.stderr)
    return 2


def cmd_similar(args: argparse.Namespace) -> int:
    from mm_pipeline.evaluation.catalogue_index import nearest_others, read_index
    from mm_pipeline.evaluation.similarity import IndexFileError
    from mm_pipeline.layout import Layout

    layout = Layout(Path(args.data_dir))
    if not layout.index_file.exists():
        return _nothing_under(
            f"no similarity index under {layout.index_dir.absolute()}", "materialize similarity_index"
        )
    try:  # a damaged index file: one line naming it, the problem and how to rebuild it
        index, lookup = read_index(layout)
    except IndexFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    problem = _index_problem(layout, lookup)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    try:
        if args.text is not None:
            query, about = _text_query(layout, lookup, args.text)
        elif args.image is not None:
            query, about = _image_query(layout, lookup, Path(args.image))
        else:
            query, about = _product_query(layout, lookup, args.nm)
    except _Refused as refused:
        print(f"error: {refused}", file=sys.stderr)
        return refused.status
    lookup = lookup.set_index("nm")
    try:  # --k beyond the index: all of it
        [found] = nearest_others(index, query, args.k, [args.nm])
    except IndexFileError as exc:  # an index of another dimension than the embeddings
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"nearest to {about} ({index.kind} index, {index.n} products):")
    for score, nm in found:
        print(f"{nm:>12}  {score:6.3f}  {lookup.loc[nm, 'title']}")
    return 0


class _Refused(Exception):
    """A query that cannot be answered: the message says why, ``status`` is the exit status (2: the
    arguments, or something the data dir lacks; 1: something in it is stale or cannot be read)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _product_query(layout, lookup, nm: int):
    """``(the fused vector of product nm, how to name it)``; :class:`_Refused` when it is not indexed."""
    from mm_pipeline.inference.encoders import read_vectors

    rows = lookup[lookup["nm"] == nm]
    if rows.empty:
        raise _Refused(f"nm {nm} is not in the index ({len(lookup)} products)", 2)
    ids, fused = read_vectors(layout.embeddings(rows["batch"].iloc[0]), "fused")
    return fused[ids == nm], f"{nm} «{rows['title'].iloc[0]}»"


def _index_encoders(layout, lookup, images: bool):
    """The encoders of the export that made the index's vectors (its model version and variant), with the
    image tower when ``images``; :class:`_Refused` when that export is not in the data dir or cannot load."""
    from mm_pipeline.inference.encoders import (
        ONNX_RUNTIME_ERRORS,
        OnnxEncoders,
        export_variant_of,
        tower_file,
    )
    from mm_pipeline.storage import pin

    versions = lookup["model_version"].unique() if "model_version" in lookup.columns else []
    if len(versions) != 1:
        raise _Refused(
            "the index does not say which model made its vectors; rematerialize similarity_index", 1
        )
    if not layout.onnx_manifest.exists():
        raise _Refused(
            _missing(f"no exported model under {layout.onnx_dir.absolute()}", "materialize onnx_model"), 2
        )
    onnx_dir = pin(layout.onnx_dir)
    try:
        variant = export_variant_of(onnx_dir, versions[0])
    except ValueError as exc:
        raise _Refused(f"{exc}; rematerialize embeddings, then similarity_index", 1) from exc
    for tower in ("image", "text") if images else ("text",):
        path = tower_file(onnx_dir, tower, variant)
        if not path.exists():
            raise _Refused(f"the {variant} {tower} tower {path} is missing; rematerialize onnx_model", 1)
    try:
        workers, device = _onnx_settings()
    except ValueError as exc:
        raise _Refused(str(exc), 2) from exc
    try:
        return OnnxEncoders(onnx_dir, variant, threads=workers, device=device, images=images)
    except (ImportError, RuntimeError, *ONNX_RUNTIME_ERRORS) as exc:  # OpenVINO absent, a damaged file
        raise _Refused(f"cannot load the {variant} towers of {onnx_dir}: {exc}", 1) from exc


def _text_query(layout, lookup, text: str):
    """``(the search vector of a free-text query, how to name it)``, encoded by the export that made the
    index's vectors (:meth:`~mm_pipeline.inference.encoders.OnnxEncoders.encode_queries`), with a note on
    stderr when only part of the model reads it; :class:`_Refused` when none does or that export is not in
    the data dir."""
    from mm_pipeline.prep.text import clean_text, shorten

    cleaned = clean_text(text)
    if not cleaned:
        raise _Refused("--text is empty once cleaned", 2)
    shown = f"«{shorten(cleaned, say_length=False)}»"
    encoders = _index_encoders(layout, lookup, images=False)
    unknown_tokens = bool(encoders.tokenizer.mostly_unknown([cleaned])[0])
    lexical = encoders.encode_lexical([cleaned])
    no_words = encoders.lexical is None or not encoders.lexical.known([cleaned])[0]
    if unknown_tokens and no_words:
        raise _Refused(f"the model reads nothing in {shown}: its tokenizer knows few of the tokens", 2)
    if unknown_tokens:
        print(
            "note: the tokenizer knows few of the query's tokens; ranked by its words alone", file=sys.stderr
        )
    elif no_words and lexical is not None:
        print(
            "note: no word of the query is in the lexical channel's training texts; ranked by the text tower "
            "and exact matches of its words",
            file=sys.stderr,
        )
    return encoders.encode_queries([cleaned], lexical), shown


def _image_query(layout, lookup, path: Path):
    """``(the search vector of a photo, how to name it)``, encoded by the export that made the index's
    vectors (:meth:`~mm_pipeline.inference.encoders.OnnxEncoders.encode_image_queries`); :class:`_Refused`
    for an unusable photo, an export not in the data dir, or a fused vector that reads no photo."""
    from mm_pipeline.prep.images import ImageProblem, load_letterboxed

    encoders = _index_encoders(layout, lookup, images=True)
    weights = encoders.fusion_weights
    if not weights.get("image") and not weights.get("text"):
        raise _Refused(
            f"the served vector reads no photo (fusion weights {weights}); search by --text or --nm", 1
        )
    try:
        pixels = load_letterboxed(path, encoders.image_size, _max_image_pixels())
    except ImageProblem as problem:
        raise _Refused(f"--image: {problem}", 2) from None
    except ValueError as exc:  # MM_MAX_IMAGE_PIXELS
        raise _Refused(str(exc), 2) from None
    if not weights.get("image"):
        print(
            "note: the served vector weighs the photo channel 0; ranked by how the photo matches product texts",
            file=sys.stderr,
        )
    return encoders.encode_image_queries(pixels[None]), f"photo {path}"


def cmd_status(args: argparse.Namespace) -> int:
    """What the data dir holds: export, embedded batches, metrics, published version."""
    from mm_pipeline.demo_summary import store_status
    from mm_pipeline.layout import Layout

    layout = Layout(Path(args.data_dir))
    if not layout.store.is_dir():
        return _nothing_under(f"no store under {layout.data_dir.absolute()}", "run the pipeline")
    print("\n".join(store_status(layout)))
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (``<prog>: error: <what>; see <prog> --help``), exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _int_at_least(minimum: int):
    """An argparse ``type``: an integer of at least ``minimum``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"integer >= {minimum}"
    return parse


POSITIVE = _int_at_least(1)
NON_NEGATIVE = _int_at_least(0)


def _dagster_home_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--dagster-home",
        type=Path,
        default=None,
        help=f"Dagster instance folder that keeps the runs, created if absent (default: {default})",
    )


def _sample_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``sample`` and ``demo``: where the sample catalogue goes, its size and its seed."""
    parser.add_argument("--out", default="data/sample")
    parser.add_argument("--n", type=POSITIVE, default=3000, help="products (at least 20 per batch)")
    parser.add_argument("--batches", type=POSITIVE, default=3)
    parser.add_argument("--seed", type=NON_NEGATIVE, default=0)
    return parser


def _data_dir_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "--data-dir",
        default=_env("MM_DATA_DIR", "data"),
        help="the pipeline's data dir (default: MM_DATA_DIR or data)",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mm-pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sample = _sample_options(
        sub.add_parser("sample", help="write the deterministic Russian sample catalogue")
    )
    sample.set_defaults(func=cmd_sample)

    validate = sub.add_parser("validate", help="validate one batch file against the input contract")
    validate.add_argument("batch", type=Path)
    validate.add_argument("--images", type=Path, required=True)
    validate.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write accepted.parquet (with data_issues and the cleaned `text`) and rejected.parquet here",
    )
    validate.set_defaults(func=cmd_validate)

    demo = sub.add_parser("demo", help="generate the sample (if absent) and materialize the whole graph")
    _dagster_home_option(demo, "DAGSTER_HOME, else a temporary instance")
    _sample_options(demo).set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run", help="materialize the whole graph on your own catalogue (batch files + images)"
    )
    run.add_argument("--incoming", type=Path, required=True, help="folder of batch files (*.parquet)")
    run.add_argument("--images", type=Path, required=True, help="folder the image paths are relative to")
    run.add_argument(
        "--data-dir",
        type=Path,
        default=Path(_env("MM_DATA_DIR", "data")),
        help="where store/ is written (default: MM_DATA_DIR or data)",
    )
    _dagster_home_option(run, "a temporary instance")
    run.add_argument(
        "--epochs", type=POSITIVE, default=None, help="training epochs (default: MM_TRAIN_EPOCHS or recipe)"
    )
    run.set_defaults(func=cmd_run)

    embed = sub.add_parser(
        "embed", help="embed a products file with an exported ONNX model folder (no torch)"
    )
    embed.add_argument("--products", type=Path, required=True)
    embed.add_argument("--images", type=Path, required=True)
    embed.add_argument(
        "--model",
        type=Path,
        default=Path(_env("MM_DATA_DIR", "data")) / "store" / "onnx",
        help="the onnx_model folder (default: MM_DATA_DIR/store/onnx, MM_DATA_DIR defaulting to data)",
    )
    embed.add_argument("--out", type=Path, required=True)
    embed.add_argument(
        "--variant",
        choices=EMBED_VARIANTS,
        default=_env("MM_ONNX_VARIANT", "auto"),
        help="default: MM_ONNX_VARIANT or auto. auto: the most exact variant that passed parity unless another is clearly faster on this CPU; a forced one falls back to fp32 when it "
        "failed parity or the export lacks it; int8-static and bf16 run on OpenVINO, bf16 needs a CPU with "
        "AVX512-BF16 or AMX",
    )
    embed.add_argument("--chunk-size", type=POSITIVE, default=256, help="products per ONNX call")
    embed.set_defaults(func=cmd_embed)

    similar = sub.add_parser(
        "similar", help="nearest products of an nm, a text or a photo, from the similarity index"
    )
    query = similar.add_mutually_exclusive_group(required=True)
    query.add_argument("--nm", type=int, help="a product in the index")
    query.add_argument(
        "--text", help="a free-text query, encoded by the model that made the index (no torch needed)"
    )
    query.add_argument("--image", help="a photo (file), encoded by the model that made the index")
    similar.add_argument("--k", type=POSITIVE, default=10, help="neighbours to print")
    _data_dir_option(similar).set_defaults(func=cmd_similar)

    status = sub.add_parser(
        "status", help="what a data dir holds: export, batches, metrics, published version"
    )
    _data_dir_option(status).set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # inside the try: buffered output meets a closed pipe here, not at exit
        return status
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading: no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
