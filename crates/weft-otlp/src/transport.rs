//! Sending one encoded request over OTLP/gRPC or OTLP/HTTP and judging the answer.
//!
//! gRPC goes through `tonic` with a codec that writes the already encoded
//! protobuf body as is (weft encodes straight from its records, see
//! `weft::otlp_encode`) and decodes the response with the `opentelemetry-proto`
//! types. HTTP goes through `hyper`'s pooled client. Both keep their connections
//! across requests and run several requests at once.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::config::{Compression, Protocol};
use crate::retry::{grpc_verdict, http_verdict, Verdict};
use crate::BuildError;

/// The gRPC method OTLP trace export calls.
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// Responses larger than this are cut (only their partial-success part matters).
const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// A connection to one OTLP endpoint.
#[derive(Clone)]
// One per exporter, cloned per request: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Transport {
    Grpc {
        grpc: tonic::client::Grpc<Channel>,
        metadata: MetadataMap,
    },
    Http {
        client: Client<HttpConnector, Full<Bytes>>,
        uri: http::Uri,
        headers: http::HeaderMap,
        json: bool,
        gzip: bool,
    },
}

impl Transport {
    /// Sets up the client. Must run inside the exporter's runtime (the gRPC channel
    /// spawns its connection task there).
    pub(crate) fn new(
        endpoint: &str,
        protocol: Protocol,
        headers: &[(String, String)],
        compression: Compression,
        timeout: Duration,
    ) -> Result<Self, BuildError> {
        match protocol {
            Protocol::Grpc => {
                let ep = Endpoint::from_shared(endpoint.to_owned())
                    .map_err(|e| BuildError::Endpoint(format!("{endpoint}: {e}")))?
                    .connect_timeout(timeout)
                    .tcp_nodelay(true);
                let mut grpc = tonic::client::Grpc::new(ep.connect_lazy());
                if compression == Compression::Gzip {
                    grpc = grpc.send_compressed(tonic::codec::CompressionEncoding::Gzip);
                }
                let mut metadata = MetadataMap::new();
                for (k, v) in headers {
                    let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                        .map_err(|_| BuildError::Header(k.clone()))?;
                    let val = MetadataValue::try_from(v.as_str()).map_err(|_| BuildError::Header(k.clone()))?;
                    metadata.insert(key, val);
                }
                Ok(Transport::Grpc { grpc, metadata })
            }
            Protocol::HttpProtobuf | Protocol::HttpJson => {
                let uri: http::Uri = endpoint.parse().map_err(|e| BuildError::Endpoint(format!("{endpoint}: {e}")))?;
                if uri.scheme_str() != Some("http") {
                    return Err(BuildError::Endpoint(format!("{endpoint}: only http:// endpoints are supported")));
                }
                let mut map = http::HeaderMap::new();
                for (k, v) in headers {
                    let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| BuildError::Header(k.clone()))?;
                    let val = http::HeaderValue::from_str(v).map_err(|_| BuildError::Header(k.clone()))?;
                    map.insert(name, val);
                }
                let mut connector = HttpConnector::new();
                connector.set_nodelay(true);
                connector.set_connect_timeout(Some(timeout));
                let client = Client::builder(hyper_util::rt::TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(connector);
                Ok(Transport::Http {
                    client,
                    uri,
                    headers: map,
                    json: protocol == Protocol::HttpJson,
                    gzip: compression == Compression::Gzip,
                })
            }
        }
    }

