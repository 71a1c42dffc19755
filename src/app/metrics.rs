//! Service and HTTP metrics (feature `metrics`), exposed as Prometheus text
//! on the 4422 listener at `/metrics/prometheus`. Labels are low-cardinality:
//! never key ids, actors or paths with ids in them.
//!
//! Without the feature every recording method is a no-op and `render`
//! returns `None`, so call sites need no `cfg`.

#[cfg(feature = "metrics")]
mod imp {
    use std::sync::atomic::AtomicU64;

    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
    use prometheus_client::registry::Registry;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct HttpLabels {
        pub method: &'static str,
        pub code: u16,
        pub endpoint: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct SizeLabels {
        pub method: &'static str,
        pub code: u16,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct One {
        pub label: &'static str,
    }

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    pub struct VerifyLabels {
        pub credential_type: &'static str,
        pub result: &'static str,
    }

    type HistFamily<L> = Family<L, Histogram, fn() -> Histogram>;

    fn latency() -> Histogram {
        Histogram::new(exponential_buckets(0.000_1, 2.0, 18))
    }
    fn sizes() -> Histogram {
        Histogram::new(exponential_buckets(64.0, 4.0, 10))
    }

    pub struct Metrics {
        registry: Registry,
        pub http_requests: Family<HttpLabels, Counter>,
        pub http_duration: HistFamily<HttpLabels>,
        pub http_request_size: HistFamily<SizeLabels>,
        pub http_response_size: HistFamily<SizeLabels>,
        pub http_in_flight: Gauge<i64, std::sync::atomic::AtomicI64>,
        pub keys_created: Family<One, Counter>,
        pub keys_revoked: Family<One, Counter>,
        pub keys_rotated: Counter<u64, AtomicU64>,
        pub tokens_derived: Family<One, Counter>,
        pub verifications: Family<VerifyLabels, Counter>,
        pub cache: Family<One, Counter>,
        pub batch_import: Family<One, Counter>,
        pub rate_limit: Family<One, Counter>,
        /// The four HTTP series of a (method, code, route), found by the
        /// label strings' addresses: one lookup per request instead of four
        /// label hashes and family locks. Bounded: the labels are 'static
        /// values from small fixed sets (method names, route templates).
        pub http_handles: std::sync::RwLock<
            std::collections::HashMap<HttpKey, std::sync::Arc<HttpHandles>, BuildPtrHasher>,
        >,
        /// `verifications` and `cache` series by their labels' addresses,
        /// as `http_handles`: every verification counts in both.
        pub verify_handles: ByAddress<((usize, usize), bool)>,
        pub cache_handles: ByAddress<(usize, usize)>,
    }

    /// Counters found by the addresses of their 'static label values.
    pub type ByAddress<K> =
        std::sync::RwLock<std::collections::HashMap<K, Counter, BuildPtrHasher>>;

    /// Increments the counter under `key`, created by `create` (which
    /// hashes the label values and locks the family) only the first time.
    pub fn inc_by_address<K: std::hash::Hash + Eq>(
        handles: &ByAddress<K>,
        key: K,
        create: impl FnOnce() -> Counter,
    ) {
        if let Some(c) = handles.read().ok().as_ref().and_then(|m| m.get(&key)) {
            c.inc();
            return;
        }
        let c = create();
        c.inc();
        if let Ok(mut m) = handles.write() {
            m.entry(key).or_insert(c);
        }
    }

    /// A label value's identity: its address and length.
    pub fn address(s: &'static str) -> (usize, usize) {
        (s.as_ptr() as usize, s.len())
    }

    /// (method address, length), code, (route address, length).
    pub type HttpKey = ((usize, usize), u16, (usize, usize));

    pub struct HttpHandles {
        pub requests: Counter,
        pub duration: Histogram,
        pub request_size: Histogram,
        pub response_size: Histogram,
    }

    pub type BuildPtrHasher = std::hash::BuildHasherDefault<PtrHasher>;

    /// A multiply-rotate hasher for small integer keys (addresses, codes).
    #[derive(Default)]
    pub struct PtrHasher(u64);

    impl std::hash::Hasher for PtrHasher {
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.write_u64(u64::from(b));
            }
        }
        fn write_u16(&mut self, n: u16) {
            self.write_u64(u64::from(n));
        }
        fn write_usize(&mut self, n: usize) {
            self.write_u64(n as u64);
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        fn finish(&self) -> u64 {
            self.0
        }
    }

    impl Default for Metrics {
        fn default() -> Self {
            let mut registry = Registry::default();
            let m = Metrics {
                http_requests: Family::default(),
                http_duration: Family::new_with_constructor(latency),
                http_request_size: Family::new_with_constructor(sizes),
                http_response_size: Family::new_with_constructor(sizes),
                http_in_flight: Gauge::default(),
                keys_created: Family::default(),
                keys_revoked: Family::default(),
                keys_rotated: Counter::default(),
                tokens_derived: Family::default(),
                verifications: Family::default(),
                cache: Family::default(),
                batch_import: Family::default(),
                rate_limit: Family::default(),
                http_handles: Default::default(),
                verify_handles: Default::default(),
                cache_handles: Default::default(),
                registry: Registry::default(),
            };
            registry.register(
                "http_requests",
                "HTTP requests by method, status code and route",
                m.http_requests.clone(),
            );
            registry.register(
                "http_request_duration_seconds",
                "HTTP request latency",
                m.http_duration.clone(),
            );
            registry.register(
                "http_request_size_bytes",
                "HTTP request body size",
                m.http_request_size.clone(),
            );
            registry.register(
                "http_response_size_bytes",
                "HTTP response body size",
                m.http_response_size.clone(),
            );
            registry.register(
                "http_requests_in_flight",
                "HTTP requests being served",
                m.http_in_flight.clone(),
            );
            registry.register(
                "talos_api_keys_created",
                "API keys created, by key type (issued, imported)",
                m.keys_created.clone(),
            );
            registry.register(
                "talos_api_keys_revoked",
                "API keys revoked, by reason (or rotation)",
                m.keys_revoked.clone(),
            );
            registry.register(
                "talos_api_keys_rotated",
                "Issued API keys rotated",
                m.keys_rotated.clone(),
            );
            registry.register(
                "talos_tokens_derived",
                "Derived tokens minted, by algorithm",
                m.tokens_derived.clone(),
            );
            registry.register(
                "talos_verifications",
                "Verifications by credential type and result",
                m.verifications.clone(),
            );
            registry.register(
                "talos_cache_requests",
                "Verification cache lookups by result (hit, miss, error)",
                m.cache.clone(),
            );
            registry.register(
                "talos_batch_import_keys",
                "Batch-imported keys by outcome",
                m.batch_import.clone(),
            );
            registry.register(
                "talos_rate_limit_decisions",
                "Rate-limit decisions (allowed, limited, error)",
                m.rate_limit.clone(),
            );
            Metrics { registry, ..m }
        }
    }

    impl Metrics {
        pub fn render(&self) -> Option<String> {
            let mut out = String::new();
            prometheus_client::encoding::text::encode(&mut out, &self.registry).ok()?;
            Some(out)
        }
        pub fn inc(family: &Family<One, Counter>, label: &'static str) {
            family.get_or_create(&One { label }).inc();
        }
    }
}

#[cfg(feature = "metrics")]
pub use imp::Metrics;

#[cfg(feature = "metrics")]
impl Metrics {
    pub fn key_created(&self, kind: &'static str) {
        Self::inc(&self.keys_created, kind);
    }
    pub fn key_revoked(&self, reason: &'static str) {
        Self::inc(&self.keys_revoked, reason);
    }
    pub fn key_rotated(&self) {
        self.keys_rotated.inc();
        Self::inc(&self.keys_revoked, "rotation");
    }
    pub fn token_derived(&self, algorithm: &'static str) {
        Self::inc(&self.tokens_derived, algorithm);
    }
    pub fn verification(&self, credential_type: &'static str, ok: bool) {
        let key = (imp::address(credential_type), ok);
        imp::inc_by_address(&self.verify_handles, key, || {
            self.verifications
                .get_or_create(&imp::VerifyLabels {
                    credential_type,
                    result: if ok { "success" } else { "failure" },
                })
                .clone()
        });
    }
    pub fn cache_result(&self, result: &'static str) {
        imp::inc_by_address(&self.cache_handles, imp::address(result), || {
            self.cache
                .get_or_create(&imp::One { label: result })
                .clone()
        });
    }
    pub fn batch_import(&self, outcome: &'static str, n: u64) {
        self.batch_import
            .get_or_create(&imp::One { label: outcome })
            .inc_by(n);
    }
    pub fn rate_limit_decision(&self, decision: &'static str) {
        Self::inc(&self.rate_limit, decision);
    }
    /// `method` and `endpoint` are label values: a fixed method name and a
    /// route template, never a raw path.
    pub fn http(
        &self,
        method: &'static str,
        code: u16,
        endpoint: &'static str,
        seconds: f64,
        req_bytes: u64,
        resp_bytes: u64,
    ) {
        let h = self.http_handles(method, code, endpoint);
        h.requests.inc();
        h.duration.observe(seconds);
        h.request_size.observe(req_bytes as f64);
        h.response_size.observe(resp_bytes as f64);
    }
    fn http_handles(
        &self,
        method: &'static str,
        code: u16,
        endpoint: &'static str,
    ) -> std::sync::Arc<imp::HttpHandles> {
        let key = (imp::address(method), code, imp::address(endpoint));
        if let Some(h) = self
            .http_handles
            .read()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return h;
        }
        let labels = imp::HttpLabels {
            method,
            code,
            endpoint,
        };
        let sl = imp::SizeLabels { method, code };
        let h = std::sync::Arc::new(imp::HttpHandles {
            requests: self.http_requests.get_or_create(&labels).clone(),
            duration: self.http_duration.get_or_create(&labels).clone(),
            request_size: self.http_request_size.get_or_create(&sl).clone(),
            response_size: self.http_response_size.get_or_create(&sl).clone(),
        });
        if let Ok(mut m) = self.http_handles.write() {
            m.entry(key).or_insert_with(|| h.clone());
        }
        h
    }
    pub fn in_flight(&self, delta: i64) {
        self.http_in_flight.inc_by(delta);
    }
}

