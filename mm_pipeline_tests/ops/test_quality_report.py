"""The ``make quality`` report: its formatter on a crafted metrics folder, and the script on a real set."""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

from mm_pipeline.layout import Layout
from mm_pipeline.quality import KINDS, MISSING, SET_FILE, cpu_model, find_sets, format_report
from mm_pipeline.storage import write_json
from mm_pipeline_tests.conftest import REPO, shared_set


def write_task(layout: Layout, task: str, summary: dict, table=None, neighbours=None) -> None:
    layout.metric_dir(task).mkdir(parents=True)
    write_json({"task": task, **summary}, layout.metric_summary(task))
    if table is not None:
        pd.DataFrame(table).to_parquet(layout.metric_table(task))
    if neighbours is not None:
        pd.DataFrame(neighbours).to_parquet(layout.metric_neighbours(task))


def row(report: str, task: str, metric: str) -> list[str]:
    lines = report.splitlines()
    for position, line in enumerate(lines):
        if line.startswith(task):
            for candidate in lines[position : position + 2]:
                cells = candidate.split()
                if metric in candidate:
                    return cells[cells.index(metric.split()[-1]) + 1 :]
    raise AssertionError(f"no {task} {metric} row in\n{report}")


def test_report_reads_every_kind_with_errors_and_marks_what_is_missing(tmp_path):
    layout = Layout(tmp_path / "data")
    write_task(
        layout,
        "category",
        {
            "status": "ok",
            "fused_f1": 0.8,
            "fused_minus_best_reference": -0.05,
            "fused_minus_best_reference_se": 0.01,
            "fused_f1_minus_base": 0.2,
            "fused_f1_minus_base_se": 0.02,
            "fused_minus_tfidf_neighbour_precision_at_5": -0.2,
            "fused_minus_tfidf_neighbour_precision_at_5_se": 0.03,
        },
        table={
            "model": [
                "fine_tuned",
                "fine_tuned",
                "fine_tuned",
                "fine_tuned",
                "tfidf",
                "pixels",
                "pixels",
                "base",
            ],
            "features": ["fused", "fused", "text", "image", "tfidf_text", "pix", "pix", "fused"],
            "probe": ["logreg", "mlp", "logreg", "logreg", "logreg", "logreg", "mlp", "logreg"],
            "f1": [0.8, 0.7, 0.75, 0.5, 0.85, 0.4, 0.45, 0.6],
            "f1_se": [0.01, 0.02, 0.011, 0.03, 0.009, 0.04, 0.035, 0.02],
        },
        neighbours={
            "model": ["fine_tuned", "fine_tuned", "tfidf"],
            "features": ["fused", "fused", "tfidf_text"],
            "k": [5, 10, 5],
            "precision": [0.7, 0.6, 0.9],
            "se": [0.02, 0.02, 0.01],
            "n": [100, 100, 100],
        },
    )
    write_task(layout, "gender", {"status": "insufficient data", "reason": "no labelled products"})
    write_task(  # an older table without f1_se, and no neighbours file; a gap whose error is not finite
        layout,
        "price_range",
        {"status": "ok", "fused_minus_best_reference": -0.02, "fused_minus_best_reference_se": float("nan")},
        table={"model": ["fine_tuned"], "features": ["fused"], "probe": ["logreg"], "f1": [0.3]},
    )
    write_task(
        layout,
        "duplicates",
        {"status": "ok", "fused_minus_best_reference": 0.1},
        table={
            "kind": ["fused", "base_fused", "tfidf", "pixels", "tfidf+pixels"],
            "pair_f1": [0.9, 0.8, 0.7, 0.6, 0.75],
            "recall@5": [0.95, 0.9, 0.8, 0.7, 0.85],
        },
    )
    report = format_report("crafted", layout, 123.4, 230.6)

    assert report.splitlines()[0] == "crafted: whole graph 123 s wall, 231 s CPU"
    assert report.splitlines()[1].split()[2:5] == ["fused", "text", "image"]
    columns = list(KINDS)
    f1 = dict(zip(columns, row(report, "category", "probe F1"), strict=False))
    assert f1["fused"] == "0.800±0.010"  # the best probe, with its own error
    assert f1["pixels"] == "0.450±0.035"
    assert f1["lexical"] == MISSING and f1["TF-IDF+pix"] == MISSING
    assert f1["base fused"] == "0.600±0.020"
    assert row(report, "category", "probe F1")[-1] == "-0.050±0.010"
    nearest = dict(zip(columns, row(report, "category", "P@5"), strict=False))
    assert nearest["fused"] == "0.700±0.020" and nearest["TF-IDF"] == "0.900±0.010"
    assert nearest["text"] == MISSING
    assert row(report, "price_range", "probe F1")[:2] == ["0.300", MISSING]
    assert set(row(report, "price_range", "P@5")) == {MISSING}
    assert "insufficient data: no labelled products" in report
    duplicates = dict(zip(columns, row(report, "duplicates", "pair F1"), strict=False))
    assert duplicates["fused"] == "0.900" and duplicates["lexical"] == MISSING
    assert duplicates["TF-IDF+pix"] == "0.750" and duplicates["base fused"] == "0.800"
    assert row(report, "duplicates", "R@5")[0] == "0.950"
    assert "isadult" not in report  # a task without a metric folder has no row

    # each target with every task it covers; a figure the files lack is left out (gender); a missing or
    # non-finite standard error allows nothing
    targets = report[report.index("targets:") :].splitlines()
    assert targets[0] == "targets: 3 of 6 met (SE: the standard error of the gap)"
    assert targets[1] == (
        "  fused F1 ≥ best reference − 1 SE  category -0.050±0.010 MISS, price_range -0.020 MISS,"
        " duplicates +0.100 pass"
    )
    assert targets[2].endswith("fused P@5 ≥ TF-IDF P@5 − 1 SE     category -0.200±0.030 MISS")
    assert targets[3].endswith("image F1 ≥ pixels F1              category 0.500 vs 0.450 pass")
    assert targets[4].endswith("fine-tuned F1 ≥ base F1           category +0.200±0.020 pass")
    assert "gender" not in "".join(targets)


