#!/usr/bin/env bash
# Stops everything tests/env/up.sh started (Traefik and the node included), removes the addresses it
# added to lo, the node's bridge, iptables rules, mounts and cgroups, and its state. Idempotent.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"
[ -d "$TESTENV_DIR/run" ] || exit 0
# The node first: its containers, mounts, cgroups, bridge and iptables rules.
"$here/node.sh" down
for pidfile in "$TESTENV_DIR"/run/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
done
for pidfile in "$TESTENV_DIR"/run/*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null; rm -f "$pidfile"
done
# The local addresses up.sh added to lo (and only those).
if [ -f "$TESTENV_DIR/run/lo-addrs" ]; then
  while read -r addr; do
    [ -n "$addr" ] && ip addr del "$addr/32" dev lo 2>/dev/null
  done < "$TESTENV_DIR/run/lo-addrs"
fi
rm -rf "$TESTENV_DIR"
echo "[testenv] stopped" >&2
