//! OpenTelemetry: the real binary exports request spans over OTLP/gRPC to an
//! in-process collector; spans continue an incoming `traceparent`, store and
//! cache calls are child spans, audit events ride on the request span, and
//! no credential appears in anything exported.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

use crate::binary::{sigterm, spawn, stderr_of, wait_ready};
use crate::services::free_port;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
    services: Arc<Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        for rs in req.into_inner().resource_spans {
            if let Some(r) = &rs.resource {
                if let Some(name) = attr(&r.attributes, "service.name") {
                    self.services.lock().unwrap().push(name);
                }
            }
            for ss in rs.scope_spans {
                self.spans.lock().unwrap().extend(ss.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        kv.value.as_ref()?.value.as_ref().map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            AnyValue::BoolValue(b) => b.to_string(),
            AnyValue::DoubleValue(d) => d.to_string(),
            other => format!("{other:?}"),
        })
    })
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

// Multi-threaded: the collector must keep serving while this test blocks
// waiting for the server process to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector() {
    let collector = Collector::default();
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let svc = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve(addr),
    );

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let p = spawn(
        dir.path(),
        &[
            ("TALOS_TRACING_ENABLED", "true"),
            ("TALOS_TRACING_EXPORTER", "otlp"),
            ("TALOS_TRACING_ENDPOINT", endpoint.as_str()),
            ("TALOS_TRACING_SAMPLE_RATE", "1"),
            ("TALOS_TRACING_SERVICE_NAME", "talos-otel-test"),
            ("TALOS_CACHE_TYPE", "memory"),
            ("TALOS_CACHE_ENABLED", "true"),
        ],
    );
    wait_ready(&p).await;
    let c = reqwest::Client::new();
    let issued: serde_json::Value = c
        .post(format!("{}/v2alpha1/admin/issuedApiKeys", p.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&json!({"name": "traced", "actor_id": "actor-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = issued["secret"].as_str().expect("issued").to_string();
    for _ in 0..2 {
        let v: serde_json::Value = c
            .post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
            .json(&json!({"credential": secret}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["is_valid"], true);
    }
    // A failed verification: an audit event on the span, no credential.
    c.post(format!("{}/v2alpha1/admin/apiKeys:verify", p.base))
        .json(&json!({"credential": "sk_live_not_a_real_key_for_otel"}))
        .send()
        .await
        .unwrap();

    // SIGTERM flushes the batch exporter before the process exits.
    sigterm(&p.child);
    let (status, stderr) = stderr_of(p);
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("OpenTelemetry tracing enabled"), "{stderr}");
    // Give the collector a moment in case the last batch is still in flight.
    for _ in 0..50 {
        if collector.spans.lock().unwrap().len() >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let spans = collector.spans.lock().unwrap().clone();
    let name_of = |s: &Span| s.name.clone();
    let names: Vec<String> = spans.iter().map(name_of).collect();
    assert!(
        collector
            .services
            .lock()
            .unwrap()
            .iter()
            .all(|s| s == "talos-otel-test"),
        "resource service.name"
    );

    // The issue request continues the caller's trace.
    let issue = spans
        .iter()
        .find(|s| s.name == "POST /v2alpha1/admin/issuedApiKeys")
        .unwrap_or_else(|| panic!("no issue span in {names:?}\n{stderr}"));
    assert_eq!(hex::encode(&issue.trace_id), TRACE_ID);
    assert_eq!(hex::encode(&issue.parent_span_id), PARENT_ID);
    assert_eq!(
        attr(&issue.attributes, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        attr(&issue.attributes, "nid").as_deref(),
        Some("00000000-0000-0000-0000-000000000000")
    );
    assert!(
        issue
            .events
            .iter()
            .any(|e| attr(&e.attributes, "event").as_deref() == Some("IssuedAPIKeyCreated")),
        "audit event on the issue span: {:?}",
        issue.events
    );
    let insert = spans
        .iter()
        .find(|s| s.name == "store.insert")
        .unwrap_or_else(|| panic!("no store.insert span in {names:?}"));
    assert_eq!(insert.trace_id, issue.trace_id);
    assert_eq!(
        insert.parent_span_id, issue.span_id,
        "store call is a child of the request"
    );
    assert_eq!(
        attr(&insert.attributes, "db.system.name").as_deref(),
        Some("sqlite")
    );

    // Verify: the first misses the cache and reads the store, the second hits.
    let verifies: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "POST /v2alpha1/admin/apiKeys:verify")
        .collect();
    assert_eq!(verifies.len(), 3, "{names:?}");
    let children_of = |parent: &Span, name: &str| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id && s.name == name)
            .cloned()
            .collect()
    };
    let hits: Vec<Option<String>> = verifies[..2]
        .iter()
        .flat_map(|v| children_of(v, "cache.get"))
        .map(|s| attr(&s.attributes, "cache.hit"))
        .collect();
    assert!(hits.contains(&Some("false".into())), "{hits:?}");
    assert!(hits.contains(&Some("true".into())), "{hits:?}");
    assert!(
        verifies
            .iter()
            .any(|v| !children_of(v, "store.get").is_empty()),
        "a cache miss reads the store"
    );
    assert!(
        verifies
            .iter()
            .any(|v| v.events.iter().any(
                |e| attr(&e.attributes, "event").as_deref() == Some("APIKeyVerificationFailed")
            )),
        "failed verification emits an audit event"
    );

    // Nothing exported carries a credential.
    let dump = format!("{spans:?}");
    assert!(!dump.contains(&secret), "the issued key leaked into a span");
    assert!(
        !dump.contains("sk_live_not_a_real_key_for_otel"),
        "a credential leaked into a span"
    );
}
