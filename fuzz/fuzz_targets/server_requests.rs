//! Everything `weft serve` reads from outside: OTLP request bodies as protobuf
//! (scanned and decoded), JSON, gzip or zstd, checked span by span; and write-ahead log records read back
//! from disk at replay. None of it may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_server::decode::{check, decode, decompress, Compression, Encoding, Limits};

const LIMITS: Limits = Limits { max_attributes: 4, max_value_bytes: 16 };

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else { return };
    if let Some(sc) = weft_server::decode::scan(body, LIMITS) {
        assert!(sc.spans.len() < body.len() + 1);
    }
    let body = match mode % 4 {
        0 => body.to_vec(),
        1 | 3 => match decompress(body, if mode % 4 == 1 { Compression::Gzip } else { Compression::Zstd }, 1 << 20) {
            Ok(b) => b,
            Err(_) => return,
        },
        _ => {
            // Replay: a run of log records.
            let mut at = 0;
            while at < body.len() {
                match weft_server::wal::read_record(&body[at..]) {
                    Ok((_, _, n)) => at += n,
                    Err(_) => break,
                }
            }
            body.to_vec()
        }
    };
    for enc in [Encoding::Protobuf, Encoding::Json] {
        if let Ok(req) = decode(&body, enc) {
            let c = check(req, LIMITS);
            assert!(c.spans + c.rejected < 1 << 40);
        }
    }
});
