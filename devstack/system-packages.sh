#!/usr/bin/env bash
# Debian packages the project needs outside PyPI, installed by the project itself so a fresh machine
# (a developer's or CI's) gets them without anyone remembering a manual step.
#   chromium          - the KPI report tests open the HTML mail in a real browser at 600 px
#   fonts-noto-cjk    - Chinese text in the HTML, the matplotlib charts and the WeasyPrint PDF
#   libpango*/fonts   - what WeasyPrint loads at import time
# Idempotent: a package already installed is skipped; `apt-get update` runs only when something is missing.
# Not root and something missing: says what and exits 0, so `make test` still runs (the browser test skips).
set -euo pipefail

# package -> a file whose presence means "installed" (cheaper and more reliable than parsing dpkg output)
declare -A WANTED=(
  [chromium]=/usr/bin/chromium
  [fonts-noto-cjk]=/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
  [libpango-1.0-0]=""
  [libpangoft2-1.0-0]=""
  [libharfbuzz-subset0]=""
  [fontconfig]=/usr/bin/fc-list
)

is_installed() {
  local package=$1 marker=$2
  if [[ -n "$marker" && -e "$marker" ]]; then return 0; fi
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for package in "${!WANTED[@]}"; do
  if is_installed "$package" "${WANTED[$package]}"; then
    echo "system-packages: $package already present"
  else
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "system-packages: nothing to install"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-packages: no apt-get on this machine; install by hand: ${missing[*]}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "system-packages: not root, cannot install: ${missing[*]}"
  echo "system-packages: run 'sudo $0' (tests needing them will skip with a reason)"
  exit 0
fi

echo "system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
fc-cache -f >/dev/null 2>&1 || true
echo "system-packages: done"
