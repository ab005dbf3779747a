#!/usr/bin/env bash
# Installs what mqtt-functions needs beside Node on a fresh Debian machine:
# redis-server, the mosquitto clients (tests) and broker (benchmark baseline), Debian's
# chromium (the dashboard's browser test drives it with playwright-core), and FerretDB 1.24.2 (MongoDB wire protocol on SQLite), built from the Go module proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v ferretdb >/dev/null && [ ! -x "$(go env GOPATH 2>/dev/null)/bin/ferretdb" ]; then
  command -v go >/dev/null || { echo "FerretDB is missing and Go is not installed to build it; set MONGO_URL to a MongoDB server instead" >&2; exit 1; }
  echo "building FerretDB v1.24.2 from the Go module proxy (a minute or two, once)"
  bash "$here/install-ferretdb.sh"
fi
