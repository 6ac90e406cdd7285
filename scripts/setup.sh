#!/usr/bin/env bash
# Set up optical-memory on a fresh Debian/Ubuntu machine:
#   system packages (tesseract OCR with the language packs the memory reads pages
#   with: English, Russian, Simplified + Traditional Chinese, Japanese, Korean;
#   Noto CJK fonts; Debian's chromium, which the inspector's browser tests drive
#   through Playwright, so no browser is downloaded),
#   a virtual environment in .venv with the package and its extras.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim tesseract-ocr-chi-tra
              tesseract-ocr-rus tesseract-ocr-jpn tesseract-ocr-kor fonts-noto-cjk chromium)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing system packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip's output minus this machine's notes about absent local package mirrors
pip_install() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip_install --upgrade pip
# torch for the DeepEncoder extra: the pinned version has a CPU wheel on these machines.
.venv/bin/python -c "import torch" 2>/dev/null || pip_install "torch==${TORCH_VERSION:-2.13.0}"
pip_install -e ".[dev,rapidocr,encoder,niah,postgres,semantic,inspect,reader-train]"
# integrations: standalone distributions living in this repository
pip_install -e integrations/mcp -e "integrations/langchain[agents,test]"
.venv/bin/python -c "import optical_memory, torch, skia; print('optical-memory', optical_memory.__version__, 'ready in .venv')"
