//! Pure domain logic and wire JSON, no I/O.
//!
//! `cargo bench --bench domain`

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use talos::adapters::http::wire::{
    BatchVerifyApiKeysRequest, VerifyApiKeyRequest, VerifyApiKeyResponse,
};
use talos::domain::credential::route;
use talos::domain::keys::{generate_v1, imported_key_id, parse_v1, verify_v1};
use talos::domain::page_token::{self, PageTokenBinding, PAGE_TOKEN_MAX_AGE};
use talos::domain::{KeyKind, ListFilter, NetworkId, Secret, Timestamp};
use uuid::Uuid;

fn keys(c: &mut Criterion) {
    let secret = Secret::new(common::SECRET);
    let retired = Secret::new("retired-hmac-secret-0123456789abcdef-012345");
    let key = generate_v1(common::PREFIX, Uuid::new_v4(), 1_750_000_000, &secret);
    let mut g = c.benchmark_group("keys");
    g.bench_function("parse_v1", |b| b.iter(|| parse_v1(black_box(&key))));
    g.bench_function("verify_v1/1_secret", |b| {
        b.iter(|| verify_v1(black_box(&key), &[&secret]).is_some())
    });
    g.bench_function("verify_v1/2_secrets", |b| {
        b.iter(|| verify_v1(black_box(&key), &[&secret, &retired]).is_some())
    });
    let mut bad = key.clone();
    bad.pop();
    bad.push('z');
    g.bench_function("verify_v1/bad_checksum", |b| {
        b.iter(|| verify_v1(black_box(&bad), &[&secret]).is_none())
    });
    g.bench_function("imported_key_id/24B", |b| {
        b.iter(|| imported_key_id(NetworkId::NIL, black_box("sk_live_abc123xyz789abcd")))
    });
    let long = "x".repeat(256);
    g.bench_function("imported_key_id/256B", |b| {
        b.iter(|| imported_key_id(NetworkId::NIL, black_box(&long)))
    });
    g.bench_function("generate_v1", |b| {
        let id = Uuid::new_v4();
        b.iter(|| generate_v1(common::PREFIX, id, black_box(1_750_000_000), &secret))
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let secret = Secret::new(common::SECRET);
    let issued = generate_v1(common::PREFIX, Uuid::new_v4(), 1_750_000_000, &secret);
    let jwt = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZS1zaWduYXR1cmU";
    let macaroon = "mc_v1_AgETaHR0cHM6Ly9leGFtcGxlLmNvbQIkMzJhZGYx";
    let imported = "sk_live_abc123xyz789abcdef";
    let prefixes = vec!["mc".to_string()];
    let mut g = c.benchmark_group("route");
    for (name, cred) in [
        ("issued", issued.as_str()),
        ("jwt", jwt),
        ("macaroon", macaroon),
        ("imported", imported),
    ] {
        g.bench_function(name, |b| b.iter(|| route(black_box(cred), &prefixes)));
    }
    g.finish();
}

fn page_tokens(c: &mut Criterion) {
    let secret = Secret::new(common::SECRET);
    let filter = ListFilter::parse("actor_id=\"user-7\"").expect("filter");
    let binding = PageTokenBinding {
        nid: NetworkId::NIL,
        kind: KeyKind::Issued,
        filter: &filter,
    };
    let now = Timestamp::from_millis(1_750_000_000_000);
    let last = Uuid::new_v4().as_hyphenated().to_string();
    let token = page_token::seal(&secret, &binding, &last, now, [7u8; 12]);
    let mut g = c.benchmark_group("page_token");
    g.bench_function("seal", |b| {
        b.iter(|| page_token::seal(&secret, &binding, black_box(&last), now, [7u8; 12]))
    });
    g.bench_function("open", |b| {
        b.iter(|| {
            page_token::open(
                &[&secret],
                &binding,
                black_box(&token),
                now,
                PAGE_TOKEN_MAX_AGE,
            )
            .expect("opens")
        })
    });
    g.finish();
}

fn wire_json(c: &mut Criterion) {
    let secret = Secret::new(common::SECRET);
    let key = generate_v1(common::PREFIX, Uuid::new_v4(), 1_750_000_000, &secret);
    let req = format!("{{\"credential\":\"{key}\"}}");
    let batch = format!("{{\"requests\":[{}]}}", vec![req.as_str(); 100].join(","));
    let resp: VerifyApiKeyResponse =
        serde_json::from_value(common::sample_verify_response()).expect("response decodes");
    let resp_bytes = serde_json::to_vec(&resp).expect("encodes");
    let mut g = c.benchmark_group("wire");
    g.bench_function("verify_request/decode", |b| {
        b.iter(|| serde_json::from_slice::<VerifyApiKeyRequest>(black_box(req.as_bytes())))
    });
    g.bench_function("verify_response/encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&resp)).expect("encodes"))
    });
    g.bench_function("verify_response/decode", |b| {
        b.iter(|| serde_json::from_slice::<VerifyApiKeyResponse>(black_box(&resp_bytes)))
    });
    g.bench_function("batch_verify_request_100/decode", |b| {
        b.iter(|| serde_json::from_slice::<BatchVerifyApiKeysRequest>(black_box(batch.as_bytes())))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion_config(3);
    targets = keys, routing, page_tokens, wire_json
}
criterion_main!(benches);
