#!/usr/bin/env bash
# perf/ops_per_conn.sh — kernel work per new connection, counted, not timed.
#
#   bash perf/ops_per_conn.sh [--contenders LIST] [--seconds S] [--strace] [--keepalive | --bulk MIB [--streams N]]
#   NODEPASS_BIN=/path/to/other/nodepass bash perf/ops_per_conn.sh   # compare two builds
#
# For each contender (default: nodepass,nodepass-tunnel,nodepass-tunnel-rev; names as in
# perf/run.sh), starts it in front of an nginx serving 128 B, warms a tunnel's pool, then runs
# wrk with `Connection: close` for S seconds (default 3) while `perf stat` counts, over every
# relay process: syscalls entered, io_uring requests submitted, io_uring poll arms
# (readiness round trips) and requests punted to io-wq kernel threads. Each count is divided
# by the requests wrk completed. These counts do not depend on how fast or loaded the machine
# is (unlike req/s), so two builds can be compared on a noisy VM. The load then runs once
# more without perf for the untraced relay CPU (from /proc: the tracepoints make each syscall
# dearer, so the traced CPU favours whichever build makes fewer). `--strace` adds a
# per-syscall breakdown (strace -c -f, a separate pass: ptrace slows the relay down).
# `--keepalive` counts per request on kept-alive connections instead (W4: small messages):
# wrk without `Connection: close`, 16 connections opened once. `--bulk MIB` counts per MiB
# of one iperf3 stream of MIB MiB through the relay instead (W1: bulk bytes; the backend is
# an iperf3 server), so copies, record sizes and batching compare between builds; with
# `--streams N`, MIB MiB in all over N parallel streams (W2).
# Needs perf (linux-perf) with tracepoint access, wrk and nginx.
set -uo pipefail

# shellcheck source=perf/lib.sh
source "$(dirname "$0")/lib.sh"

CONTENDERS="nodepass,nodepass-tunnel,nodepass-tunnel-rev" SECS=3 STRACE=0 KEEPALIVE=0 BULK=0 STREAMS=1
while (($#)); do
    case "$1" in
    --contenders) CONTENDERS=$2; shift ;;
    --seconds) SECS=$2; shift ;;
    --strace) STRACE=1 ;;
    --keepalive) KEEPALIVE=1 ;;
    --bulk) BULK=$2; shift ;;
    --streams) STREAMS=$2; shift ;;
    *) echo "usage: bash perf/ops_per_conn.sh [--contenders LIST] [--seconds S] [--strace] [--keepalive | --bulk MIB [--streams N]]"; exit 64 ;;
    esac
    shift
done
TOOLS=(perf wrk nginx)
((BULK)) && TOOLS=(perf iperf3)
for tool in "${TOOLS[@]}"; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install linux-perf wrk nginx-light iperf3)"; exit 69; }
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
if ((BULK)); then
    spawn "$d/iperf3.log" iperf3 -s -B 127.0.0.1 -p "$http"
    wait_ready "$http" 5 "$SPAWNED_PID" || { echo "iperf3 -s did not start"; exit 1; }
else
    spawn "$d/nginx.log" nginx -p "$d" -e "$d/nginx-error.log" -c "$d/nginx.conf"
    wait_ready "$http" 5 "$SPAWNED_PID" || { echo "nginx did not start"; exit 1; }
fi

# load SECONDS OUT : the measured load through the relay on port $lp (wrk, or iperf3 in --bulk).
load() {
    if ((BULK)); then
        timeout 120 iperf3 -c 127.0.0.1 -p "$lp" -n "${BULK}M" -P "$STREAMS" >"$2" 2>&1
    else
        wrk -t1 -c16 -d"${1}s" "${CLOSE[@]}" "http://127.0.0.1:$lp/" >"$2" 2>&1
    fi
}
# units OUT : what the load completed (requests, or MiB in --bulk).
units() {
    if ((BULK)); then
        grep -q 'receiver' "$1" && echo "$BULK"
    else
        sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$1"
    fi
}

