#!/usr/bin/env bash
# Builds the tether-host Debian package per board architecture with cargo-deb:
#   x86_64-unknown-linux-musl      amd64  static
#   aarch64-unknown-linux-musl     arm64  static, native code
#   armv7-unknown-linux-gnueabihf  armhf  Debian's glibc, Pulley bytecode
# Each holds the host that deploy/boards.sh builds (no compiler, `device-min`), the
# built-in pairing component precompiled for it, the systemd unit and the board's config
# example (deploy/debian/). The packages land in target/debian/.
#
# Usage: deploy/deb.sh [TARGET...]   (all three by default)
# TETHER_PRECOMPILER=PATH names a tether-host with the compiler and the `cross` feature to
# precompile with; without it the script builds one (release).
# Prints one line per package: TARGET PATH BYTES. Exits 3 when a tool it needs is
# missing, saying which and how to get it, so a test can skip.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] ||
    targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)
profile=device-min

if ! cargo deb --version >/dev/null 2>&1; then
    echo "deb: cargo-deb is missing: cargo install cargo-deb --version 3.8.0 --locked" >&2
    exit 3
fi

precompiler=${TETHER_PRECOMPILER:-}
if [ -z "$precompiler" ]; then
    echo "deb: building tether-host with the compiler to precompile the component..." >&2
    cargo build --locked --quiet --release -p tether-host --features cross
    precompiler=target/release/tether-host
fi

# The newest glibc symbol version a binary needs, such as 2.34.
glibc_needed() {
    readelf --version-info "$1" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -n 1
}

for target in "${targets[@]}"; do
    status=0
    line=$(deploy/boards.sh "$target") || status=$?
    [ "$status" -eq 0 ] || exit "$status"
    bin=$(echo "$line" | cut -d' ' -f2)
    dir=$(dirname "$bin")
    echo "deb: precompiling the pairing component for $target..." >&2
    "$precompiler" precompile --target "$target" -o "$dir/pairing.cwasm" >&2
    variant=()
    case "$target" in
    *-gnu*)
        declared=$(sed -n '/variants.glibc/,$s/^depends = "libc6 (>= \([0-9.]*\))"/\1/p' \
            host/Cargo.toml)
        needed=$(glibc_needed "$bin")
        if [ "$(printf '%s\n%s\n' "$needed" "$declared" | sort -V | tail -n 1)" != "$declared" ]; then
            echo "deb: $target needs glibc $needed, the package declares $declared" >&2
            exit 1
        fi
        variant=(--variant glibc)
        ;;
    esac
    echo "deb: packaging $target..." >&2
    deb=$(cargo deb --locked -p tether-host --no-build --no-strip --target "$target" \
        --profile "$profile" "${variant[@]}" --output target/debian/ | tail -n 1)
    echo "$target $PWD/$deb $(stat -c %s "$deb")"
done