    /// Sends one request body (for HTTP, already compressed if configured) and
    /// judges the answer; a request that takes longer than `timeout` is abandoned
    /// and retried.
    pub(crate) async fn send(&self, body: Bytes, timeout: Duration) -> Verdict {
        let attempt = async {
            match self {
                Transport::Grpc { grpc, metadata } => send_grpc(grpc.clone(), metadata, body, timeout).await,
                Transport::Http { client, uri, headers, json, gzip } => {
                    send_http(client, uri, headers, *json, *gzip, body).await
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(v) => v,
            Err(_) => Verdict::Retry { after: None, why: format!("no answer within {timeout:?}") },
        }
    }
}

async fn send_grpc(
    mut grpc: tonic::client::Grpc<Channel>,
    metadata: &MetadataMap,
    body: Bytes,
    timeout: Duration,
) -> Verdict {
    if let Err(e) = grpc.ready().await {
        return Verdict::Retry { after: None, why: format!("gRPC connection: {e}") };
    }
    let mut req = tonic::Request::new(body);
    *req.metadata_mut() = metadata.clone();
    req.set_timeout(timeout);
    let path = http::uri::PathAndQuery::from_static(GRPC_PATH);
    match grpc.unary(req, path, RawCodec).await {
        Ok(resp) => accepted(resp.into_inner()),
        // A status with a source error was made up by the client from a
        // transport failure (a dropped connection, a reset stream), not sent by
        // the server: retried, as the spec says for dropped connections.
        Err(status) if std::error::Error::source(&status).is_some() => {
            Verdict::Retry { after: None, why: format!("gRPC transport: {status}") }
        }
        Err(status) => grpc_verdict(&status),
    }
}

async fn send_http(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    json: bool,
    gzip: bool,
    body: Bytes,
) -> Verdict {
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri.clone();
    let h = req.headers_mut();
    h.extend(headers.clone());
    let ct = if json { "application/json" } else { "application/x-protobuf" };
    h.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(ct));
    if gzip {
        h.insert(http::header::CONTENT_ENCODING, http::HeaderValue::from_static("gzip"));
    }
    let resp = match client.request(req).await {
        Ok(r) => r,
        // Refused or dropped connections, resets: the spec says retry.
        Err(e) => return Verdict::Retry { after: None, why: format!("HTTP connection: {e}") },
    };
    let status = resp.status();
    let retry_after = resp.headers().get(http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let resp_json = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = match Limited::new(resp.into_body(), MAX_RESPONSE_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        // A success status is the acknowledgement; a body cut off after it loses
        // only the partial-success detail.
        Err(_) => Bytes::new(),
    };
    if status.is_success() {
        if resp_json || json {
            return accepted_json(&body);
        }
        return match ExportTraceServiceResponse::decode(body) {
            Ok(r) => accepted(r),
            // A 2xx with a body we cannot read still means "accepted".
            Err(_) => Verdict::Accepted { rejected: 0, message: String::new() },
        };
    }
    http_verdict(status, retry_after.as_deref(), &String::from_utf8_lossy(&body))
}

/// Judges a success body both ways (for the fuzz targets).
pub(crate) fn judge_response_bytes(body: &[u8]) -> (Verdict, Verdict) {
    let pb = ExportTraceServiceResponse::decode(body).map(accepted).unwrap_or(Verdict::Fail(String::new()));
    (pb, accepted_json(body))
}

fn accepted(r: ExportTraceServiceResponse) -> Verdict {
    match r.partial_success {
        Some(p) if p.rejected_spans > 0 || !p.error_message.is_empty() => {
            Verdict::Accepted { rejected: p.rejected_spans.max(0) as u64, message: p.error_message }
        }
        _ => Verdict::Accepted { rejected: 0, message: String::new() },
    }
}

fn accepted_json(body: &[u8]) -> Verdict {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let p = v.get("partialSuccess").or_else(|| v.get("partial_success"));
    let rejected = p
        .and_then(|p| p.get("rejectedSpans").or_else(|| p.get("rejected_spans")))
        .and_then(|r| r.as_u64().or_else(|| r.as_str().and_then(|s| s.parse().ok())))
        .unwrap_or(0);
    let message = p
        .and_then(|p| p.get("errorMessage").or_else(|| p.get("error_message")))
        .and_then(|m| m.as_str())
        .unwrap_or("")
        .to_owned();
    Verdict::Accepted { rejected, message }
}

/// Writes an already encoded request as the gRPC message; decodes the response.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(format!("undecodable ExportTraceServiceResponse: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_partial_success_both_spellings() {
        assert_eq!(
            accepted_json(br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"bad ids"}}"#),
            Verdict::Accepted { rejected: 3, message: "bad ids".into() }
        );
        assert_eq!(
            accepted_json(br#"{"partial_success":{"rejected_spans":2}}"#),
            Verdict::Accepted { rejected: 2, message: String::new() }
        );
        assert_eq!(accepted_json(b"{}"), Verdict::Accepted { rejected: 0, message: String::new() });
        assert_eq!(accepted_json(b"not json"), Verdict::Accepted { rejected: 0, message: String::new() });
    }
}
