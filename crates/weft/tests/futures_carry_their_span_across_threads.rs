//! Async context: a span given to a future is the parent of spans started while
//! the future runs, on whichever tokio worker polls it; `#[weft::trace]` does the
//! same for sync and async functions and records chosen arguments.

use std::time::Duration;

use weft::{FutureExt, InMemoryExporter, Span, Value};

#[weft::trace(name = "fetch", record(id))]
async fn fetch(id: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    let v = leaf_work(id)?;
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(v)
}

#[weft::trace]
fn leaf_work(x: u64) -> Result<u64, String> {
    if x == 999 {
        return Err("bad id".into());
    }
    Ok(x * 2)
}

#[test]
fn spans_follow_tasks_across_awaits_and_worker_threads() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..50u64 {
            let root = Span::root("task");
            tasks.push(tokio::spawn(
                async move {
                    for j in 0..3 {
                        tokio::task::yield_now().await;
                        let _s = Span::child("step").set_local_parent_scope(j);
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                    fetch(i).await.unwrap()
                }
                .in_span(root),
            ));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(fetch(999).await, Err("bad id".to_string()));
    });
    drop(rt);
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    let spans = mem.spans();
    let roots: Vec<_> = spans.iter().filter(|s| s.name == "task").collect();
    assert_eq!(roots.len(), 50);
    for root in roots {
        let children: Vec<_> = spans.iter().filter(|s| s.parent_span_id == root.span_id).collect();
        assert_eq!(children.iter().filter(|s| s.name == "step").count(), 3, "steps are children of their task");
        let fetch = children.iter().find(|s| s.name == "fetch").expect("fetch under task");
        assert!(matches!(fetch.attribute("id"), Some(Value::String(_))));
        let leaf = spans.iter().find(|s| s.parent_span_id == fetch.span_id).expect("leaf_work under fetch");
        assert_eq!(leaf.name, "leaf_work");
        assert!(root.end_unix_nanos >= fetch.end_unix_nanos);
    }
    // The failing call outside any task is its own trace.
    let lone = spans.iter().filter(|s| s.name == "fetch" && s.parent_span_id == weft::SpanId::INVALID).count();
    assert_eq!(lone, 1);
}

trait ScopeExt {
    fn set_local_parent_scope(self, j: i32) -> Span;
}
impl ScopeExt for Span {
    fn set_local_parent_scope(mut self, j: i32) -> Span {
        self.set_attribute("j", j);
        self
    }
}
