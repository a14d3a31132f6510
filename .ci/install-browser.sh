#!/usr/bin/env bash
# Headless Chromium for the report tests: Debian's chromium, driven by the playwright package.
# Idempotent and quick when both are there. Never runs `playwright install` (that downloads
# browser builds); the tests point playwright at Debian's /usr/bin/chromium instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq chromium >/dev/null
fi

if ! .venv/bin/python -c "import playwright.sync_api" >/dev/null 2>&1; then
    .venv/bin/pip install --quiet "playwright>=1.40"
fi

echo "browser for the report tests: $(command -v chromium), playwright $(.venv/bin/python -c 'from importlib.metadata import version; print(version("playwright"))')"
