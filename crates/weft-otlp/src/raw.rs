//! A raw OTLP client: sends request bodies someone else encoded and says what the
//! server answered, judged by the same retry rules as the exporter. For load
//! generators and tools (`weft loadgen`), not for instrumented programs.

use std::time::Duration;

use bytes::Bytes;

use crate::config::{Compression, Protocol};
use crate::retry::Verdict;
use crate::transport::Transport;
use crate::BuildError;

/// What the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Accepted; `rejected` spans were refused individually (partial success).
    Accepted {
        /// Spans rejected.
        rejected: u64,
    },
    /// Retry: after `after` if the server said (`Retry-After`, `RetryInfo`).
    Retry {
        /// The server's delay.
        after: Option<Duration>,
        /// What happened.
        why: String,
    },
    /// A permanent failure.
    Failed(String),
}

/// A connection to one OTLP endpoint; clone it to share.
#[derive(Clone)]
pub struct RawClient {
    transport: Transport,
    timeout: Duration,
    gzip_http: bool,
}

impl std::fmt::Debug for RawClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawClient").finish_non_exhaustive()
    }
}

impl RawClient {
    /// Connects lazily to `endpoint` (for HTTP the full `/v1/traces` URL). Must be
    /// called inside a Tokio runtime.
    pub fn new(
        endpoint: &str,
        protocol: Protocol,
        compression: Compression,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        let transport = Transport::new(endpoint, protocol, &[], compression, timeout)?;
        Ok(RawClient { transport, timeout, gzip_http: compression == Compression::Gzip && protocol != Protocol::Grpc })
    }

    /// Sends one protobuf-encoded `ExportTraceServiceRequest` (or JSON, for an
    /// HTTP/JSON client), compressing it first if configured.
    pub async fn send(&self, body: Bytes) -> Answer {
        let body = if self.gzip_http {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            match enc.write_all(&body).and_then(|_| enc.finish()) {
                Ok(z) => Bytes::from(z),
                Err(e) => return Answer::Failed(format!("gzip: {e}")),
            }
        } else {
            body
        };
        match self.transport.send(body, self.timeout).await {
            Verdict::Accepted { rejected, .. } => Answer::Accepted { rejected },
            Verdict::Retry { after, why } => Answer::Retry { after, why },
            Verdict::Fail(why) => Answer::Failed(why),
        }
    }
}
