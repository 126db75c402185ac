# Pinned versions of the real programs the local test environment runs.
# Sourced by the other scripts in tests/env/. Changing a version changes the
# cache key, so the next start rebuilds only what changed.
KUBERNETES_VERSION=v1.36.3
ETCD_VERSION=v3.6.16
PEBBLE_VERSION=v2.10.3
HELM_VERSION=v3.22.0
# The ingress controller HTTP-01 routes go through. v3.7 does not build from the module proxy.
TRAEFIK_VERSION=v3.6.12
# Gateway API CRDs (standard channel) for that Traefik: it implements v1.4 (go.mod: v1.4.0); v1.4.1
# is the same API with CRD fixes (BackendTLSPolicy gets its status subresource, which Traefik writes).
GATEWAY_API_VERSION=v1.4.1
# cert-manager's ACME webhook server library, for the DNS-01 webhook solver (tests/env/webhook-solver/).
CERT_MANAGER_VERSION=v1.21.2

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
# Pebble validates HTTP-01 on this port of 127.0.0.1 (every test name resolves there); Traefik's
# `web` entry point listens on it and routes challenges to the controller's HTTP-01 Service.
HTTP01_PORT=${HTTP01_PORT:-5002}
# Traefik's `websecure` entry point (TLS, 127.0.0.1 only): serves the certificates the shims'
# Certificates put in the Secrets that Ingresses and Gateways name.
HTTPS_PORT=${HTTPS_PORT:-5443}
# Traefik's ping entry point (readiness only).
TRAEFIK_PING_PORT=${TRAEFIK_PING_PORT:-18082}
# The controller processes under test serve HTTP-01 on these local addresses (added to `lo` by
# up.sh: the API server refuses 127.0.0.0/8 in EndpointSlices) and this port; the testenv
# EndpointSlice of the controller's HTTP-01 Service points at the first one.
HTTP01_BACKEND_IP=${HTTP01_BACKEND_IP:-198.18.0.1}
HTTP01_BACKEND_IP2=${HTTP01_BACKEND_IP2:-198.18.0.2}
HTTP01_BACKEND_PORT=${HTTP01_BACKEND_PORT:-8089}
# The cert-manager DNS webhook solver (an aggregated API server) listens on HTTP01_BACKEND_IP at
# this port; its APIService serves WEBHOOK_GROUP/v1alpha1 through a Service without pods.
WEBHOOK_PORT=${WEBHOOK_PORT:-18443}
WEBHOOK_GROUP=${WEBHOOK_GROUP:-acme.ferrocert.test}
WEBHOOK_NAMESPACE=${WEBHOOK_NAMESPACE:-ferrocert-webhook}
WEBHOOK_SERVICE=${WEBHOOK_SERVICE:-cm-webhook-solver}
DNS_PORT=${DNS_PORT:-5353}
TEST_ZONE=${TEST_ZONE:-example.test}
# A second zone, for `_acme-challenge` CNAME delegation into another zone.
TEST_ZONE2=${TEST_ZONE2:-delegated.test}

# ---- The node (kubelet + containerd, kube-controller-manager, kube-scheduler) ----
# Started by up.sh unless TESTENV_NODE=0 (the quick inner loop). env.sh then says TESTENV_NODE=0 and
# the tests that need pods pass without running; without that word from up.sh they fail when the
# node is missing. CI never sets it.
TESTENV_NODE=${TESTENV_NODE:-1}
NODE_NAME=${NODE_NAME:-ferrocert-node}
# The pod bridge: pods get addresses of POD_CIDR (the benchmarking range, RFC 2544, not a private
# range anyone routes); the bridge's own address is the node IP and the pods' gateway. Pods reach
# the API server, Pebble and BIND on the node IP (DNAT to their loopback listeners).
NODE_BRIDGE=${NODE_BRIDGE:-fcbr0}
NODE_IP=${NODE_IP:-198.19.0.1}
POD_CIDR=${POD_CIDR:-198.19.0.0/16}
# The first address of the API server's service range (the `kubernetes` Service).
SERVICE_CIDR=${SERVICE_CIDR:-10.0.0.0/24}
KUBERNETES_SERVICE_IP=${KUBERNETES_SERVICE_IP:-10.0.0.1}
# The kubelet's API (on the node IP) and healthz port, the controller-manager's and the
# scheduler's secure ports (127.0.0.1). Uncommon ones, so nothing else on the machine has them.
KUBELET_PORT=${KUBELET_PORT:-20250}
KUBELET_HEALTHZ_PORT=${KUBELET_HEALTHZ_PORT:-20248}
KCM_PORT=${KCM_PORT:-20257}
SCHEDULER_PORT=${SCHEDULER_PORT:-20259}
# The image the node's containerd runs as every pod's sandbox ("pause"): busybox sleeping.
NODE_PAUSE_IMAGE=${NODE_PAUSE_IMAGE:-ferrocert.local/pause:testenv}
# What tests/env/image.sh tags the controller image as.
FERROCERT_IMAGE_REPOSITORY=${FERROCERT_IMAGE_REPOSITORY:-ferrocert.local/ferrocert}
FERROCERT_IMAGE_TAG=${FERROCERT_IMAGE_TAG:-testenv}
