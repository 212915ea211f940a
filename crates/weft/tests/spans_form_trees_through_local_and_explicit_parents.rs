//! The span API: parents (local, explicit, remote), kinds, attributes, events,
//! links, status, limits and explicit times all reach the exporter as set.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weft::{
    InMemoryExporter, KeyValue, Span, SpanContext, SpanId, SpanKind, SpanLimits, Status, TraceFlags, TraceId,
    TraceState, Value,
};

fn install(limits: SpanLimits) -> (weft::Tracer, InMemoryExporter) {
    let mem = InMemoryExporter::new();
    let t = weft::builder()
        .service_name("api-test")
        .resource_attribute("deployment.environment", "test")
        .exporter(mem.clone())
        .span_limits(limits)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    (t, mem)
}

#[test]
fn everything_set_on_a_span_reaches_the_exporter() {
    let (tracer, mem) = install(SpanLimits::default());
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let (root_ctx, link_target);
    {
        let mut root =
            Span::builder("GET /orders").kind(SpanKind::Server).attribute("http.request.method", "GET").enter();
        root_ctx = root.context();
        root.set_attribute("s", "text");
        root.set_attribute("b", true);
        root.set_attribute("i", -5i64);
        root.set_attribute("f", 2.5);
        root.set_attribute("owned", String::from("dynamic"));
        root.set_attribute("arr_s", vec!["a", "b"]);
        root.set_attribute("arr_i", vec![1i64, 2]);
        root.set_attribute("arr_f", vec![1.5f64]);
        root.set_attribute("arr_b", vec![true, false]);
        root.set_attribute("i", 7i64); // replaces
        root.add_event("cache.miss", vec![KeyValue::new("key", "k1")]);
        {
            let other = Span::root("other trace");
            link_target = other.context();
        }
        root.add_link(link_target.clone(), vec![KeyValue::new("why", "batch")]);
        let mut child = Span::child("load");
        child.set_status(Status::error("timeout"));
        child.set_status(Status::Unset); // ignored
        child.update_name("load.orders");
        let mut ok = Span::child("ok");
        ok.set_status(Status::Ok);
        ok.set_status(Status::error("late")); // Ok is final
    }
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.exported, 4);
    let spans = mem.spans();
    let root = common::named(&spans, "GET /orders")[0];
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(root.span_id, root_ctx.span_id());
    assert!(root.flags.is_sampled() && root.flags.is_random());
    assert_eq!(root.trace_state.header_value(), "ot=th:0");
    assert_eq!(root.attribute("http.request.method"), Some(&Value::from("GET")));
    assert_eq!(root.attribute("i"), Some(&Value::I64(7)));
    assert_eq!(root.attribute("f"), Some(&Value::F64(2.5)));
    assert_eq!(root.attribute("owned"), Some(&Value::from("dynamic")));
    assert_eq!(root.attribute("arr_s"), Some(&Value::from(vec!["a", "b"])));
    assert_eq!(root.attributes.len(), 10);
    assert_eq!(root.events().len(), 1);
    assert_eq!(root.events()[0].name, "cache.miss");
    assert!(root.events()[0].time_unix_nanos >= root.start_unix_nanos);
    assert_eq!(root.links()[0].context.span_id(), link_target.span_id());
    assert!(root.start_unix_nanos >= before && root.end_unix_nanos >= root.start_unix_nanos);
    let child = common::named(&spans, "load.orders")[0];
    assert_eq!(child.parent_span_id, root.span_id);
    assert_eq!(child.trace_id, root.trace_id);
    assert_eq!(child.status, Status::error("timeout"));
    assert!(child.start_unix_nanos >= root.start_unix_nanos && child.end_unix_nanos <= root.end_unix_nanos);
    assert_eq!(common::named(&spans, "ok")[0].status, Status::Ok);
    let other = common::named(&spans, "other trace")[0];
    assert_ne!(other.trace_id, root.trace_id, "Span::root starts a new trace even inside a parent");
    let res = mem.resource().unwrap();
    assert_eq!(res.service_name(), Some("api-test"));
    assert_eq!(res.get("telemetry.sdk.name"), Some(&Value::from("weft")));
    assert_eq!(res.get("deployment.environment"), Some(&Value::from("test")));
}

