# shellcheck shell=bash
# Process helpers shared by up.sh and node.sh (sourced after versions.sh and a `log` function).

# running NAME: whether the process up.sh/node.sh started as NAME is alive.
running() { [ -f "$TESTENV_DIR/run/$1.pid" ] && kill -0 "$(cat "$TESTENV_DIR/run/$1.pid")" 2>/dev/null; }
# start NAME CMD...: runs CMD in the background (own session, so down.sh can stop its group).
start() {
  local name=$1; shift
  if running "$name"; then log "$name already running"; return 0; fi
  setsid "$@" >"$TESTENV_DIR/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$TESTENV_DIR/run/$name.pid"
}
# wait_for NAME TIMEOUT-SECONDS COMMAND...: until COMMAND succeeds; on time-out shows NAME's log.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what did not become ready in ${limit}s; last log lines:"
      tail -n 30 "$TESTENV_DIR/logs/$what.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}
