"""Every numeric option of ``mm-pipeline`` is validated before any work: one line on stderr, exit 2, nothing
written (issue 16, item 6)."""

from __future__ import annotations

import pytest

from mm_pipeline.cli import build_parser
from mm_pipeline.cli import main as cli_main

PATHS = {
    "sample": [],
    "demo": [],
    "run": ["--incoming", "in", "--images", "img"],
    "embed": ["--products", "p.parquet", "--images", "img", "--out", "e.parquet"],
    "similar": ["--nm", "1"],
}
BAD_VALUES = [
    ("sample", "--n", "0", "must be at least 1, got 0"),
    ("sample", "--n", "-5", "must be at least 1, got -5"),
    ("sample", "--batches", "0", "must be at least 1, got 0"),
    ("sample", "--seed", "-1", "must be at least 0, got -1"),
    ("sample", "--n", "many", "'many' is not an integer"),
    ("demo", "--n", "-1", "must be at least 1, got -1"),
    ("demo", "--batches", "-3", "must be at least 1, got -3"),
    ("demo", "--seed", "1.5", "'1.5' is not an integer"),
    ("run", "--epochs", "0", "must be at least 1, got 0"),
    ("run", "--epochs", "-2", "must be at least 1, got -2"),
    ("embed", "--chunk-size", "0", "must be at least 1, got 0"),
    ("embed", "--chunk-size", "-1", "must be at least 1, got -1"),
    ("embed", "--chunk-size", "", "'' is not an integer"),
    ("similar", "--k", "0", "must be at least 1, got 0"),
    ("similar", "--k", "-10", "must be at least 1, got -10"),
    ("similar", "--nm", "abc", "invalid int value: 'abc'"),
]


def numeric_options() -> set[tuple[str, str]]:
    """(command, option) of every option that parses numbers, read from the parser itself."""
    parser = build_parser()
    [subparsers] = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    found = set()
    for command, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.type is int or getattr(action.type, "__name__", "").startswith("integer"):
                found.add((command, action.option_strings[-1]))
    return found


def test_every_numeric_option_is_covered():
    assert numeric_options() == {(command, option) for command, option, _, _ in BAD_VALUES}


@pytest.mark.parametrize(("command", "option", "value", "reason"), BAD_VALUES)
def test_bad_numbers_are_one_line_usage_errors(tmp_path, monkeypatch, capsys, command, option, value, reason):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        cli_main([command, *PATHS[command], f"{option}={value}"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert (
        line == f"mm-pipeline {command}: error: argument {option}: {reason}; see mm-pipeline {command} --help"
    )
    assert list(tmp_path.iterdir()) == []  # no work started: no sample, no rejected file, no output


@pytest.mark.parametrize("command", ["sample", "demo"])
def test_too_few_products_for_the_batches_is_a_usage_error(tmp_path, capsys, command):
    out = tmp_path / "sample"
    assert cli_main([command, "--out", str(out), "--n", "59", "--batches", "3"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line == (
        f"mm-pipeline {command}: error: argument --n: 59 products cannot fill 3 batches (at least 20 per batch); "
        f"see mm-pipeline {command} --help"
    )
    assert not out.exists()


def test_valid_numbers_parse():
    args = build_parser().parse_args(["embed", *PATHS["embed"], "--chunk-size", "1"])
    assert args.chunk_size == 1
    args = build_parser().parse_args(["sample", "--n", "60", "--batches", "3", "--seed", "0"])
    assert (args.n, args.batches, args.seed) == (60, 3, 0)
    assert build_parser().parse_args(["similar", "--nm", "7", "--k", "1"]).k == 1
