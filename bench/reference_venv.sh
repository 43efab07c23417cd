#!/usr/bin/env bash
# Side by side with torchvision and timm. They do not import next to the project's CPU torch,
# so this builds a separate benchmark venv OUTSIDE the repository (torch from the package
# index, a large download the first time; torchvision 0.29.1, timm 1.0.31), installs this
# checkout of cnnzoo into it without dependencies, and runs bench/vs_reference.py there.
# Benchmarks only: no test depends on it.
#
#   bench/reference_venv.sh [VENV] -- --models resnet50 convnext_tiny --threads 2
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-/work/venv-ref}"
[ "$#" -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case "$venv" in "$repo"/*) echo "put the venv outside the repository: $venv" >&2; exit 2 ;; esac
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import torchvision, timm" 2>/dev/null; then
  "$venv/bin/pip" install -q torch torchvision==0.29.1 timm==1.0.31
  "$venv/bin/pip" install -q numpy pillow safetensors tqdm matplotlib
fi
# this checkout, as it is now (not editable: the venv must not follow later edits silently)
"$venv/bin/pip" install -q --no-deps --force-reinstall "$repo"
cd /tmp  # import the installed copy, not the checkout's src/
exec "$venv/bin/python" "$repo/bench/vs_reference.py" "$@"
