//! Command-line and environment configuration (clap derive, every flag with an
//! env twin) and its validation into runtime [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

/// Directory the Secrets Store CSI Driver searches for provider sockets.
pub const DEFAULT_PROVIDER_DIR: &str = "/var/run/secrets-store-csi-providers";
/// Socket file name: `<provider>.sock` with provider name `rust-azure`.
pub const SOCKET_NAME: &str = "rust-azure.sock";
/// The driver's default gRPC receive limit (`--max-call-recv-msg-size`).
pub const DRIVER_MAX_RECV_BYTES: usize = 4 * 1024 * 1024;
/// Default health listener; 8989 belongs to the Azure provider on the same host network.
pub const DEFAULT_HEALTH_ADDR: &str = "0.0.0.0:8990";
/// Default metrics listener; 8898 belongs to the Azure provider on the same host network.
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:8899";
/// Longest accepted `--object-cache-ttl`.
const MAX_OBJECT_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Default tracing filter.
pub const DEFAULT_LOG_FILTER: &str = "rust_azure_provider=info,warn";

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// rust-azure-provider: a Secrets Store CSI Driver provider for Azure Key Vault.
#[derive(Debug, Parser)]
#[command(
    name = "rust-azure-provider",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to run; without a subcommand the provider server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server options (used when no subcommand is given).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the provider server (the default).
    Serve(ServeArgs),
    /// Check SecretProviderClass YAML files offline with the same parser and
    /// validation as Mount, reporting every problem with its field and line
    /// (exit 0: valid, 1: invalid, 2: unreadable).
    Validate(ValidateArgs),
    /// Call a running provider over its socket exactly as the driver does and
    /// write the files into a directory (a debugging tool for real clusters); with
    /// --credential, run the Mount in this process with your `az login` instead.
    #[command(after_help = MOUNT_EXIT_CODES)]
    Mount(MountArgs),
}

/// Exit codes of `mount`, shown by `mount --help` and listed in the README.
pub const MOUNT_EXIT_CODES: &str = "Exit codes:
  0  the provider answered; files written, one `file` and one `version` line each
  1  the provider answered with an error (gRPC status or provider error code), answered
     without object versions, or did not answer within --timeout
  2  a local problem: bad arguments, unreadable or invalid --spc, --node-publish-secret-file
     or --service-account-token-file, files that cannot be written, an invalid response
  3  cannot connect to --socket (provider not running on this node, wrong path, permissions)
With --credential the Mount runs in this process: 1 is the provider's coded error (printed
as `Mount failed: code = … desc = …`, e.g. Unauthenticated when `az` is missing, not signed
in or hands out an expired token), 3 is not used.";

/// Options of `validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// SecretProviderClass YAML files (several documents per file, `kind: List` as
    /// `kubectl get secretproviderclasses -A -o yaml` prints it; `-` reads standard input).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Cloud assumed when a SecretProviderClass sets no cloudName.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_VALIDATE_CLOUD_NAME",
        default_value = "AzurePublicCloud"
    )]
    pub cloud_name: String,
    /// Treat warnings (unknown parameter names) as errors.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_VALIDATE_STRICT",
        default_value_t = false
    )]
    pub strict: bool,
    /// Check as the provider runs with --write-cert-and-key-in-separate-files: the extra
    /// `<file>.crt` and `<file>.key` take part in the path checks and may be named by secretObjects.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_VALIDATE_WRITE_CERT_AND_KEY_IN_SEPARATE_FILES",
        default_value_t = false
    )]
    pub write_cert_and_key_in_separate_files: bool,
    /// Also check classes with `provider: azure` as if they named `rust-azure` (before a
    /// migration); without it they are skipped like other providers' classes.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_VALIDATE_CHECK_AZURE",
        default_value_t = false
    )]
    pub check_azure: bool,
}

