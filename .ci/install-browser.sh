#!/usr/bin/env bash
# Headless Chromium for the report tests (filled in by the report work).
set -euo pipefail
