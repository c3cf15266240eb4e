#!/usr/bin/env bash
# The page tests open our HTML in a real headless Chromium (Debian's package, driven by
# Playwright with executable_path: Playwright downloads no browser). Installs it when missing.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "chromium is missing and this is not root: run 'sudo apt-get install -y chromium'" >&2
    exit 1
fi
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
command -v chromium
