#!/usr/bin/env bash
# Programs the test suite runs for real, from Debian's packages: PostgreSQL (the service's tests
# start a throwaway cluster from it) and Chromium (the /ui page is tested in it, headless).
# Installs what is missing (as root, or through sudo); does nothing when both are there.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} from Debian's packages (needed by the tests)" >&2
run=()
[ "$(id -u)" -ne 0 ] && run=(sudo)
"${run[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${run[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