/// Options of `mount`.
#[derive(Debug, Clone, Args)]
pub struct MountArgs {
    /// SecretProviderClass YAML file (`kind: List` too); `-` reads standard input.
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_SPC")]
    pub spc: PathBuf,
    /// Name of the SecretProviderClass when the file holds several.
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_SPC_NAME")]
    pub spc_name: Option<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_OUT")]
    pub out: PathBuf,
    /// Provider socket.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_SOCKET",
        default_value = "/var/run/secrets-store-csi-providers/rust-azure.sock"
    )]
    pub socket: PathBuf,
    /// Pod name sent as csi.storage.k8s.io/pod.name.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_POD_NAME",
        default_value = "rust-azure-provider-debug"
    )]
    pub pod_name: String,
    /// Pod namespace sent as csi.storage.k8s.io/pod.namespace.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_POD_NAMESPACE",
        default_value = "default"
    )]
    pub pod_namespace: String,
    /// Pod UID sent as csi.storage.k8s.io/pod.uid.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_POD_UID",
        default_value = "00000000-0000-0000-0000-000000000000"
    )]
    pub pod_uid: String,
    /// Service account name.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_SERVICE_ACCOUNT",
        default_value = "default"
    )]
    pub service_account: String,
    /// File holding a service-account token (JWT) to pass as kubelet does.
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_SERVICE_ACCOUNT_TOKEN_FILE")]
    pub service_account_token_file: Option<PathBuf>,
    /// Audiences the token is passed for.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_TOKEN_AUDIENCE",
        value_delimiter = ',',
        default_value = "api://AzureADTokenExchange"
    )]
    pub token_audience: Vec<String>,
    /// YAML or JSON map file with the nodePublishSecretRef data (e.g. clientid, clientsecret).
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_NODE_PUBLISH_SECRET_FILE")]
    pub node_publish_secret_file: Option<PathBuf>,
    /// Default file mode: octal as users write it (`0644`, `0o644`) or decimal as the
    /// driver sends it (`420`). Sent to the provider in decimal.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_PERMISSION",
        value_parser = parse_permission,
        default_value = "0644"
    )]
    pub permission: u32,
    /// Deadline of the call.
    // Not RUST_AZURE_PROVIDER_MOUNT_TIMEOUT: that is the server's `--mount-timeout`, and setting it
    // for a provider must not change this debugging command.
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_CALL_TIMEOUT", value_parser = parse_duration, default_value = "115s")]
    pub timeout: Duration,
    /// Run the whole Mount in this process (no provider socket, no cluster) with the signed-in
    /// developer's token instead of the SecretProviderClass's identity mode: `azure-cli`
    /// (`az login`) or `developer-tools` (Azure CLI, then Azure Developer CLI).
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_CREDENTIAL", value_enum)]
    pub credential: Option<MountCredential>,
    /// With --credential: PEM file of extra trusted root certificates for Key Vault requests
    /// (TLS-inspecting proxies, private CAs).
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_CA_BUNDLE",
        requires = "credential"
    )]
    pub ca_bundle: Option<PathBuf>,
    /// With --credential: cloud assumed when the SecretProviderClass sets no cloudName.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MOUNT_CLOUD_NAME",
        default_value = "AzurePublicCloud"
    )]
    pub cloud_name: String,
}

/// Token source of an in-process `mount --credential`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MountCredential {
    /// azure_identity's Azure CLI credential (`az account get-access-token`).
    AzureCli,
    /// azure_identity's developer-tools chain (Azure CLI, then Azure Developer CLI).
    DeveloperTools,
}

