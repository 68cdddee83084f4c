//! Every YAML file under deploy/ parses and agrees with the binary: socket
//! directory, ports, probe paths, and every flag the manifests pass exists.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failed expectation is a test failure"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use rust_azure_provider::config::{self, Cli};
use serde::Deserialize;
use serde_norway::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().unwrap() != "templates" {
                yaml_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = v;
    for p in path {
        cur = cur
            .get(*p)
            .unwrap_or_else(|| panic!("missing {p} in {path:?}"));
    }
    cur
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn every_yaml_file_parses() {
    let mut files = vec![];
    yaml_files(&deploy_dir(), &mut files);
    assert!(files.len() >= 10, "expected manifests, got {files:?}");
    for f in &files {
        assert!(!documents(f).is_empty(), "{} is empty", f.display());
    }
}

fn daemonsets() -> Vec<(PathBuf, Value)> {
    let mut out = vec![];
    for name in [
        "rust-azure-provider.yaml",
        "rust-azure-provider-hostnetwork.yaml",
    ] {
        let path = deploy_dir().join(name);
        for doc in documents(&path) {
            if doc.get("kind").and_then(Value::as_str) == Some("DaemonSet") {
                out.push((path.clone(), doc));
            }
        }
    }
    assert_eq!(out.len(), 2);
    out
}

#[test]
fn daemonsets_agree_with_the_binary() {
    for (path, ds) in daemonsets() {
        check_daemonset(&path, &ds);
    }
}

/// The image scripts/image.sh builds and tags.
fn built_image() -> String {
    format!(
        "localhost/rust-azure-provider:{}",
        env!("CARGO_PKG_VERSION")
    )
}

#[test]
fn manifests_and_chart_name_the_image_scripts_image_sh_builds() {
    for (path, ds) in daemonsets() {
        let container = &get(&ds, &["spec", "template", "spec", "containers"])
            .as_sequence()
            .unwrap()[0];
        assert_eq!(
            s(get(container, &["image"])),
            built_image(),
            "{}",
            path.display()
        );
        assert_eq!(s(get(container, &["imagePullPolicy"])), "IfNotPresent");
    }
    let chart = deploy_dir().join("helm/rust-azure-provider");
    let values = documents(&chart.join("values.yaml")).remove(0);
    let meta = documents(&chart.join("Chart.yaml")).remove(0);
    let repository = s(get(&values, &["image", "repository"]));
    let tag = match s(get(&values, &["image", "tag"])) {
        "" => s(get(&meta, &["appVersion"])),
        t => t,
    };
    assert_eq!(format!("{repository}:{tag}"), built_image());
    assert_eq!(s(get(&values, &["image", "pullPolicy"])), "IfNotPresent");

    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image.sh"))
            .unwrap();
    assert!(script.contains("IMAGE=localhost/rust-azure-provider:$VERSION"));
}

/// The container smoke test applies each securityContext setting of the manifests.
#[test]
fn image_smoke_runs_under_the_manifests_security_context() {
    let script =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/image.sh"))
            .unwrap();
    for flag in [
        "--read-only ",
        "--read-only-tmpfs=false",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--user 0:0",
        "-v \"$dir:/provider\"",
        "check_constraints rap-smoke-root 0",
    ] {
        assert!(script.contains(flag), "scripts/image.sh lacks {flag}");
    }
    // Nothing in the smoke test loosens the profile the manifests ask for.
    for loosening in ["--privileged", "seccomp=unconfined", "--cap-add"] {
        assert!(
            !script.contains(loosening),
            "scripts/image.sh uses {loosening}"
        );
    }
    let containerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Containerfile"))
            .unwrap();
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap();
    for file in [&containerfile, &dockerfile] {
        assert!(file.contains("\nUSER 65532:65532\n"));
        assert!(file.contains("\nENTRYPOINT [\"/bin/rust-azure-provider\"]\n"));
    }
}

/// The Helm chart as `helm template` renders it (scripts/helm-check.sh installs Helm
/// from the Go module proxy, renders the chart into `RUST_AZURE_HELM_RENDERED` and runs
/// this test explicitly; plain `cargo test` cannot render Go templates).
#[test]
#[ignore = "needs the chart rendered by helm: run scripts/helm-check.sh"]
fn helm_rendered_chart_agrees_with_the_binary() {
    let dir = std::env::var("RUST_AZURE_HELM_RENDERED")
        .expect("RUST_AZURE_HELM_RENDERED names the directory of rendered charts");
    let mut checked = 0;
    let mut host_network = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        for doc in documents(&path) {
            if doc.get("kind").and_then(Value::as_str) == Some("DaemonSet") {
                check_daemonset(&path, &doc);
                let pod = get(&doc, &["spec", "template", "spec"]);
                if pod.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
                    assert_eq!(s(get(pod, &["dnsPolicy"])), "ClusterFirstWithHostNet");
                    host_network += 1;
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 2,
        "expected the default and the hostNetwork renderings in {dir}"
    );
    assert!(
        host_network >= 2,
        "expected the hostNetwork and pod-identity renderings in {dir}"
    );
    check_full_rendering(Path::new(&dir).join("full.yaml").as_path());
    let pod_identity = documents(&Path::new(&dir).join("pod-identity.yaml"));
    let ds = pod_identity
        .iter()
        .find(|d| d.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        .unwrap();
    assert_eq!(
        get(ds, &["spec", "template", "spec", "hostNetwork"]).as_bool(),
        Some(true),
        "values-pod-identity.yaml must put the provider on the host network (NMI)"
    );
}

/// The rendering with every optional value set (scripts/helm-check.sh writes the values).
fn check_full_rendering(path: &Path) {
    let docs = documents(path);
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d.get("kind").and_then(Value::as_str) == Some(k))
            .unwrap_or_else(|| panic!("{}: no {k}", path.display()))
    };
    let ds = kind("DaemonSet");
    let pod = get(ds, &["spec", "template", "spec"]);
    let container = &get(pod, &["containers"]).as_sequence().unwrap()[0];
    let args: Vec<&str> = get(container, &["args"])
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    for expected in [
        "--custom-user-agent=ops: team #1 \"quoted\"",
        "--outbound-proxy=http://proxy.internal:3128",
        "--no-proxy=10.0.0.0/8,.svc,.cluster.local",
        "--log-filter=rust_azure_provider=debug,warn",
        "--drain-timeout=45s",
        "--sni-name=yes: no",
        "--ca-bundle=/etc/ssl/extra: ca.pem",
    ] {
        assert!(args.contains(&expected), "{expected:?} not in {args:?}");
    }
    assert_eq!(
        s(get(container, &["image"])),
        "registry.example/rust-azure-provider:1.2.3"
    );
    assert_eq!(
        s(get(&get(pod, &["imagePullSecrets"])[0], &["name"])),
        "regcred"
    );
    assert_eq!(s(get(&get(container, &["env"])[0], &["name"])), "EXTRA");
    assert_eq!(
        get(pod, &["terminationGracePeriodSeconds"]).as_u64(),
        Some(60)
    );

    // The metrics Service selects the provider pods and names their metrics port.
    let pod_labels = get(ds, &["spec", "template", "metadata", "labels"]);
    let matches_pod = |selector: &Value| {
        selector
            .as_mapping()
            .unwrap()
            .iter()
            .all(|(k, v)| pod_labels.get(s(k)).and_then(Value::as_str) == Some(s(v)))
    };
    let service = kind("Service");
    assert!(matches_pod(get(service, &["spec", "selector"])));
    let port = &get(service, &["spec", "ports"])[0];
    assert_eq!(s(get(port, &["targetPort"])), "metrics");
    assert_eq!(get(port, &["port"]).as_u64(), Some(9101));
    let metrics_port = get(container, &["ports"])
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| s(get(p, &["name"])) == "metrics")
        .unwrap();
    assert_eq!(get(metrics_port, &["containerPort"]).as_u64(), Some(9101));
    let service_labels = get(service, &["metadata", "labels"]);
    let monitor = kind("ServiceMonitor");
    for (k, v) in get(monitor, &["spec", "selector", "matchLabels"])
        .as_mapping()
        .unwrap()
    {
        assert_eq!(service_labels.get(s(k)).and_then(Value::as_str), Some(s(v)));
    }
    assert_eq!(
        s(get(&get(monitor, &["spec", "endpoints"])[0], &["port"])),
        "metrics"
    );
    let pod_monitor = kind("PodMonitor");
    assert!(matches_pod(get(
        pod_monitor,
        &["spec", "selector", "matchLabels"]
    )));
    assert_eq!(
        s(get(
            &get(pod_monitor, &["spec", "podMetricsEndpoints"])[0],
            &["port"]
        )),
        "metrics"
    );
}

