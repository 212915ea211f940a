//! Error types of the SDK's public API.

use std::fmt;

/// A value from outside (a header, an environment variable, a hex string) could not
/// be parsed. Says what was being parsed and why it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    what: &'static str,
    reason: String,
}

impl ParseError {
    pub(crate) fn new(what: &'static str, reason: impl fmt::Display) -> Self {
        ParseError { what, reason: reason.to_string() }
    }
    /// What was being parsed ("trace id", "tracestate", …).
    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// Installing a tracer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// Another tracer is installed and has not been shut down.
    #[error("a weft tracer is already installed; shut it down before installing another")]
    AlreadyInstalled,
    /// The configuration is inconsistent.
    #[error("invalid weft configuration: {0}")]
    InvalidConfig(String),
    /// The background collector thread could not be started.
    #[error("could not start the weft collector thread: {0}")]
    Thread(#[from] std::io::Error),
}
