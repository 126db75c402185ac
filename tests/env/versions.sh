# Pinned versions of the real programs the local test environment runs.
# Sourced by the other scripts in tests/env/. Changing a version changes the
# cache key, so the next start rebuilds only what changed.
KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
PEBBLE_VERSION=v2.10.3
HELM_VERSION=v3.22.0

# Built binaries live outside the work tree so that every clone (and CI's
# fresh clone) on this machine shares them.
FERROCERT_CACHE=${FERROCERT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrocert}
TESTENV_BIN=$FERROCERT_CACHE/bin

# Where a running environment keeps its state (certificates, data, logs, pids). Inside the work
# tree, ignored by git, so two clones never share a running environment.
TESTENV_DIR=${TESTENV_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.testenv}

# Loopback ports. Override any of them in the environment before `up.sh`.
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
APISERVER_PORT=${APISERVER_PORT:-16443}
PEBBLE_PORT=${PEBBLE_PORT:-14000}
PEBBLE_MGMT_PORT=${PEBBLE_MGMT_PORT:-15000}
PEBBLE_EAB_PORT=${PEBBLE_EAB_PORT:-14001}
PEBBLE_EAB_MGMT_PORT=${PEBBLE_EAB_MGMT_PORT:-15001}
# Pebble validates HTTP-01 on this port of 127.0.0.1 (every test name resolves there); the
# controller under test listens on it.
HTTP01_PORT=${HTTP01_PORT:-5002}
DNS_PORT=${DNS_PORT:-5353}
TEST_ZONE=${TEST_ZONE:-example.test}
# A second zone, for `_acme-challenge` CNAME delegation into another zone.
TEST_ZONE2=${TEST_ZONE2:-delegated.test}
