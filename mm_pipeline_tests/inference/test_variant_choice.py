"""MM_ONNX_VARIANT=auto: the most exact variant that passed parity unless another is clearly faster, timed on this CPU or reused from the export's
own timing when the CPU flags match."""

from __future__ import annotations

import json

import pytest

from mm_pipeline.inference import encoders
from mm_pipeline.inference.encoders import (
    CLEAR_SPEEDUP,
    EXACTNESS_ORDER,
    ONNX_VARIANTS,
    VARIANT_ORDER,
    ParityError,
    clearly_fastest,
    cpu_signature,
    resolve_variant,
    runnable_variants,
)

AVX2 = {"model": "AMD EPYC 7B12", "flags": ["avx2", "fma"]}
AMX = {
    "model": "Intel Xeon Platinum 8480+",
    "flags": ["avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"],
}
ZEN4 = {"model": "AMD EPYC 9B14", "flags": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]}


def write_export(folder, passed, seconds, cpu=AVX2, version="v1"):
    """A folder with the two files the choice reads: manifest.json and parity.json (recorded ``seconds`` per
    product, timed on ``cpu``)."""
    (folder / "manifest.json").write_text(json.dumps({"model_version": version}))
    parity = {
        "passed": "fp32" in passed,
        "passed_variants": passed,
        "model_version": version,
        "timing": {"cpu": cpu, "seconds": seconds},
    }
    (folder / "parity.json").write_text(json.dumps(parity))
    return folder


@pytest.fixture
def timed(monkeypatch):
    """Replaces the real timing with injected figures; records every call's variants."""
    calls, figures = [], {}

    def fake(onnx_dir, variants, threads=None, repeats=3):
        calls.append(list(variants))
        return {v: figures[v] for v in variants}

    monkeypatch.setattr(encoders, "time_variants", fake)
    monkeypatch.setattr(encoders, "_measured", {})
    return calls, figures


def test_auto_uses_the_recorded_ranking_on_a_cpu_with_the_same_flags(tmp_path, timed):
    calls, _ = timed
    write_export(tmp_path, ["fp32", "int8"], {"fp32": 0.30, "int8": 0.12})
    choice = resolve_variant(tmp_path, "auto", cpu=AVX2)
    assert choice.variant == "int8" and choice.timings == {"fp32": 0.30, "int8": 0.12}
    assert "timed by onnx_parity on AMD EPYC 7B12" in choice.reason and calls == []
    assert choice.as_metadata()["products_per_s"] == {"fp32": 3.3, "int8": 8.3}
    write_export(tmp_path, ["fp32", "int8"], {"fp32": 0.10, "int8": 0.12})
    assert resolve_variant(tmp_path, "auto", cpu=AVX2).variant == "fp32"


def test_auto_picks_only_a_variant_that_passed_parity(tmp_path, timed):
    calls, figures = timed
    # int8 failed parity: its recorded speed does not matter, nor is it timed again on another CPU
    write_export(tmp_path, ["fp32"], {"fp32": 0.30, "int8": 0.01})
    assert resolve_variant(tmp_path, "auto", cpu=AVX2).variant == "fp32"
    figures.update(fp32=0.5, int8=0.01)
    choice = resolve_variant(tmp_path, "auto", cpu=AMX)
    assert choice.variant == "fp32" and calls == [["fp32"]] and choice.timings == {"fp32": 0.5}
    write_export(
        tmp_path, ["int8"], {"int8": 0.01}
    )  # fp32 failed: the export is refused whatever int8 scored
    with pytest.raises(ParityError, match="failed onnx_parity"):
        resolve_variant(tmp_path, "auto", cpu=AVX2)


def test_auto_times_the_variants_again_when_the_cpu_flags_differ(tmp_path, timed):
    calls, figures = timed
    # timed on an AVX2-only CPU, where int8 won; on this AMX CPU fp32 measures faster (injected)
    write_export(tmp_path, ["fp32", "int8"], {"fp32": 0.30, "int8": 0.12}, cpu=AVX2)
    figures.update(fp32=0.05, int8=0.08)
    choice = resolve_variant(tmp_path, "auto", threads=2, cpu=AMX)
    assert choice.variant == "fp32" and choice.timings == {"fp32": 0.05, "int8": 0.08}
    assert choice.cpu == AMX and "timed now" in choice.reason and calls == [["fp32", "int8"]]
    # once per process, export and CPU: a second resolution reuses the measurement
    assert resolve_variant(tmp_path, "auto", threads=2, cpu=AMX).variant == "fp32" and len(calls) == 1
    # a report written before timings were recorded is timed too
    parity = json.loads((tmp_path / "parity.json").read_text())
    del parity["timing"]
    (tmp_path / "parity.json").write_text(json.dumps(parity))
    assert resolve_variant(tmp_path, "auto", threads=2, cpu=AVX2).variant == "fp32" and len(calls) == 2


def test_the_choice_is_deterministic_given_the_timings():
    timings = {"fp32": 0.2, "int8": 0.1}
    assert {clearly_fastest(timings, ["fp32", "int8"]) for _ in range(20)} == {"int8"}
    assert clearly_fastest(timings, ["int8", "fp32"]) == clearly_fastest(timings, ["fp32", "int8"]) == "int8"
    assert clearly_fastest(timings, ["fp32"]) == "fp32"
    assert sorted(EXACTNESS_ORDER) == sorted(VARIANT_ORDER) == sorted(ONNX_VARIANTS)  # every variant ranked
    with pytest.raises(ValueError, match="was timed"):
        clearly_fastest({"int8": 0.1}, ["fp32"])


