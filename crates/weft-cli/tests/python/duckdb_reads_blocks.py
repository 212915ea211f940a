"""Reads weft's sealed blocks with DuckDB, a Parquet reader no one here wrote.

Usage: duckdb_reads_blocks.py DATA_DIR TRACE_ID_HEX

Prints one JSON object: span and trace counts of every block's spans.parquet
and traces.parquet, the sorted distinct trace IDs (lower-case hex), and the
spans of one trace (name, service, status, the http.method attribute), so the
Rust side can compare them with what weft's own API returns.
"""

import json
import sys

import duckdb

data_dir, trace_hex = sys.argv[1], sys.argv[2].lower()
spans = f"{data_dir}/blocks/*/spans.parquet"
traces = f"{data_dir}/blocks/*/traces.parquet"
con = duckdb.connect()

span_rows = con.execute(f"SELECT count(*) FROM '{spans}'").fetchone()[0]
distinct_spans = con.execute(
    f"SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM '{spans}')"
).fetchone()[0]
ids = [
    r[0]
    for r in con.execute(
        f"SELECT DISTINCT lower(hex(trace_id)) AS id FROM '{spans}' ORDER BY id"
    ).fetchall()
]
summary_ids = [
    r[0]
    for r in con.execute(
        f"SELECT DISTINCT lower(hex(trace_id)) AS id FROM '{traces}' ORDER BY id"
    ).fetchall()
]
one = con.execute(
    f"""
    SELECT name, service, status_code,
           list_filter(attributes, a -> a.key = 'http.method')[1].string AS method,
           duration_ns
    FROM '{spans}' WHERE lower(hex(trace_id)) = ? ORDER BY name
    """,
    [trace_hex],
).fetchall()
print(
    json.dumps(
        {
            "span_rows": span_rows,
            "distinct_spans": distinct_spans,
            "trace_ids": ids,
            "summary_trace_ids": summary_ids,
            "trace": [
                {"name": n, "service": s, "status": c, "method": m, "duration_ns": d}
                for (n, s, c, m, d) in one
            ],
        }
    )
)
