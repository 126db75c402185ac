#!/usr/bin/env bash
# Starts the local environment every end-to-end test and demo uses, all on 127.0.0.1:
# etcd + kube-apiserver (RBAC on, admin kubeconfig), Pebble (the ACME test CA; a second Pebble that
# requires External Account Binding), BIND serving the test zones with TSIG-signed updates, and
# Traefik as the real ingress controller (Ingress and Gateway API providers) on Pebble's HTTP-01
# port. Adds two local addresses to `lo` for the controller processes' HTTP-01 listeners (root).
# Then the node (tests/env/node.sh: containerd, kubelet, kube-controller-manager, kube-scheduler and
# a pod bridge), unless TESTENV_NODE=0 (the quick inner loop: no pods run then).
# Idempotent: components already running are left alone. Prints the variables tests need and writes
# them to $TESTENV_DIR/env.sh (`source` it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
start_ms=$(date +%s%3N)
log() { printf '[testenv] %s\n' "$*" >&2; }

"$here/build.sh"
for tool in named openssl tsig-keygen ip kubectl; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run tests/env/install-deps.sh" >&2; exit 1; }
done

mkdir -p "$TESTENV_DIR"/{bin,pki,logs,run,etcd,bind,pebble,traefik}
cd "$TESTENV_DIR"
for b in kube-apiserver:$KUBERNETES_VERSION etcd:$ETCD_VERSION pebble:$PEBBLE_VERSION helm:$HELM_VERSION \
    traefik:$TRAEFIK_VERSION; do
  ln -sf "$TESTENV_BIN/${b%%:*}-${b#*:}" "bin/${b%%:*}"
done

. "$here/lib.sh"

# ---- certificates (made once per environment directory) ----
pki=$TESTENV_DIR/pki
if [ ! -f "$pki/admin.crt" ]; then
  log "generating certificates"
  o() { openssl "$@" 2>/dev/null; }
  o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=ferrocert-testenv-ca" -keyout "$pki/ca.key" -out "$pki/ca.crt"
  # leaf NAME SUBJECT [SANS]
  leaf() {
    o req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" \
      -keyout "$pki/$1.key" -out "$pki/$1.csr"
    local ext=$pki/$1.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' > "$ext"
    [ -n "${3:-}" ] && echo "subjectAltName=$3" >> "$ext"
    o x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$ext" -out "$pki/$1.crt"
  }
  leaf apiserver "/CN=kube-apiserver" "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP"
  # Pods reach Pebble at the node IP.
  leaf pebble "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  leaf admin "/O=system:masters/CN=ferrocert-testenv-admin"
  o genrsa -out "$pki/sa.key" 2048
  o rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
fi

# The aggregation layer (the DNS webhook solver's APIService): a front-proxy CA and the client
# certificate the API server presents to aggregated servers, and the webhook solver's serving
# certificate (its Service name, which the API server verifies, and its address).
if [ ! -f "$pki/webhook-solver.crt" ]; then
  o() { openssl "$@" 2>/dev/null; }
  o req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=ferrocert-testenv-front-proxy-ca" -keyout "$pki/front-proxy-ca.key" -out "$pki/front-proxy-ca.crt"
  o req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=front-proxy-client" \
    -keyout "$pki/front-proxy-client.key" -out "$pki/front-proxy-client.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' > "$pki/front-proxy-client.ext"
  o x509 -req -in "$pki/front-proxy-client.csr" -CA "$pki/front-proxy-ca.crt" -CAkey "$pki/front-proxy-ca.key" \
    -CAcreateserial -days 3650 -extfile "$pki/front-proxy-client.ext" -out "$pki/front-proxy-client.crt"
  o req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$WEBHOOK_SERVICE.$WEBHOOK_NAMESPACE.svc" \
    -keyout "$pki/webhook-solver.key" -out "$pki/webhook-solver.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s,DNS:%s,IP:%s\n' \
    "$WEBHOOK_SERVICE.$WEBHOOK_NAMESPACE.svc" "$WEBHOOK_SERVICE.$WEBHOOK_NAMESPACE.svc.cluster.local" "$HTTP01_BACKEND_IP" > "$pki/webhook-solver.ext"
  o x509 -req -in "$pki/webhook-solver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/webhook-solver.ext" -out "$pki/webhook-solver.crt"
fi

# ---- etcd + kube-apiserver ----
start etcd bin/etcd --name testenv --data-dir "$TESTENV_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "testenv=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level warn

start kube-apiserver bin/kube-apiserver \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --cert-dir "$TESTENV_DIR/pki/generated" \
  --enable-priority-and-fairness=false --profiling=false --event-ttl 1h \
  --kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
  --kubelet-preferred-address-types InternalIP \
  --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --enable-aggregator-routing=true

