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
