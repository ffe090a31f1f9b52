#!/usr/bin/env bash
# Proves the README's set-up: a clean clone, with a PATH that holds only Go,
# make, git and the shell's basics (no wabt, php, node, gcc, curl, ...),
# runs `make demo` and `make test` green.
#
# Usage: scripts/fresh-machine.sh [REPO]   (default: this repository's HEAD)
# Env:   KEEP=1 keeps the temporary directory. The Go build and module
#        caches are shared with the caller's, so nothing compiles twice.
set -euo pipefail
repo=${1:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d /tmp/plasm-fresh.XXXXXX)
[ "${KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT

bin="$work/bin"
mkdir -p "$bin" "$work/home" "$work/tmp"
# The whole tool set. Anything else a target needs fails it, which is the point.
tools=(go gofmt make git sh bash env
	cat cp mv rm ln mkdir rmdir chmod touch ls head tail tee sed grep cut tr sort uniq wc
	dirname basename mktemp date sleep printf echo test true false expr find xargs)
for t in "${tools[@]}"; do
	p=$(command -v "$t") || { echo "fresh-machine: $t not found on this machine" >&2; exit 2; }
	ln -s "$(readlink -f "$p")" "$bin/$t"
done
# git runs its helpers from its exec path, not PATH: keep git working as
# installed.
gocache=$(go env GOCACHE)
gomodcache=$(go env GOMODCACHE)

echo "== git clone $repo"
git clone --quiet "$repo" "$work/plasm"
cd "$work/plasm"
run() {
	env -i PATH="$bin" HOME="$work/home" TMPDIR="$work/tmp" \
		GOCACHE="$gocache" GOMODCACHE="$gomodcache" GOTOOLCHAIN=local \
		GOPROXY="$(go env GOPROXY)" GOFLAGS= TESTCONTAINERS_RYUK_DISABLED=true \
		"$@"
}
echo "== PATH holds only: ${tools[*]}"
for t in wat2wasm php node gcc cc curl docker; do
	if run sh -c "command -v $t" >/dev/null 2>&1; then echo "fresh-machine: $t is reachable" >&2; exit 1; fi
done
echo "== make demo"
run make demo
echo "== make test"
run make test
echo "fresh-machine: make demo and make test passed with only Go, make, git and basic tools"
