#!/usr/bin/env bash
# Builds tether-host for boards, without the compiler, in the size-optimised `device-min`
# profile:
#   aarch64-unknown-linux-musl     static, native code (components precompiled for aarch64)
#   armv7-unknown-linux-gnueabihf  linked to the board's glibc, Pulley bytecode
# (Rust 1.95 ships no standard library for armv7-unknown-linux-musleabihf, so 32-bit ARM
# boards get the glibc build; Debian's armhf has that glibc.)
#
# Usage: deploy/boards.sh [TARGET...]   (both by default; x86_64-unknown-linux-musl too)
# BOARDS_PROFILE=release BOARDS_COMPILER=1 builds the default host (with Cranelift)
# instead, as tether-bench's footprint scenario does for comparison.
# Prints one line per target: TARGET PATH BYTES. Exits 3 when a tool it needs is missing,
# saying which and how to get it, so a test can skip.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-musl armv7-unknown-linux-gnueabihf)

missing() {
    echo "boards: $1 is missing: $2" >&2
    exit 3
}

for target in "${targets[@]}"; do
    case "$target" in
    x86_64-unknown-linux-musl)
        command -v musl-gcc >/dev/null || missing musl-gcc "apt-get install musl-tools"
        ;;
    aarch64-unknown-linux-musl)
        command -v aarch64-linux-gnu-gcc >/dev/null ||
            missing aarch64-linux-gnu-gcc "apt-get install gcc-aarch64-linux-gnu"
        # Rust's own linker links the self-contained musl; the C parts need the cross gcc.
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld
        export CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc
        ;;
    armv7-unknown-linux-gnueabihf)
        command -v arm-linux-gnueabihf-gcc >/dev/null ||
            missing arm-linux-gnueabihf-gcc "apt-get install gcc-arm-linux-gnueabihf"
        export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER=arm-linux-gnueabihf-gcc
        export CC_armv7_unknown_linux_gnueabihf=arm-linux-gnueabihf-gcc
        ;;
    *)
        echo "boards: unknown target $target" >&2
        exit 2
        ;;
    esac
    libdir=$(rustc --print target-libdir --target "$target" 2>/dev/null || true)
    if ! ls "$libdir"/libcore-* >/dev/null 2>&1; then
        command -v rustup >/dev/null || missing "the Rust standard library for $target" \
            "install it for this toolchain"
        echo "boards: adding the $target target with rustup" >&2
        rustup target add "$target" >&2
    fi
    profile=${BOARDS_PROFILE:-device-min}
    features=(--no-default-features)
    what="no compiler"
    if [ -n "${BOARDS_COMPILER:-}" ]; then
        features=()
        what="with the compiler"
    fi
    echo "boards: building tether-host for $target ($profile, $what)..." >&2
    start=$(date +%s)
    cargo build --locked --quiet -p tether-host "${features[@]}" --profile "$profile" \
        --target "$target"
    bin="target/$target/$profile/tether-host"
    echo "boards: $target built in $(($(date +%s) - start)) s" >&2
    echo "$target $PWD/$bin $(stat -c %s "$bin")"
done
