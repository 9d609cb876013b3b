#!/bin/sh
# The Debian packages gpuledger needs beside Python, installed only when `dpkg -s` says
# they are missing (quiet and idempotent; `make` runs it on every set-up).
#   runtime: what documents need to be made (WeasyPrint's Pango and HarfBuzz, and IPAex
#            Gothic, the Japanese face embedded in every PDF)
#   test:    the runtime, and what the tests look at documents with (poppler's pdftotext
#            and pdftoppm, headless Chromium), and openssl (deploy/tls/make-certs.sh)
set -eu

runtime="libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-ipaexfont-gothic"
case "${1:-runtime}" in
    runtime) wanted="$runtime" ;;
    test) wanted="$runtime poppler-utils chromium openssl" ;;
    *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac

missing=""
for package in $wanted; do
    dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "gpuledger needs these Debian packages (or your system's equivalents):$missing" >&2
    exit 1
fi
as_root=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root="sudo"
    else
        echo "gpuledger needs Debian packages:$missing; as root run: apt-get install$missing" >&2
        exit 1
    fi
fi
echo "installing Debian packages:$missing" >&2
$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086  # one word per package
$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
