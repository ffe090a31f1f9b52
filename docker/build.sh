#!/bin/sh
# Builds the scenario images FROM scratch out of binaries make has built
# (build/release/plasmd-linux-*), qemu-aarch64-static (Debian's
# qemu-user-static) and the router's holder program. Run by `make
# scenarios`; images are tagged plasm-scenario/* and reused by every test.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
ctx="$root/build/docker"
qemu=$(command -v qemu-aarch64-static || true)
if [ -z "$qemu" ]; then
	echo "docker/build.sh: qemu-aarch64-static not found (apt-get install qemu-user-static)" >&2
	exit 2
fi
rm -rf "$ctx" && mkdir -p "$ctx"
cp "$root/build/release/plasmd-linux-amd64" "$root/build/release/plasmd-linux-arm64" "$qemu" \
	"$root/docker/client.json" "$ctx/"
(cd "$root/scenarios/docker" && CGO_ENABLED=0 go build -trimpath -o "$ctx/hold" ./cmd/hold)
build() { # tag dockerfile [build-arg]
	tag=$1 file=$2
	shift 2
	docker build -q "$@" -f "$root/docker/$file" -t "$tag" "$ctx" >/dev/null
	echo "built $tag"
}
build plasm-scenario/node:amd64 node-amd64.Dockerfile
build plasm-scenario/node:arm64 node-arm64.Dockerfile
build plasm-scenario/client:amd64 client.Dockerfile --build-arg ARCH=amd64
build plasm-scenario/client:arm64 client.Dockerfile --build-arg ARCH=arm64
build plasm-scenario/router:latest router.Dockerfile