fn check_daemonset(path: &Path, ds: &Value) {
    {
        let pod = get(ds, &["spec", "template", "spec"]);
        let container = &get(pod, &["containers"]).as_sequence().unwrap()[0];
        let args: Vec<String> = get(container, &["args"])
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| s(a).to_owned())
            .collect();
        let mut argv = vec!["rust-azure-provider".to_owned()];
        argv.extend(args.iter().cloned());
        let cli = Cli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("{}: args {args:?} rejected: {e}", path.display()));
        let settings = cli.serve.validate().unwrap();

        // The socket directory inside the container is the hostPath the driver reads.
        let mounts = get(container, &["volumeMounts"]).as_sequence().unwrap();
        let mount = mounts
            .iter()
            .find(|m| Path::new(s(get(m, &["mountPath"]))) == settings.args.provider_dir)
            .unwrap_or_else(|| panic!("{}: provider dir not mounted", path.display()));
        let volume_name = s(get(mount, &["name"]));
        let volume = get(pod, &["volumes"])
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| s(get(v, &["name"])) == volume_name)
            .unwrap();
        assert_eq!(
            s(get(volume, &["hostPath", "path"])),
            config::DEFAULT_PROVIDER_DIR
        );
        assert_eq!(
            settings.socket_path.file_name().unwrap(),
            config::SOCKET_NAME
        );

        // Ports and probes match the listeners.
        let ports = get(container, &["ports"]).as_sequence().unwrap();
        let port = |name: &str| {
            ports
                .iter()
                .find(|p| s(get(p, &["name"])) == name)
                .and_then(|p| get(p, &["containerPort"]).as_u64())
                .unwrap()
        };
        assert_eq!(port("health"), u64::from(settings.args.health_addr.port()));
        assert_eq!(
            port("metrics"),
            u64::from(settings.args.metrics_addr.port())
        );
        assert_eq!(
            s(get(container, &["livenessProbe", "httpGet", "path"])),
            "/healthz"
        );
        assert_eq!(
            s(get(container, &["readinessProbe", "httpGet", "path"])),
            "/readyz"
        );

        // Hardening.
        let sc = get(container, &["securityContext"]);
        assert_eq!(get(sc, &["readOnlyRootFilesystem"]).as_bool(), Some(true));
        assert_eq!(
            get(sc, &["allowPrivilegeEscalation"]).as_bool(),
            Some(false)
        );
        assert_eq!(get(sc, &["privileged"]).as_bool(), Some(false));
        assert_eq!(s(&get(sc, &["capabilities", "drop"])[0]), "ALL");
        // Root (the socket directory is a root-owned hostPath) with the runtime's default
        // seccomp profile: what scripts/image.sh --smoke runs the image with.
        assert_eq!(get(sc, &["runAsUser"]).as_u64(), Some(0));
        assert_eq!(get(sc, &["runAsGroup"]).as_u64(), Some(0));
        assert_eq!(s(get(sc, &["seccompProfile", "type"])), "RuntimeDefault");
        assert_eq!(
            s(get(volume, &["hostPath", "type"])),
            "DirectoryOrCreate",
            "{}: the kubelet creates the hostPath root-owned",
            path.display()
        );
        assert!(get(container, &["resources", "limits", "memory"]).is_string());
        assert!(get(container, &["resources", "requests", "cpu"]).is_string());
        assert_eq!(s(get(pod, &["nodeSelector", "kubernetes.io/os"])), "linux");
        assert_eq!(
            s(get(pod, &["securityContext", "seccompProfile", "type"])),
            "RuntimeDefault",
            "{}",
            path.display()
        );

        // Virtual nodes run no CSI driver: the DaemonSet stays off them.
        let terms = get(
            pod,
            &[
                "affinity",
                "nodeAffinity",
                "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms",
            ],
        )
        .as_sequence()
        .unwrap();
        assert!(!terms.is_empty());
        for term in terms {
            let excluded = get(term, &["matchExpressions"])
                .as_sequence()
                .unwrap()
                .iter()
                .any(|e| {
                    s(get(e, &["key"])) == "type"
                        && s(get(e, &["operator"])) == "NotIn"
                        && get(e, &["values"])
                            .as_sequence()
                            .unwrap()
                            .iter()
                            .any(|v| s(v) == "virtual-kubelet")
                });
            assert!(
                excluded,
                "{}: a node term admits virtual-kubelet nodes",
                path.display()
            );
        }

        // The kubelet's SIGKILL must come after the drain has finished.
        let grace = get(pod, &["terminationGracePeriodSeconds"])
            .as_u64()
            .unwrap();
        assert!(
            grace > settings.args.drain_timeout.as_secs(),
            "{}: terminationGracePeriodSeconds {grace} is not above --drain-timeout {:?}",
            path.display(),
            settings.args.drain_timeout
        );
    }
}