# cpu_ticks PID... : user + system clock ticks the processes (all their threads) have used.
cpu_ticks() { local p sum=0; for p in "$@"; do sum=$((sum + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo "$sum"; }

# pids_csv PID... : the pids as perf's comma list (a tunnel is two processes; perf follows threads).
pids_csv() { local p out=""; for p in "$@"; do out+="${out:+,}$p"; done; printf '%s' "$out"; }

echo "binary: $NODEPASS_BIN ($(stat -c %s "$NODEPASS_BIN") bytes, built $(date -r "$NODEPASS_BIN" -Is))"
CLOSE=(-H 'Connection: close') UNIT=conn
((KEEPALIVE)) && CLOSE=() UNIT=req
((BULK)) && CLOSE=() UNIT=MiB
printf '| contender | %ss | syscalls/%s | io_uring ops/%s | poll arms/%s | io-wq punts/%s | context switches/%s | relay CPU µs/%s | untraced CPU µs/%s |\n' $UNIT $UNIT $UNIT $UNIT $UNIT $UNIT $UNIT $UNIT
printf '|---|---|---|---|---|---|---|---|---|\n'
for c in "${LIST[@]}"; do
    next_port; lp=$NEXT_PORT
    tag=http
    ((BULK)) && tag=tcp # iperf3 behind: the readiness probe holds a connection instead of a GET
    if ! start_relay "$c" "$lp" "$http" "$tag"; then
        echo "| $c | did not start: $(why_failed) |||||"
        continue
    fi
    read -r -a pids <<<"$RELAY_PIDS"
    wait_ready "$lp" 10 "${pids[@]}" || { echo "| $c | not listening |||||"; continue; }
    if [[ "$c" == nodepass-tunnel* || "$c" == go-nodepass-tunnel* ]]; then
        wait_pool "$WORK_DIR/$c-$tag/client.log" "$NP_WARM_TIMEOUT" "${pids[@]}" || { echo "| $c | pool not warm |||||"; continue; }
    fi
    ((BULK)) || load 1 /dev/null # warm-up
    out="$WORK_DIR/$c.perf"
    perf stat -x, -e "$EVENTS" -p "$(pids_csv "${pids[@]}")" -o "$out" &
    pst=$!
    sleep 0.2
    load "$SECS" "$WORK_DIR/$c.wrk"
    kill -INT "$pst" 2>/dev/null; wait "$pst" 2>/dev/null
    reqs=$(units "$WORK_DIR/$c.wrk")
    # The same load again without perf: the tracepoints make every syscall dearer, so the
    # traced CPU favours a build that trades syscalls for io_uring operations. This pass
    # reads the relay processes' CPU time from /proc instead (clock ticks).
    t0=$(cpu_ticks "${pids[@]}")
    load "$SECS" "$WORK_DIR/$c.wrk-untraced"
    t1=$(cpu_ticks "${pids[@]}")
    reqs_u=$(units "$WORK_DIR/$c.wrk-untraced")
    untraced=$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v r="${reqs_u:-0}" 'BEGIN { if (r > 0) printf "%.1f", t * 1e6 / hz / r; else printf "n/a" }')
    count() { awk -F, -v e="$1" '$3 == e { print $1 }' "$out"; }
    per() { awk -v n="$1" -v r="$reqs" 'BEGIN { if (r > 0 && n != "") printf "%.1f", n / r; else printf "n/a" }'; }
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$c" "${reqs:-0}" \
        "$(per "$(count raw_syscalls:sys_enter)")" "$(per "$(count io_uring:io_uring_submit_req)")" \
        "$(per "$(count io_uring:io_uring_poll_arm)")" "$(per "$(count io_uring:io_uring_queue_async_work)")" \
        "$(per "$(count context-switches)")" \
        "$(awk -v n="$(count task-clock)" -v r="$reqs" 'BEGIN { if (r > 0 && n != "") printf "%.1f", n * 1000 / r; else printf "n/a" }')" \
        "$untraced"
    if ((STRACE)) && command -v strace >/dev/null; then
        args=()
        for p in "${pids[@]}"; do args+=(-p "$p"); done
        strace -c -f -o "$WORK_DIR/$c.strace" "${args[@]}" &
        st=$!
        sleep 0.5
        load "$SECS" "$WORK_DIR/$c.wrk2"
        kill -INT "$st" 2>/dev/null; wait "$st" 2>/dev/null
        reqs2=$(units "$WORK_DIR/$c.wrk2")
        echo "  strace -c ($c, ${reqs2:-0} ${UNIT}s; calls per $UNIT):"
        awk -v r="${reqs2:-0}" 'NR > 2 && $1 ~ /^[0-9.]+$/ && r > 0 { if ($NF != "total") printf "    %-20s %.2f\n", $NF, $4 / r }' \
            "$WORK_DIR/$c.strace" | sort -k2 -rn | head -15
    fi
    for pg in "${pids[@]}"; do kill_group "$pg"; done
done
