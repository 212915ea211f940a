//! The exporter runs on its own thread and runtime: a program whose own async
//! runtime is blocked (here: a single-threaded Tokio runtime whose only thread
//! waits synchronously on a flush) still gets its spans delivered, and a plain
//! synchronous program needs no runtime at all.

mod support;

use std::time::Duration;

use support::Receiver;
use weft::Span;
use weft_otlp::{OtlpExporter, Protocol};

#[test]
fn a_blocked_application_runtime_does_not_stop_export() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let rx = Receiver::start();
        let url = if protocol == Protocol::Grpc { rx.grpc_url() } else { rx.http_url() };
        let exporter = OtlpExporter::builder().protocol(protocol).endpoint(url).build().expect("exporter");
        let tracer = weft::builder().exporter(exporter).log_at_shutdown(false).install().expect("tracer");
        let app = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        app.block_on(async {
            for _ in 0..100 {
                let _s = Span::enter("in async code");
            }
            // Blocks the runtime's only thread until the spans are delivered: if
            // export needed this runtime, this would never return.
            tracer.force_flush(Duration::from_secs(10)).expect("flushed while the app runtime is blocked");
        });
        assert_eq!(rx.spans().len(), 100, "{protocol:?}");
        let stats = tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
        assert!(stats.is_balanced());
        assert_eq!(stats.exported, 100);
    }
}
