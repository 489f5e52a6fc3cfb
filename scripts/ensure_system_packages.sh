#!/usr/bin/env bash
# Make sure the Debian packages the tests use are installed: chromium (browser tests, at
# /usr/bin/chromium) and espeak-ng (speech for the local provider and the test utterances).
# Installs what is missing with apt-get when running as root; never downloads a browser build.
# Exit status: 0 when everything runs, non-zero (with a message on stderr) otherwise.
set -euo pipefail

say() { printf 'ensure_system_packages: %s\n' "$*" >&2; }

chromium_works() { [ -x /usr/bin/chromium ] && /usr/bin/chromium --headless --no-sandbox --version >/dev/null 2>&1; }
espeak_works() { command -v espeak-ng >/dev/null 2>&1; }

missing=()
chromium_works || missing+=(chromium fonts-liberation)
espeak_works || missing+=(espeak-ng)
if [ ${#missing[@]} -eq 0 ]; then
    say "chromium and espeak-ng present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing ${missing[*]}: install them with 'apt-get install ${missing[*]}' (Debian packages)."
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)
say "installing ${missing[*]}..."
if ! apt-get install "${APT_OPTS[@]}" "${missing[@]}" >/dev/null; then
    say "install failed; refreshing the package lists and trying again..."
    apt-get update -q >/dev/null || { say "apt-get update failed: no package mirror."; exit 1; }
    apt-get install "${APT_OPTS[@]}" "${missing[@]}" >/dev/null || { say "apt-get install failed."; exit 1; }
fi
chromium_works || { say "chromium installed but /usr/bin/chromium does not start (check 'ldd')."; exit 1; }
espeak_works || { say "espeak-ng installed but not on PATH."; exit 1; }
say "installed ${missing[*]}"
