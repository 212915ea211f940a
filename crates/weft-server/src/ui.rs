//! weft's web UI, served by `weft serve` on the `--http` address: `/`,
//! `/search` and `/trace/{id}` answer the page (the UI routes itself from the
//! URL), `/ui/{file}` its modules and styles. The files are embedded at build
//! time from `crates/weft-server/ui/` (see `build.rs`); with `WEFT_UI_DIR` set
//! they are read from that folder instead, so the UI can be worked on without
//! rebuilding.

use http::{HeaderValue, StatusCode};

use crate::api::body_response;
use crate::http::Body;

/// The embedded files, by name.
static FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/ui_files.rs"));

/// Whether `path` is one of the UI's.
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/search" || path.starts_with("/trace/") || path.starts_with("/ui/")
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

fn file(name: &str) -> Option<Vec<u8>> {
    // A name with a path separator or `..` is never a UI file.
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return None;
    }
    if let Some(dir) = std::env::var_os("WEFT_UI_DIR") {
        return std::fs::read(std::path::Path::new(&dir).join(name)).ok();
    }
    FILES.iter().find(|(n, _)| *n == name).map(|(_, b)| b.to_vec())
}

/// Answers a UI path.
pub fn serve(path: &str) -> http::Response<Body> {
    let name = path.strip_prefix("/ui/").unwrap_or("index.html");
    match file(name) {
        Some(bytes) => {
            let mut r = body_response(StatusCode::OK, bytes, content_type(name));
            let h = r.headers_mut();
            // The page must never run a script from elsewhere, nor data as
            // markup: a strict policy is the second line behind the UI
            // writing values as text.
            h.insert(
                http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
                ),
            );
            h.insert(http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => body_response(
            StatusCode::NOT_FOUND,
            format!("no UI file {name:?}").into_bytes(),
            "text/plain; charset=utf-8",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_ui_folder_are_not_served() {
        for p in ["/ui/../Cargo.toml", "/ui/.hidden", "/ui/a/b.js", "/ui/", "/ui/..%2fx"] {
            assert_eq!(serve(p).status(), StatusCode::NOT_FOUND, "{p}");
        }
        assert!(is_ui_path("/trace/abc") && is_ui_path("/") && !is_ui_path("/api/traces"));
    }

    #[test]
    fn the_page_is_embedded() {
        if std::env::var_os("WEFT_UI_DIR").is_none() {
            assert_eq!(serve("/").status(), StatusCode::OK);
            assert_eq!(serve("/search").status(), StatusCode::OK);
        }
    }
}
