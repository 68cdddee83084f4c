//! Prometheus/OpenMetrics metrics. Labels are bounded `&'static str` codes only:
//! never vault names, object names, pod names or error texts.
//!
//! `keyvault_request` and `grpc_request` keep the Azure provider's names and
//! buckets so existing dashboards keep working; everything else is prefixed
//! `rust_azure_provider_`.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

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

/// One counter value read from a component's own statistics at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatSample {
    /// Metric name without the `rust_azure_provider_` prefix and `_total` suffix.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Bounded labels.
    pub labels: Vec<(&'static str, &'static str)>,
    /// Current value.
    pub value: u64,
}

/// Components whose counters live in their own atomics (token cache, Key Vault client).
pub trait StatsSource: Send + Sync + 'static {
    /// Current values; samples of one name must be adjacent.
    fn samples(&self) -> Vec<StatSample>;
}

/// Reads the attached [`StatsSource`] on every scrape.
#[derive(Default)]
struct StatsCollector {
    source: Arc<OnceLock<Weak<dyn StatsSource>>>,
}

impl std::fmt::Debug for StatsCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatsCollector")
    }
}

impl Collector for StatsCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(source) = self.source.get().and_then(Weak::upgrade) else {
            return Ok(());
        };
        let samples = source.samples();
        let mut i = 0;
        while i < samples.len() {
            let name = samples[i].name;
            let full = format!("rust_azure_provider_{name}");
            let mut family =
                encoder.encode_descriptor(&full, samples[i].help, None, MetricType::Counter)?;
            while i < samples.len() && samples[i].name == name {
                let s = &samples[i];
                ConstCounter::new(s.value).encode(family.encode_family(&s.labels)?)?;
                i += 1;
            }
        }
        Ok(())
    }
}

/// Every metric of the process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    keyvault_request: HistogramFamily<KeyVaultLabels>,
    grpc_request: HistogramFamily<GrpcLabels>,
    unknown_parameters: Family<WarningLabels, Counter>,
    mounts_in_flight: Gauge,
    stats_source: Arc<OnceLock<Weak<dyn StatsSource>>>,
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
        let stats_source: Arc<OnceLock<Weak<dyn StatsSource>>> = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(StatsCollector {
            source: stats_source.clone(),
        }));
        let sub = registry.sub_registry_with_prefix("rust_azure_provider");
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
            unknown_parameters,
            mounts_in_flight,
            stats_source,
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

    /// Attaches the component statistics read at scrape time (once; later calls are ignored).
    pub fn attach(&self, source: Weak<dyn StatsSource>) {
        let _ = self.stats_source.set(source);
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
        struct Fixed;
        impl StatsSource for Fixed {
            fn samples(&self) -> Vec<StatSample> {
                vec![
                    StatSample {
                        name: "token_requests",
                        help: "Token requests",
                        labels: vec![("mode", "workload_identity"), ("result", "ok")],
                        value: 1,
                    },
                    StatSample {
                        name: "token_requests",
                        help: "Token requests",
                        labels: vec![("mode", "imds"), ("result", "ok")],
                        value: 2,
                    },
                    StatSample {
                        name: "keyvault_retries",
                        help: "Retries",
                        labels: vec![],
                        value: 3,
                    },
                ]
            }
        }
        let source: Arc<dyn StatsSource> = Arc::new(Fixed);
        m.attach(Arc::downgrade(&source));
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
        assert!(
            text.contains(
                "rust_azure_provider_token_requests_total{mode=\"imds\",result=\"ok\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains("rust_azure_provider_keyvault_retries_total 3"),
            "{text}"
        );
        assert!(text.contains("rust_azure_provider_mounts_in_flight 0"));
        assert!(text.ends_with("# EOF\n"));
    }
}