cat > kubeconfig <<KC
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: testenv
  context: {cluster: testenv, user: admin, namespace: default}
current-context: testenv
KC

# ---- BIND ----
bind=$TESTENV_DIR/bind
if [ ! -f "$bind/tsig.key" ]; then
  tsig-keygen -a hmac-sha256 ferrocert-test > "$bind/tsig.key"
  tsig-keygen -a hmac-sha256 ferrocert-other > "$bind/tsig-other.key"
fi
TSIG_SECRET=$(sed -n 's/.*secret "\(.*\)";/\1/p' "$bind/tsig.key")
if ! running named; then
  for zone in "$TEST_ZONE" "$TEST_ZONE2"; do
    # SOA minimum (negative-caching TTL) is short so retries after a failure stay quick.
    cat > "$bind/$zone.zone" <<ZONE
\$TTL 5
@   IN SOA ns.$zone. hostmaster.$zone. (1 60 30 600 5)
@   IN NS  ns.$zone.
ns  IN A   127.0.0.1
@   IN A   127.0.0.1
*   IN A   127.0.0.1
ZONE
    rm -f "$bind/$zone.jnl"
  done
  cat > "$bind/root.zone" <<ZONE
\$TTL 5
@   IN SOA ns.$TEST_ZONE. hostmaster.$TEST_ZONE. (1 60 30 600 5)
@   IN NS  ns.$TEST_ZONE.
ZONE
  cat > "$bind/named.conf" <<CONF
include "$bind/tsig.key";
include "$bind/tsig-other.key";
options {
  directory "$bind";
  pid-file "$bind/named.pid";
  session-keyfile "$bind/session.key";
  managed-keys-directory "$bind";
  listen-on port $DNS_PORT { 127.0.0.1; };
  listen-on-v6 { none; };
  # Pebble resolves through this server like a CA through its recursive resolver: recursion
  # lets BIND follow an _acme-challenge CNAME into the other local zone. The local root zone
  # below answers every other name NXDOMAIN at once (there is no network to recurse into).
  recursion yes;
  allow-recursion { 127.0.0.1; $POD_CIDR; };
  dnssec-validation no;
  notify no;
};
controls { };
zone "." { type primary; file "$bind/root.zone"; };
zone "$TEST_ZONE" {
  type primary; file "$bind/$TEST_ZONE.zone"; journal "$bind/$TEST_ZONE.jnl";
  update-policy { grant ferrocert-test zonesub TXT; grant ferrocert-test zonesub CNAME; grant ferrocert-test zonesub A; };
};
zone "$TEST_ZONE2" {
  type primary; file "$bind/$TEST_ZONE2.zone"; journal "$bind/$TEST_ZONE2.jnl";
  update-policy { grant ferrocert-test zonesub TXT; grant ferrocert-test zonesub CNAME; };
};
CONF
fi
start named named -g -c "$bind/named.conf" -n 1

# ---- Pebble (two instances: plain, and one requiring External Account Binding) ----
EAB_KID=kid-1
EAB_HMAC=zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W
pebble_config() { # file port mgmt-port eab-required
  cat > "$1" <<JSON
{
  "pebble": {
    "listenAddress": "127.0.0.1:$2",
    "managementListenAddress": "127.0.0.1:$3",
    "certificate": "$pki/pebble.crt",
    "privateKey": "$pki/pebble.key",
    "httpPort": $HTTP01_PORT,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": $4,
    "externalAccountMACKeys": { "$EAB_KID": "$EAB_HMAC" },
    "retryAfter": { "authz": 1, "order": 1 },
    "profiles": {
      "default": { "description": "90 days", "validityPeriod": 7776000 },
      "shortlived": { "description": "6 days", "validityPeriod": 518400 },
      "tenminutes": { "description": "10 minutes, for renewal tests", "validityPeriod": 600 }
    }
  }
}
JSON
}
pebble_config pebble/config.json "$PEBBLE_PORT" "$PEBBLE_MGMT_PORT" false
pebble_config pebble/config-eab.json "$PEBBLE_EAB_PORT" "$PEBBLE_EAB_MGMT_PORT" true
export PEBBLE_VA_NOSLEEP=${PEBBLE_VA_NOSLEEP:-1}
# One alternate chain (to a second root), for preferredChain tests.
export PEBBLE_ALTERNATE_ROOTS=${PEBBLE_ALTERNATE_ROOTS:-1}
start pebble bin/pebble -config pebble/config.json -dnsserver "127.0.0.1:$DNS_PORT"
start pebble-eab bin/pebble -config pebble/config-eab.json -dnsserver "127.0.0.1:$DNS_PORT"