#[test]
fn a_span_ended_in_place_stops_recording_and_keeps_its_context() {
    // `end_now` leaves the span in place (the `tracing` bridge keeps spans in
    // the registry). Its record has moved to the exporter's side by then:
    // later calls must not reach it, and its context must survive.
    let (tracer, mem) = install(SpanLimits::default());
    let remote = SpanContext::new(
        TraceId::from_u128(7),
        SpanId::from_u64(9),
        TraceFlags::SAMPLED,
        true,
        TraceState::parse("vendor=value").unwrap(),
    );
    let mut span = Span::child_of(&remote, "ended early");
    span.set_attribute("k", String::from("before"));
    let ctx = span.context();
    span.end_now();
    assert!(!span.is_recording());
    span.set_attribute("k", String::from("after")); // same key: would free the moved value
    span.set_attribute("new", 1i64);
    span.add_event("late", vec![KeyValue::new("x", String::from("y"))]);
    span.add_link(remote.clone(), vec![]);
    span.set_status(Status::error(String::from("late")));
    span.update_name(String::from("renamed"));
    span.end_now();
    let after = span.context();
    assert_eq!((after.trace_id(), after.span_id(), after.flags()), (ctx.trace_id(), ctx.span_id(), ctx.flags()));
    assert_eq!(after.trace_state().header_value(), ctx.trace_state().header_value());
    {
        let _p = span.set_local_parent();
        let child = Span::child("child of ended");
        assert!(child.is_recording());
    }
    drop(span);
    let mut entered = Span::enter("entered");
    entered.end_now();
    entered.set_attribute("k", String::from("after"));
    {
        // An entered child (its guard restores only the parent's span ID),
        // ended in place: the parent is still restored when the guard drops.
        let mut child = Span::enter("entered child");
        child.end_now();
        assert_eq!(weft::current_context().map(|c| c.span_id()), Some(child.context().span_id()));
    }
    assert_eq!(weft::current_context().map(|c| c.span_id()), Some(entered.context().span_id()));
    drop(entered);
    assert!(weft::current_context().is_none());
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.exported, 4);
    let spans = mem.spans();
    let ended = common::named(&spans, "ended early")[0];
    assert_eq!(ended.attribute("k"), Some(&Value::from("before")));
    assert_eq!(ended.attributes.len(), 1);
    assert!(ended.events().is_empty() && ended.links().is_empty());
    assert_eq!(ended.status, Status::Unset);
    assert_eq!(common::named(&spans, "child of ended")[0].parent_span_id, ctx.span_id());
    assert!(common::named(&spans, "entered")[0].attributes.is_empty());
}

#[test]
fn remote_and_explicit_parents() {
    let (tracer, mem) = install(SpanLimits::default());
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::parse("ot=th:8,vendor=x").unwrap(),
    );
    let unsampled_remote =
        SpanContext::new(remote.trace_id(), remote.span_id(), TraceFlags::NONE, true, TraceState::default());
    let explicit_child_ctx;
    {
        let server = Span::builder("server").kind(SpanKind::Server).parent(&remote).start();
        assert!(server.is_recording());
        let child = Span::child_of(&server.context(), "explicit child");
        explicit_child_ctx = child.context();
        let dropped = Span::child_of(&unsampled_remote, "not sampled");
        assert!(!dropped.is_recording());
        assert_eq!(dropped.context().trace_id(), remote.trace_id());
        let _g = dropped.set_local_parent();
        let grandchild = Span::child("under unsampled");
        assert!(!grandchild.is_recording(), "children of an unsampled parent are not recorded");
    }
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.sampled_out, 2);
    assert_eq!(stats.sampled_out_traces.parent, 1);
    let spans = mem.spans();
    let server = common::named(&spans, "server")[0];
    assert_eq!(server.trace_id, remote.trace_id());
    assert_eq!(server.parent_span_id, remote.span_id());
    assert!(server.parent_is_remote);
    assert_eq!(server.trace_state.header_value(), "ot=th:8,vendor=x", "remote trace state is kept");
    let child = common::named(&spans, "explicit child")[0];
    assert_eq!(child.parent_span_id, server.span_id);
    assert_eq!(child.span_id, explicit_child_ctx.span_id());
    assert!(!child.parent_is_remote);
}

#[test]
fn limits_drop_and_count_excess_attributes_events_and_links() {
    let limits = SpanLimits {
        max_attributes: 2,
        max_events: 1,
        max_links: 1,
        max_attributes_per_event: 1,
        max_attributes_per_link: 1,
        max_attribute_value_len: Some(3),
    };
    let (tracer, mem) = install(limits);
    {
        let mut s = Span::root("limited");
        s.set_attribute("a", "abcdef");
        s.set_attribute("b", 1);
        s.set_attribute("c", 2);
        s.set_attribute("a", "xy"); // replacing an existing key is not a new attribute
        s.add_event("e1", vec![KeyValue::new("x", 1), KeyValue::new("y", "long value")]);
        s.add_event("e2", vec![]);
        let ctx = s.context();
        s.add_link(ctx.clone(), vec![KeyValue::new("l", "long"), KeyValue::new("m", 1)]);
        s.add_link(ctx, vec![]);
    }
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    let s = &mem.spans()[0];
    assert_eq!(s.attributes.len(), 2);
    assert_eq!(s.dropped_attributes_count, 1);
    assert_eq!(s.attribute("a"), Some(&Value::from("xy")));
    let x = s.extras.as_ref().unwrap();
    assert_eq!((x.events.len(), x.dropped_events_count), (1, 1));
    assert_eq!(x.events[0].dropped_attributes_count, 1);
    assert_eq!((x.links.len(), x.dropped_links_count), (1, 1));
    assert_eq!(x.links[0].attributes[0].value, Value::from("lon"), "value length limit applies to links");
}

