"""Turn a perf run's JSON lines (+ its .meta header) into the Markdown report.

Usage: report.py RESULTS.jsonl RESULTS.meta > RESULTS.md
Medians over repetitions; ratios vs the `direct` contender of the same run (latency:
added µs above direct's p50); relay CPU % in % of one core; efficiency = value ÷ relay cores.
"""
import json
import statistics
import sys

TITLES = {
    "W1": "W1 — bulk, 1 stream (iperf3, client → server)",
    "W1R": "W1R — bulk, 1 stream, reverse (iperf3 -R)",
    "W2": "W2 — bulk, 8 streams (iperf3 -P 8)",
    "W3": "W3 — new connections/s (wrk -t2 -c64, Connection: close, 128 B file)",
    "W4": "W4 — keep-alive requests/s (wrk -t2 -c64, 128 B file)",
    "W5": "W5 — TCP latency, one outstanding 64 B message (sockperf ping-pong, normal idle)",
    "W5q": "W5q — TCP latency as W5 with polled idle (PM-QoS /dev/cpu_dma_latency = 0)",
    "W7": "W7 — UDP latency, one outstanding 64 B datagram (sockperf ping-pong)",
    "W8": "W8 — idle memory per held connection (perf/idle_memory.sh)",
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=2):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def notes(samples):
    out = [f"n={len([s for s in samples if s.get('value') is not None])}/{len(samples)}"]
    errs = [s["error"] for s in samples if s.get("error")]
    if errs:
        out.append(f"errors: {errs[0][:80]}" + (f" (+{len(errs) - 1})" if len(errs) > 1 else ""))
    sock = sum(s.get("socket_errors") or 0 for s in samples)
    if sock:
        out.append(f"socket errors {sock}")
    non2xx = sum(s.get("non_2xx") or 0 for s in samples)
    if non2xx:
        out.append(f"non-2xx {non2xx}")
    fmax = max((s.get("foreign_cpu_pct") or 0 for s in samples), default=0)
    out.append(f"foreign ≤ {fmax:.0f}%")
    noisy = sum(1 for s in samples if s.get("noisy"))
    if noisy:
        out.append(f"**{noisy} noisy**")
    pm = [s.get("pmqos_note") for s in samples if s.get("pmqos_note")]
    if pm:
        out.append(pm[0])
    return "; ".join(out)


def table(test, rows, order):
    by = {}
    for r in rows:
        by.setdefault(r["contender"], []).append(r)
    contenders = [c for c in order if c in by] + sorted(c for c in by if c not in order)
    unit = next((r.get("unit") for r in rows if r.get("unit")), "")
    direct = med([r.get("value") for r in by.get("direct", [])])
    out = [f"### {TITLES.get(test, test)}", ""]
    if unit == "us":
        out += ["| contender | p50 µs | added p50 µs vs direct | p99 µs | relay CPU % | notes |",
                "|---|---|---|---|---|---|"]
    elif unit == "req/s":
        out += ["| contender | req/s | × direct | p50 ms | p99 ms | relay CPU % | k req/s per relay-core | notes |",
                "|---|---|---|---|---|---|---|---|"]
    else:
        out += ["| contender | Gb/s | × direct | relay CPU % | Gb/s per relay-core | notes |",
                "|---|---|---|---|---|---|"]
    for c in contenders:
        s = by[c]
        v = med([r.get("value") for r in s])
        cpu = med([r.get("relay_cpu_pct") for r in s])
        eff = med([r.get("per_relay_core") for r in s])
        n = notes(s)
        if unit == "us":
            added = None if v is None or direct is None else v - direct
            if c == "direct":
                added_s = "(absolute)"
            else:
                added_s = "–" if added is None else f"{added:+.1f}"
            out.append(f"| {c} | {fmt(v, 1)} | {added_s} | {fmt(med([r.get('p99_us') for r in s]), 1)} "
                       f"| {fmt(cpu, 0)} | {n} |")
            continue
        ratio = "–" if v is None or not direct else f"{v / direct:.2f}×"
        if unit == "req/s":
            out.append(f"| {c} | {fmt(v, 0)} | {ratio} | {fmt(med([r.get('p50_ms') for r in s]), 3)} "
                       f"| {fmt(med([r.get('p99_ms') for r in s]), 3)} | {fmt(cpu, 0)} "
                       f"| {fmt(None if eff is None else eff / 1000, 1)} | {n} |")
        else:
            out.append(f"| {c} | {fmt(v)} | {ratio} | {fmt(cpu, 0)} | {fmt(eff, 1)} | {n} |")
    return out + [""]


def w8_table(rows):
    out = [f"### {TITLES['W8']}", "",
           "| contender | conns held | ΔPSS KiB/conn (relay tree) | Δ sockstat TCP mem pages (all sockets) "
           "| relay threads before → after | iou-wrk before → after | notes |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        def g(k):
            v = r.get(k)
            return "–" if v is None else v
        note = r.get("error") or ""
        if r.get("iou_wrk_system_after") is not None:
            note = f"iou-wrk machine-wide {g('iou_wrk_system_before')} → {g('iou_wrk_system_after')}; " \
                   f"PSS {g('pss_before_kib')} → {g('pss_after_kib')} KiB"
        out.append(f"| {r['contender']} | {g('conns')} | {fmt(r.get('value'))} | {g('sockstat_mem_pages_delta')} "
                   f"| {g('threads_before')} → {g('threads_after')} "
                   f"| {g('iou_wrk_before')} → {g('iou_wrk_after')} | {note} |")
    return out + [""]


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    meta, skips, tools = {}, [], []
    for line in open(sys.argv[2]):
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "skip":
            skips.append(f"{parts[1]}: {parts[2]}")
        elif parts[0] == "tool":
            tools.append(parts[1])
        elif len(parts) == 2:
            meta[parts[0]] = parts[1]
    print(f"# nodepass perf run {meta.get('date', '?')} — commit {meta.get('commit', '?')}\n")
    for k in ("command", "kernel", "cpu", "reps", "duration_s", "np_workers", "np_driver", "np_query", "nofile"):
        print(f"- **{k}**: {meta.get(k, '?')}")
    print(f"- **tools**: {'; '.join(tools)}")
    if skips:
        print("- **skipped**:")
        for s in skips:
            print(f"  - {s}")
    noisy = sum(1 for r in rows if r.get("noisy"))
    if noisy:
        print(f"\n**Warning: {noisy} of {len(rows)} samples are noisy** (foreign CPU > 25 % of a core: "
              "something else was busy on this machine); treat their figures as indicative only.")
    print("\nMedians over repetitions. × direct = median ÷ direct's median from this run. Relay CPU % is the "
          "relay's process tree in % of one core (200 % = both cores). Per relay-core = value ÷ (CPU % / 100). "
          "Foreign = CPU outside the benchmark's process tree during the sample (noisy > 25 %).\n")
    order = []
    for r in rows:
        if r["contender"] not in order:
            order.append(r["contender"])
    if "direct" in order:
        order.remove("direct")
        order.insert(0, "direct")
    tests = []
    for r in rows:
        if r["test"] not in tests:
            tests.append(r["test"])
    for t in sorted(tests, key=lambda t: list(TITLES).index(t) if t in TITLES else 99):
        sel = [r for r in rows if r["test"] == t]
        print("\n".join(w8_table(sel) if t == "W8" else table(t, sel, order)))


if __name__ == "__main__":
    main()
