#!/usr/bin/env bash
# perf/idle_wakeups.sh — how often each thread of an idle nodepass process wakes up.
#
#   bash perf/idle_wakeups.sh ['<nodepass URL>'] [SECONDS]
#   NODEPASS_BIN=/path/to/other/nodepass bash perf/idle_wakeups.sh   # compare two builds
#
# Starts the URL (default: a single-end forwarder on a free port), lets it settle 2 s, then
# reads every thread's voluntary context switches from /proc/<pid>/task/*/status over
# SECONDS (default 5) of idling and prints them per second; last, the time SIGTERM takes to
# end it. A master:// URL runs in a temporary state directory.
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

trap cleanup EXIT
alloc_ports 1 || exit 1
next_port
URL=${1:-"client://127.0.0.1:$NEXT_PORT/127.0.0.1:9?mode=1&log=warn"}
SECS=${2:-5}
[[ -x "$NODEPASS_BIN" ]] || { echo "no binary at $NODEPASS_BIN (cargo build --release)"; exit 1; }
mkdir -p "$WORK_DIR/state"
spawn "$WORK_DIR/np.log" env NP_MASTER_STATE_DIR="$WORK_DIR/state" "$NODEPASS_BIN" "$URL"
pid=$SPAWNED_PID
sleep 2
kill -0 "$pid" 2>/dev/null || { echo "did not start: $(tail -n 3 "$WORK_DIR/np.log")"; exit 1; }
switches() { awk '/^voluntary_ctxt_switches/ { print $2 }' "$1/status" 2>/dev/null; }
declare -A before
for t in /proc/"$pid"/task/*; do before[$t]=$(switches "$t"); done
sleep "$SECS"
echo "binary: $NODEPASS_BIN; url: $URL"
for t in /proc/"$pid"/task/*; do
    after=$(switches "$t")
    printf '%-14s %s wake-ups/s\n' "$(cat "$t/comm")" \
        "$(awk -v a="$after" -v b="${before[$t]:-0}" -v s="$SECS" 'BEGIN { printf "%.1f", (a - b) / s }')"
done
start=$(date +%s%N)
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
echo "SIGTERM to exit: $((($(date +%s%N) - start) / 1000000)) ms"
