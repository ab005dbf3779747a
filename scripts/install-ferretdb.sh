#!/usr/bin/env bash
# Installs FerretDB 1.24.2 (SQLite backend) from the Go module proxy into $(go env GOPATH)/bin.
# A plain `go install …@v1.24.2` builds a binary that panics at start: the module
# zip lacks build/version/version.txt, which FerretDB's release build generates.
# So build from a writable copy of the module with that file written in.
set -euo pipefail
version=v1.24.2
bin="$(go env GOPATH)/bin/ferretdb"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "${version}"; then
  echo "ferretdb ${version} already at $bin"; exit 0
fi
dir=$(go mod download -json "github.com/FerretDB/FerretDB@${version}" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "could not download github.com/FerretDB/FerretDB@${version}" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$dir/." "$work/"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
mkdir -p "$(dirname "$bin")"
(cd "$work" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/ferretdb)
"$bin" --version | head -n 1
