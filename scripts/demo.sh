#!/usr/bin/env bash
# scripts/demo.sh — build nodepass and watch it forward real traffic, in one command.
#
# The first run compiles nodepass and its dependencies: several minutes on a clean clone
# (cargo shows its progress); later runs take seconds.
#
#   bash scripts/demo.sh              # debug build, single-end forwarder (client mode=1)
#   bash scripts/demo.sh --release    # release build (fat LTO: a few minutes the first time)
#   bash scripts/demo.sh --tunnel     # also a tunnel: server + client (mode=2, flow +)
#
# NODEPASS_BIN=/path/to/nodepass skips the build and uses that binary. Colour only on a
# terminal and without NO_COLOR (nodepass's own log lines follow the same rule).
# Needs only the Rust toolchain and python3; no root, no installs, 127.0.0.1 only.
# It starts a python TCP+UDP echo target, puts nodepass in front of it, sends 1 MiB over TCP
# and a few UDP datagrams through nodepass, checks every byte came back, shows the
# CHECK_POINT lines nodepass printed (its traffic counters), and cleans everything up.
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=debug TUNNEL=0
for a in "$@"; do
    case "$a" in
    --release) PROFILE=release ;;
    --tunnel) TUNNEL=1 ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option: $a (try --help)" >&2; exit 64 ;;
    esac
done

