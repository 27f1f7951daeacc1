"""The in-process runner reports each asset check as a typed ``CheckOutcome``; the demo summary reads it."""

from __future__ import annotations

import dataclasses
import re

import dagster as dg
import pandas as pd
import pytest

from mm_pipeline.defs.in_process.runner import CheckOutcome, GraphRun, materialize_graph
from mm_pipeline.demo_summary import print_summary
from mm_pipeline.layout import Layout
from mm_pipeline.publish.gates import VERDICT


def test_a_check_evaluation_becomes_a_frozen_outcome_with_its_verdict():
    gate = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("metric_category"),
        check_name="category_gate",
        passed=False,
        metadata={VERDICT: "fused F1 0.41 below the floor 0.50"},
    )
    outcome = CheckOutcome.of(gate)
    assert outcome == CheckOutcome(
        "metric_category", "category_gate", False, "fused F1 0.41 below the floor 0.50"
    )
    assert outcome.step_key == "metric_category_category_gate"  # the step Dagster ran the check in
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.passed = True  # type: ignore[misc]

    parity = dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("onnx_model"), check_name="onnx_parity", passed=True
    )
    assert CheckOutcome.of(parity) == CheckOutcome("onnx_model", "onnx_parity", True, "")


def test_failed_gates_and_the_summary_read_the_outcomes(tmp_path, capsys):
    checks = (
        CheckOutcome("onnx_model", "onnx_parity", True, ""),
        CheckOutcome("metric_category", "category_gate", False, "fused F1 below the floor"),
    )
    run = GraphRun(("b1",), checks=checks)
    assert run.failed_gates == ["category_gate"] and run.success
    assert not GraphRun(("b1",), failures=("model_job",)).success
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.failures = ("model_job",)  # type: ignore[misc]

    print_summary(Layout(tmp_path), run.batches, run.checks)
    out = capsys.readouterr().out
    rows = re.findall(r"^(\w+_(?:gate|parity)) +(pass|FAIL) +(.*)$", out, re.M)
    assert rows == [("onnx_parity", "pass", ""), ("category_gate", "FAIL", "fused F1 below the floor")]
    assert "published_embeddings: NOT updated" in out

    print_summary(Layout(tmp_path), run.batches, run.checks[:1])
    assert "NOT updated" not in capsys.readouterr().out


def test_the_summary_says_why_rows_were_rejected_and_where_they_are(tmp_path, capsys):
    layout = Layout(tmp_path)
    batch = "b1"
    layout.raw_accepted(batch).parent.mkdir(parents=True)
    pd.DataFrame({"nm": [1]}).to_parquet(layout.raw_accepted(batch))
    reasons = [
        "missing image: 2.jpg not found",
        "missing image: 3.jpg not found",
        "price: 'x' is not a number",
    ]
    pd.DataFrame({"nm": [2, 3, 4], "reject_reason": reasons}).to_parquet(layout.raw_rejected(batch))
    print_summary(layout, [batch], [])
    out = capsys.readouterr().out
    assert re.search(r"^b1 +1 +3$", out, re.M)
    assert str(layout.raw_rejected(batch)) in out
    kinds = re.findall(r"^ +(\d+) × ([^,]+), e\.g\. (.*)$", out, re.M)
    assert kinds == [("2", "missing image", reasons[0]), ("1", "price", reasons[2])]


