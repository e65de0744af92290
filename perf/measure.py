"""Run one benchmark sample: noise guard, relay CPU accounting, tool output parsing, one JSON line.

Usage (from perf/run.sh):
  measure.py --root PID --relay "PID PID" --parser iperf|wrk|sockperf --meta JSON \
             --jsonl FILE --raw FILE [--pmqos] [--guard-wait S] -- CMD ARGS...

CPU figures are in % of one core over the measured command's wall time:
  relay_cpu_pct   utime+stime(+cutime+cstime) of the relay's process tree (all threads,
                  io-wq workers included, children that exited and were reaped included);
  foreign_cpu_pct user+nice+system of the whole machine (/proc/stat) minus the tree of
                  --root (the benchmark script: relays, servers, load generators).
Before the command the guard waits (up to --guard-wait s) until foreign CPU < --guard-max %;
a sample whose foreign CPU exceeds --redo-above % is run again (up to --retries times) and
marked "noisy" if it stays above.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def read_procs():
    """pid -> (ppid, jiffies incl. reaped children) for every process."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        procs[int(name)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    return procs


def tree_jiffies(procs, roots):
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    seen, stack, total = set(), [r for r in roots if r in procs], 0
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += procs[pid][1]
        stack.extend(children.get(pid, []))
    return total


def machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: task time only (irq/softirq excluded:
    # loopback softirq work of our own traffic lands there).
    return v[0] + v[1] + v[2], (v[7] if len(v) > 7 else 0)


class Snap:
    def __init__(self, root, relay):
        procs = read_procs()
        self.t = time.monotonic()
        self.busy, self.steal = machine_busy()
        self.root = tree_jiffies(procs, [root])
        self.relay = tree_jiffies(procs, relay) if relay else 0


def pct(jiffies, secs):
    return 100.0 * jiffies / HZ / secs if secs > 0 else 0.0


def foreign(a, b):
    return max(0.0, pct((b.busy - a.busy) - (b.root - a.root), b.t - a.t))


def guard(args):
    """Wait until foreign CPU is below --guard-max; return (seconds waited, last reading)."""
    start, last = time.monotonic(), None
    while True:
        a = Snap(args.root, [])
        time.sleep(0.5)
        last = foreign(a, Snap(args.root, []))
        waited = time.monotonic() - start
        if last < args.guard_max or waited >= args.guard_wait:
            return waited, last


def run_once(args):
    pm = None
    if args.pmqos:
        try:
            pm = open("/dev/cpu_dma_latency", "wb", buffering=0)
            pm.write(struct.pack("i", 0))
        except OSError as e:
            pm = str(e)
    a = Snap(args.root, args.relay)
    with open(args.raw, "w") as out:
        try:
            rc = subprocess.run(args.cmd, stdout=out, stderr=subprocess.STDOUT,
                                timeout=args.timeout, start_new_session=True).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    b = Snap(args.root, args.relay)
    pm_note = None
    if isinstance(pm, str):
        pm_note = f"pmqos failed: {pm}"
    elif pm is not None:
        pm.close()
    secs = b.t - a.t
    return {
        "rc": rc,
        "elapsed_s": round(secs, 3),
        "relay_cpu_pct": round(pct(b.relay - a.relay, secs), 1) if args.relay else None,
        "foreign_cpu_pct": round(foreign(a, b), 1),
        "steal_pct": round(pct(b.steal - a.steal, secs), 1),
        "pmqos": pm_note is None if args.pmqos else None,
        "pmqos_note": pm_note,
    }


def parse_iperf(text):
    try:
        j = json.loads(text[text.find("{"):])
    except ValueError:
        return {"error": "iperf3 output is not JSON: " + text[:200].replace("\n", " ")}
    if j.get("error"):
        return {"error": "iperf3: " + j["error"]}
    end = j.get("end", {})
    recv = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    if not recv.get("bits_per_second"):
        return {"error": "iperf3 reported no received bytes"}
    return {"value": round(recv["bits_per_second"] / 1e9, 3), "unit": "Gb/s",
            "retransmits": sent.get("retransmits")}


def to_ms(v, unit):
    return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(text):
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    if not m:
        return {"error": "wrk: no Requests/sec: " + text[-200:].replace("\n", " ")}
    r = {"value": round(float(m.group(1)), 1), "unit": "req/s"}
    for p in ("50", "99"):
        mm = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if mm:
            r[f"p{p}_ms"] = round(to_ms(mm.group(1), mm.group(2)), 3)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in errs.groups()) if errs else 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    r["non_2xx"] = int(non2xx.group(1)) if non2xx else 0
    return r


def parse_sockperf(text):
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    p = dict(re.findall(r"percentile (\d+\.\d+) =\s*([\d.]+)", text))
    if "50.000" not in p:
        return {"error": "sockperf: no percentiles: " + text[-200:].replace("\n", " ")}
    r = {"value": float(p["50.000"]), "unit": "us", "p99_us": float(p.get("99.000", "nan"))}
    avg = re.search(r"avg-latency=([\d.]+)", text)
    if avg:
        r["avg_us"] = float(avg.group(1))
    return r


PARSERS = {"iperf": parse_iperf, "wrk": parse_wrk, "sockperf": parse_sockperf}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=int, required=True)
    ap.add_argument("--relay", default="")
    ap.add_argument("--parser", choices=PARSERS, required=True)
    ap.add_argument("--meta", default="{}")
    ap.add_argument("--jsonl", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--pmqos", action="store_true")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--guard-wait", type=float, default=10)
    ap.add_argument("--guard-max", type=float, default=15)
    ap.add_argument("--redo-above", type=float, default=25)
    ap.add_argument("--retries", type=int, default=1)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    args.relay = [int(p) for p in args.relay.split()]
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    attempts = 0
    while True:
        attempts += 1
        waited, before = guard(args)
        res = run_once(args)
        if res["foreign_cpu_pct"] <= args.redo_above or attempts > args.retries:
            break
    with open(args.raw) as f:
        parsed = PARSERS[args.parser](f.read())
    if res["rc"] != 0 and "error" not in parsed:
        parsed["error"] = f"exit status {res['rc']}"
    rec = json.loads(args.meta)
    rec.update(parsed)
    rec.update(res)
    rec.update({"guard_waited_s": round(waited, 1), "foreign_before_pct": round(before, 1),
                "attempts": attempts, "noisy": res["foreign_cpu_pct"] > args.redo_above,
                "raw": os.path.basename(args.raw)})
    if rec.get("unit") in ("Gb/s", "req/s") and rec.get("value") is not None \
            and rec.get("relay_cpu_pct"):
        cores = rec["relay_cpu_pct"] / 100.0
        rec["per_relay_core"] = round(rec["value"] / cores, 3)
    with open(args.jsonl, "a") as f:
        f.write(json.dumps(rec) + "\n")
    shown = rec.get("error") or f"{rec.get('value')} {rec.get('unit')}"
    print(f"[sample] {rec.get('test')} {rec.get('contender')} rep {rec.get('rep')}: {shown}; "
          f"relay cpu {rec['relay_cpu_pct']}%, foreign {rec['foreign_cpu_pct']}%"
          + (" NOISY" if rec["noisy"] else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
