#!/usr/bin/env bash
# Installs what the local test environment needs on a fresh Debian 12 machine (root): BIND and its
# tools, openssl, curl, iproute2 (`ip`: up.sh adds local addresses to lo), and for the node
# containerd, runc, the CNI plugins (/usr/lib/cni), iptables and static busybox (the pause image),
# and Java's keytool (default-jre-headless: the keystore tests open what ferrocert writes in it).
# Go, Rust and kubectl come with the machine. The Go-built programs (kube-apiserver, kubelet,
# kube-controller-manager, kube-scheduler, etcd, pebble, helm, traefik) are built by build.sh.
# Idempotent: installs only what is missing, with one `apt-get update` when it does.
set -euo pipefail
need=()
for pair in named:bind9 nsupdate:bind9-utils dig:bind9-dnsutils openssl:openssl curl:curl ip:iproute2 \
    containerd:containerd runc:runc iptables:iptables busybox:busybox-static \
    keytool:default-jre-headless; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
  || need+=(containernetworking-plugins)
command -v kubectl >/dev/null || { echo "kubectl is not on this machine" >&2; exit 1; }
command -v go >/dev/null || { echo "go is not on this machine" >&2; exit 1; }
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