/// Options of the provider server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory in which the socket `rust-azure.sock` is created; the driver's
    /// `--provider-volume` (the sync controller uses /provider).
    #[arg(long, env = "RUST_AZURE_PROVIDER_PROVIDER_DIR", default_value = DEFAULT_PROVIDER_DIR)]
    pub provider_dir: PathBuf,

    /// Log output format.
    #[arg(long, env = "RUST_AZURE_PROVIDER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in tracing-subscriber EnvFilter syntax.
    #[arg(long, env = "RUST_AZURE_PROVIDER_LOG_FILTER", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,

    /// Largest encoded Mount response; larger responses fail with ResourceExhausted.
    /// Keep it at or below the driver's --max-call-recv-msg-size (4 MiB by default).
    #[arg(long, env = "RUST_AZURE_PROVIDER_MAX_RESPONSE_BYTES", default_value_t = DRIVER_MAX_RECV_BYTES)]
    pub max_response_bytes: usize,

    /// Total time budget of one Mount, well inside kubelet's 2-minute NodePublishVolume deadline.
    #[arg(long, env = "RUST_AZURE_PROVIDER_MOUNT_TIMEOUT", value_parser = parse_duration, default_value = "90s")]
    pub mount_timeout: Duration,

    /// How long a shutdown waits for in-flight Mounts before closing connections.
    #[arg(long, env = "RUST_AZURE_PROVIDER_DRAIN_TIMEOUT", value_parser = parse_duration, default_value = "30s")]
    pub drain_timeout: Duration,

    /// Cloud used when a SecretProviderClass sets no cloudName.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_CLOUD_NAME",
        default_value = "AzurePublicCloud"
    )]
    pub cloud_name: String,

    /// Reorder PKCS#12 certificates leaf -> intermediates -> root (reference default: true).
    #[arg(long, env = "RUST_AZURE_PROVIDER_CONSTRUCT_PEM_CHAIN", action = ArgAction::Set, default_value_t = true)]
    pub construct_pem_chain: bool,

    /// Also write `<file>.crt` and `<file>.key` for certificate-backed secrets.
    #[arg(long, env = "RUST_AZURE_PROVIDER_WRITE_CERT_AND_KEY_IN_SEPARATE_FILES", action = ArgAction::Set, default_value_t = false)]
    pub write_cert_and_key_in_separate_files: bool,

    /// PEM file of extra trusted root certificates (Azure Stack Hub, private CAs, TLS-inspecting proxies).
    #[arg(long, env = "RUST_AZURE_PROVIDER_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,

    /// Proxy for every outbound request (Entra ID, IMDS, NMI, Key Vault); takes
    /// precedence over HTTPS_PROXY/HTTP_PROXY, which are honoured when this is unset.
    #[arg(long, env = "RUST_AZURE_PROVIDER_OUTBOUND_PROXY")]
    pub outbound_proxy: Option<String>,

    /// Hosts that bypass --outbound-proxy (NO_PROXY syntax); NO_PROXY when unset.
    #[arg(long, env = "RUST_AZURE_PROVIDER_NO_PROXY")]
    pub no_proxy: Option<String>,

    /// Appended to the User-Agent of every outbound request.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_CUSTOM_USER_AGENT",
        default_value = ""
    )]
    pub custom_user_agent: String,

    /// Largest number of concurrent Key Vault requests per vault, shared by all Mounts.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_MAX_CONCURRENT_PER_VAULT",
        default_value_t = 64
    )]
    pub max_concurrent_per_vault: usize,

    /// Reuse a fetched Key Vault object (secret, key, certificate, version listing) for this
    /// long for Mounts whose own credential was accepted for the same principal, vault, type,
    /// name and requested version; 0 turns the cache off. Changes and revoked access show up
    /// at most this late: keep it at or below the driver's --rotation-poll-interval.
    #[arg(long, env = "RUST_AZURE_PROVIDER_OBJECT_CACHE_TTL", value_parser = parse_duration, default_value = "0s")]
    pub object_cache_ttl: Duration,

    /// Memory bound of the object cache (bodies, URLs and overhead); least recently used
    /// entries are evicted and wiped beyond it.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_OBJECT_CACHE_MAX_BYTES",
        default_value_t = crate::keyvault::object_cache::DEFAULT_MAX_BYTES
    )]
    pub object_cache_max_bytes: usize,

    /// Identity binding: URL of the AKS token proxy.
    #[arg(
        long,
        env = "RUST_AZURE_PROVIDER_TOKEN_PROXY_URL",
        default_value = "https://kubernetes.default.svc.cluster.local"
    )]
    pub token_proxy_url: String,

    /// Identity binding: TLS server name of the token proxy (computed when empty).
    #[arg(long, env = "RUST_AZURE_PROVIDER_SNI_NAME", default_value = "")]
    pub sni_name: String,

    /// Health listener (/healthz, /readyz).
    #[arg(long, env = "RUST_AZURE_PROVIDER_HEALTH_ADDR", default_value = DEFAULT_HEALTH_ADDR)]
    pub health_addr: SocketAddr,

    /// Metrics listener (/metrics).
    #[arg(long, env = "RUST_AZURE_PROVIDER_METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR)]
    pub metrics_addr: SocketAddr,
}