#[test]
fn explicit_start_and_end_times_are_kept() {
    let (tracer, mem) = install(SpanLimits::default());
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let end = start + Duration::from_millis(250);
    Span::builder("timed").start_time(start).start().end_at(end);
    let mut s = Span::root("event at");
    s.add_event_at("then", start, vec![]);
    drop(s);
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    let spans = mem.spans();
    let timed = common::named(&spans, "timed")[0];
    assert_eq!(timed.start_unix_nanos, 1_700_000_000_000_000_000);
    assert_eq!(timed.duration_nanos(), 250_000_000);
    assert_eq!(common::named(&spans, "event at")[0].events()[0].time_unix_nanos, 1_700_000_000_000_000_000);
}

#[test]
fn lazy_attributes_are_not_computed_for_unsampled_spans() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder()
        .sampler(weft::sampler::AlwaysOff)
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let mut s = Span::root("off");
    assert!(!s.is_recording());
    s.with_attribute("expensive", || -> i64 { panic!("must not be computed") });
    drop(s);
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(stats.sampled_out_traces.always_off, 1);
    assert_eq!((stats.started, stats.ended, stats.sampled_out, stats.exported), (1, 1, 1, 0));
    assert!(mem.is_empty());
}

#[test]
fn without_a_tracer_spans_are_noops() {
    let mut s = Span::root("nothing installed");
    s.set_attribute("k", 1);
    assert!(!s.is_recording());
    assert!(!s.context().is_valid());
    assert!(weft::stats().is_none());
    assert!(weft::current_context().is_none());
}

#[test]
fn a_second_tracer_needs_the_first_shut_down() {
    let (t1, _) = install(SpanLimits::default());
    assert!(matches!(
        weft::builder().exporter(InMemoryExporter::new()).install(),
        Err(weft::InitError::AlreadyInstalled)
    ));
    t1.shutdown(Duration::from_secs(5)).unwrap();
    let mem = InMemoryExporter::new();
    let t2 = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    drop(Span::root("on the second tracer"));
    t2.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(mem.len(), 1);
    assert!(matches!(weft::builder().install(), Err(weft::InitError::InvalidConfig(_))), "no exporter");
}

#[test]
fn current_context_follows_entered_spans() {
    let (tracer, _) = install(SpanLimits::default());
    assert!(weft::current_context().is_none());
    {
        let outer = Span::enter("outer");
        assert_eq!(weft::current_context().unwrap().span_id(), outer.context().span_id());
        {
            let inner = Span::enter("inner");
            assert_eq!(weft::current_context().unwrap().span_id(), inner.context().span_id());
        }
        assert_eq!(weft::current_context().unwrap().span_id(), outer.context().span_id());
        let r = outer.in_scope(|| weft::current_context().unwrap().span_id());
        assert_eq!(r, outer.context().span_id());
    }
    assert!(weft::current_context().is_none());
    tracer.shutdown(Duration::from_secs(5)).unwrap();
}

#[test]
fn unsampled_spans_propagate_their_context_and_are_counted_when_they_start() {
    let tracer = weft::builder()
        .exporter(InMemoryExporter::new())
        .sampler(weft::sampler::AlwaysOff)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    {
        let root = Span::enter("root");
        assert!(!root.is_recording());
        let root_ctx = root.context();
        assert!(root_ctx.is_valid() && !root_ctx.is_sampled());
        assert_eq!(weft::current_context().unwrap(), root_ctx);
        {
            let child = Span::enter("child");
            let child_ctx = child.context();
            assert_eq!(child_ctx.trace_id(), root_ctx.trace_id());
            assert_ne!(child_ctx.span_id(), root_ctx.span_id());
            assert_eq!(weft::current_context().unwrap(), child_ctx);
            let leaf = Span::child("leaf");
            assert_eq!(leaf.context().trace_id(), root_ctx.trace_id());
            assert!(![root_ctx.span_id(), child_ctx.span_id()].contains(&leaf.context().span_id()));
            // Counted at their start: three started, ended and sampled out
            // while all three are still open.
            let s = tracer.stats();
            assert_eq!((s.started, s.ended, s.sampled_out, s.exported), (3, 3, 3, 0), "{s}");
        }
        assert_eq!(weft::current_context().unwrap(), root_ctx);
    }
    assert!(weft::current_context().is_none());
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.started, stats.ended, stats.sampled_out), (3, 3, 3), "{stats}");
    assert_eq!(stats.sampled_out_traces.always_off, 1);
    assert!(stats.is_balanced(), "{stats}");
}

