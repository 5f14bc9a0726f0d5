#!/usr/bin/env bash
# Create .venv with the pinned OpenMMLab stack and install mmadamtl into it.
# Idempotent: each finished step leaves a stamp and is skipped next time.
# mmcv 2.1.0 has no wheel for this torch, so it is compiled from its sdist
# (about 12 minutes on 2 cores) and the wheel is kept in a cache outside the
# repo, keyed by the torch version it was built against.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
MMCV_VERSION=2.1.0
CACHE="${MMADAMTL_CACHE:-$HOME/.cache/mmadamtl}"
PIP="$VENV/bin/pip"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "[setup] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi

stamp() { echo "$VENV/.stamp-$1"; }

if [ ! -f "$(stamp base)" ]; then
    log "installing build tools"
    # setuptools>=82 lacks pkg_resources, which mmcv's setup.py and mmengine import.
    "$PIP" install -q --upgrade pip "setuptools<82" wheel ninja
    touch "$(stamp base)"
fi

if [ ! -f "$(stamp torch)" ]; then
    log "installing torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION"
    "$PIP" install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
    touch "$(stamp torch)"
fi

if [ ! -f "$(stamp mmcv)" ]; then
    TORCH_TAG="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')"
    PYTAG="$("$VENV/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch-$TORCH_TAG-$PYTAG"
    if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with ops against torch $TORCH_TAG (about 12 min on 2 cores)"
        BUILD="$(mktemp -d)"
        "$PIP" download -q --no-deps --no-binary :all: --no-build-isolation \
            -d "$BUILD" "mmcv==$MMCV_VERSION"
        tar xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
        # torch 2.14's headers need C++20.
        sed -i 's/-std=c++17/-std=c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
        mkdir -p "$WHEEL_DIR.tmp"
        (cd "$BUILD/mmcv-$MMCV_VERSION" && \
            MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
            "$PIP" wheel -q --no-deps --no-build-isolation -w "$WHEEL_DIR.tmp" .)
        rm -rf "$WHEEL_DIR" && mv "$WHEEL_DIR.tmp" "$WHEEL_DIR"
        rm -rf "$BUILD"
    else
        log "mmcv wheel found in $WHEEL_DIR"
    fi
    "$PIP" install -q "$WHEEL_DIR"/mmcv-*.whl
    touch "$(stamp mmcv)"
fi

# Re-run when requirements.txt changes.
REQ_SUM="$(sha1sum "$ROOT/requirements.txt" | cut -c1-12)"
if [ ! -f "$(stamp "deps-$REQ_SUM")" ]; then
    log "installing mmengine, mmsegmentation, timm, pyedgeeval and test tools"
    "$PIP" install -q -r "$ROOT/requirements.txt"
    rm -f "$VENV"/.stamp-deps-*
    touch "$(stamp "deps-$REQ_SUM")"
fi

# Re-run the editable install only when setup.py changes.
SETUP_SUM="$(sha1sum "$ROOT/setup.py" | cut -c1-12)"
if [ ! -f "$(stamp "mmadamtl-$SETUP_SUM")" ]; then
    log "installing mmadamtl (editable)"
    "$PIP" install -q --no-deps --no-build-isolation -e "$ROOT"
    rm -f "$VENV"/.stamp-mmadamtl-*
    touch "$(stamp "mmadamtl-$SETUP_SUM")"
fi
"$VENV/bin/python" -c "import mmcv.ops, mmseg, mmadamtl; print('[setup] ok: mmcv', mmcv.__version__, 'mmseg', mmseg.__version__)"