/// Parses durations such as `90s`, `2m`, `500ms`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("invalid duration {value:?} ({e}); use forms like 90s, 2m or 500ms"))
}

/// Parses a file mode: octal with a leading `0` or `0o` (`0644`, `0o644`), or decimal as the
/// driver sends it (`420`). Values above 0777 are rejected, so a mode written without its
/// leading zero (`644`) is caught rather than read as decimal 644.
///
/// # Errors
/// A message naming both accepted forms.
pub fn parse_permission(value: &str) -> Result<u32, String> {
    let v = value.trim();
    let octal = v
        .strip_prefix("0o")
        .or_else(|| v.strip_prefix("0O"))
        .or_else(|| v.strip_prefix('0').filter(|rest| !rest.is_empty()));
    let parsed = match octal {
        Some(digits) => u32::from_str_radix(digits, 8).ok(),
        None => v.parse::<u32>().ok(),
    };
    parsed.filter(|m| *m <= 0o777).ok_or_else(|| {
        format!(
            "invalid file mode {value:?}: write it in octal with a leading 0 (0644) or in decimal as the driver sends it (420), at most 0777 (511)"
        )
    })
}

/// Validated runtime settings of the server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Full path of the socket.
    pub socket_path: PathBuf,
    /// Everything else as given.
    pub args: ServeArgs,
}

