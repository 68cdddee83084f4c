//! Prometheus/OpenMetrics metrics. Labels are bounded `&'static str` codes only:
//! never vault names, object names, pod names or error texts.
//!
//! `keyvault_request` and `grpc_request` keep the Azure provider's names and
//! buckets so existing dashboards keep working; everything else is prefixed
//! `rust_azure_provider_`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The reference's histogram buckets (seconds).
pub const BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];

/// Constant label values the reference attaches.
const PROVIDER: &str = "rust-azure";
const OS_TYPE: &str = std::env::consts::OS;

/// Labels of `keyvault_request`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyVaultLabels {
    /// `secret`, `key`, `cert`.
    pub object_type: &'static str,
    /// Bounded error code, empty on success.
    pub error: &'static str,
    /// Always `rust-azure`.
    pub provider: &'static str,
    /// Operating system.
    pub os_type: &'static str,
}

/// Labels of `grpc_request`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrpcLabels {
    /// Full method path.
    pub grpc_method: &'static str,
    /// gRPC code name, e.g. `OK`, `InvalidArgument`.
    pub grpc_code: &'static str,
    /// Always `rust-azure`.
    pub provider: &'static str,
    /// Operating system.
    pub os_type: &'static str,
}

/// Labels of token request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// Identity mode code.
    pub mode: &'static str,
    /// `ok` or a bounded error code.
    pub result: &'static str,
}

/// Labels naming a remote endpoint class.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `keyvault`, `entra_id`, `imds`, `nmi`, `token_proxy`.
    pub endpoint: &'static str,
}

/// Labels of cache counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `token` or `object`.
    pub cache: &'static str,
}

