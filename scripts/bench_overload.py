"""Drives `weft serve` past saturation with `weft loadgen` (a client that honours
retry delays) and checks the promises of admission control: only refusals with a
retry delay, every acknowledged trace stored, peak RSS under the bound."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--weft", required=True)
p.add_argument("--duration", type=float, default=5)
p.add_argument("--budget", type=int, default=16, help="ingest budget, MiB")
p.add_argument("--protocol", default="grpc", choices=["grpc", "http"])
p.add_argument("--steps", default="8,80,1024", help="requests in flight per step")
args = p.parse_args()

# The budget covers requests in flight and the store's head; the allowance is for
# the runtime, connections, bodies being read and block writing, as in the
# overload test of the suite.
BOUND_MIB = args.budget + 192


def peak_rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0


with tempfile.TemporaryDirectory() as tmp:
    data = os.path.join(tmp, "data")
    cmd = [args.weft, "serve", "--data-dir", data, "--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0",
           "--http", "127.0.0.1:0", "--ingest-budget", f"{args.budget}M"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ports_file = os.path.join(data, "ports.json")
    deadline = time.time() + 30
    while not os.path.exists(ports_file):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit("weft serve did not start")
        time.sleep(0.05)
    time.sleep(0.1)
    ports = json.load(open(ports_file))
    target = ports["otlp_grpc" if args.protocol == "grpc" else "otlp_http"]
    print(f"| in flight | sent spans | accepted spans | accepted spans/s | refused requests (retry delay) "
          f"| failed spans | acked traces missing | peak RSS MiB (bound {BOUND_MIB}) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for step in [int(s) for s in args.steps.split(",")]:
        ack = os.path.join(tmp, f"ack-{step}.txt")
        out = subprocess.run([args.weft, "loadgen", "--endpoint", f"http://{target}", "--protocol", args.protocol,
                              "--duration", f"{args.duration}s", "--concurrency", str(step), "--ack-log", ack,
                              "--json"], capture_output=True, text=True, check=True)
        s = json.loads(out.stdout.strip().splitlines()[-1])
        ids = [l for l in open(ack).read().splitlines() if len(l) == 32]
        req = urllib.request.Request(f"http://{ports['http']}/api/debug/missing", data="\n".join(ids).encode(),
                                     method="POST")
        missing = len(json.load(urllib.request.urlopen(req, timeout=60))["missing"])
        rss = peak_rss_mib(proc.pid)
        ok &= s["failed_spans"] == 0 and s["sent_spans"] == s["accepted_spans"] and missing == 0
        ok &= rss < BOUND_MIB
        print(f"| {step} | {s['sent_spans']:,} | {s['accepted_spans']:,} | {s['spans_per_s']:,.0f} "
              f"| {s['refused_requests']:,} | {s['failed_spans']:,} | {missing:,} | {rss:.0f} |", flush=True)
    proc.terminate()
    proc.wait(timeout=30)
    sys.exit(0 if ok else "a promise was broken (see the table)")