WORK=$(mktemp -d /tmp/nodepass-demo.XXXXXX)
PGIDS=()
cleanup() {
    local pg
    for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    sleep 0.3
    for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    say() { printf '\n== %s\n' "$*"; }
    [[ -n "${NO_COLOR:-}" ]] && export CARGO_TERM_COLOR=never
fi
# start LOG CMD... : run CMD in its own process group (killed by group on exit); sets PID.
start() {
    local logfile=$1
    shift
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    PID=$!
    PGIDS+=("$PID")
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
strip() { sed 's/\x1b\[[0-9;]*m//g' "$@"; }

if [[ -n "${NODEPASS_BIN:-}" ]]; then
    say "1. build: skipped, NODEPASS_BIN=$NODEPASS_BIN"
    BIN=$NODEPASS_BIN
else
    say "1. build: cargo build$([[ $PROFILE == release ]] && echo " --release")"
    BIN="target/$PROFILE/nodepass"
    if [[ ! -x $BIN ]]; then
        crates=$(grep -c '^name = ' Cargo.lock || true)
        echo "First build: cargo compiles nodepass and its dependencies ($crates packages in"
        echo "Cargo.lock). That takes several minutes on a clean clone (3½ min was reported on a"
        echo "2-vCPU VM for the debug build); cargo's progress follows. Later runs take seconds."
    fi
    built=$SECONDS
    if [[ $PROFILE == release ]]; then cargo build --release --bin nodepass; else cargo build --bin nodepass; fi
    echo "build done in $((SECONDS - built)) s"
fi

cat >"$WORK/echo.py" <<'EOF'
# TCP + UDP echo target on 127.0.0.1:PORT (threads; stdlib only).
import socket, socketserver, sys, threading
port = int(sys.argv[1])
class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)
class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)
class T(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
threading.Thread(target=socketserver.ThreadingUDPServer(("127.0.0.1", port), Udp).serve_forever, daemon=True).start()
T(("127.0.0.1", port), Tcp).serve_forever()
EOF

cat >"$WORK/client.py" <<'EOF'
# Send 1 MiB over TCP and 5 UDP datagrams to 127.0.0.1:PORT; check the echo; print a summary.
import hashlib, os, socket, sys, threading, time
port, size = int(sys.argv[1]), 1 << 20
deadline = time.monotonic() + 15
while True:  # the listener may still be coming up (a tunnel client waits for its handshake)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
payload = os.urandom(size)
t0 = time.monotonic()
threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
got = bytearray()
while len(got) < size:
    chunk = s.recv(65536)
    if not chunk:
        break
    got += chunk
ms = (time.monotonic() - t0) * 1000
s.close()
ok_tcp = bytes(got) == payload
print(f"TCP: sent {size} B, echoed {len(got)} B in {ms:.1f} ms, sha256 {hashlib.sha256(payload).hexdigest()[:16]}… "
      f"{'intact' if ok_tcp else 'MISMATCH'}")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
echoed = 0
for i in range(5):
    msg = f"datagram {i} through nodepass".encode()
    for _ in range(3):  # the first datagram may race the UDP session setup
        u.sendto(msg, ("127.0.0.1", port))
        try:
            if u.recv(65536) == msg:
                echoed += 1
                break
        except socket.timeout:
            continue
print(f"UDP: sent 5 datagrams, {echoed} echoed intact")
sys.exit(0 if ok_tcp and echoed == 5 else 1)
EOF

say "2. echo target (python3, TCP+UDP)"
TARGET=$(free_port)
start "$WORK/echo.log" python3 "$WORK/echo.py" "$TARGET"
echo "listening on 127.0.0.1:$TARGET"

# Report counters every second so the demo does not wait for the default 5 s.
export NP_REPORT_INTERVAL=${NP_REPORT_INTERVAL:-1s}

# run_case NAME USER_PORT LOG... : push traffic through USER_PORT, then show the logs' CHECK_POINTs.
run_case() {
    local name=$1 port=$2
    shift 2
    local rc=0 p
    python3 "$WORK/client.py" "$port" || rc=$?
    # Wait (≤ 7 s) for a CHECK_POINT that counted the traffic, then stop nodepass gracefully.
    local deadline=$((SECONDS + 7))
    until strip "$@" | grep -q 'CHECK_POINT.*TCPRX=[1-9]' || ((SECONDS > deadline)); do sleep 0.2; done
    for p in "${NP_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${NP_PIDS[@]}"; do timeout 7 tail --pid="$p" -f /dev/null 2>/dev/null || true; done
    echo "-- CHECK_POINT lines from $name (last of each log):"
    local f line
    for f in "$@"; do
        line=$(strip "$f" | grep 'CHECK_POINT' | tail -n 1 || true)
        echo "   $(basename "$f" .log): ${line:-<none printed>}"
    done
    if ((rc != 0)); then
        echo "-- traffic check FAILED; nodepass output:"
        for f in "$@"; do echo "   [$f]"; strip "$f" | tail -n 15 | sed 's/^/   /'; done
    fi
    return $rc
}

# up LOG PORT : fail with the log when nodepass exits before listening on PORT.
up() {
    local deadline=$((SECONDS + 10)) hex
    hex=$(printf ':%04X' "$2")
    while ((SECONDS <= deadline)); do
        kill -0 "$PID" 2>/dev/null || { echo "nodepass exited:"; strip "$1" | tail -n 10; return 1; }
        awk -v p="$hex" 'substr($2, length($2)-4) == p && $4 == "0A" {f=1} END {exit !f}' /proc/net/tcp && return 0
        sleep 0.1
    done
    echo "nodepass did not listen on $2 within 10 s:"; strip "$1" | tail -n 10; return 1
}

say "3. single-end forwarder: users → 127.0.0.1:PORT → nodepass → echo target"
FWD=$(free_port)
URL="client://127.0.0.1:$FWD/127.0.0.1:$TARGET?mode=1"
echo "$BIN \"$URL\""
start "$WORK/forward.log" "$BIN" "$URL"
NP_PIDS=("$PID")
up "$WORK/forward.log" "$FWD"
run_case "single-end" "$FWD" "$WORK/forward.log"

if ((TUNNEL)); then
    say "4. tunnel (flow +): users → client 127.0.0.1:A ⇒ pool ⇒ server → echo target"
    TUN=$(free_port) USERS=$(free_port)
    SURL="server://demo@127.0.0.1:$TUN/127.0.0.1:$TARGET?mode=2"
    CURL="client://demo@127.0.0.1:$TUN/127.0.0.1:$USERS?mode=2"
    echo "$BIN \"$SURL\""
    start "$WORK/server.log" "$BIN" "$SURL"
    SPID=$PID
    up "$WORK/server.log" "$TUN"
    echo "$BIN \"$CURL\""
    start "$WORK/client.log" "$BIN" "$CURL"
    NP_PIDS=("$SPID" "$PID")
    up "$WORK/client.log" "$USERS"
    run_case "tunnel" "$USERS" "$WORK/server.log" "$WORK/client.log"
fi

say "done: every byte came back; processes stopped, temp files removed"
