#!/usr/bin/env bash
# Installs what test/deploy-artifacts.test.ts needs beside npm's packages: kustomize,
# built from the Go module proxy into $(go env GOPATH)/bin. The schemas it validates
# against are vendored in deploy/schemas/ (see its README); ajv comes with `npm ci`.
set -euo pipefail
version=v5.8.1
bin="$(go env GOPATH)/bin/kustomize"
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "${version}"; then
  echo "kustomize ${version} already at $bin"; exit 0
fi
echo "building kustomize ${version} from the Go module proxy (about a minute, once)"
GOFLAGS=-buildvcs=false go install "sigs.k8s.io/kustomize/kustomize/v5@${version}"
"$bin" version
