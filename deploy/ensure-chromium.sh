#!/usr/bin/env bash
# Install Debian's chromium when it is missing and we are root: the camera page's test
# (tests/e2e/test_demo_page.py) drives it headless through Playwright
# (executable_path=/usr/bin/chromium; Playwright's own browser download is not used).
# Without root and without chromium, that test skips and says so.
set -euo pipefail
if command -v chromium >/dev/null; then echo "chromium: $(command -v chromium)"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "chromium: not installed and not root; the camera page's browser test will skip" \
       "(sudo apt-get install chromium)" >&2
  exit 0
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "chromium: installed $(command -v chromium)"
