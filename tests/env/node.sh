#!/usr/bin/env bash
# The test environment's one node: containerd (Debian's, with its own root, state and socket under
# $TESTENV_DIR/node), the kubelet, kube-controller-manager and kube-scheduler, a bridge for pods
# ($NODE_BRIDGE, $NODE_IP on $POD_CIDR) and the DNAT rules through which pods reach the servers of
# the environment, which all listen on 127.0.0.1: the API server (at the `kubernetes` Service's
# address, port 443), Pebble and BIND (at the node IP, their own ports).
#
#   node.sh up     called by up.sh once the API server is ready (idempotent)
#   node.sh down   called by down.sh: stops everything and removes exactly what `up` added
#
# No kube-proxy and no cluster DNS: Services do not route inside pods (nothing here needs them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
log() { printf '[node] %s\n' "$*" >&2; }

node=$TESTENV_DIR/node
pki=$TESTENV_DIR/pki
sock=$node/containerd/containerd.sock
# One nat chain holds every rule added here; PREROUTING jumps to it for pod traffic.
chain=FERROCERT-NODE
# Where the kubelet writes its iptables chains (removed on down; nothing else makes them here).
kubelet_chains=(KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-NODEPORTS KUBE-POSTROUTING KUBE-MARK-MASQ KUBE-MARK-DROP)

. "$here/lib.sh"
start_kubelet() {
  start kubelet "$TESTENV_DIR/bin/kubelet" --config "$node/kubelet.yaml" \
    --kubeconfig "$node/kubelet.kubeconfig" --root-dir "$node/kubelet" --cert-dir "$node/kubelet/pki" \
    --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" --v 1
}
k() { kubectl --kubeconfig "$TESTENV_DIR/kubeconfig" "$@"; }

kubeconfig() { # file user-cert user-key
  cat > "$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$pki/ca.crt"}
users:
- name: user
  user: {client-certificate: "$2", client-key: "$3"}
contexts:
- name: testenv
  context: {cluster: testenv, user: user}
current-context: testenv
KC
}

network_up() {
  if ! ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    ip link add "$NODE_BRIDGE" type bridge
    echo "$NODE_BRIDGE" > "$node/added-bridge"
  fi
  ip -4 -o addr show dev "$NODE_BRIDGE" | grep -qF " inet $NODE_IP/" \
    || ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # DNAT to 127.0.0.1 needs the bridge to route loopback destinations.
  sysctl -qw "net.ipv4.conf.$NODE_BRIDGE.route_localnet=1"
  iptables -w -t nat -N "$chain" 2>/dev/null || iptables -w -t nat -F "$chain"
  iptables -w -t nat -C PREROUTING -s "$POD_CIDR" -j "$chain" 2>/dev/null \
    || iptables -w -t nat -A PREROUTING -s "$POD_CIDR" -j "$chain"
  iptables -w -t nat -A "$chain" -d "$KUBERNETES_SERVICE_IP/32" -p tcp --dport 443 \
    -j DNAT --to-destination "127.0.0.1:$APISERVER_PORT"
  local port proto
  for port in "$PEBBLE_PORT" "$PEBBLE_EAB_PORT"; do
    iptables -w -t nat -A "$chain" -d "$NODE_IP/32" -p tcp --dport "$port" \
      -j DNAT --to-destination "127.0.0.1:$port"
  done
  for proto in udp tcp; do
    iptables -w -t nat -A "$chain" -d "$NODE_IP/32" -p "$proto" --dport "$DNS_PORT" \
      -j DNAT --to-destination "127.0.0.1:$DNS_PORT"
  done
}

