#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests.
# Installs it with apt-get when missing and running as root; never downloads a browser build.
# Exit status: 0 when /usr/bin/chromium runs, non-zero (with a message on stderr) otherwise.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

say() { printf 'ensure_chromium: %s\n' "$*" >&2; }

works() {
    [ -x "$CHROMIUM" ] && "$CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1
}

if works; then
    say "found $("$CHROMIUM" --headless --no-sandbox --version 2>/dev/null)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    say "$CHROMIUM is missing and this is not root: install it with 'apt-get install chromium' (Debian package)."
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    say "$CHROMIUM is missing and apt-get is not available: install Chromium at $CHROMIUM by hand."
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q --no-install-recommends -o Dpkg::Options::=--force-confold)

say "installing Debian's chromium package..."
if ! apt-get install "${APT_OPTS[@]}" chromium fonts-liberation >/dev/null; then
    say "install failed; refreshing the package lists and trying again..."
    if ! apt-get update -q >/dev/null; then
        say "apt-get update failed: cannot reach the Debian package mirror."
        exit 1
    fi
    if ! apt-get install "${APT_OPTS[@]}" chromium fonts-liberation >/dev/null; then
        say "apt-get install chromium failed; see the apt messages above."
        exit 1
    fi
fi

if works; then
    say "installed $("$CHROMIUM" --headless --no-sandbox --version 2>/dev/null)"
    exit 0
fi
say "chromium was installed but $CHROMIUM does not start; check its libraries with 'ldd $CHROMIUM'."
exit 1
