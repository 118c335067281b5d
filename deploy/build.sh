#!/usr/bin/env bash
# Builds static (musl) binaries of tether-service, tether-host and tether, and from them
# three images FROM scratch: tether-service, tether-host and tether (the provisioner).
# Needs Docker and, for the C parts of the dependencies (SQLite, ring, zstd), a musl C
# compiler: `apt-get install musl-tools` on Debian or Ubuntu. The musl targets come with
# rust-toolchain.toml.
#
#   deploy/build.sh                 # x86_64, images tagged :dev
#   TETHER_TAG=1.0 deploy/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."

target=${TETHER_TARGET:-x86_64-unknown-linux-musl}
tag=${TETHER_TAG:-dev}
out=target/docker
started=$SECONDS
step() { printf '==> %s (at %ss)\n' "$*" "$((SECONDS - started))"; }

if [[ $target == x86_64-unknown-linux-musl ]] && ! command -v musl-gcc >/dev/null; then
    echo "error: musl-gcc is missing; install it with: apt-get install musl-tools" >&2
    exit 2
fi
command -v docker >/dev/null || { echo "error: docker is not installed" >&2; exit 2; }

step "static binaries for $target"
# rust-toolchain.toml lists the musl targets, but rustup adds listed targets by itself
# only where it auto-installs; add this one if it is missing.
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$target"; then
    echo "adding the $target target: rustup target add $target"
    rustup target add "$target"
fi
# The host is built on its own, so that it does not get the CLI's `demo` feature.
cargo build --release --locked --target "$target" -p tether-host
cargo build --release --locked --target "$target" -p tether-service -p tether

step "image contexts in $out"
rm -rf "$out"
for image in service host cli; do
    mkdir -p "$out/$image/data"
done
bin=target/$target/release
cp "$bin/tether-service" "$out/service/"
cp "$bin/tether-host" "$out/host/"
cp "$bin/tether" "$out/cli/"
strip "$out/service/tether-service" "$out/host/tether-host" "$out/cli/tether"

step "images"
docker build -q -f deploy/service.Dockerfile -t "tether-service:$tag" "$out/service"
docker build -q -f deploy/host.Dockerfile -t "tether-host:$tag" "$out/host"
docker build -q -f deploy/cli.Dockerfile -t "tether:$tag" "$out/cli"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^tether(-service|-host)?:$tag "
step "done"
