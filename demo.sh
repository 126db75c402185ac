#!/usr/bin/env bash
# Sets everything up on this machine and shows ferrocert's main job, installed the way a cluster
# runs it: starts the local environment (kube-apiserver + etcd, a node with containerd and the
# kubelet, Pebble, BIND, Traefik as the ingress controller), builds the release binary and its
# image (tests/env/image.sh, imported into the node's containerd), installs ferrocert with
# `helm install` (two pods, one leader), applies an Issuer for the local Pebble and a Certificate,
# waits until the Secret holds a certificate Pebble issued after validating HTTP-01 through
# Traefik → the temporary Ingress, Service and EndpointSlice → a ferrocert pod, and prints it.
# Leaves the environment running (`tests/env/down.sh` stops it); uninstalls the release it
# installed (the Certificate and its Secret stay).
set -euo pipefail
cd "$(dirname "$0")"
if [ "${TESTENV_NODE:-1}" = 0 ]; then
  echo "demo.sh runs ferrocert as pods on the environment's node: unset TESTENV_NODE" >&2
  exit 1
fi
tests/env/install-deps.sh
tests/env/up.sh > /dev/null
# shellcheck disable=SC1091
source .testenv/env.sh
if [ "$TESTENV_NODE" = 0 ]; then
  echo "the running environment has no node (started with TESTENV_NODE=0): tests/env/down.sh, then again" >&2
  exit 1
fi
cargo build --release --locked --quiet --bin ferrocert
tests/env/image.sh --import

# The CRDs may exist already (tests apply crds/): let the release adopt them.
for crd in certificates.ferrocert.dev issuers.ferrocert.dev clusterissuers.ferrocert.dev; do
  if kubectl get crd "$crd" > /dev/null 2>&1; then
    kubectl label crd "$crd" --overwrite app.kubernetes.io/managed-by=Helm > /dev/null
    kubectl annotate crd "$crd" --overwrite meta.helm.sh/release-name=ferrocert \
      meta.helm.sh/release-namespace=ferrocert > /dev/null
  fi
done
kubectl create namespace ferrocert --dry-run=client -o yaml | kubectl apply -f - > /dev/null
kubectl label namespace ferrocert --overwrite pod-security.kubernetes.io/enforce=restricted > /dev/null
trap 'helm uninstall ferrocert --namespace ferrocert --wait > /dev/null 2>&1 || true' EXIT
# Apart from the image, the chart's defaults, plus what this environment needs: no cluster DNS
# knows the test zone (the self-checks ask BIND at the node IP), and Traefik takes HTTP-01 on
# $HTTP01_PORT instead of 80.
start=$(date +%s%3N)
helm upgrade --install ferrocert charts/ferrocert --namespace ferrocert --wait --timeout 180s \
  --set image.repository="$FERROCERT_IMAGE_REPOSITORY" --set image.tag="$FERROCERT_IMAGE_TAG" \
  --set image.pullPolicy=Never \
  --set-json "controller.extraArgs=[\"--dns01-check-nameservers=$NODE_DNS_SERVER\",\"--http01-self-check-nameservers=$NODE_DNS_SERVER\",\"--http01-self-check-port=$HTTP01_PORT\",\"--http01-self-check-allow-internal=true\"]" \
  > /dev/null
echo "helm install: ferrocert Ready after $(( $(date +%s%3N) - start )) ms"
kubectl get pods -n ferrocert -o wide
holder=
for _ in $(seq 100); do
  holder=$(kubectl get lease -n ferrocert ferrocert -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true)
  [ -n "$holder" ] && break
  sleep 0.2
done
echo "Lease holder (the leader): ${holder:-none yet}"
echo

# The names point at the node IP, where Traefik listens for both Pebble and the pods' self-check.
key=$(printf 'hmac-sha256:%s:%s' "$TSIG_KEY_NAME" "$TSIG_SECRET")
nsupdate -y "$key" <<NSUPDATE
server ${DNS_SERVER%:*} ${DNS_SERVER#*:}
update delete www.$TEST_ZONE A
update add www.$TEST_ZONE 5 A $NODE_IP
update delete $TEST_ZONE A
update add $TEST_ZONE 5 A $NODE_IP
send
NSUPDATE

kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - > /dev/null
kubectl apply -n demo -f - <<YAML
apiVersion: ferrocert.dev/v1alpha1
kind: Issuer
metadata:
  name: pebble
spec:
  acme:
    # Pebble as the pods reach it.
    server: $NODE_PEBBLE_DIRECTORY
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
kubectl wait -n demo --for=condition=Ready --timeout=90s certificates.ferrocert.dev/web > /dev/null
echo "Certificate demo/web Ready after $(( $(date +%s%3N) - start )) ms"
echo
kubectl get ferrocert -A
echo
echo "Secret demo/web-tls holds:"
kubectl get secret -n demo web-tls -o jsonpath='{.data.tls\.crt}' | base64 -d \
  | openssl x509 -noout -subject -ext subjectAltName -issuer -dates
