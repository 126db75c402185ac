#!/usr/bin/env bash
# Builds a container image without Docker or a registry: a docker-archive (one layer tar of the
# root filesystem, a config JSON, manifest.json with the tag) written by hand, optionally imported
# into the test node's containerd (`ctr -n k8s.io images import`), where pods with
# `imagePullPolicy: Never` (or IfNotPresent) find it.
#
#   tests/env/image.sh [--binary PATH] [--tag REF] [--out FILE] [--import]
#   tests/env/image.sh --pause [--tag REF] [--import]
#
# The ferrocert image has the content the Dockerfile describes (distroless "static": /ferrocert,
# CA certificates, /etc/passwd with the nonroot user, /tmp; user 65532:65532, entrypoint
# /ferrocert), plus the shared libraries `ldd` lists for the binary: the toolchain here has no
# musl target, so the binary links glibc dynamically. --binary defaults to target/release/ferrocert
# (`cargo build --release --locked --bin ferrocert`); the end-to-end test passes the debug binary
# Cargo built for it (debug information stripped), so the image always holds the code under test
# without a second, release build (minutes on 2 cores).
# --pause builds the sandbox ("pause") image the node's containerd is configured with: static
# busybox sleeping.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
log() { printf '[image] %s\n' "$*" >&2; }

binary=$here/../../target/release/ferrocert
tag=$FERROCERT_IMAGE_REPOSITORY:$FERROCERT_IMAGE_TAG
out=
import=0
pause=0
while [ $# -gt 0 ]; do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --import) import=1; shift ;;
    --pause) pause=1; shift ;;
    *) echo "usage: $0 [--binary PATH | --pause] [--tag REF] [--out FILE] [--import]" >&2; exit 2 ;;
  esac
done
if [ "$pause" = 1 ] && [ "$tag" = "$FERROCERT_IMAGE_REPOSITORY:$FERROCERT_IMAGE_TAG" ]; then
  tag=$NODE_PAUSE_IMAGE
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{etc/ssl/certs,tmp,home/nonroot} "$work/archive"
chmod 1777 "$root/tmp"

# copy_with_libs FILE DEST: FILE at DEST in the image, and every library ldd lists at its path.
copy_with_libs() {
  install -D -m 0755 "$1" "$root$2"
  local lib
  for lib in $(ldd "$1" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [ -f "$lib" ] && install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
  done
}

if [ "$pause" = 1 ]; then
  busybox=$(command -v busybox) || { log "busybox is missing: run tests/env/install-deps.sh"; exit 1; }
  copy_with_libs "$busybox" /bin/busybox
  entrypoint='["/bin/busybox","sleep","2147483647"]'
  user=65535:65535
else
  [ -x "$binary" ] || { log "no binary at $binary (cargo build --release --locked --bin ferrocert)"; exit 1; }
  copy_with_libs "$binary" /ferrocert
  # A debug build is mostly debug information (hundreds of MB): the image carries the code only.
  if command -v objcopy >/dev/null; then objcopy --strip-debug "$root/ferrocert"; fi
  entrypoint='["/ferrocert"]'
  user=65532:65532
fi
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
echo 'hosts: files dns' > "$root/etc/nsswitch.conf"
chown 65532:65532 "$root/home/nonroot"
chmod 0700 "$root/home/nonroot"

# The layer: reproducible (sorted, mtime 0, numeric owners).
tar --numeric-owner --sort=name --mtime=@0 -C "$root" -cf "$work/layer.tar" .
layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
mkdir -p "$work/archive/$layer_sha"
mv "$work/layer.tar" "$work/archive/$layer_sha/layer.tar"
cat > "$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"User":"$user","Entrypoint":$entrypoint,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],"WorkingDir":"/","Labels":{"org.opencontainers.image.title":"ferrocert","org.opencontainers.image.licenses":"Apache-2.0"}},"rootfs":{"type":"layers","diff_ids":["sha256:$layer_sha"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"tests/env/image.sh"}]}
JSON
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/archive/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]\n' \
  "$config_sha" "$tag" "$layer_sha" > "$work/archive/manifest.json"
archive=${out:-$work/image.tar}
tar --sort=name --mtime=@0 -C "$work/archive" -cf "$archive" \
  manifest.json "$config_sha.json" "$layer_sha/layer.tar"
log "$tag: $(du -h "$archive" | cut -f1) (config sha256:${config_sha:0:12})"

if [ "$import" = 1 ]; then
  sock=$TESTENV_DIR/node/containerd/containerd.sock
  [ -S "$sock" ] || { log "the test node's containerd is not running ($sock): tests/env/up.sh"; exit 1; }
  ctr --address "$sock" -n k8s.io images import "$archive" >/dev/null
  log "imported into the node's containerd"
fi
