"""Checks the JSON lines of a `weft-bench otlp` smoke run: both exporters ran on
both transports, and weft delivered every span (no loss at all, not even counted
shedding, given a bound large enough for the run) with no silent loss."""

import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
seen = {(r["peer"], r["transport"]) for r in rows}
want = {(p, t) for p in ("weft", "opentelemetry-otlp") for t in ("grpc", "http")}
failures = [] if seen == want else [f"runs that reported: {sorted(seen)}, expected {sorted(want)}"]
for r in rows:
    where = f'{r["peer"]} over {r["transport"]}'
    if r["peer"] == "weft":
        if r["received"] != r["spans"]:
            failures.append(f"{where}: received {r['received']} of {r['spans']} spans")
        if r["silent_lost"] != 0:
            failures.append(f"{where}: {r['silent_lost']} spans lost silently")
    print(f'  {where:<32} {r["spans_per_s"]:>10.0f} spans/s  {r["cpu_s_per_million"]:.3f} CPU s per M spans  received {r["received_pct"]:.2f} %')
for f in failures:
    print("FAIL:", f)
print(f"otlp-bench-smoke: {'failed' if failures else 'passed'}")
sys.exit(1 if failures else 0)
