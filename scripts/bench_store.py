"""Store and query benchmark: fills a fresh `weft serve` with N spans from
`weft loadgen` (11 attributes per span, 5 services, 10 spans per trace), waits
until everything is sealed into Parquet blocks, then measures

- bytes per stored span (every file under blocks/, over the spans stored),
- trace by ID, p50/p99 (`GET /weft/v1/traces/{id}` of random acknowledged
  traces, one keep-alive connection, sequential),
- search p50/p99: service + span attribute + duration over the last hour,
  newest first, limit 20 (`POST /weft/v1/traces:query`),
- full export spans/s: `weft query traces --since 24h --view full --format
  ndjson` of every trace, written to a file,

and runs the same lookups with DuckDB over the very same Parquet files (the
peer: a standard engine reading weft's blocks with no weft index), side by
side. Prints a table, and one JSON line with --json."""

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

p = argparse.ArgumentParser()
p.add_argument("--weft", required=True)
p.add_argument("--spans", type=int, default=10_000_000)
p.add_argument("--lookups", type=int, default=2000)
p.add_argument("--searches", type=int, default=200)
p.add_argument("--duckdb-lookups", type=int, default=20)
p.add_argument("--keep", action="store_true", help="keep the data directory")
p.add_argument("--json", action="store_true")
args = p.parse_args()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def get_json(addr, path):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=60) as r:
        return json.load(r)


work = tempfile.mkdtemp(prefix="weft-bench-store-")
data = os.path.join(work, "data")
grpc, http_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
log = open(os.path.join(work, "serve.log"), "w")
serve = subprocess.Popen(
    [args.weft, "serve", "--data-dir", data, "--otlp-grpc", grpc, "--otlp-http", f"127.0.0.1:{free_port()}",
     "--http", http_addr, "--trace-idle", "2s"],
    stdout=subprocess.DEVNULL, stderr=log)
