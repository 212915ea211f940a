"""Sends traces to weft serve with the OpenTelemetry Python SDK (a client no one on
the weft team wrote), reads them back from weft's debug endpoint, and compares
every field with what the SDK itself recorded.

usage: otel_python_sdk_roundtrip.py grpc|http OTLP_ENDPOINT DEBUG_BASE_URL
Exits non-zero with a list of differences if anything did not arrive intact.
"""

import json
import sys
import time
import urllib.request

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

protocol, endpoint, debug = sys.argv[1], sys.argv[2], sys.argv[3]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    otlp = OTLPSpanExporter(endpoint=endpoint, insecure=True)
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    otlp = OTLPSpanExporter(endpoint=endpoint + "/v1/traces")

memory = InMemorySpanExporter()
resource = Resource.create({"service.name": f"py-{protocol}", "deployment.environment": "test", "host.cores": 2})
provider = TracerProvider(resource=resource)
provider.add_span_processor(SimpleSpanProcessor(otlp))
provider.add_span_processor(SimpleSpanProcessor(memory))
tracer = provider.get_tracer("interop", "1.0")

with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
    root.set_attribute("http.method", "GET")
    root.set_attribute("http.status_code", 200)
    root.set_attribute("ratio", 0.75)
    root.set_attribute("cached", False)
    root.set_attribute("tags", ["a", "b", "ü"])
    root.set_attribute("codes", [1, 2, 3])
    root.set_attribute("weights", [0.5, 1.5])
    root.set_attribute("flags", [True, False])
    root.add_event("auth", {"user": "ada", "attempt": 2})
    with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT) as db:
        db.set_attribute("db.system", "postgresql")
        db.set_status(Status(StatusCode.ERROR, "deadlock detected"))
    other = tracer.start_span("background", kind=SpanKind.PRODUCER, links=[Link(db.get_span_context(), {"rel": "caused-by"})])
    other.set_status(Status(StatusCode.OK))
    other.end()
provider.force_flush()
provider.shutdown()

sent = memory.get_finished_spans()
problems = []


def hex_id(n, width):
    return format(n, f"0{width}x")


def otlp_value(v):
    """The OTLP JSON form (as opentelemetry-proto's serde writes it) of a Python attribute value."""
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": v}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    return {"arrayValue": {"values": [otlp_value(x) for x in v]}}


def norm(v):
    """Normalises an AnyValue as the server returned it (64-bit ints may be strings)."""
    if isinstance(v, dict):
        if "intValue" in v:
            return {"intValue": int(v["intValue"])}
        if "arrayValue" in v:
            return {"arrayValue": {"values": [norm(x) for x in v["arrayValue"].get("values", [])]}}
        if "value" in v and isinstance(v["value"], dict):
            return norm(v["value"])
    return v


def attrs(kvs):
    return {kv["key"]: norm(kv.get("value", {})) for kv in kvs or []}


def expect(what, got, want):
    if got != want:
        problems.append(f"{what}: got {got!r}, want {want!r}")


kinds = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
trace_ids = {hex_id(s.context.trace_id, 32) for s in sent}
got_spans = {}
for tid in trace_ids:
    deadline = time.time() + 10
    while True:
        try:
            with urllib.request.urlopen(f"{debug}/api/debug/traces/{tid}") as r:
                body = json.load(r)
            if len(body["spans"]) >= sum(1 for s in sent if hex_id(s.context.trace_id, 32) == tid):
                break
        except Exception:  # not there yet
            pass
        if time.time() > deadline:
            problems.append(f"trace {tid} did not arrive")
            body = {"spans": []}
            break
        time.sleep(0.05)
    for entry in body["spans"]:
        span = entry["span"]
        got_spans[span["spanId"].lower()] = (entry["service"], entry["resource"], span)

for s in sent:
    sid = hex_id(s.context.span_id, 16)
    if sid not in got_spans:
        problems.append(f"span {s.name} ({sid}) missing")
        continue
    service, res, g = got_spans[sid]
    w = s.name
    expect(f"{w} service", service, f"py-{protocol}")
    expect(f"{w} resource", attrs(res), {k: otlp_value(v) for k, v in resource.attributes.items()})
    expect(f"{w} trace id", g["traceId"].lower(), hex_id(s.context.trace_id, 32))
    expect(f"{w} parent", (g.get("parentSpanId") or "").lower(), hex_id(s.parent.span_id, 16) if s.parent else "")
    expect(f"{w} name", g["name"], s.name)
    expect(f"{w} kind", g.get("kind"), kinds[s.kind])
    expect(f"{w} start", int(g["startTimeUnixNano"]), s.start_time)
    expect(f"{w} end", int(g["endTimeUnixNano"]), s.end_time)
    expect(f"{w} attributes", attrs(g.get("attributes")), {k: otlp_value(v) for k, v in s.attributes.items()})
    expect(f"{w} events", [(e["name"], int(e["timeUnixNano"]), attrs(e.get("attributes"))) for e in g.get("events", [])],
           [(e.name, e.timestamp, {k: otlp_value(v) for k, v in e.attributes.items()}) for e in s.events])
    expect(f"{w} links", [(l["traceId"].lower(), l["spanId"].lower(), attrs(l.get("attributes"))) for l in g.get("links", [])],
           [(hex_id(l.context.trace_id, 32), hex_id(l.context.span_id, 16), {k: otlp_value(v) for k, v in l.attributes.items()}) for l in s.links])
    status = g.get("status") or {}
    want_code = {StatusCode.UNSET: 0, StatusCode.OK: 1, StatusCode.ERROR: 2}[s.status.status_code]
    expect(f"{w} status code", status.get("code", 0), want_code)
    expect(f"{w} status message", status.get("message", ""), s.status.description or "")

print(json.dumps({"protocol": protocol, "spans_sent": len(sent), "spans_compared": len(got_spans), "problems": problems}))
sys.exit(1 if problems or len(sent) != 3 else 0)