up() {
  for b in kubelet kube-controller-manager kube-scheduler; do
    ln -sf "$TESTENV_BIN/$b-$KUBERNETES_VERSION" "$TESTENV_DIR/bin/$b"
  done
  for tool in containerd containerd-shim-runc-v2 runc ctr iptables busybox; do
    command -v "$tool" >/dev/null || { log "missing $tool: run tests/env/install-deps.sh"; exit 1; }
  done
  [ -x /usr/lib/cni/bridge ] || { log "missing the CNI plugins: run tests/env/install-deps.sh"; exit 1; }
  mkdir -p "$node"/{containerd,cni/net.d,cni/ipam,kubelet,manifests,pod-logs,runc}

  # The node's client certificate (the Node authorizer knows it by its name and group).
  if [ ! -f "$pki/node.crt" ]; then
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -subj "/O=system:nodes/CN=system:node:$NODE_NAME" \
      -keyout "$pki/node.key" -out "$pki/node.csr" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > "$pki/node.ext"
    openssl x509 -req -in "$pki/node.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 3650 -extfile "$pki/node.ext" -out "$pki/node.crt" 2>/dev/null
  fi
  kubeconfig "$node/kubelet.kubeconfig" "$pki/node.crt" "$pki/node.key"
  kubeconfig "$node/admin.kubeconfig" "$pki/admin.crt" "$pki/admin.key"

  network_up

  # Only containerd's own files: no /etc/containerd, /run/containerd or /var/lib/containerd use.
  cat > "$node/containerd/config.toml" <<TOML
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$NODE_PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: without this, runc cannot lower oom_score_adj and every
  # pod fails ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  # Network namespaces under the state directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "$node/runc"
TOML
  cat > "$node/cni/net.d/10-ferrocert.conflist" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "ferrocert-testenv",
  "plugins": [{
    "type": "bridge",
    "bridge": "$NODE_BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "dataDir": "$node/cni/ipam",
      "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
      "routes": [{"dst": "0.0.0.0/0"}]
    }
  }]
}
JSON
  # Shims put their sockets in /run/containerd/s whatever the state directory: note whether it
  # was there before, so down.sh removes it only if this made it.
  [ -d /run/containerd ] || [ -f "$node/added-run-containerd" ] || touch "$node/added-run-containerd"
  # libcni caches each attachment's result under /var/lib/cni (not configurable through containerd).
  [ -d /var/lib/cni ] || [ -f "$node/added-var-lib-cni" ] || touch "$node/added-var-lib-cni"
  # The kubelet links container logs from /var/log/containers (fixed path).
  [ -d /var/log/containers ] || [ -f "$node/added-var-log-containers" ] || touch "$node/added-var-log-containers"
  start containerd containerd --config "$node/containerd/config.toml"
  wait_for containerd 20 ctr --address "$sock" version
  if ! ctr --address "$sock" -n k8s.io images ls -q | grep -qxF "$NODE_PAUSE_IMAGE"; then
    "$here/image.sh" --pause --import
  fi

  cat > "$node/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$NODE_IP"
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
containerRuntimeEndpoint: "unix://$sock"
cgroupDriver: cgroupfs
# The machines are cgroup v1; kubelet 1.35+ refuses that unless told otherwise.
failCgroupV1: false
failSwapOn: false
staticPodPath: "$node/manifests"
podLogsDir: "$node/pod-logs"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
# A small, busy disk: never evict or collect images because of it.
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 40
serializeImagePulls: false
registerNode: true
YAML
  # The kubelet's own serving certificate (self-signed) goes under --cert-dir.
  start_kubelet
  start kube-controller-manager "$TESTENV_DIR/bin/kube-controller-manager" \
    --kubeconfig "$node/admin.kubeconfig" \
    --authentication-kubeconfig "$node/admin.kubeconfig" --authorization-kubeconfig "$node/admin.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --cert-dir "$node/kcm-pki" \
    --leader-elect=false --use-service-account-credentials=false \
    --root-ca-file "$pki/ca.crt" --service-account-private-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR"
  start kube-scheduler "$TESTENV_DIR/bin/kube-scheduler" \
    --kubeconfig "$node/admin.kubeconfig" \
    --authentication-kubeconfig "$node/admin.kubeconfig" --authorization-kubeconfig "$node/admin.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --cert-dir "$node/scheduler-pki" \
    --leader-elect=false
  wait_for kubelet 60 curl -sf "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
  wait_for kube-controller-manager 60 curl -sfk "https://127.0.0.1:$KCM_PORT/healthz"
  wait_for kube-scheduler 60 curl -sfk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  # `kubectl wait` fails at once on an object that does not exist yet, and the kubelet registers
  # the Node only a moment after its healthz answers: wait for the Node to exist first. (A CI
  # run failed in 26 s on exactly that race, misread before as a stuck kubelet.)
  local deadline=$((SECONDS + 60))
  until k get node "$NODE_NAME" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "node $NODE_NAME not registered in 60s; last kubelet log lines:"
      tail -n 30 "$TESTENV_DIR/logs/kubelet.log" >&2; exit 1
    fi
    sleep 0.2
  done
  if ! k wait --for condition=Ready --timeout 60s "node/$NODE_NAME" >/dev/null; then
    log "node $NODE_NAME not Ready in 60s:"; k describe node "$NODE_NAME" >&2 || true
    tail -n 30 "$TESTENV_DIR/logs/kubelet.log" >&2; exit 1
  fi
  # Pods run in the default ServiceAccount until the controller-manager has made it.
  deadline=$((SECONDS + 30))
  until k -n default get serviceaccount default >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "no default ServiceAccount after 30s"; exit 1; }
    sleep 0.2
  done
}

