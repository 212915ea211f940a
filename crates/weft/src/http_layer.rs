//! A `tower` layer that gives every incoming HTTP request a server span, and the
//! client side: injecting the current context into outgoing requests.
//!
//! The server span's parent is the context extracted from the request's
//! `traceparent`/`tracestate` headers (a new trace if there is none or it is
//! malformed). It is the local parent while the inner service handles the
//! request — on whatever thread polls it — and ends when the response is ready,
//! carrying the OpenTelemetry HTTP semantic-convention attributes and an error
//! status for 5xx answers and failed services. Works with axum and hyper, which
//! speak `tower::Service<http::Request<B>>`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::propagation::TraceContext;
use crate::record::{SpanKind, Status};
use crate::span::Span;

/// Wraps a service in [`TraceService`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl TraceLayer {
    /// The layer.
    pub fn new() -> Self {
        TraceLayer
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = TraceService<S>;
    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService { inner }
    }
}

/// A service that runs each request inside a server span.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for TraceService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.method().as_str().to_owned();
        let mut builder = Span::builder(method.clone()).kind(SpanKind::Server);
        if let Some(parent) = TraceContext::extract(req.headers()) {
            builder = builder.parent(&parent);
        }
        let mut span =
            builder.attribute("http.request.method", method).attribute("url.path", req.uri().path().to_owned()).start();
        if span.is_recording() {
            if let Some(q) = req.uri().query() {
                span.set_attribute("url.query", q.to_owned());
            }
            if let Some(host) = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()) {
                span.set_attribute("server.address", host.to_owned());
            }
            if let Some(ua) = req.headers().get(http::header::USER_AGENT).and_then(|h| h.to_str().ok()) {
                span.set_attribute("user_agent.original", ua.to_owned());
            }
            span.set_attribute("network.protocol.version", protocol_version(req.version()));
        }
        let inner = {
            let _parent = span.set_local_parent();
            self.inner.call(req)
        };
        ResponseFuture { inner, span: Some(span) }
    }
}

fn protocol_version(v: http::Version) -> &'static str {
    match v {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`TraceService`]: polls the inner future with the
    /// server span as local parent and ends the span with the outcome.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = crate::future::poll_in_span(this.span, || this.inner.poll(cx));
        if let Poll::Ready(result) = &out {
            if let Some(mut span) = this.span.take() {
                match result {
                    Ok(resp) => {
                        let code = resp.status().as_u16();
                        span.set_attribute("http.response.status_code", i64::from(code));
                        // Server spans: only 5xx is an error (4xx is the client's).
                        if code >= 500 {
                            span.set_status(Status::error(format!("HTTP {code}")));
                        }
                    }
                    Err(_) => span.set_status(Status::error("the service failed")),
                }
            }
        }
        out
    }
}

/// Writes the current local parent's `traceparent`/`tracestate` into an
/// outgoing request's headers (no-op outside any span).
pub fn inject_current_context(headers: &mut http::HeaderMap) {
    TraceContext::inject_current(headers);
}
