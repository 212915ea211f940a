//! Everything a backend sends back to the OTLP exporter: export response bodies
//! (protobuf and JSON), `Retry-After` values, gRPC status details (`RetryInfo`).
//! None of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_otlp::fuzzing::responses(data);
});