# ---- wait for everything ----
wait_for named 20 dig +short +time=1 +tries=1 -p "$DNS_PORT" @127.0.0.1 "ns.$TEST_ZONE" A
wait_for pebble 20 curl -sf --cacert "$pki/ca.crt" "https://localhost:$PEBBLE_PORT/dir"
wait_for pebble-eab 20 curl -sf --cacert "$pki/ca.crt" "https://localhost:$PEBBLE_EAB_PORT/dir"
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
wait_for kube-apiserver 60 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
  "https://127.0.0.1:$APISERVER_PORT/readyz"
# Pebble makes a new issuance root at every start: fetch the current one for chain verification.
curl -sf --cacert "$pki/ca.crt" "https://localhost:$PEBBLE_MGMT_PORT/roots/0" > pebble/issuance-root.pem
curl -sf --cacert "$pki/ca.crt" "https://localhost:$PEBBLE_EAB_MGMT_PORT/roots/0" > pebble/issuance-root-eab.pem

# ---- HTTP-01 backends: local addresses the API server accepts in EndpointSlices ----
# Added only if absent; the ones added here are listed in run/lo-addrs so down.sh removes exactly those.
for addr in "$HTTP01_BACKEND_IP" "$HTTP01_BACKEND_IP2"; do
  if ! ip -4 -o addr show dev lo | grep -qF " inet $addr/"; then
    if ip addr add "$addr/32" dev lo; then
      echo "$addr" >> run/lo-addrs
    elif ! ip -4 -o addr show dev lo | grep -qF " inet $addr/"; then
      # (Added meanwhile by another start is fine; anything else is not.)
      log "cannot add $addr to lo (needs root)"; exit 1
    fi
  fi
done

