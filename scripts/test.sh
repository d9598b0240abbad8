#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, then runs the whole suite:
# type check, lint, and every unit and integration test against the real peer tools.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages of the real peers the tests talk to. Each is installed only when missing.
packages=(opendkim opendkim-tools python3-dkim postsrsd swaks postfix postgresql chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if ((${#missing[@]})); then
  echo "Installing Debian packages: ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian starts the daemons it installs; the tests run their own copies on loopback ports.
for service in postfix postsrsd opendkim postgresql; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
    systemctl stop "$service" || true
  fi
done

npm ci --no-audit --no-fund
npm run typecheck
npm run lint
npx vitest run "$@"
