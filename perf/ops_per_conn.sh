#!/usr/bin/env bash
# perf/ops_per_conn.sh — kernel work per new connection, counted, not timed.
#
#   bash perf/ops_per_conn.sh [--contenders LIST] [--seconds S] [--strace] [--keepalive]
#   NODEPASS_BIN=/path/to/other/nodepass bash perf/ops_per_conn.sh   # compare two builds
#
# For each contender (default: nodepass,nodepass-tunnel,nodepass-tunnel-rev; names as in
# perf/run.sh), starts it in front of an nginx serving 128 B, warms a tunnel's pool, then runs
# wrk with `Connection: close` for S seconds (default 3) while `perf stat` counts, over every
# relay process: syscalls entered, io_uring requests submitted, io_uring poll arms
# (readiness round trips) and requests punted to io-wq kernel threads. Each count is divided
# by the requests wrk completed. These counts do not depend on how fast or loaded the machine
# is (unlike req/s), so two builds can be compared on a noisy VM. `--strace` adds a
# per-syscall breakdown (strace -c -f, a separate pass: ptrace slows the relay down).
# `--keepalive` counts per request on kept-alive connections instead (W4: small messages):
# wrk without `Connection: close`, 16 connections opened once.
# Needs perf (linux-perf) with tracepoint access, wrk and nginx.
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

CONTENDERS="nodepass,nodepass-tunnel,nodepass-tunnel-rev" SECS=3 STRACE=0 KEEPALIVE=0
while (($#)); do
    case "$1" in
    --contenders) CONTENDERS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --strace) STRACE=1 ;;
    --keepalive) KEEPALIVE=1 ;;
    *) echo "usage: bash perf/ops_per_conn.sh [--contenders LIST] [--seconds S] [--strace] [--keepalive]"; exit 64 ;;
    esac
    shift
done
for tool in perf wrk nginx; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install linux-perf wrk nginx-light)"; exit 69; }
done
EVENTS="raw_syscalls:sys_enter,io_uring:io_uring_submit_req,io_uring:io_uring_poll_arm,io_uring:io_uring_queue_async_work,context-switches,task-clock"
perf stat -e "$EVENTS" true >/dev/null 2>&1 || { echo "perf cannot read the syscall/io_uring tracepoints here (perf_event_paranoid?)"; exit 69; }
trap cleanup EXIT
NP_QUERY="${NP_QUERY:-log=warn}"

IFS=, read -r -a LIST <<<"$CONTENDERS"
alloc_ports $((1 + 3 * ${#LIST[@]})) || exit 1
d="$WORK_DIR/backend"
mkdir -p "$d/www"
head -c 127 /dev/zero | tr '\0' 'x' >"$d/www/index.html"; echo >>"$d/www/index.html"
chmod -R a+rX "$d"
next_port; http=$NEXT_PORT
cat >"$d/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/nginx-error.log warn;
events { worker_connections 8192; }
http { access_log off; server { listen 127.0.0.1:$http; root $d/www; } }
EOF
spawn "$d/nginx.log" nginx -p "$d" -e "$d/nginx-error.log" -c "$d/nginx.conf"
wait_ready "$http" 5 "$SPAWNED_PID" || { echo "nginx did not start"; exit 1; }

# pids_csv PID... : the pids as perf's comma list (a tunnel is two processes; perf follows threads).
pids_csv() { local p out=""; for p in "$@"; do out+="${out:+,}$p"; done; printf '%s' "$out"; }

echo "binary: $NODEPASS_BIN ($(stat -c %s "$NODEPASS_BIN") bytes, built $(date -r "$NODEPASS_BIN" -Is))"
CLOSE=(-H 'Connection: close') UNIT=conn
((KEEPALIVE)) && CLOSE=() UNIT=req
printf '| contender | requests | syscalls/%s | io_uring ops/%s | poll arms/%s | io-wq punts/%s | context switches/%s | relay CPU µs/%s |\n' $UNIT $UNIT $UNIT $UNIT $UNIT $UNIT
printf '|---|---|---|---|---|---|---|---|\n'
for c in "${LIST[@]}"; do
    next_port; lp=$NEXT_PORT
    if ! start_relay "$c" "$lp" "$http" http; then
        echo "| $c | did not start: $(why_failed) |||||"
        continue
    fi
    read -r -a pids <<<"$RELAY_PIDS"
    wait_ready "$lp" 10 "${pids[@]}" || { echo "| $c | not listening |||||"; continue; }
    if [[ "$c" == nodepass-tunnel* || "$c" == go-nodepass-tunnel* ]]; then
        wait_pool "$WORK_DIR/$c-http/client.log" "$NP_WARM_TIMEOUT" "${pids[@]}" || { echo "| $c | pool not warm |||||"; continue; }
    fi
    wrk -t1 -c16 -d1s "${CLOSE[@]}" "http://127.0.0.1:$lp/" >/dev/null 2>&1 # warm-up
    out="$WORK_DIR/$c.perf"
    perf stat -x, -e "$EVENTS" -p "$(pids_csv "${pids[@]}")" -o "$out" -- \
        wrk -t1 -c16 -d"${SECS}s" "${CLOSE[@]}" "http://127.0.0.1:$lp/" >"$WORK_DIR/$c.wrk" 2>&1
    reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK_DIR/$c.wrk")
    count() { awk -F, -v e="$1" '$3 == e { print $1 }' "$out"; }
    per() { awk -v n="$1" -v r="$reqs" 'BEGIN { if (r > 0 && n != "") printf "%.1f", n / r; else printf "n/a" }'; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "${reqs:-0}" \
        "$(per "$(count raw_syscalls:sys_enter)")" "$(per "$(count io_uring:io_uring_submit_req)")" \
        "$(per "$(count io_uring:io_uring_poll_arm)")" "$(per "$(count io_uring:io_uring_queue_async_work)")" \
        "$(per "$(count context-switches)")" \
        "$(awk -v n="$(count task-clock)" -v r="$reqs" 'BEGIN { if (r > 0 && n != "") printf "%.1f", n * 1000 / r; else printf "n/a" }')"
    if ((STRACE)) && command -v strace >/dev/null; then
        args=()
        for p in "${pids[@]}"; do args+=(-p "$p"); done
        strace -c -f -o "$WORK_DIR/$c.strace" "${args[@]}" &
        st=$!
        sleep 0.5
        wrk -t1 -c16 -d"${SECS}s" "${CLOSE[@]}" "http://127.0.0.1:$lp/" >"$WORK_DIR/$c.wrk2" 2>&1
        kill -INT "$st" 2>/dev/null; wait "$st" 2>/dev/null
        reqs2=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK_DIR/$c.wrk2")
        echo "  strace -c ($c, ${reqs2:-0} requests; calls per request):"
        awk -v r="${reqs2:-0}" 'NR > 2 && $1 ~ /^[0-9.]+$/ && r > 0 { if ($NF != "total") printf "    %-20s %.2f\n", $NF, $4 / r }' \
            "$WORK_DIR/$c.strace" | sort -k2 -rn | head -15
    fi
    for pg in "${pids[@]}"; do kill_group "$pg"; done
done