def test_status_reads_what_the_store_holds(tmp_path, capsys):
    """`mm-pipeline status`: the export and its parity verdict, each embedded batch with its products and
    model version, every metric (scored or not), the published version; one error line without a store."""
    from mm_pipeline.cli import main as cli_main
    from mm_pipeline.storage import write_json

    layout = Layout(tmp_path)
    assert cli_main(["status", "--data-dir", str(tmp_path)]) == 2
    assert "no store under" in capsys.readouterr().err
    layout.onnx_dir.mkdir(parents=True)
    write_json({"model_version": "abc123"}, layout.onnx_manifest)
    write_json({"passed": False, "passed_variants": []}, layout.onnx_parity)
    layout.embeddings("b1").parent.mkdir(parents=True)
    for batch, rows in (("b1", 3), ("b2", 2)):
        pd.DataFrame({"nm": range(rows), "model_version": "abc123-int8"}).to_parquet(layout.embeddings(batch))
    for task, summary in (
        ("category", {"fused_f1": 0.9, "base_fused_f1": 0.5, "fused_minus_best_reference": -0.01}),
        ("isadult", {"status": "insufficient data", "reason": "only one class"}),
        (
            "sub_category",
            {
                "fused_f1": 0.8,
                "base_fused_f1": 0.4,
                "sub_categories_read_as_category": 45,
                "products_in_them": 120,
                "min_sub_category_products": 11,
            },
        ),
    ):
        layout.metric_dir(task).mkdir(parents=True)
        write_json({"task": task, **summary}, layout.metric_summary(task))
    assert cli_main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ONNX export abc123: parity FAILED" in out
    assert re.search(r"^  b1 +3 products  model abc123-int8$", out, re.M)
    assert re.search(r"^  b2 +2 products  model abc123-int8$", out, re.M)
    assert re.search(
        r"^  category +fused F1 0\.900  base 0\.500  minus best no-learning reference -0\.010$", out, re.M
    )
    assert re.search(r"^  isadult +insufficient data: only one class$", out, re.M)
    assert re.search(
        r"^  sub_category +fused F1 0\.800  base 0\.400  \(45 sub-categories of under 11 eval products scored as "
        r"their category: 120 products\)$",
        out,
        re.M,
    )
    assert "published: nothing yet" in out
    published = {
        "version": "v1",
        "published_at": "t",
        "products": 5,
        "batches": [
            {"batch": "b1", "products": 3, "model_version": "abc123-int8"},
            {"batch": "b0", "products": 2, "model_version": "abc123-int8"},
        ],
        "model_versions": ["abc123-int8"],
    }
    layout.published_dir.mkdir(parents=True)
    write_json(published, layout.published_manifest)
    assert cli_main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "published: version v1 at t, 5 products in 2 batches, model abc123-int8; 0 versions kept" in out
    assert re.search(r"^  b1 +3 products  model abc123-int8$", out, re.M)  # served
    assert re.search(r"^  b2 +2 products  model abc123-int8  \(not in the published version\)$", out, re.M)
    # re-embedded by a new model (or resized) since the publication, e.g. while its gates have not passed
    published["batches"][0] |= {"model_version": "old999-int8", "products": 4}
    write_json(published, layout.published_manifest)
    assert cli_main(["status", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^  b1 +3 products  model abc123-int8  \(the published version serves it from model old999-int8\)$",
        out,
        re.M,
    )
    published["batches"][0]["model_version"] = "abc123-int8"
    write_json(published, layout.published_manifest)
    assert cli_main(["status", "--data-dir", str(tmp_path)]) == 0
    assert re.search(
        r"^  b1 +3 products  model abc123-int8  \(the published version holds 4 products of it\)$",
        capsys.readouterr().out,
        re.M,
    )


def test_a_failed_stage_is_logged_as_failed_with_its_reason_and_stops_the_graph(capfd):
    @dg.asset
    def trained(context) -> None:
        context.log.info("epoch 0 step 1/97")
        context.log.debug("a detail")
        raise dg.Failure("too few products to train: 2 train, 0 held out")

    @dg.asset(deps=[trained])
    def served() -> None:
        pass

    defs = dg.Definitions(
        assets=[trained, served],
        jobs=[
            dg.define_asset_job("model_job", selection=[trained]),
            dg.define_asset_job("serve_job", selection=[served]),
        ],
    )
    lines = []
    with dg.DagsterInstance.ephemeral() as instance:
        outcome = materialize_graph(
            defs, instance, [], lines.append, stages=(("model_job", False), ("serve_job", False))
        )
    assert outcome.failures == ("model_job",) and len(outcome.run_ids) == 1  # serve_job never ran
    assert lines[0] == "[1/2] running model_job ..."
    assert re.fullmatch(
        r"\[1/2\] model_job FAILED in \d+ s: trained: Failure: too few products to train: 2 train, 0 held out",
        lines[1],
    )
    assert not any("finished" in line for line in lines)
    # the console shows the assets' progress and the failure, not Dagster's DEBUG events
    console = capfd.readouterr().err
    assert "epoch 0 step 1/97" in console and "STEP_FAILURE" in console
    assert "a detail" not in console and "STEP_START" not in console
