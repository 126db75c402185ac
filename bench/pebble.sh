#!/usr/bin/env bash
# Builds the Pebble the benchmark runs: the pinned Pebble (tests/env/versions.sh) with one fix, into
# its own cache directory ($BENCH_CACHE, default ~/.cache/ferrocert-bench), next to links to the
# other cached binaries, so tests/env/up.sh started with FERROCERT_CACHE=$BENCH_CACHE uses it and
# the test environment's own cache is untouched. Prints the cache directory.
#
# The fix: Pebble v2.10.3 deadlocks under concurrent load. MemoryStore.FindValidAuthorization
# (called by every newOrder, whatever PEBBLE_AUTHZREUSE says) holds the store's read lock while it
# read-locks each authorization; the authorization handler holds an authorization's write lock
# while it read-locks the store; a store writer waiting in between (another newOrder's
# AddAuthorization) closes the cycle, and from then on every request that touches the store hangs.
# With the controller's default 8 concurrent reconciles this happened within seconds at N = 300.
# The patch copies the authorizations out under the store lock and locks each one after releasing
# it, which is what the rest of MemoryStore already does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../tests/env/versions.sh"
BENCH_CACHE=${BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrocert-bench}
out=$BENCH_CACHE/bin/pebble-$PEBBLE_VERSION
mkdir -p "$BENCH_CACHE/bin"
"$here/../tests/env/build.sh" >&2
for b in kube-apiserver-$KUBERNETES_VERSION etcd-$ETCD_VERSION helm-$HELM_VERSION traefik-$TRAEFIK_VERSION; do
  ln -sf "$TESTENV_BIN/$b" "$BENCH_CACHE/bin/$b"
done
ln -sfn "$FERROCERT_CACHE/gateway-api-$GATEWAY_API_VERSION" "$BENCH_CACHE/gateway-api-$GATEWAY_API_VERSION"
if [ ! -x "$out" ]; then
  echo "[bench] building Pebble $PEBBLE_VERSION with the FindValidAuthorization lock fix" >&2
  src=$(cd "$(go env GOMODCACHE)" && pwd)/github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION
  if [ ! -d "$src" ]; then
    (cd "$(mktemp -d)" && go mod download -json "github.com/letsencrypt/pebble/v2@$PEBBLE_VERSION" >/dev/null)
  fi
  work=$(mktemp -d)
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  python3 - "$work/db/memorystore.go" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
old = """func (m *MemoryStore) FindValidAuthorization(accountID string, identifier acme.Identifier) *core.Authorization {
	m.RLock()
	defer m.RUnlock()
	for _, authz := range m.authorizationsByID {"""
new = """func (m *MemoryStore) FindValidAuthorization(accountID string, identifier acme.Identifier) *core.Authorization {
	m.RLock()
	authzs := make([]*core.Authorization, 0, len(m.authorizationsByID))
	for _, authz := range m.authorizationsByID {
		authzs = append(authzs, authz)
	}
	m.RUnlock()
	for _, authz := range authzs {"""
if old not in text:
    sys.exit("memorystore.go does not have the expected FindValidAuthorization: update bench/pebble.sh")
open(path, "w").write(text.replace(old, new))
PY
  (cd "$work" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out.tmp" ./cmd/pebble)
  mv "$out.tmp" "$out"
  rm -rf "$work"
fi
echo "$BENCH_CACHE"