#[test]
fn guards_dropped_out_of_order_never_mix_contexts() {
    let (tracer, _) = install(SpanLimits::default());
    let a = Span::enter("a");
    let b = Span::enter("b");
    let b_ctx = b.context();
    assert_eq!(weft::current_context().unwrap(), b_ctx);
    // `a` restores what was current before it: nothing.
    drop(a);
    assert!(weft::current_context().is_none());
    // A new trace begins; `b` ending must not give it `a`'s span ID back.
    let c = Span::enter("c");
    let c_ctx = c.context();
    assert_ne!(c_ctx.trace_id(), b_ctx.trace_id());
    drop(b);
    assert_eq!(weft::current_context().unwrap(), c_ctx);
    drop(c);
    assert!(weft::current_context().is_none());
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.started, stats.ended, stats.exported), (3, 3, 3), "{stats}");
}

#[test]
fn a_span_entered_over_another_trace_puts_the_whole_previous_parent_back() {
    let (tracer, _) = install(SpanLimits::default());
    // A remote parent whose trace state has a vendor member (owned data).
    let headers: std::collections::HashMap<String, String> =
        [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), ("tracestate", "vendor=v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    let remote = weft::propagation::TraceContext::extract(&headers).expect("valid traceparent");
    let outer = Span::builder("outer").parent(&remote).enter();
    let outer_ctx = outer.context();
    assert_eq!(outer_ctx.trace_id(), remote.trace_id());
    for _ in 0..3 {
        // A new trace entered where `outer` is current: the guard keeps all of
        // `outer`'s context, trace state included, and puts it back.
        let root = Span::builder("root").root().enter();
        assert_ne!(root.context().trace_id(), outer_ctx.trace_id());
        assert_eq!(weft::current_context().unwrap(), root.context());
        drop(root);
        let back = weft::current_context().unwrap();
        assert_eq!(back, outer_ctx);
        assert_eq!(back.trace_state(), outer_ctx.trace_state());
    }
    drop(outer);
    assert!(weft::current_context().is_none());
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.started, stats.ended, stats.exported), (4, 4, 4), "{stats}");
}

#[test]
fn invalid_configuration_is_refused_with_a_reason() {
    let cases: Vec<(weft::TracerBuilder, &str)> = vec![
        (weft::builder(), "no exporter"),
        (weft::builder().exporter(InMemoryExporter::new()).max_batch_spans(0), "max_batch_spans"),
        (weft::builder().exporter(InMemoryExporter::new()).memory_limit_bytes(1024), "memory limit"),
        (
            weft::builder()
                .exporter(InMemoryExporter::new())
                .adaptive(Some(weft::sampler::adaptive::AdaptiveConfig { high_water: 0.9, zero_at: 0.5 })),
            "adaptive",
        ),
    ];
    for (builder, expected) in cases {
        match builder.install() {
            Err(weft::InitError::InvalidConfig(msg)) => {
                assert!(msg.contains(expected), "{msg:?} should mention {expected:?}")
            }
            other => panic!("expected a configuration error about {expected}, got {other:?}"),
        }
    }
    // Nothing was installed by the refused attempts.
    assert!(weft::stats().is_none());
}

#[test]
fn otel_environment_variables_configure_the_tracer() {
    let vars: std::collections::HashMap<&str, &str> = [
        ("OTEL_SERVICE_NAME", "from-env"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging"),
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "1"),
    ]
    .into_iter()
    .collect();
    let env = weft::EnvConfig::from_lookup(|k| vars.get(k).map(|v| v.to_string()));
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().with_env_config(env).exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    assert_eq!(tracer.resource().service_name(), Some("from-env"));
    assert_eq!(tracer.resource().get("deployment.environment"), Some(&Value::from("staging")));
    assert!(tracer.resource().get("process.pid").is_some());
    assert!(!Span::root("sampled off by the environment").is_recording());
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(stats.sampled_out_traces.always_off, 1);
    assert!(mem.is_empty());
}