@pytest.mark.parametrize(
    ("products_per_s", "served"),
    [
        # the same export timed in two runs on a shared 2-core machine: one variant both times
        ({"fp32": 208.7, "bf16": 237.7}, "fp32"),
        ({"fp32": 218.6, "bf16": 199.2}, "fp32"),
        ({"fp32": 100.0, "bf16": 126.0}, "bf16"),  # clearly faster: over CLEAR_SPEEDUP
        ({"fp32": 165.2, "int8": 34.9, "bf16": 224.8, "int8-static": 929.1}, "int8-static"),
        ({"fp32": 500.0, "int8-static": 540.0, "int8": 610.0}, "fp32"),
        ({"fp32": 100.0, "int8-static": 120.0, "int8": 160.0}, "int8"),
    ],
)
def test_auto_serves_the_most_exact_variant_unless_another_is_clearly_faster(products_per_s, served):
    """Timing noise no longer swaps the served variant, and with it the published vectors, between runs."""
    seconds = {v: 1 / speed for v, speed in products_per_s.items()}
    assert CLEAR_SPEEDUP == 1.25
    assert clearly_fastest(seconds, list(seconds)) == served


def test_a_configured_variant_and_the_cuda_provider_skip_timing(tmp_path, timed):
    calls, _ = timed
    write_export(tmp_path, ["fp32", "int8"], {"fp32": 0.30, "int8": 0.12})
    assert resolve_variant(tmp_path, "fp32", cpu=AMX).variant == "fp32"
    cuda = resolve_variant(tmp_path, "auto", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert cuda.variant == "fp32" and "CUDA" in cuda.reason and calls == []
    with pytest.raises(ValueError, match="not one of auto, int8, int8-static, fp32, bf16"):
        resolve_variant(tmp_path, "fp16")


@pytest.mark.parametrize("installed", [True, False])
def test_openvino_variants_need_openvino_and_bf16_needs_hardware_bf16(
    tmp_path, timed, monkeypatch, installed
):
    calls, figures = timed
    monkeypatch.setattr(encoders, "openvino_installed", lambda: installed)
    bf16_here = ("bf16", "int8-static") if installed else ()
    assert runnable_variants(AMX) == ("fp32", "int8", *bf16_here)
    assert runnable_variants(ZEN4) == ("fp32", "int8", *bf16_here)
    # int8 kernels exist on every CPU OpenVINO runs on; only bf16 needs hardware bf16
    assert runnable_variants(AVX2) == ("fp32", "int8", *(("int8-static",) if installed else ()))
    # checked and fastest on the CPU onnx_parity ran on
    write_export(tmp_path, ["fp32", "int8", "bf16"], {"fp32": 0.3, "int8": 0.12, "bf16": 0.04}, cpu=AMX)
    assert resolve_variant(tmp_path, "auto", cpu=AMX).variant == ("bf16" if installed else "int8")
    # on a CPU without hardware bf16 it is neither timed nor chosen ...
    figures.update(fp32=0.3, int8=0.1, bf16=0.01)
    assert resolve_variant(tmp_path, "auto", threads=2, cpu=AVX2).variant == "int8"
    assert calls[-1] == ["fp32", "int8"]
    # ... and asking for it there is an error, not fp32 vectors under another name on some machines
    with pytest.raises(ValueError, match="does not run on this machine"):
        resolve_variant(tmp_path, "bf16", cpu=AVX2)


def test_a_forced_variant_says_whether_it_failed_parity_or_was_never_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(encoders, "openvino_installed", lambda: True)
    write_export(tmp_path, ["fp32", "int8"], {"fp32": 0.3, "int8": 0.12}, cpu=AVX2)
    parity = json.loads((tmp_path / "parity.json").read_text())
    parity["rows"] = [{"variant": v, "tower": t} for v in ("fp32", "int8") for t in ("image", "text")]
    (tmp_path / "parity.json").write_text(json.dumps(parity))
    # exported and checked on an AVX2 CPU, served on an AMX one: bf16 was never compared with torch
    unchecked = resolve_variant(tmp_path, "bf16", cpu=AMX)
    assert unchecked.variant == "fp32" and "was not checked" in unchecked.reason
    parity["rows"].append({"variant": "bf16", "tower": "image"})
    (tmp_path / "parity.json").write_text(json.dumps(parity))
    assert resolve_variant(tmp_path, "bf16", cpu=AMX).reason == "bf16 failed parity"


def test_the_cli_offers_every_variant():
    from mm_pipeline.cli import EMBED_VARIANTS

    assert list(EMBED_VARIANTS) == ["auto", *VARIANT_ORDER]


def test_cpu_signature_reads_the_model_and_the_flags_kernels_dispatch_on():
    cpuinfo = (
        "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni "
        "avx512_bf16 sha_ni\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu\n"
    )
    assert cpu_signature(cpuinfo) == {
        "model": "AMD EPYC 9B14",
        "flags": ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"],
    }


def test_openvino_is_imported_with_its_telemetry_declined_unless_the_user_chose(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    consent = tmp_path / "intel" / "openvino_telemetry"
    encoders.import_openvino()
    assert consent.read_text() == "0"
    consent.write_text("1")  # the user opted in with OpenVINO's opt_in_out: their choice stands
    encoders.import_openvino()
    assert consent.read_text() == "1"
