#!/usr/bin/env bash
# perf/soak.sh — a tunnel under mixed TCP and UDP traffic while its client and server are
# killed (SIGKILL or SIGTERM) and restarted at random moments; reports sessions completed,
# ended visibly and silently corrupted (must be 0), recovery times, RSS and fds over time.
#
#   bash perf/soak.sh                      # 10 minutes, tls=0
#   bash perf/soak.sh --minutes 2 --tls 1  # bounded: at most 120 minutes
#
# Builds the release binary first (NODEPASS_BIN=path measures another one). Writes the report
# to perf/results/<date>-soak-<commit>.md and the processes' logs to perf/results/soak-*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${NODEPASS_BIN:-}" ]]; then
    echo "== cargo build --release (a minute or more on a clean clone)"
    cargo build --release --bin nodepass
    NODEPASS_BIN=target/release/nodepass
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
out="perf/results/$(date +%F)-soak-$commit.md"
rm -f perf/results/soak-server.log perf/results/soak-client.log
python3 perf/soak.py --bin "$NODEPASS_BIN" --out "$out" "$@"
echo "report: $out"