/// Configuration errors found before start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A flag value is out of range.
    #[error("--{flag}: {reason}")]
    Invalid {
        /// Flag name without dashes.
        flag: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl ServeArgs {
    /// Checks ranges and derives the runtime settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the flag.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        if self.max_response_bytes == 0 {
            return Err(ConfigError::Invalid {
                flag: "max-response-bytes",
                reason: "must be greater than 0".into(),
            });
        }
        if self.mount_timeout.is_zero() || self.mount_timeout > Duration::from_secs(115) {
            return Err(ConfigError::Invalid {
                flag: "mount-timeout",
                reason: "must be between 1s and 115s (kubelet gives NodePublishVolume 2 minutes)"
                    .into(),
            });
        }
        if crate::cloud::builtin_cloud(&self.cloud_name).is_none()
            && !self
                .cloud_name
                .eq_ignore_ascii_case(crate::cloud::AZURE_STACK_CLOUD)
        {
            return Err(ConfigError::Invalid {
                flag: "cloud-name",
                reason: format!(
                    "{:?} is not a known cloud; use AzurePublicCloud, AzureUSGovernmentCloud, AzureChinaCloud, AzureGermanCloud or AzureStackCloud",
                    self.cloud_name
                ),
            });
        }
        if self.max_concurrent_per_vault == 0 {
            return Err(ConfigError::Invalid {
                flag: "max-concurrent-per-vault",
                reason: "must be at least 1".into(),
            });
        }
        if self.object_cache_ttl > MAX_OBJECT_CACHE_TTL {
            return Err(ConfigError::Invalid {
                flag: "object-cache-ttl",
                reason: "must be at most 24h (0 turns the cache off); keep it at or below the driver's --rotation-poll-interval".into(),
            });
        }
        if !self.object_cache_ttl.is_zero() && self.object_cache_max_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                flag: "object-cache-max-bytes",
                reason: "must be at least 65536 when --object-cache-ttl is set".into(),
            });
        }
        Ok(Settings {
            socket_path: self.provider_dir.join(SOCKET_NAME),
            args: self,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag of every subcommand has its own environment variable: one shared by two flags
    /// would make a setting meant for the server change `mount` or `validate` too.
    #[test]
    fn every_env_twin_is_unique() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, seen: &mut Vec<(String, String)>) {
            for arg in cmd.get_arguments() {
                if let Some(env) = arg.get_env() {
                    seen.push((
                        env.to_string_lossy().into_owned(),
                        format!("{path} --{}", arg.get_id()),
                    ));
                }
            }
            for sub in cmd.get_subcommands() {
                // `serve` takes the very flags the bare command takes (one struct, flattened).
                let sub_path = match sub.get_name() {
                    "serve" => path.to_owned(),
                    name => format!("{path} {name}"),
                };
                walk(sub, &sub_path, seen);
            }
        }
        let mut seen = Vec::new();
        walk(&Cli::command(), "rust-azure-provider", &mut seen);
        assert!(seen.len() > 30, "only {} env twins found", seen.len());
        let mut by_env: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
            Default::default();
        for (env, flag) in &seen {
            by_env.entry(env).or_default().insert(flag);
        }
        let shared: Vec<_> = by_env.iter().filter(|(_, f)| f.len() > 1).collect();
        assert!(
            shared.is_empty(),
            "environment variables shared by several flags: {shared:?}"
        );
    }

    #[test]
    fn defaults_match_the_driver() {
        let cli = Cli::try_parse_from(["rust-azure-provider"]).unwrap();
        assert!(cli.command.is_none());
        let s = cli.serve.validate().unwrap();
        assert_eq!(
            s.socket_path,
            PathBuf::from("/var/run/secrets-store-csi-providers/rust-azure.sock")
        );
        assert_eq!(s.args.max_response_bytes, 4_194_304);
        assert!(s.args.construct_pem_chain);
        assert!(!s.args.write_cert_and_key_in_separate_files);
        assert_ne!(s.args.health_addr.port(), 8989);
        assert_ne!(s.args.metrics_addr.port(), 8898);
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "rust-azure-provider",
            "--provider-dir=/provider",
            "--log-format=json",
            "--construct-pem-chain=false",
            "--mount-timeout=45s",
        ])
        .unwrap();
        let s = cli.serve.validate().unwrap();
        assert_eq!(s.socket_path, PathBuf::from("/provider/rust-azure.sock"));
        assert_eq!(s.args.log_format, LogFormat::Json);
        assert!(!s.args.construct_pem_chain);
        assert_eq!(s.args.mount_timeout, Duration::from_secs(45));
    }

    #[test]
    fn permission_accepts_octal_and_decimal() {
        for (text, mode) in [
            ("0644", 0o644),
            ("0o600", 0o600),
            ("420", 0o644),
            ("0", 0),
            ("0777", 0o777),
            ("511", 0o777),
        ] {
            assert_eq!(parse_permission(text), Ok(mode), "{text}");
        }
        for text in ["644", "0800", "01000", "512", "rw-r--r--", ""] {
            let err = parse_permission(text).unwrap_err();
            assert!(err.contains("0644") && err.contains("420"), "{text}: {err}");
        }
    }

    #[test]
    fn object_cache_is_off_by_default_and_validated() {
        let s = Cli::try_parse_from(["rust-azure-provider"])
            .unwrap()
            .serve
            .validate()
            .unwrap();
        assert!(s.args.object_cache_ttl.is_zero());
        assert_eq!(s.args.object_cache_max_bytes, 32 * 1024 * 1024);
        let s = Cli::try_parse_from(["rust-azure-provider", "--object-cache-ttl=2m"])
            .unwrap()
            .serve
            .validate()
            .unwrap();
        assert_eq!(s.args.object_cache_ttl, Duration::from_secs(120));
        for (args, flag) in [
            (
                [
                    "rust-azure-provider",
                    "--object-cache-ttl=25h",
                    "--object-cache-max-bytes=1000000",
                ],
                "--object-cache-ttl",
            ),
            (
                [
                    "rust-azure-provider",
                    "--object-cache-ttl=1m",
                    "--object-cache-max-bytes=10",
                ],
                "--object-cache-max-bytes",
            ),
        ] {
            let err = Cli::try_parse_from(args)
                .unwrap()
                .serve
                .validate()
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{err}");
        }
    }

    #[test]
    fn bad_values_name_the_flag() {
        let cli = Cli::try_parse_from(["rust-azure-provider", "--mount-timeout=10m"]).unwrap();
        let err = cli.serve.validate().unwrap_err().to_string();
        assert!(err.contains("--mount-timeout"), "{err}");
        assert!(Cli::try_parse_from(["rust-azure-provider", "--mount-timeout=soon"]).is_err());
    }
}
