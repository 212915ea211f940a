//! The disk cache of complete traces for `weft query get`: a trace the server
//! says is complete (every span sealed) does not change short of a very late
//! span, so asking for it again is answered from disk, even when the server
//! is unreachable.
//!
//! One file per trace, `<dir>/<endpoint>/<trace id>.json`, holding the
//! server's answer line; written to a temporary name and renamed, so a reader
//! never sees half a file. The cache is bounded in bytes: past the bound the
//! least recently written files go first.

use std::path::{Path, PathBuf};

/// Default bound of the cache.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// A cache directory for one endpoint.
pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    /// Traces answered from it in this run.
    pub hits: u64,
    /// Traces written to it in this run.
    pub writes: u64,
}

/// The default cache root: `$WEFT_CACHE_DIR`, else `$XDG_CACHE_HOME/weft`, else
/// `~/.cache/weft`.
pub fn default_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WEFT_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("weft"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/weft"))
}

/// The endpoint as a directory name (`http://127.0.0.1:16686` →
/// `127.0.0.1_16686`): traces of different servers never mix.
fn endpoint_dir(endpoint: &str) -> String {
    let e = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    e.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect()
}

/// Whether `id` is a normalised trace ID (32 lower-case hex digits), so it is
/// safe as a file name.
fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Cache {
    /// The cache of `endpoint` under `root`.
    pub fn open(root: &Path, endpoint: &str, max_bytes: u64) -> std::io::Result<Cache> {
        let dir = root.join(endpoint_dir(endpoint));
        std::fs::create_dir_all(&dir)?;
        Ok(Cache { dir, max_bytes, hits: 0, writes: 0 })
    }

    /// The cached answer line of trace `id` (normalised hex), if any.
    pub fn get(&mut self, id: &str) -> Option<Vec<u8>> {
        if !is_id(id) {
            return None;
        }
        let line = std::fs::read(self.dir.join(format!("{id}.json"))).ok()?;
        // A damaged file (disk trouble, a hand edit) is a miss, not an answer.
        serde_json::from_slice::<serde::de::IgnoredAny>(&line).ok()?;
        self.hits += 1;
        Some(line)
    }

    /// Keeps an answer line if it is a complete, found trace. Failing to write
    /// is not an error of the query: the cache only saves time.
    pub fn put(&mut self, line: &[u8]) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head<'a> {
            trace_id: &'a str,
            #[serde(default)]
            found: bool,
            #[serde(default)]
            complete: bool,
        }
        let Ok(h) = serde_json::from_slice::<Head>(line) else { return };
        if !(h.found && h.complete && is_id(h.trace_id)) {
            return;
        }
        let path = self.dir.join(format!("{}.json", h.trace_id));
        let tmp = self.dir.join(format!(".{}.{}.tmp", h.trace_id, std::process::id()));
        if std::fs::write(&tmp, line).and_then(|_| std::fs::rename(&tmp, &path)).is_ok() {
            self.writes += 1;
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Deletes the oldest files while the cache is over its bound.
    pub fn trim(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        if total <= self.max_bytes {
            return;
        }
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_complete_found_traces_are_kept_and_damaged_files_are_misses() {
        let root = std::env::temp_dir().join(format!("weft-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut c = Cache::open(&root, "http://127.0.0.1:16686", DEFAULT_MAX_BYTES).unwrap();
        assert!(c.dir.ends_with("127.0.0.1_16686"));
        c.put(format!(r#"{{"traceId":"{ID}","found":true,"complete":false}}"#).as_bytes());
        c.put(format!(r#"{{"traceId":"{ID}","found":false}}"#).as_bytes());
        c.put(br#"{"traceId":"../../etc/passwd","found":true,"complete":true}"#);
        c.put(b"junk");
        assert_eq!(c.get(ID), None);
        let line = format!(r#"{{"traceId":"{ID}","found":true,"complete":true,"summary":{{}}}}"#);
        c.put(line.as_bytes());
        assert_eq!(c.get(ID).as_deref(), Some(line.as_bytes()));
        assert_eq!(c.get("../x"), None);
        std::fs::write(c.dir.join(format!("{ID}.json")), b"{\"trunc").unwrap();
        assert_eq!(c.get(ID), None);
        assert_eq!((c.hits, c.writes), (1, 1));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn trim_keeps_the_cache_under_its_bound() {
        let root = std::env::temp_dir().join(format!("weft-cache-trim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut c = Cache::open(&root, "h:1", 250).unwrap();
        for i in 0..10u8 {
            let id = format!("{:032x}", i);
            c.put(
                format!(r#"{{"traceId":"{id}","found":true,"complete":true,"pad":"{}"}}"#, "x".repeat(40)).as_bytes(),
            );
        }
        c.trim();
        let total: u64 = std::fs::read_dir(&c.dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
        assert!(total <= 250 && total > 0, "{total}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
