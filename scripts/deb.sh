#!/usr/bin/env bash
# Build the Debian package: target/debian/nodepass_<version>-1_<arch>.deb.
#
#   bash scripts/deb.sh            # cargo deb (a release build: fat LTO, minutes the first time)
#
# Installs cargo-deb with `cargo install cargo-deb --locked` when it is missing (a few
# minutes on 2 cores). Needs dpkg-deb (Debian/Ubuntu). What goes into the package is
# [package.metadata.deb] in Cargo.toml plus debian/ (unit, environment file, maintainer
# scripts). Install it with: apt install ./target/debian/nodepass_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

command -v dpkg-deb >/dev/null || { echo "dpkg-deb not found: this builds a Debian package" >&2; exit 1; }
if ! cargo deb --version >/dev/null 2>&1; then
    echo "== installing cargo-deb (cargo install cargo-deb --locked)"
    cargo install cargo-deb --locked
fi
echo "== cargo deb (release build)"
rm -f target/debian/nodepass_*.deb
cargo deb "$@"
deb=$(ls target/debian/nodepass_*.deb)
echo "== built $deb"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
dpkg-deb --contents "$deb"