# Stops a process started by start() (by its pid file) and waits for it.
stop() {
  local pidfile=$TESTENV_DIR/run/$1.pid pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

# The pids of every process in the kubelet's `kubepods` cgroups (the containers).
pod_pids() {
  find /sys/fs/cgroup/*/kubepods -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u
}

down() {
  [ -d "$node" ] || return 0
  # Best effort from here on: one step failing must not leave the later ones undone.
  set +e
  stop kubelet
  stop kube-scheduler
  stop kube-controller-manager
  # The containers, then the shims of this containerd (found by its socket), then containerd.
  local pid
  for pid in $(pod_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do [ -z "$(pod_pids)" ] && break; sleep 0.1; done
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock( |\$)" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop containerd
  # Mounts under the node's directory (container root filesystems, /dev/shm, network namespaces,
  # projected volumes), deepest first.
  awk -v p="$node/" 'index($2, p) == 1 {print $2}' /proc/self/mounts | sort -r \
    | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  # The kubelet's cgroups, children first, in every hierarchy.
  find /sys/fs/cgroup/*/kubepods -depth -type d -exec rmdir {} + 2>/dev/null || true
  # Network: the bridge (the pods' veths went with their namespaces) and the rules.
  if [ -f "$node/added-bridge" ]; then ip link del "$NODE_BRIDGE" 2>/dev/null || true; fi
  while iptables -w -t nat -D PREROUTING -s "$POD_CIDR" -j "$chain" 2>/dev/null; do :; done
  iptables -w -t nat -F "$chain" 2>/dev/null && iptables -w -t nat -X "$chain" 2>/dev/null
  local t c
  for t in filter nat mangle; do
    for c in "${kubelet_chains[@]}"; do
      # Jumps to the chain from the built-in chains first, then the chain itself.
      { iptables -w -t "$t" -S 2>/dev/null | grep -E "^-A [A-Z-]+ .*-j $c( |\$)" | grep -vE "^-A $c " || true; } \
        | while read -r rule; do
            # (eval: the rule's quoted comments stay one word each)
            eval "iptables -w -t $t ${rule/-A/-D}" 2>/dev/null || true
          done
      iptables -w -t "$t" -F "$c" 2>/dev/null && iptables -w -t "$t" -X "$c" 2>/dev/null
    done
  done
  for c in "${kubelet_chains[@]}"; do
    ip6tables -w -t filter -F "$c" 2>/dev/null && ip6tables -w -t filter -X "$c" 2>/dev/null
    ip6tables -w -t nat -F "$c" 2>/dev/null && ip6tables -w -t nat -X "$c" 2>/dev/null
    ip6tables -w -t mangle -F "$c" 2>/dev/null && ip6tables -w -t mangle -X "$c" 2>/dev/null
  done
  # The kubelet's container log links point into $node/pod-logs.
  local l
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] && case $(readlink "$l") in "$node"/*) rm -f "$l" ;; esac
  done
  if [ -f "$node/added-var-log-containers" ]; then rmdir /var/log/containers; fi
  if [ -f "$node/added-run-containerd" ]; then rm -rf /run/containerd; fi
  if [ -f "$node/added-var-lib-cni" ]; then
    rm -rf /var/lib/cni
  else
    rm -f /var/lib/cni/results/ferrocert-testenv-*
  fi
  rm -rf "$node"
  set -e
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