k() { kubectl --kubeconfig "$TESTENV_DIR/kubeconfig" "$@"; }
GATEWAY_API_CRDS=$FERROCERT_CACHE/gateway-api-$GATEWAY_API_VERSION/standard
HTTP01_NAMESPACE=ferrocert-e2e
GATEWAY_NAMESPACE=ferrocert-gateway
# The controller's HTTP-01 Service, without a selector (no pods here): the EndpointSlice below
# sends its traffic to the controller process under test on $HTTP01_BACKEND_IP.
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $HTTP01_NAMESPACE}
---
apiVersion: v1
kind: Namespace
metadata: {name: $GATEWAY_NAMESPACE}
---
apiVersion: v1
kind: Service
metadata: {name: ferrocert-http01, namespace: $HTTP01_NAMESPACE}
spec:
  type: ClusterIP
  ports: [{name: http, port: 80, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ferrocert-http01-testenv
  namespace: $HTTP01_NAMESPACE
  labels:
    kubernetes.io/service-name: ferrocert-http01
    endpointslice.kubernetes.io/managed-by: testenv.ferrocert.dev
addressType: IPv4
endpoints:
- addresses: ["$HTTP01_BACKEND_IP"]
  conditions: {ready: true}
ports: [{name: http, port: $HTTP01_BACKEND_PORT, protocol: TCP}]
YAML

# ---- cert-manager DNS webhook solver (tests/env/webhook-solver/), an aggregated API server ----
# It delegates authentication and authorization to the API server (the admin kubeconfig may read
# the request-header CA and review tokens and access); the API server reaches it at its address
# through the EndpointSlice (aggregator routing) and verifies its certificate for the Service name.
start webhook-solver env GROUP_NAME="$WEBHOOK_GROUP" "$TESTENV_BIN/cm-webhook-solver-$CERT_MANAGER_VERSION" \
  --secure-port "$WEBHOOK_PORT" --bind-address "$HTTP01_BACKEND_IP" \
  --tls-cert-file "$pki/webhook-solver.crt" --tls-private-key-file "$pki/webhook-solver.key" \
  --kubeconfig "$TESTENV_DIR/kubeconfig" --authentication-kubeconfig "$TESTENV_DIR/kubeconfig" \
  --authorization-kubeconfig "$TESTENV_DIR/kubeconfig" --cert-dir "$TESTENV_DIR/pki/webhook-generated" \
  --profiling=false
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: $WEBHOOK_NAMESPACE}
---
apiVersion: v1
kind: Service
metadata: {name: $WEBHOOK_SERVICE, namespace: $WEBHOOK_NAMESPACE}
spec:
  type: ClusterIP
  ports: [{name: https, port: 443, targetPort: $WEBHOOK_PORT, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: $WEBHOOK_SERVICE-testenv
  namespace: $WEBHOOK_NAMESPACE
  labels:
    kubernetes.io/service-name: $WEBHOOK_SERVICE
    endpointslice.kubernetes.io/managed-by: testenv.ferrocert.dev
addressType: IPv4
endpoints:
- addresses: ["$HTTP01_BACKEND_IP"]
  conditions: {ready: true}
ports: [{name: https, port: $WEBHOOK_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1alpha1.$WEBHOOK_GROUP}
spec:
  group: $WEBHOOK_GROUP
  version: v1alpha1
  service: {name: $WEBHOOK_SERVICE, namespace: $WEBHOOK_NAMESPACE, port: 443}
  caBundle: $(base64 -w0 < "$pki/ca.crt")
  groupPriorityMinimum: 1000
  versionPriority: 15
YAML
wait_for webhook-solver 60 sh -c "kubectl --kubeconfig '$TESTENV_DIR/kubeconfig' get apiservice v1alpha1.$WEBHOOK_GROUP \
  -o jsonpath='{.status.conditions[?(@.type==\"Available\")].status}' | grep -qx True"

# ---- Traefik (ingress controller outside the cluster, default settings otherwise) ----
k apply -f "$GATEWAY_API_CRDS" >/dev/null
k wait --for condition=Established --timeout 60s -f "$GATEWAY_API_CRDS" >/dev/null
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: ferrocert-testenv-traefik}
rules:
# Both providers: backends and TLS secrets, in every namespace.
- apiGroups: [""]
  resources: [services, secrets, configmaps]
  verbs: [get, list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch]
# Ingress provider. It also watches Nodes (unless disableClusterScopeResources is set): without
# that right (missing from Traefik's documented Ingress RBAC) it never syncs and routes nothing.
- apiGroups: [""]
  resources: [nodes]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [get, list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
# Gateway provider (namespaces: for allowedRoutes namespace selectors).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses, gateways, httproutes, grpcroutes, tcproutes, tlsroutes, referencegrants, backendtlspolicies]
  verbs: [get, list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses/status, gateways/status, httproutes/status, grpcroutes/status, tcproutes/status, tlsroutes/status, backendtlspolicies/status]
  verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: ferrocert-testenv-traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ferrocert-testenv-traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: kube-system}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: traefik}
spec: {controllerName: traefik.io/gateway-controller}
---
# Traefik maps a Gateway listener to the entry point whose address ends in ":<listener port>":
# this listener is the \`web\` entry point.
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: traefik, namespace: $GATEWAY_NAMESPACE}
spec:
  gatewayClassName: traefik
  listeners:
  - name: web
    protocol: HTTP
    port: $HTTP01_PORT
    allowedRoutes:
      namespaces: {from: All}
YAML

# With the node, Pebble reaches it at the node IP too (names of pod-served challenges resolve there).
traefik_web=127.0.0.1:$HTTP01_PORT
[ "$TESTENV_NODE" = 0 ] || traefik_web=:$HTTP01_PORT
if ! running traefik; then
  # A fresh token per start, valid long enough for any test run.
  k -n kube-system create token traefik --duration 24h > traefik/token
  chmod 600 traefik/token
  # A configuration file (not flags): Traefik then ignores TRAEFIK_* environment variables and
  # the configuration files in its default locations.
  cat > traefik/traefik.yml <<YAML
global:
  checkNewVersion: false
  sendAnonymousUsage: false
entryPoints:
  web:
    address: "$traefik_web"
  # TLS on every router of this entry point; the certificate is picked by SNI from the Secrets
  # the Ingresses' tls sections and the Gateways' HTTPS listeners name.
  websecure:
    address: "127.0.0.1:$HTTPS_PORT"
    http:
      tls: {}
  traefik:
    address: "127.0.0.1:$TRAEFIK_PING_PORT"
ping: {}
log:
  level: INFO
  noColor: true
accessLog:
  filePath: "$TESTENV_DIR/logs/traefik-access.log"
  format: json
  bufferingSize: 0
  # Tests tell the CA's validation requests from the controller's self-check by User-Agent.
  fields:
    headers:
      names:
        User-Agent: keep
providers:
  kubernetesIngress:
    endpoint: "https://127.0.0.1:$APISERVER_PORT"
    token: "$TESTENV_DIR/traefik/token"
    certAuthFilePath: "$pki/ca.crt"
  kubernetesGateway:
    endpoint: "https://127.0.0.1:$APISERVER_PORT"
    token: "$TESTENV_DIR/traefik/token"
    certAuthFilePath: "$pki/ca.crt"
YAML
fi
# Without KUBECONFIG / KUBERNETES_SERVICE_*: either would take precedence over endpoint + token.
start traefik env -u KUBECONFIG -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT \
  bin/traefik --configfile "$TESTENV_DIR/traefik/traefik.yml"
wait_for traefik 30 curl -sf "http://127.0.0.1:$TRAEFIK_PING_PORT/ping"
for cond in Accepted Programmed; do
  if ! k -n "$GATEWAY_NAMESPACE" wait --for "condition=$cond" --timeout 30s gateway/traefik >/dev/null; then
    log "Gateway $GATEWAY_NAMESPACE/traefik not $cond in 30s:"
    k -n "$GATEWAY_NAMESPACE" get gateway traefik -o jsonpath='{.status}' >&2 || true; echo >&2
    tail -n 30 logs/traefik.log >&2 || true
    exit 1
  fi
done

if [ "$TESTENV_NODE" != 0 ]; then
  node_ms=$(date +%s%3N)
  "$here/node.sh" up
  log "node $NODE_NAME Ready in $(( $(date +%s%3N) - node_ms )) ms"
fi

cat > env.sh <<ENV
# Written by tests/env/up.sh: the local test environment. Source it.
export FERROCERT_TESTENV=$TESTENV_DIR
export KUBECONFIG=$TESTENV_DIR/kubeconfig
export PATH=$TESTENV_DIR/bin:\$PATH
export TESTENV_CA_FILE=$pki/ca.crt
export PEBBLE_DIRECTORY=https://localhost:$PEBBLE_PORT/dir
export PEBBLE_CA_FILE=$pki/ca.crt
export PEBBLE_MANAGEMENT=https://localhost:$PEBBLE_MGMT_PORT
export PEBBLE_ISSUANCE_ROOT=$TESTENV_DIR/pebble/issuance-root.pem
export PEBBLE_EAB_DIRECTORY=https://localhost:$PEBBLE_EAB_PORT/dir
export PEBBLE_EAB_MANAGEMENT=https://localhost:$PEBBLE_EAB_MGMT_PORT
export PEBBLE_EAB_KID=$EAB_KID
export PEBBLE_EAB_HMAC=$EAB_HMAC
export HTTP01_PORT=$HTTP01_PORT
export HTTPS_PORT=$HTTPS_PORT
export DNS_SERVER=127.0.0.1:$DNS_PORT
export TEST_ZONE=$TEST_ZONE
export TEST_ZONE2=$TEST_ZONE2
export TSIG_KEY_NAME=ferrocert-test
export WEBHOOK_GROUP=$WEBHOOK_GROUP
export WEBHOOK_SOLVER=rfc2136
export WEBHOOK_SOLVER_LOG=$TESTENV_DIR/logs/webhook-solver.log
export TSIG_ALGORITHM=HMACSHA256
export TSIG_SECRET=$TSIG_SECRET
export HTTP01_BACKEND_IP=$HTTP01_BACKEND_IP
export HTTP01_BACKEND_IP2=$HTTP01_BACKEND_IP2
export HTTP01_BACKEND_PORT=$HTTP01_BACKEND_PORT
export HTTP01_SERVICE=$HTTP01_NAMESPACE/ferrocert-http01
export HTTP01_SERVICE_SLICE=ferrocert-http01-testenv
export INGRESS_CLASS=traefik
export GATEWAY_NAMESPACE=$GATEWAY_NAMESPACE
export GATEWAY_NAME=traefik
export GATEWAY_API_CRDS=$GATEWAY_API_CRDS
export TRAEFIK_ACCESS_LOG=$TESTENV_DIR/logs/traefik-access.log
# The node: 0 when up.sh was told to leave it out (TESTENV_NODE=0); tests that need pods then
# say so and pass, and fail whenever the node is missing otherwise.
export TESTENV_NODE=$TESTENV_NODE
export NODE_NAME=$NODE_NAME
export NODE_IP=$NODE_IP
export NODE_CONTAINERD_SOCK=$TESTENV_DIR/node/containerd/containerd.sock
# The same servers as pods reach them.
export NODE_PEBBLE_DIRECTORY=https://$NODE_IP:$PEBBLE_PORT/dir
export NODE_DNS_SERVER=$NODE_IP:$DNS_PORT
export FERROCERT_IMAGE_REPOSITORY=$FERROCERT_IMAGE_REPOSITORY
export FERROCERT_IMAGE_TAG=$FERROCERT_IMAGE_TAG
ENV
cat env.sh
log "ready in $(( $(date +%s%3N) - start_ms )) ms (source $TESTENV_DIR/env.sh)"
