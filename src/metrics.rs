//! Prometheus/OpenMetrics metrics. Labels are bounded `&'static str` codes only:
//! never vault names, object names, pod names or error texts.
//!
//! `keyvault_request` and `grpc_request` keep the Azure provider's names and
//! buckets so existing dashboards keep working. Their lowest bucket is 100 ms,
//! which hides a 3 ms Mount, so the same observations also go to
//! `rust_azure_provider_keyvault_request_duration_seconds` and
//! `rust_azure_provider_grpc_request_duration_seconds` with millisecond
//! buckets. Everything of our own is prefixed `rust_azure_provider_`.

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
use prometheus_client::registry::{Registry, Unit};

/// The reference's histogram buckets (seconds).
pub const BUCKETS: [f64; 14] = [
    0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0, 15.0, 30.0,
];

/// Buckets (seconds) of the `rust_azure_provider_*_duration_seconds` histograms:
/// from 0.5 ms, so cached and local Mounts are resolved, up to the 30 s of the
/// reference's buckets.
pub const FINE_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Version of this build (Cargo package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git commit of this build, `unknown` when it was built without git (build.rs).
pub const COMMIT: &str = env!("RUST_AZURE_PROVIDER_COMMIT");

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

/// Labels of `rust_azure_provider_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// Cargo package version.
    pub version: &'static str,
    /// Short git commit or `unknown`.
    pub commit: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

fn fine_histogram() -> Histogram {
    Histogram::new(FINE_BUCKETS)
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
    keyvault_request_fine: HistogramFamily<KeyVaultLabels>,
    grpc_request_fine: HistogramFamily<GrpcLabels>,
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
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: VERSION,
                commit: COMMIT,
            })
            .set(1);
        sub.register(
            "build_info",
            "Always 1; the labels name the version and git commit of this binary",
            build_info,
        );
        let keyvault_request_fine: HistogramFamily<KeyVaultLabels> =
            Family::new_with_constructor(fine_histogram);
        sub.register_with_unit(
            "keyvault_request_duration",
            "Duration of Key Vault requests (keyvault_request with millisecond buckets)",
            Unit::Seconds,
            keyvault_request_fine.clone(),
        );
        let grpc_request_fine: HistogramFamily<GrpcLabels> =
            Family::new_with_constructor(fine_histogram);
        sub.register_with_unit(
            "grpc_request_duration",
            "Duration of gRPC requests (grpc_request with millisecond buckets)",
            Unit::Seconds,
            grpc_request_fine.clone(),
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
            keyvault_request_fine,
            grpc_request_fine,
            unknown_parameters,
            mounts_in_flight,
            stats_source,
        })
    }

    /// Records one Key Vault request.
    pub fn keyvault_request(&self, object_type: &'static str, error: &'static str, took: Duration) {
        let labels = KeyVaultLabels {
            object_type,
            error,
            provider: PROVIDER,
            os_type: OS_TYPE,
        };
        let secs = took.as_secs_f64();
        self.keyvault_request.get_or_create(&labels).observe(secs);
        self.keyvault_request_fine
            .get_or_create(&labels)
            .observe(secs);
    }

    /// Records one gRPC call.
    pub fn grpc_request(&self, grpc_method: &'static str, grpc_code: &'static str, took: Duration) {
        let labels = GrpcLabels {
            grpc_method,
            grpc_code,
            provider: PROVIDER,
            os_type: OS_TYPE,
        };
        let secs = took.as_secs_f64();
        self.grpc_request.get_or_create(&labels).observe(secs);
        self.grpc_request_fine.get_or_create(&labels).observe(secs);
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

    /// The line of `text` for `series` (exact name and labels), as its value.
    fn sample(text: &str, series: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
            .unwrap_or_else(|| panic!("no {series} in\n{text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    }

    #[test]
    fn reference_histograms_are_unchanged_and_fine_ones_resolve_milliseconds() {
        let m = Metrics::new();
        let mount = "/v1alpha1.CSIDriverProvider/Mount";
        m.grpc_request(mount, "OK", Duration::from_micros(2_400));
        m.keyvault_request("secret", "", Duration::from_micros(700));
        let text = m.encode().unwrap();
        let labels = format!(
            "grpc_method=\"{mount}\",grpc_code=\"OK\",provider=\"rust-azure\",os_type=\"{OS_TYPE}\""
        );
        // The reference's series: exactly its 14 buckets plus +Inf, 2.4 ms lands in 0.1.
        let reference: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("grpc_request_bucket{"))
            .collect();
        assert_eq!(reference.len(), BUCKETS.len() + 1, "{text}");
        assert_eq!(
            sample(
                &text,
                &format!("grpc_request_bucket{{le=\"0.1\",{labels}}}")
            ),
            1.0
        );
        // The fine series tells 2.4 ms from 5 ms and from 1 ms.
        let fine = "rust_azure_provider_grpc_request_duration_seconds_bucket";
        assert_eq!(
            sample(&text, &format!("{fine}{{le=\"0.001\",{labels}}}")),
            0.0
        );
        assert_eq!(
            sample(&text, &format!("{fine}{{le=\"0.0025\",{labels}}}")),
            1.0
        );
        assert_eq!(
            sample(&text, &format!("{fine}{{le=\"30.0\",{labels}}}")),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!("rust_azure_provider_grpc_request_duration_seconds_count{{{labels}}}")
            ),
            1.0
        );
        assert!(
            text.contains("# UNIT rust_azure_provider_grpc_request_duration_seconds seconds"),
            "{text}"
        );
        let kv = format!(
            "object_type=\"secret\",error=\"\",provider=\"rust-azure\",os_type=\"{OS_TYPE}\""
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    "rust_azure_provider_keyvault_request_duration_seconds_bucket{{le=\"0.001\",{kv}}}"
                )
            ),
            1.0
        );
        assert_eq!(
            sample(
                &text,
                &format!(
                    "rust_azure_provider_keyvault_request_duration_seconds_bucket{{le=\"0.0005\",{kv}}}"
                )
            ),
            0.0
        );
    }

    #[test]
    fn build_info_names_version_and_commit() {
        let text = Metrics::new().encode().unwrap();
        assert_eq!(
            sample(
                &text,
                &format!(
                    "rust_azure_provider_build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}}"
                )
            ),
            1.0
        );
        assert!(
            text.contains("# TYPE rust_azure_provider_build_info gauge"),
            "{text}"
        );
        assert!(
            COMMIT == "unknown" || COMMIT.bytes().all(|b| b.is_ascii_hexdigit()),
            "{COMMIT}"
        );
    }
}
