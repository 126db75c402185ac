#!/usr/bin/env bash
# Sets everything up on this machine and shows ferrocert's main job: starts the local environment
# (kube-apiserver + etcd, Pebble, BIND), installs the CRDs, applies the examples and lists them.
# Leaves the environment running; `tests/env/down.sh` stops it.
set -euo pipefail
cd "$(dirname "$0")"
tests/env/install-deps.sh
tests/env/up.sh > /dev/null
# shellcheck disable=SC1091
source .testenv/env.sh
cargo build --release --locked --quiet
kubectl apply --server-side -f crds/ > /dev/null
kubectl wait --for=condition=Established --timeout=60s crd --all > /dev/null
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - > /dev/null
kubectl apply -n demo -f examples/
echo
kubectl get ferrocert -A
