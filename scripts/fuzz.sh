#!/usr/bin/env bash
# Fuzz every parser with cargo-fuzz (libFuzzer): `scripts/fuzz.sh [SECONDS] [TARGET…]`.
#
# Runs each target (default: all of fuzz/Cargo.toml's) for SECONDS (default 60) on one
# core, with a 1 s per-input timeout and a 64 MiB cap on any single allocation. Works on
# the stable toolchain: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its `-Z` flags, and
# AddressSanitizer is used when the sysroot ships its runtime (FUZZ_SANITIZER overrides:
# address or none). Every crash, timeout or out-of-memory input is copied to
# fuzz/regressions/<target>/, which `tests/it/fuzz_regressions.rs` replays in
# scripts/test.sh; the script then exits 1 — except a timeout whose input replays alone in
# under 1 s (the wall-clock timer fired on a loaded machine): that is reported, dropped,
# and the target fuzzes on for the rest of its time. The executions per target are
# printed last.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^nodepass-fuzz$')
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

sysroot_lib="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
if [ -z "${FUZZ_SANITIZER:-}" ]; then
    if ls "$sysroot_lib" 2>/dev/null | grep -q 'asan'; then FUZZ_SANITIZER=address; else FUZZ_SANITIZER=none; fi
fi
# ASan's shadow memory alone is far over 64 MiB of RSS, so the 64 MiB cap is per
# allocation (-malloc_limit_mb) and the RSS limit only catches runaway growth.
rss=512
[ "$FUZZ_SANITIZER" = address ] && rss=2048
echo "== sanitizer: $FUZZ_SANITIZER; ${secs}s per target: ${targets[*]}"

found=0
summary=()
for t in "${targets[@]}"; do
    echo "== $t"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    rm -f fuzz/artifacts/"$t"/{crash,timeout,oom,leak}-*
    # Beside the artifact directory, not in it: cargo-fuzz takes its newest file for a crash.
    log="fuzz/artifacts/$t.last-run.log"
    : >"$log"
    # Built first, so the build does not eat into the target's fuzzing time.
    cargo fuzz build --fuzz-dir fuzz -s "$FUZZ_SANITIZER" --debug-assertions "$t" >>"$log" 2>&1 || true
    total=0 spurious=0 started=$SECONDS status=0
    # libFuzzer's -timeout is wall-clock: on a loaded machine an input can be descheduled
    # past 1 s. A timeout input that replays alone in under 1 s is such a case: it is
    # reported, not kept, and fuzzing resumes for the rest of the time.
    while left=$((secs - (SECONDS - started))); [ "$left" -gt 0 ]; do
        set +e
        cargo fuzz run --fuzz-dir fuzz -s "$FUZZ_SANITIZER" --debug-assertions "$t" \
            "fuzz/corpus/$t" -- \
            -max_total_time="$left" -timeout=1 -malloc_limit_mb=64 -rss_limit_mb="$rss" \
            -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 2>&1 | tee -a "$log" \
            | grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)'
        status=${PIPESTATUS[0]}
        set -e
        n="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
        total=$((total + ${n:-0}))
        sed -i 's/^stat::number_of_executed_units:/stat::counted_units:/' "$log"
        real=0
        for a in fuzz/artifacts/"$t"/{crash,oom,leak}-*; do [ -e "$a" ] && real=1; done
        requeue=0
        for a in fuzz/artifacts/"$t"/timeout-*; do
            [ -e "$a" ] || continue
            bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release/$t"
            t0=$(date +%s%N)
            timeout 10 "$bin" "$a" >/dev/null 2>&1
            ms=$((($(date +%s%N) - t0) / 1000000))
            if [ "$real" -eq 0 ] && [ "$ms" -lt 1000 ]; then
                echo "~~ $t: $(basename "$a") replays alone in ${ms} ms: a descheduled run on a loaded machine, not kept"
                rm -f "$a"
                spurious=$((spurious + 1))
                requeue=1
            fi
        done
        [ "$requeue" -eq 1 ] && [ "$spurious" -lt 20 ] || break
        status=0
    done
    for a in fuzz/artifacts/"$t"/{crash,timeout,oom,leak}-*; do
        [ -e "$a" ] || continue
        mkdir -p "fuzz/regressions/$t"
        cp "$a" "fuzz/regressions/$t/"
        echo "!! $t: $(basename "$a") saved to fuzz/regressions/$t/"
        found=1
    done
    [ "$status" -ne 0 ] && found=1
    summary+=("$t: $total executions in $((SECONDS - started))s (exit $status; $spurious load timeouts not kept)")
done

echo "== executions per target"
printf '%s\n' "${summary[@]}"
exit "$found"