def test_a_target_with_nothing_to_check_says_so(tmp_path):
    layout = Layout(tmp_path / "data")
    write_task(layout, "duplicates", {"status": "ok", "fused_minus_best_reference": 0.1})
    targets = format_report("duplicates only", layout, 1.0, 1.0).splitlines()[-4:]
    assert [line.split()[-1] for line in targets] == ["pass", MISSING, MISSING, MISSING]


def test_report_of_an_empty_run_says_so(tmp_path):
    assert "(no metrics under" in format_report("empty", Layout(tmp_path), 1.0, 1.0)
    assert re.search(r", \d+ cores$", cpu_model())


def test_quality_runs_the_shared_sets_and_every_other_set_it_finds(tmp_path):
    """A set dropped beside the shared ones (a products.parquet in its own folder) is run too; the shared
    names come first even when absent, so their absence is reported."""
    for name in ("zz_catalogue", "lamoda_hats", "a_catalogue"):
        (tmp_path / name).mkdir()
        (tmp_path / name / SET_FILE).touch()
    (tmp_path / "notes").mkdir()  # no products file: not a set
    assert find_sets(tmp_path, ("flipkart1050", "lamoda_hats")) == [
        "flipkart1050",
        "lamoda_hats",
        "a_catalogue",
        "zz_catalogue",
    ]
    assert find_sets(tmp_path / "absent") == []


@pytest.mark.real_data
@pytest.mark.slow
def test_quality_script_runs_a_real_set_through_mm_pipeline_run(tmp_path):
    shared_set("lamoda_hats")
    script = [sys.executable, "benchmarks/quality.py", "--sets", "lamoda_hats", "absent_set", "--epochs", "1"]
    done = subprocess.run(script, cwd=REPO, capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert out.startswith("CPU: ")
    assert "skipping absent_set" in out
    assert re.search(r"^lamoda_hats: whole graph \d+ s wall, \d+ s CPU$", out, re.M)
    assert re.search(r"^duplicates\s+pair F1\s+\d\.\d{3}", out, re.M)
    assert re.search(r"^category\s+", out, re.M)
    assert re.search(r"^targets: \d+ of \d+ met", out, re.M)
    assert re.search(
        r"^  fine-tuned F1 ≥ base F1 +price_range [+-]\d\.\d{3}±\d\.\d{3} (pass|MISS)", out, re.M
    )
    assert re.search(r"^make quality: 1 set\(s\) in \d+ s on .*cores$", out, re.M)  # not the shared sets
