#!/usr/bin/env bash
# Fine-tuning, export and embedding figures on a GPU machine (issue 14), as one command from the repository root:
#   bash benchmarks/device_check.sh          (the run tool: carry [".device"]; the table goes to $OUT/device_check.txt)
# .device/ (git-excluded) holds what the machine lacks: wheels/ (ruclip, huggingface-hub, their pure-Python
# dependencies, onnxscript, the youtokentome sdist and Cython 0.29 to build it), flipkart1050/ (photos and
# products.parquet) and tokens.npz + bpe.model (`python benchmarks/bench_training.py --write-tokens .device`).
# Wheels are installed with --no-deps --no-index into a scratch folder, only for modules the machine does not have;
# Dagster is never imported. On a GPU: ViT fine-tuning at batch 32 (the recipe's), 128 and 256 in fp32 and bf16
# (32 steps each), the compact recipe's epoch, then embedding 10,000 products with the torch towers from JPEGs
# (decoded by one forked process per core) and from the decoded tensor store, and ONNX Runtime int8 on the CPU,
# closing with a PASS/FAIL line per target. Stages are skipped rather than overrun DEVICE_CHECK_DEADLINE
# (165 s of Python, about 195 s in all with the installs); DEVICE_CHECK_TIMEOUT (190 s) kills what is left.
# A CPU smoke test of the whole script (a few minutes on 2 cores):
#   DEVICE_CHECK_DEVICE=cpu DEVICE_CHECK_PRODUCTS=64 DEVICE_CHECK_STEPS=2 DEVICE_CHECK_BATCH=2 \
#     DEVICE_CHECK_DEADLINE=600 DEVICE_CHECK_TIMEOUT=900 PYTHON=.venv/bin/python bash benchmarks/device_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
if [ -z "${PYTHON:-}" ]; then  # the interpreter that has torch
  for candidate in python3 python; do
    if "$candidate" -c "import torch" 2>/dev/null; then PYTHON=$candidate && break; fi
  done
fi
PY=${PYTHON:-python3}
DEV=.device
SITE=$(mktemp -d)/site
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

missing() { ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }
WHEELS=()
need() {  # need <module> <wheel name prefix>...: queue the wheels when the module is missing
  local module=$1
  shift
  if missing "$module"; then
    for prefix in "$@"; do WHEELS+=("$DEV"/wheels/"$prefix"-*.whl); done
  fi
}
install() {
  if ((${#WHEELS[@]})) && ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "no pip: unpacking ${WHEELS[*]##*/}"
    for wheel in "${WHEELS[@]}"; do "$PY" -m zipfile -e "$wheel" "$SITE"; done
  elif ((${#WHEELS[@]})); then
    echo "installing ${WHEELS[*]##*/}"
    "$PY" -m pip install -q --no-deps --no-index --target "$SITE" "${WHEELS[@]}" 2>/dev/null ||
      for wheel in "${WHEELS[@]}"; do  # one by one, to name the wheel that does not install
        "$PY" -m pip install -q --no-deps --no-index --target "$SITE" "$wheel" >/dev/null 2>&1 || echo "cannot install ${wheel##*/}"
      done
  fi
  WHEELS=()
}

{
  echo "== device check $(date -u +%FT%TZ) on $(hostname)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import sys, torch, onnx, onnxruntime as o; print('python', sys.version.split()[0], '| torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available(), '| onnx', onnx.__version__, '| onnxruntime', o.__version__, o.get_available_providers())"
  started=$SECONDS
  need ruclip ruclip
  # ruclip 0.0.2 needs huggingface_hub's cached_download (gone after 0.25): the pinned wheel goes first on the path
  "$PY" -c "from huggingface_hub import cached_download" 2>/dev/null || WHEELS+=("$DEV"/wheels/huggingface_hub-*.whl)
  need more_itertools more_itertools
  need filelock filelock
  need tqdm tqdm
  need requests requests urllib3 idna certifi charset_normalizer
  need packaging packaging
  need typing_extensions typing_extensions
  need yaml pyyaml
  need price_parser price_parser attrs
  need onnxscript onnxscript onnx_ir ml_dtypes
  install
  if missing youtokentome; then
    if command -v gcc >/dev/null && command -v g++ >/dev/null; then
      need Cython Cython
      need setuptools setuptools
      need wheel wheel
      install
      timeout 90 "$PY" -m pip install -q --no-deps --no-index --no-build-isolation --target "$SITE" \
        "$DEV"/wheels/youtokentome-1.0.6.tar.gz >/dev/null 2>&1 &&
        echo "youtokentome built from its sdist" || echo "youtokentome did not build: the driver's stand-in is used"
    else
      echo "no C/C++ compiler: youtokentome is not built, the driver's stand-in is used"
    fi
  fi
  echo "installs: $((SECONDS - started)) s"
  timeout "${DEVICE_CHECK_TIMEOUT:-190}" "$PY" benchmarks/device_check.py \
    --device "${DEVICE_CHECK_DEVICE:-auto}" \
    --data "$DEV/flipkart1050" --tokens "$DEV" \
    --steps "${DEVICE_CHECK_STEPS:-32}" \
    ${DEVICE_CHECK_BATCH:+--batch-size "$DEVICE_CHECK_BATCH"} \
    --embed "${DEVICE_CHECK_PRODUCTS:-10000}" \
    --deadline "${DEVICE_CHECK_DEADLINE:-165}"
  echo "exit $? after $((SECONDS - started)) s"
} 2>&1 | tee "$OUT/device_check.txt"