/// Labels of the unknown-parameter counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WarningLabels {
    /// `parameter` or `object_field`.
    pub kind: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    keyvault_request: HistogramFamily<KeyVaultLabels>,
    grpc_request: HistogramFamily<GrpcLabels>,
    token_requests: Family<TokenLabels, Counter>,
    cache_hits: Family<CacheLabels, Counter>,
    cache_misses: Family<CacheLabels, Counter>,
    coalesced: Family<CacheLabels, Counter>,
    retries: Family<EndpointLabels, Counter>,
    throttled: Family<EndpointLabels, Counter>,
    unknown_parameters: Family<WarningLabels, Counter>,
    mounts_in_flight: Gauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let keyvault_request: HistogramFamily<KeyVaultLabels> =
            Family::new_with_constructor(histogram);
        let grpc_request: HistogramFamily<GrpcLabels> = Family::new_with_constructor(histogram);
        registry.register(
            "keyvault_request",
            "Duration of Key Vault requests in seconds",
            keyvault_request.clone(),
        );
        registry.register(
            "grpc_request",
            "Duration of gRPC requests in seconds",
            grpc_request.clone(),
        );
        let sub = registry.sub_registry_with_prefix("rust_azure_provider");
        let token_requests = Family::<TokenLabels, Counter>::default();
        sub.register(
            "token_requests",
            "Token requests sent to Entra ID, IMDS, NMI or the token proxy",
            token_requests.clone(),
        );
        let cache_hits = Family::<CacheLabels, Counter>::default();
        sub.register("cache_hits", "Cache hits", cache_hits.clone());
        let cache_misses = Family::<CacheLabels, Counter>::default();
        sub.register("cache_misses", "Cache misses", cache_misses.clone());
        let coalesced = Family::<CacheLabels, Counter>::default();
        sub.register(
            "coalesced_waits",
            "Lookups that waited for an identical in-flight request",
            coalesced.clone(),
        );
        let retries = Family::<EndpointLabels, Counter>::default();
        sub.register("retries", "Retried outbound requests", retries.clone());
        let throttled = Family::<EndpointLabels, Counter>::default();
        sub.register(
            "throttled",
            "429 responses from remote services",
            throttled.clone(),
        );
        let unknown_parameters = Family::<WarningLabels, Counter>::default();
        sub.register(
            "unknown_parameters",
            "Unknown SecretProviderClass parameter names that were ignored",
            unknown_parameters.clone(),
        );
        let mounts_in_flight = Gauge::default();
        sub.register(
            "mounts_in_flight",
            "Mount calls being served",
            mounts_in_flight.clone(),
        );
        Arc::new(Self {
            registry,
            keyvault_request,
            grpc_request,
            token_requests,
            cache_hits,
            cache_misses,
            coalesced,
            retries,
            throttled,
            unknown_parameters,
            mounts_in_flight,
        })
    }

    /// Records one Key Vault request.
    pub fn keyvault_request(&self, object_type: &'static str, error: &'static str, took: Duration) {
        self.keyvault_request
            .get_or_create(&KeyVaultLabels {
                object_type,
                error,
                provider: PROVIDER,
                os_type: OS_TYPE,
            })
            .observe(took.as_secs_f64());
    }

    /// Records one gRPC call.
    pub fn grpc_request(&self, grpc_method: &'static str, grpc_code: &'static str, took: Duration) {
        self.grpc_request
            .get_or_create(&GrpcLabels {
                grpc_method,
                grpc_code,
                provider: PROVIDER,
                os_type: OS_TYPE,
            })
            .observe(took.as_secs_f64());
    }

    /// Counts one token request.
    pub fn token_request(&self, mode: &'static str, result: &'static str) {
        self.token_requests
            .get_or_create(&TokenLabels { mode, result })
            .inc();
    }

    /// Counts a cache hit.
    pub fn cache_hit(&self, cache: &'static str) {
        self.cache_hits.get_or_create(&CacheLabels { cache }).inc();
    }

    /// Counts a cache miss.
    pub fn cache_miss(&self, cache: &'static str) {
        self.cache_misses
            .get_or_create(&CacheLabels { cache })
            .inc();
    }

    /// Counts a coalesced wait.
    pub fn coalesced_wait(&self, cache: &'static str) {
        self.coalesced.get_or_create(&CacheLabels { cache }).inc();
    }

    /// Counts a retry.
    pub fn retry(&self, endpoint: &'static str) {
        self.retries
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    /// Counts a 429.
    pub fn throttled(&self, endpoint: &'static str) {
        self.throttled
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    /// Counts an ignored unknown parameter.
    pub fn unknown_parameter(&self, kind: &'static str) {
        self.unknown_parameters
            .get_or_create(&WarningLabels { kind })
            .inc();
    }

    /// Tracks one Mount in flight until the guard drops.
    pub fn mount_started(self: &Arc<Self>) -> InFlight {
        self.mounts_in_flight.inc();
        InFlight(self.clone())
    }

    /// OpenMetrics text exposition.
    ///
    /// # Errors
    /// Only on a formatter error.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Decrements the in-flight gauge on drop.
#[derive(Debug)]
pub struct InFlight(Arc<Metrics>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.mounts_in_flight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_keeps_reference_names_and_buckets() {
        let m = Metrics::new();
        m.keyvault_request("secret", "", Duration::from_millis(120));
        m.grpc_request(
            "/v1alpha1.CSIDriverProvider/Mount",
            "OK",
            Duration::from_millis(50),
        );
        m.token_request("workload_identity", "ok");
        {
            let _g = m.mount_started();
            assert!(
                m.encode()
                    .unwrap()
                    .contains("rust_azure_provider_mounts_in_flight 1")
            );
        }
        let text = m.encode().unwrap();
        assert!(text.contains("keyvault_request_bucket{"), "{text}");
        assert!(text.contains("le=\"0.2\""), "{text}");
        assert!(text.contains("le=\"30.0\""), "{text}");
        assert!(text.contains("grpc_method=\"/v1alpha1.CSIDriverProvider/Mount\""));
        assert!(text.contains("provider=\"rust-azure\""));
        assert!(text.contains("rust_azure_provider_token_requests_total{mode=\"workload_identity\",result=\"ok\"} 1"), "{text}");
        assert!(text.contains("rust_azure_provider_mounts_in_flight 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
