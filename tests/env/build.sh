#!/usr/bin/env bash
# Builds kube-apiserver, kubelet, kube-controller-manager, kube-scheduler, etcd, pebble, helm and traefik from their Go modules,
# and the cert-manager DNS-01 webhook solver (tests/env/webhook-solver/) against cert-manager's module,
# with the machine's Go toolchain. Each binary is cached as NAME-VERSION under
# $TESTENV_BIN; an existing one is reused, so only the first run pays. Also
# copies the Gateway API standard-channel CRDs out of their module into
# $FERROCERT_CACHE/gateway-api-VERSION/standard/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
mkdir -p "$TESTENV_BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

log() { printf '[build] %s\n' "$*" >&2; }

# A scratch module directory per component and build (two clones may build at once: each writes
# its own directory and temporary binary, and the first finished binary wins).
workdir() { local d="$FERROCERT_CACHE/src/$1.$$"; rm -rf "$d"; mkdir -p "$d"; echo "$d"; }

# kube-apiserver and the node's programs (kubelet, kube-controller-manager, kube-scheduler) from
# one wrapper module: the kubernetes module requires its staging modules at v0.0.0 through replace
# lines, so the wrapper reads them from its go.mod and points each at its release.
KUBE_PROGRAMS=(kube-apiserver kubelet kube-controller-manager kube-scheduler)
build_kube() {
  local missing=() p
  for p in "${KUBE_PROGRAMS[@]}"; do
    [ -x "$TESTENV_BIN/$p-$KUBERNETES_VERSION" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "${missing[*]} $KUBERNETES_VERSION (kube-apiserver alone takes several minutes on 2 cores)"
  local d; d=$(workdir kubernetes)
  local staging=${KUBERNETES_VERSION/v1./v0.}
  local gomod; gomod=$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module ferrocert.dev/testenv/kubernetes"
    echo "go 1.26"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    grep -oE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+' "$gomod" \
      | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}'
  } > "$d/go.mod"
  {
    printf '//go:build tools\n\npackage main\n\nimport (\n'
    for p in "${KUBE_PROGRAMS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$p"; done
    printf ')\n'
  } > "$d/tools.go"
  (cd "$d" && { go mod tidy -e >/dev/null 2>&1 || true; })
  for p in "${missing[@]}"; do
    local out="$TESTENV_BIN/$p-$KUBERNETES_VERSION" t0=$SECONDS
    (cd "$d" && go build -trimpath -o "$out.tmp.$$" -ldflags "-s -w \
       -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION \
       -X k8s.io/component-base/version.gitMajor=1 \
       -X k8s.io/component-base/version.gitMinor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)" \
       "k8s.io/kubernetes/cmd/$p")
    mv "$out.tmp.$$" "$out"
    log "$p built in $((SECONDS - t0)) s"
  done
  rm -rf "$d"
}

build_etcd() {
  local out="$TESTENV_BIN/etcd-$ETCD_VERSION"
  [ -x "$out" ] && return 0
  log "etcd $ETCD_VERSION"
  local d; d=$(workdir etcd)
  printf 'module ferrocert.dev/testenv/etcd\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$d/go.mod"
  cat > "$d/main.go" <<'GO'
// Command etcd runs the etcd server from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$d" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$out.tmp.$$" .)
  mv "$out.tmp.$$" "$out"
  rm -rf "$d"
}

build_go_install() { # name module version
  local out="$TESTENV_BIN/$1-$3"
  [ -x "$out" ] && return 0
  log "$1 $3"
  local gobin; gobin=$(mktemp -d)
  GOBIN=$gobin go install -trimpath -ldflags "-s -w" "$2@$3"
  mv "$gobin/$1" "$out"; rm -rf "$gobin"
}

# Traefik's go.mod has replace lines, so `go install traefik@version` refuses
# it: build inside a writable copy of the module instead.
build_traefik() {
  local out="$TESTENV_BIN/traefik-$TRAEFIK_VERSION"
  [ -x "$out" ] && return 0
  log "traefik $TRAEFIK_VERSION (a few minutes on 2 cores)"
  local t0=$SECONDS
  local dir; dir=$(go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$dir" ] || { log "traefik module $TRAEFIK_VERSION not downloaded"; return 1; }
  local d; d=$(workdir traefik)
  cp -R "$dir/." "$d"
  chmod -R u+w "$d"
  (cd "$d" && go build -trimpath -o "$out.tmp.$$" \
     -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" ./cmd/traefik)
  mv "$out.tmp.$$" "$out"
  rm -rf "$d"
  log "traefik built in $((SECONDS - t0)) s"
}

# The cert-manager DNS-01 webhook solver (an aggregated API server writing TXT records into BIND
# over RFC 2136) from tests/env/webhook-solver/main.go, against cert-manager's webhook library.
# Cached by cert-manager version only: after editing main.go, delete the cached binary to rebuild.
MIEKG_DNS_VERSION=v1.1.72 # what cert-manager $CERT_MANAGER_VERSION requires
build_webhook_solver() {
  local src="$here/webhook-solver/main.go"
  local out="$TESTENV_BIN/cm-webhook-solver-$CERT_MANAGER_VERSION"
  [ -x "$out" ] && return 0
  log "cm-webhook-solver (cert-manager $CERT_MANAGER_VERSION webhook library)"
  local t0=$SECONDS
  local d; d=$(workdir cm-webhook-solver)
  printf 'module ferrocert.dev/testenv/cm-webhook-solver\n\ngo 1.26\n\nrequire (\n\tgithub.com/cert-manager/cert-manager %s\n\tgithub.com/miekg/dns %s\n)\n' \
    "$CERT_MANAGER_VERSION" "$MIEKG_DNS_VERSION" > "$d/go.mod"
  cp "$src" "$d/main.go"
  (cd "$d" && go mod tidy && go vet . && go build -trimpath -ldflags "-s -w" -o "$out.tmp.$$" .)
  mv "$out.tmp.$$" "$out"
  rm -rf "$d"
  log "cm-webhook-solver built in $((SECONDS - t0)) s"
}

gateway_api_crds() {
  local out="$FERROCERT_CACHE/gateway-api-$GATEWAY_API_VERSION/standard"
  [ -d "$out" ] && return 0
  log "gateway-api $GATEWAY_API_VERSION CRDs (standard channel)"
  local dir; dir=$(go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  ls "$dir"/config/crd/standard/*.yaml >/dev/null || { log "no standard CRDs in gateway-api $GATEWAY_API_VERSION"; return 1; }
  rm -rf "$out.tmp.$$"; mkdir -p "$out.tmp.$$"
  cp "$dir"/config/crd/standard/*.yaml "$out.tmp.$$"
  chmod u+w "$out.tmp.$$"/*.yaml
  mv -T "$out.tmp.$$" "$out" 2>/dev/null || rm -rf "$out.tmp.$$"
}

build_etcd
build_go_install pebble github.com/letsencrypt/pebble/v2/cmd/pebble "$PEBBLE_VERSION"
build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
build_kube
build_traefik
gateway_api_crds
build_webhook_solver
log "all binaries in $TESTENV_BIN"
