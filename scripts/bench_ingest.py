"""Runs weft serve and rotel-agent (blackhole exporter) in turn under the same
`weft loadgen` load and measures, for the server process: accepted spans per
second, CPU seconds (user + system, from /proc) per million spans, peak RSS.

weft keeps every span in its store, so its CPU is counted until the store has
sealed everything the run sent into Parquet blocks (head empty), not only
while the load runs: sealing is part of the cost of a span. weft runs with
`--trace-idle 2s` so that sealing happens during the run as in steady state."""

import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--weft", required=True)
p.add_argument("--duration", type=float, default=10)
p.add_argument("--concurrency", type=int, default=8)
p.add_argument("--repeat", type=int, default=3)
p.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
p.add_argument("--json", action="store_true")
args = p.parse_args()

agent = next(iter(glob.glob(".venv/lib/python*/site-packages/rotel/rotel-agent")), None)
if not agent:
    sys.exit("rotel-agent not found in .venv")
tick = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def store_cpu_seconds(pid):
    """CPU of weft's store thread (sealing into Parquet, compaction), which
    does the work Rotel's blackhole skips: keeping the spans."""
    total = 0.0
    for task in glob.glob(f"/proc/{pid}/task/*"):
        try:
            if open(f"{task}/comm").read().strip() == "weft-sealer":
                fields = open(f"{task}/stat").read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0


def metric(qport, name):
    body = urllib.request.urlopen(f"http://127.0.0.1:{qport}/metrics", timeout=5).read().decode()
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def wait_sealed(qport, spans):
    """Waits until the store has written every accepted span to a block."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if metric(qport, "weft_store_head_bytes") == 0 and metric(qport, "weft_store_spans_total") >= spans:
            return
        time.sleep(0.1)
    sys.exit("weft never sealed the run's spans")


def wait_port(port, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited: {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} never opened")


def start(target, tmp):
    grpc, http, q = free_port(), free_port(), free_port()
    if target == "weft":
        cmd = [args.weft, "serve", "--data-dir", os.path.join(tmp, "data"), "--otlp-grpc", f"127.0.0.1:{grpc}",
               "--otlp-http", f"127.0.0.1:{http}", "--http", f"127.0.0.1:{q}", "--trace-idle", "2s"]
    else:
        cmd = [agent, "start", "--otlp-grpc-endpoint", f"127.0.0.1:{grpc}", "--otlp-http-endpoint", f"127.0.0.1:{http}",
               "--exporter", "blackhole"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = grpc if args.protocol == "grpc" else http
    wait_port(port, proc)
    return proc, port, q


def run(target):
    with tempfile.TemporaryDirectory() as tmp:
        proc, port, qport = start(target, tmp)
        try:
            cpu0, store0 = cpu_seconds(proc.pid), store_cpu_seconds(proc.pid)
            out = subprocess.run([args.weft, "loadgen", "--endpoint", f"http://127.0.0.1:{port}", "--protocol", args.protocol,
                                  "--duration", f"{args.duration}s", "--concurrency", str(args.concurrency), "--json"],
                                 capture_output=True, text=True, check=True)
            ingest_cpu = cpu_seconds(proc.pid) - cpu0
            if target == "weft":
                wait_sealed(qport, json.loads(out.stdout.strip().splitlines()[-1])["accepted_spans"])
            cpu = cpu_seconds(proc.pid) - cpu0
            store_cpu = store_cpu_seconds(proc.pid) - store0
            rss = peak_rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    s = json.loads(out.stdout.strip().splitlines()[-1])
    spans = s["accepted_spans"]
    return {
        "server": target, "protocol": args.protocol, "spans_per_s": s["spans_per_s"], "accepted_spans": spans,
        "failed_spans": s["failed_spans"], "cpu_s": cpu, "cpu_s_per_million": cpu / (spans / 1e6) if spans else None,
        "ingest_cpu_s_per_million": ingest_cpu / (spans / 1e6) if spans else None,
        "store_cpu_s_per_million": store_cpu / (spans / 1e6) if spans else None,
        "path_cpu_s_per_million": (cpu - store_cpu) / (spans / 1e6) if spans else None,
        "peak_rss_mib": rss, "latency_ms_p50": s["latency_ms_p50"], "latency_ms_p99": s["latency_ms_p99"],
    }


rows = {"weft": [], "rotel": []}
for _ in range(args.repeat):
    for target in ("weft", "rotel"):
        rows[target].append(run(target))

result = {}
for target, rs in rows.items():
    rs.sort(key=lambda r: r["spans_per_s"])
    med = rs[len(rs) // 2]
    med["runs_spans_per_s"] = [round(r["spans_per_s"]) for r in rs]
    result[target] = med
    if args.json:
        print(json.dumps(med))
print(f"| server | spans/s | CPU s per M spans, all | ingest path (receive, check, WAL fsync, head) | store (sealing to Parquet) | peak RSS MiB | p50 ms | p99 ms | runs (spans/s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
for target, r in result.items():
    label = "weft serve (WAL fsync)" if target == "weft" else "rotel-agent (blackhole)"
    print(f"| {label} | {r['spans_per_s']:,.0f} | {r['cpu_s_per_million']:.2f} | {r['path_cpu_s_per_million']:.2f} | {r['store_cpu_s_per_million']:.2f} | {r['peak_rss_mib']:.0f} | "
          f"{r['latency_ms_p50']:.1f} | {r['latency_ms_p99']:.1f} | {', '.join(f'{x:,}' for x in r['runs_spans_per_s'])} |")
w, r = result["weft"], result["rotel"]
print(f"\nweft/rotel throughput: {w['spans_per_s'] / r['spans_per_s']:.2f}x; CPU s per M spans: "
      f"weft ingest path {w['path_cpu_s_per_million']:.2f} (+ store {w['store_cpu_s_per_million']:.2f} = {w['cpu_s_per_million']:.2f}) "
      f"vs rotel {r['cpu_s_per_million']:.2f}")
