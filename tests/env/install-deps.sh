#!/usr/bin/env bash
# Installs what the local test environment needs on a fresh Debian 12 machine (root): BIND and its
# tools, openssl, curl, iproute2 (`ip`: up.sh adds local addresses to lo). Go, Rust and kubectl come
# with the machine. The Go-built programs (kube-apiserver, etcd, pebble, helm, traefik) are built by
# build.sh.
set -euo pipefail
need=()
for pair in named:bind9 nsupdate:bind9-utils dig:bind9-dnsutils openssl:openssl curl:curl ip:iproute2; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
command -v kubectl >/dev/null || { echo "kubectl is not on this machine" >&2; exit 1; }
command -v go >/dev/null || { echo "go is not on this machine" >&2; exit 1; }
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
