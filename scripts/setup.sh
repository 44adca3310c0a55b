#!/usr/bin/env bash
# Set up gdrive on a fresh machine: the system library open3d needs, a virtual environment in
# .venv with every Python dependency, and gdrive itself (editable). Safe to run again: it only
# installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# open3d needs libusb-1.0 at import time.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "setup: libusb-1.0-0 is missing and this user cannot install it; ask an admin for 'apt-get install libusb-1.0-0'" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch first and pinned: a bare 'torch' requirement pulls the newest CUDA build (GBs). On a GPU
# machine, install the torch build you want into .venv before running this script.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==2.13.0"
# the distribution is `geniedrive`; a .venv from before holds it as `gdrive`, whose editable finder
# would shadow the new layout
.venv/bin/python -m pip uninstall -q -y gdrive >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -c "import open3d, nuscenes, geniedrive.pipelines, geniedrive.cli" >/dev/null
echo "setup: ready (.venv/bin/gdrive)" >&2