try:
    for _ in range(300):
        if os.path.exists(os.path.join(data, "ports.json")):
            break
        time.sleep(0.1)
    ack = os.path.join(work, "ack.txt")
    t0 = time.time_ns()
    sent = 0
    fill_started = time.time()
    while sent < args.spans:
        out = subprocess.run(
            [args.weft, "loadgen", "--endpoint", f"http://{grpc}", "--duration", "5s", "--concurrency", "8",
             "--attributes", "11", "--services", "5", "--spans-per-trace", "10", "--ack-log", ack, "--json"],
            check=True, capture_output=True, text=True).stdout
        s = json.loads(out.strip().splitlines()[-1])
        if s["failed_spans"]:
            sys.exit(f"loadgen lost spans: {s}")
        sent += s["accepted_spans"]
        print(f"  filled {sent:,} spans", file=sys.stderr)
    while True:
        st = get_json(http_addr, "/weft/v1/stats")
        if st["store"]["headTraces"] == 0 and st["processed"]["spans"] >= sent:
            break
        time.sleep(0.5)
    fill_s = time.time() - fill_started
    # Measure a settled store: wait until compaction (every 5 s) has nothing
    # left to merge, so that it does not run beside the measurements.
    stable_since, blocks_seen = time.time(), None
    while time.time() - stable_since < 12:
        n = get_json(http_addr, "/weft/v1/stats")["store"]["blocks"]
        if n != blocks_seen:
            stable_since, blocks_seen = time.time(), n
        time.sleep(1)
    st = get_json(http_addr, "/weft/v1/stats")
    blocks = os.path.join(data, "blocks")
    block_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(blocks) for f in fs)
    stored = st["store"]["spansStored"]
    ids = [l.strip() for l in open(ack) if len(l.strip()) == 32]
    rng = random.Random(7)

    # Trace by ID.
    conn = http.client.HTTPConnection(http_addr, timeout=60)
    by_id = []
    for tid in rng.sample(ids, min(args.lookups, len(ids))):
        t = time.perf_counter()
        conn.request("GET", f"/weft/v1/traces/{tid}")
        r = conn.getresponse()
        body = r.read()
        by_id.append((time.perf_counter() - t) * 1e3)
        if r.status != 200 or len(json.loads(body)["resourceSpans"]) == 0:
            sys.exit(f"trace {tid}: {r.status} {body[:200]}")

    # Search: service + attribute + duration over the last hour.
    now = time.time_ns()
    searches, found = [], []
    for i in range(args.searches):
        svc, step = i % 5, rng.randrange(10)
        flt = (f'{{ resource.service.name = "service-{svc}" && span.attr.1 = "value-{31 + step}" '
               f'&& duration >= 1ms }}')
        body = json.dumps({"start": now - 3600 * 10**9, "end": now, "filter": flt, "limit": 20})
        t = time.perf_counter()
        conn.request("POST", "/weft/v1/traces:query", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        text = r.read()
        searches.append((time.perf_counter() - t) * 1e3)
        lines = text.decode().splitlines()
        if r.status != 200:
            sys.exit(f"search: {r.status} {text[:300]}")
        found.append(len(lines) - 1)
    conn.close()

    # Full export with the client.
    export = os.path.join(work, "export.ndjson")
    t = time.perf_counter()
    q = subprocess.run(
        [args.weft, "query", "--endpoint", f"http://{http_addr}", "--quiet", "traces", "--since", "24h",
         "--view", "full", "--order", "oldest", "--format", "ndjson", "--out", export],
        capture_output=True, text=True)
    export_s = time.perf_counter() - t
    if q.returncode != 0:
        sys.exit(f"export failed: {q.stderr}")
    exported_traces = 0
    exported_spans = 0
    with open(export) as f:
        for line in f:
            exported_traces += 1
            exported_spans += json.loads(line)["summary"]["spanCount"]
    export_bytes = os.path.getsize(export)
    os.remove(export)

    # The peer: DuckDB over the same Parquet files.
    duck = {}
    try:
        import duckdb

        con = duckdb.connect()
        glob = f"{blocks}/*/spans.parquet"
        con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet('{glob}')")
        lat = []
        for tid in rng.sample(ids, min(args.duckdb_lookups, len(ids))):
            t = time.perf_counter()
            n = con.execute("SELECT count(*) FROM spans WHERE trace_id = from_hex(?)", [tid]).fetchone()[0]
            lat.append((time.perf_counter() - t) * 1e3)
            assert n > 0, tid
        slat = []
        for i in range(min(20, args.searches)):
            svc, step = i % 5, rng.randrange(10)
            t = time.perf_counter()
            con.execute(
                "SELECT DISTINCT trace_id FROM spans WHERE service = ? AND duration_ns >= 1000000 AND "
                "list_contains(list_transform(attributes, a -> a.key || '=' || coalesce(a.string, '')), ?) "
                "LIMIT 20", [f"service-{svc}", f"attr.1=value-{31 + step}"]).fetchall()
            slat.append((time.perf_counter() - t) * 1e3)
        t = time.perf_counter()
        dn = con.execute("SELECT count(*) FROM spans").fetchone()[0]
        duck = {"by_id_p50_ms": pct(lat, 0.5), "by_id_p99_ms": pct(lat, 0.99), "search_p50_ms": pct(slat, 0.5),
                "search_p99_ms": pct(slat, 0.99), "count_spans": dn}
    except ImportError:
        print("  (duckdb not installed: no peer numbers)", file=sys.stderr)

    res = {
        "spans_sent": sent, "spans_stored": stored, "traces": len(ids), "blocks": st["store"]["blocks"],
        "fill_s": round(fill_s, 1), "block_bytes": block_bytes, "bytes_per_span": block_bytes / max(stored, 1),
        "by_id_p50_ms": pct(by_id, 0.5), "by_id_p99_ms": pct(by_id, 0.99),
        "search_p50_ms": pct(searches, 0.5), "search_p99_ms": pct(searches, 0.99),
        "search_mean_results": statistics.mean(found),
        "export_traces": exported_traces, "export_spans": exported_spans, "export_s": export_s,
        "export_spans_per_s": exported_spans / export_s, "export_mb": export_bytes / 1e6,
        "duckdb": duck,
    }
    print(f"{'':28}{'weft':>14}{'DuckDB (same files)':>22}")
    print(f"{'spans stored':28}{stored:>14,}{duck.get('count_spans', 0):>22,}")
    print(f"{'bytes per span on disk':28}{res['bytes_per_span']:>14.1f}")
    print(f"{'trace by ID p50 / p99 ms':28}{res['by_id_p50_ms']:>6.2f} / {res['by_id_p99_ms']:<6.2f}"
          f"{duck.get('by_id_p50_ms', 0):>12.1f} / {duck.get('by_id_p99_ms', 0):<6.1f}")
    print(f"{'search p50 / p99 ms':28}{res['search_p50_ms']:>6.2f} / {res['search_p99_ms']:<6.2f}"
          f"{duck.get('search_p50_ms', 0):>12.1f} / {duck.get('search_p99_ms', 0):<6.1f}")
    print(f"{'full export spans/s':28}{res['export_spans_per_s']:>14,.0f}   ({exported_spans:,} spans, "
          f"{res['export_mb']:.0f} MB NDJSON in {export_s:.1f} s)")
    if exported_spans < stored:
        sys.exit(f"the export returned {exported_spans} of {stored} spans")
    if args.json:
        print(json.dumps(res))
finally:
    serve.terminate()
    serve.wait(timeout=30)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  data kept in {work}", file=sys.stderr)