/// No-op metrics for builds without the `metrics` feature.
#[cfg(not(feature = "metrics"))]
#[derive(Default)]
pub struct Metrics {
    _private: (),
}

#[cfg(not(feature = "metrics"))]
impl Metrics {
    pub fn key_created(&self, _kind: &'static str) {}
    pub fn key_revoked(&self, _reason: &'static str) {}
    pub fn key_rotated(&self) {}
    pub fn token_derived(&self, _algorithm: &'static str) {}
    pub fn verification(&self, _credential_type: &'static str, _ok: bool) {}
    pub fn cache_result(&self, _result: &'static str) {}
    pub fn batch_import(&self, _outcome: &'static str, _n: u64) {}
    pub fn rate_limit_decision(&self, _decision: &'static str) {}
    pub fn http(&self, _m: &'static str, _c: u16, _e: &'static str, _s: f64, _q: u64, _r: u64) {}
    pub fn in_flight(&self, _delta: i64) {}
    pub fn render(&self) -> Option<String> {
        None
    }
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use super::*;

    fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(prefix))
    }

    #[test]
    fn http_series_are_counted_per_label_set() {
        let m = Metrics::default();
        // The same label text at another address lands in the same series.
        let other_post: &'static str = Box::leak("POST".to_string().into_boxed_str());
        m.http("POST", 200, "/v", 0.001, 10, 100);
        m.http(other_post, 200, "/v", 0.002, 10, 100);
        m.http("POST", 500, "/v", 0.003, 10, 100);
        m.http("GET", 200, "/w", 0.004, 0, 5000);
        let text = m.render().unwrap();
        let count = |p: &str| {
            line(&text, p)
                .unwrap_or_else(|| panic!("{p} missing:\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        for (series, want) in [
            (
                r#"http_requests_total{method="POST",code="200",endpoint="/v"}"#,
                "2",
            ),
            (
                r#"http_requests_total{method="POST",code="500",endpoint="/v"}"#,
                "1",
            ),
            (
                r#"http_requests_total{method="GET",code="200",endpoint="/w"}"#,
                "1",
            ),
            (
                r#"http_request_duration_seconds_count{method="POST",code="200",endpoint="/v"}"#,
                "2",
            ),
            (
                r#"http_response_size_bytes_count{method="POST",code="200"}"#,
                "2",
            ),
            (
                r#"http_response_size_bytes_sum{method="GET",code="200"}"#,
                "5000.0",
            ),
        ] {
            assert_eq!(count(series), want, "{series}");
        }
    }
}
