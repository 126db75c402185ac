#!/usr/bin/env bash
# Sets everything up on this machine and shows ferrocert's main job: starts the local environment
# (kube-apiserver + etcd, Pebble, BIND, Traefik as the ingress controller), installs the CRDs, runs
# the controller, applies an Issuer for the local Pebble and a Certificate, waits until the Secret
# holds a certificate Pebble issued after validating HTTP-01 through Traefik, and prints it. Leaves the environment running (`tests/env/down.sh`
# stops it); stops the controller it started.
set -euo pipefail
cd "$(dirname "$0")"
tests/env/install-deps.sh
tests/env/up.sh > /dev/null
# shellcheck disable=SC1091
source .testenv/env.sh
cargo build --release --locked --quiet
kubectl apply --server-side -f crds/ > /dev/null
kubectl wait --for=condition=Established --timeout=60s crd/certificates.ferrocert.dev crd/issuers.ferrocert.dev crd/clusterissuers.ferrocert.dev > /dev/null
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - > /dev/null

# The controller listens where the environment's HTTP-01 Service sends traffic; Traefik (on
# $HTTP01_PORT, where Pebble validates) routes each challenge there through the temporary Ingress.
target/release/ferrocert controller --http01-listen "$HTTP01_BACKEND_IP:$HTTP01_BACKEND_PORT" \
  --metrics-listen 127.0.0.1:9402 --cluster-resource-namespace demo \
  --http01-service "$HTTP01_SERVICE" --http01-self-check-port "$HTTP01_PORT" \
  --http01-self-check-nameservers "$DNS_SERVER" > .testenv/logs/demo-controller.log 2>&1 &
controller=$!
trap 'kill $controller 2>/dev/null || true' EXIT

kubectl apply -n demo -f - <<YAML
apiVersion: ferrocert.dev/v1alpha1
kind: Issuer
metadata:
  name: pebble
spec:
  acme:
    server: $PEBBLE_DIRECTORY
    email: demo@$TEST_ZONE
    caBundle: $(base64 -w0 "$PEBBLE_CA_FILE")
    privateKeySecretRef:
      name: pebble-account
    # Pebble picks a random profile when none is named (one is ten minutes long).
    profile: default
    solvers:
      - http01:
          ingress:
            ingressClassName: $INGRESS_CLASS
---
apiVersion: ferrocert.dev/v1alpha1
kind: Certificate
metadata:
  name: web
spec:
  secretName: web-tls
  dnsNames:
    - www.$TEST_ZONE
    - $TEST_ZONE
  issuerRef:
    name: pebble
YAML
start=$(date +%s%3N)
kubectl wait -n demo --for=condition=Ready --timeout=60s certificate/web > /dev/null
echo "Certificate demo/web Ready after $(( $(date +%s%3N) - start )) ms"
echo
kubectl get ferrocert -A
echo
echo "Secret demo/web-tls holds:"
kubectl get secret -n demo web-tls -o jsonpath='{.data.tls\.crt}' | base64 -d \
  | openssl x509 -noout -subject -ext subjectAltName -issuer -dates
