"""Checks the JSON lines of a `weft-bench sdk` smoke run: every peer produced a
result, and weft's own rows show no silent loss, full delivery where the exporter
keeps up, complete traces, and balanced books. Prints a one-line summary."""

import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
peers = {r["peer"] for r in rows}
expected = {"weft", "opentelemetry_sdk", "fastrace", "tracing-opentelemetry", "tracing-weft", "tracing-weft-subscriber"}
failures = []
if peers != expected:
    failures.append(f"peers that reported: {sorted(peers)}, expected {sorted(expected)}")
bad_rows = set()
for i, r in enumerate(rows):
    if r["peer"] not in ("weft", "tracing-weft", "tracing-weft-subscriber"):
        continue
    where = f'{r["peer"]} {r["workload"]} x{r["threads"]}'
    if r["silent_lost"] != 0:
        failures.append(f"{where}: {r['silent_lost']} spans lost silently")
    if not r["detail"].get("balanced"):
        failures.append(f"{where}: books not balanced: {r['detail']}")
    if r["workload"] == "nested" and r["delivered_pct"] < 100.0:
        failures.append(f"{where}: delivered {r['delivered_pct']:.2f} % with an instant exporter")
    if r["workload"] == "burst" and r["incomplete_traces"]:
        failures.append(f"{where}: {r['incomplete_traces']} delivered traces are incomplete")
    if any(f.startswith(where) for f in failures):
        bad_rows.add(i)
for f in failures:
    print("FAIL:", f)
for r in rows:
    print(f'  {r["peer"]:<22} {r["workload"]:<9} x{r["threads"]:<3} {r["ns_per_span"]:8.1f} ns/span  delivered {r["delivered_pct"]:6.2f} %  silent loss {r["silent_lost"]}')
print(f"bench-smoke: {len(rows) - len(bad_rows)} passed, {len(bad_rows) + (peers != expected)} failed")
sys.exit(1 if failures else 0)
