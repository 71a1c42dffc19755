//! Helpers for the HTTP load harness (`bench/load/run.sh`). Built as a
//! `harness = false` bench target so it compiles with the release settings
//! and the dev-dependencies; it measures nothing by itself.
//!
//! * `seed <dsn> <n> <out-file> [concurrency]` — writes `n` issued keys
//!   through the key-store port (migrating the database first) and their
//!   secrets, one per line, to `out-file`. HMAC secret: `common::SECRET`.
//! * `warm <base-url> <file> <k> <count> [concurrency]` — one sequential
//!   pass over the first `count` credentials of `file`, `k` per request
//!   (`k = 1`: `apiKeys:verify`, else `apiKeys:batchVerify`), so each lands in
//!   the server's (or the edge proxy's) cache; fails on any invalid result.
//! * `bare <listen-addr>` — a bare axum route on the same accept loop as
//!   talos (`adapters::http::server::serve`), answering every POST to
//!   `/v2alpha1/admin/apiKeys:verify` with a static verify response.
//!
//! Run with no arguments (as `cargo bench` does) it prints this and exits.

#[path = "../../benches/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::Instant;

use axum::body::Bytes;
use axum::routing::post;
use axum::Router;
use talos::adapters::store::{open_store, StoreOptions};
use talos::domain::Secret;

fn usage() {
    eprintln!(
        "load_tools: helpers for bench/load/run.sh\n  seed <dsn> <n> <out-file> [concurrency]\n  warm <base-url> <file> <k> <count> [concurrency]\n  bare <listen-addr>"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str) {
        Some("seed") if args.len() >= 4 => {
            let (dsn, out) = (&args[1], &args[3]);
            let n: usize = args[2].parse().expect("n is a number");
            let conc: usize = args.get(4).map_or(1, |c| c.parse().expect("concurrency"));
            rt.block_on(seed(dsn, n, out, conc));
        }
        Some("warm") if args.len() >= 5 => {
            let k: usize = args[3].parse().expect("k is a number");
            let count: usize = args[4].parse().expect("count is a number");
            let conc: usize = args.get(5).map_or(4, |c| c.parse().expect("concurrency"));
            rt.block_on(warm(&args[1], &args[2], k.max(1), count, conc.max(1)));
        }
        Some("bare") if args.len() >= 2 => rt.block_on(bare(&args[1])),
        _ => usage(),
    }
}

async fn seed(dsn: &str, n: usize, out: &str, concurrency: usize) {
    let store = open_store(&StoreOptions {
        dsn: Secret::new(dsn),
        max_connections: concurrency.max(1) as u32 + 1,
        ..StoreOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("open store: {e}"));
    let t = Instant::now();
    let tokens = common::seed_issued(&store, n, concurrency).await;
    let secs = t.elapsed().as_secs_f64();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).expect("create key file"));
    for tok in &tokens {
        writeln!(f, "{tok}").expect("write key file");
    }
    f.flush().expect("flush key file");
    eprintln!(
        "seeded {n} issued keys into {} via the store port in {secs:.1}s ({:.0} keys/s)",
        store.backend(),
        n as f64 / secs
    );
}

async fn warm(base: &str, file: &str, k: usize, count: usize, concurrency: usize) {
    use futures::StreamExt;
    let text = std::fs::read_to_string(file).expect("read key file");
    let creds: Vec<&str> = text.lines().filter(|l| !l.is_empty()).take(count).collect();
    let client = reqwest::Client::new();
    let t = Instant::now();
    let bodies = creds.chunks(k).map(|chunk| {
        let items: Vec<serde_json::Value> = chunk
            .iter()
            .map(|c| serde_json::json!({ "credential": c }))
            .collect();
        if k == 1 {
            (
                format!("{base}/v2alpha1/admin/apiKeys:verify"),
                items[0].clone(),
            )
        } else {
            (
                format!("{base}/v2alpha1/admin/apiKeys:batchVerify"),
                serde_json::json!({ "requests": items }),
            )
        }
    });
    let invalid: usize = futures::stream::iter(bodies)
        .map(|(url, body)| {
            let client = client.clone();
            async move {
                let v: serde_json::Value = client
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("warm-up request")
                    .json()
                    .await
                    .expect("warm-up response");
                let results = match v.get("results") {
                    Some(serde_json::Value::Array(a)) => a.clone(),
                    _ => vec![v],
                };
                results.iter().filter(|r| r["is_valid"] != true).count()
            }
        })
        .buffer_unordered(concurrency)
        .fold(0, |acc, n| async move { acc + n })
        .await;
    eprintln!(
        "warmed {} credentials through {base} in {:.1}s ({invalid} invalid)",
        creds.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(invalid, 0, "every warm-up credential verifies");
}

async fn bare(listen: &str) {
    let body =
        Bytes::from(serde_json::to_vec(&common::sample_verify_response()).expect("static body"));
    let router = Router::new().route(
        "/v2alpha1/admin/apiKeys:verify",
        post(move |_req: Bytes| {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .unwrap_or_else(|e| panic!("bind {listen}: {e}"));
    eprintln!("bare route listening on {listen}");
    talos::adapters::http::server::serve(listener, router, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
    .expect("serve");
}