#[test]
fn secret_provider_class_examples_name_rust_azure() {
    let mut files = vec![];
    yaml_files(&deploy_dir().join("examples"), &mut files);
    let mut spcs = 0;
    let (mut jmes_path, mut multi_vault) = (vec![], vec![]);
    for f in files {
        for doc in documents(&f) {
            if doc.get("kind").and_then(Value::as_str) == Some("SecretProviderClass") {
                spcs += 1;
                assert_eq!(
                    s(get(&doc, &["spec", "provider"])),
                    "rust-azure",
                    "{}",
                    f.display()
                );
                assert!(get(&doc, &["spec", "parameters", "objects"]).is_string());
                // The extensions: objects with jmesPath, objects with their own keyvaultName.
                let objects: Value =
                    serde_norway::from_str(s(get(&doc, &["spec", "parameters", "objects"])))
                        .unwrap();
                let entries: Vec<Value> = objects["array"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .map(|e| serde_norway::from_str(e.as_str().unwrap()).unwrap())
                    .collect();
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                if entries.iter().any(|e| e.get("jmesPath").is_some()) {
                    jmes_path.push(name.clone());
                }
                if entries.iter().any(|e| e.get("keyvaultName").is_some()) {
                    multi_vault.push(name);
                }
            }
        }
    }
    assert!(
        spcs >= 8,
        "one example per identity mode plus TLS, the seed, jmesPath and several vaults"
    );
    assert_eq!(jmes_path, ["jmespath-secretproviderclass.yaml"]);
    assert_eq!(multi_vault, ["multi-vault-secretproviderclass.yaml"]);
}

/// Long flag names the binary accepts.
fn known_flags() -> BTreeSet<String> {
    Cli::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect()
}

#[test]
fn helm_chart_passes_only_known_flags_and_defined_values() {
    let chart = deploy_dir().join("helm/rust-azure-provider");
    let values = documents(&chart.join("values.yaml")).remove(0);
    let template = std::fs::read_to_string(chart.join("templates/daemonset.yaml")).unwrap();
    let flags = known_flags();
    let mut passed = BTreeSet::new();
    for line in template.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("- ") else {
            continue;
        };
        let Some(at) = rest.find("\"--") else {
            continue;
        };
        let name: String = rest[at + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(flags.contains(&name), "chart passes unknown flag --{name}");
        // Quoted, so that any value renders as a YAML string.
        assert!(
            rest.starts_with('"') || rest.ends_with("| quote }}"),
            "unquoted argument: {line}"
        );
        passed.insert(name);
    }
    // Every flag of the server has a value in the chart.
    let serve_flags: BTreeSet<String> = flags
        .iter()
        .filter(|f| !["help", "version"].contains(&f.as_str()))
        .cloned()
        .collect();
    let missing: Vec<&String> = serve_flags.difference(&passed).collect();
    assert!(missing.is_empty(), "chart has no value for {missing:?}");
    // Every .Values.x referenced by a template is defined in values.yaml.
    for entry in std::fs::read_dir(chart.join("templates")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for (i, _) in text.match_indices(".Values.") {
            let key: String = text[i + 8..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            let mut cur = &values;
            for part in key.split('.').filter(|p| !p.is_empty()) {
                if part == "nameOverride" {
                    break;
                }
                cur = cur
                    .get(part)
                    .unwrap_or_else(|| panic!("template uses .Values.{key}, not in values.yaml"));
            }
        }
    }
    assert_eq!(
        values.get("providersDir").and_then(Value::as_str),
        Some(config::DEFAULT_PROVIDER_DIR)
    );
    assert_eq!(
        values.get("healthPort").and_then(Value::as_u64),
        Some(u64::from(
            config::DEFAULT_HEALTH_ADDR
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .port()
        ))
    );
}

/// Every SecretSync example names an example class and syncs files that class mounts, with
/// `sourcePath`s of the controller's pattern (a file name, optionally `/<digits>`).
#[test]
fn secret_sync_examples_name_mounted_files() {
    use rust_azure_provider::mount::files::plan_paths;
    use rust_azure_provider::mount::params::check_objects;

    let mut files = vec![];
    yaml_files(&deploy_dir().join("examples"), &mut files);
    let docs: Vec<Value> = files.iter().flat_map(|f| documents(f)).collect();
    let mounted = |class: &str| -> Vec<String> {
        let spc = docs
            .iter()
            .find(|d| {
                d.get("kind").and_then(Value::as_str) == Some("SecretProviderClass")
                    && s(get(d, &["metadata", "name"])) == class
            })
            .unwrap_or_else(|| panic!("no example SecretProviderClass {class}"));
        let objects = s(get(spc, &["spec", "parameters", "objects"]));
        let (specs, errors) = check_objects(objects, &mut Vec::new()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        plan_paths(&specs, false)
            .into_iter()
            .map(|f| f.path)
            .collect()
    };
    let mut syncs = 0;
    for doc in &docs {
        if doc.get("kind").and_then(Value::as_str) != Some("SecretSync") {
            continue;
        }
        syncs += 1;
        assert_eq!(
            s(get(doc, &["apiVersion"])),
            "secret-sync.x-k8s.io/v1alpha1"
        );
        assert!(!s(get(doc, &["spec", "serviceAccountName"])).is_empty());
        let files = mounted(s(get(doc, &["spec", "secretProviderClassName"])));
        let data = get(doc, &["spec", "secretObject", "data"])
            .as_sequence()
            .unwrap();
        assert!(!data.is_empty());
        for d in data {
            let source = s(get(d, &["sourcePath"]));
            let (name, index) = source.split_once('/').unwrap_or((source, "0"));
            assert!(
                !name.is_empty() && !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()),
                "sourcePath {source:?} does not match the controller's pattern"
            );
            assert!(
                files.iter().any(|f| f == source),
                "{source:?} is not mounted: {files:?}"
            );
            assert!(!s(get(d, &["targetKey"])).is_empty());
        }
    }
    assert_eq!(syncs, 1, "the sync controller example");
}
