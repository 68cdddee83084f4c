//! `validate`: offline checks of SecretProviderClass files with the same parser
//! and validation as Mount, for CI pipelines.
//!
//! Every check Mount makes before it needs Key Vault runs here through the Mount's own code
//! (`params::parse_params`, `params::check_objects`, `files::plan_paths`/`path_problems`); what
//! is added is collection: instead of stopping at the first problem, a field found invalid is
//! replaced by a valid stand-in and parsing runs again, so one run lists every problem.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::ExitCode;

use crate::config::ValidateArgs;
use crate::mount::files::{self, PlannedKind};
use crate::mount::params::{
    self, DecodeProblem, IdentityError, IdentityMode, ObjectError, ObjectSpec, ParamWarning,
    ParamsError, ParsedParams, WarningKind,
};
use crate::mount::request::MountInput;
use crate::mount::{MountOptions, request};
use crate::spc::{self, PodInfo, SecretProviderClass};

/// Placeholder token used offline: the real one comes from kubelet at mount time.
const OFFLINE_TOKEN: &str = "offline-validation-placeholder";
/// A valid `objects` value standing in for an invalid one while the other parameters are checked.
const STAND_IN_OBJECTS: &str = "array:\n  - |\n    objectName: offline\n    objectType: secret\n";
/// Parameters that hold a tenant or identity GUID, where the all-zero GUID is a placeholder.
const GUID_PARAMETERS: [&str; 4] = [
    params::TENANT_ID,
    params::TENANT_ID_LEGACY,
    params::CLIENT_ID,
    params::USER_ASSIGNED_IDENTITY_ID,
];
const ZERO_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// Label of standard input in messages.
const STDIN_LABEL: &str = "<stdin>";

/// Entry point of `validate`.
pub fn main(args: &ValidateArgs) -> ExitCode {
    let options = MountOptions {
        default_cloud: args.cloud_name.clone(),
        construct_pem_chain: true,
        write_cert_and_key_in_separate_files: args.write_cert_and_key_in_separate_files,
    };
    let mut invalid = false;
    let mut unreadable = false;
    for file in &args.files {
        let (label, text) = match read_input(file) {
            Ok(read) => read,
            Err((label, e)) => {
                println!("{label}: error: cannot read: {e}");
                unreadable = true;
                continue;
            }
        };
        let documents = match spc::read_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                println!("{label}: error: {e}");
                invalid = true;
                continue;
            }
        };
        if documents.is_empty() {
            // Pipelines pass whole manifest directories: other kinds are not an error.
            println!("{label}: no SecretProviderClass (skipped)");
            continue;
        }
        let mut lines = LineFinder::new(&text);
        for document in documents {
            let spc = match document {
                Ok(s) => s,
                Err(e) => {
                    let at = match &e {
                        spc::SpcError::Shape { name, field, .. } => {
                            lines.enter(name);
                            let key = field.rsplit('.').next().unwrap_or(field);
                            lines.at(&label, &Finding::new("", "").at_key(key))
                        }
                        _ => label.clone(),
                    };
                    println!("{at}: error: {e}");
                    invalid = true;
                    continue;
                }
            };
            let name = &spc.metadata.name;
            lines.enter(name);
            let report = check(&spc, &options, args.check_azure);
            if let Some(note) = &report.skipped {
                println!("{label}: {name}: skipped: {note}");
                continue;
            }
            for (severity, findings) in [("warning", &report.warnings), ("error", &report.errors)] {
                let mut located: Vec<(Option<usize>, &Finding)> =
                    findings.iter().map(|f| (lines.line(f), f)).collect();
                // In file order; findings without a line keep their order at the end.
                located.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
                for (line, f) in located {
                    let at = line.map_or_else(|| label.clone(), |l| format!("{label}:{l}"));
                    println!("{at}: {name}: {severity}: {f}");
                }
            }
            let strict_failure = args.strict && !report.warnings.is_empty();
            if strict_failure {
                println!(
                    "{label}: {name}: error: --strict: the {} warning(s) above count as errors",
                    report.warnings.len()
                );
            }
            if report.errors.is_empty() && !strict_failure {
                println!("{label}: {name}: ok ({})", report.summary);
            } else {
                invalid = true;
            }
        }
    }
    if unreadable {
        ExitCode::from(2)
    } else if invalid {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads a file, or standard input for `-`.
fn read_input(file: &std::path::Path) -> Result<(String, String), (String, std::io::Error)> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        return match std::io::stdin().read_to_string(&mut text) {
            Ok(_) => Ok((STDIN_LABEL.to_owned(), text)),
            Err(e) => Err((STDIN_LABEL.to_owned(), e)),
        };
    }
    let label = file.display().to_string();
    match std::fs::read_to_string(file) {
        Ok(text) => Ok((label, text)),
        Err(e) => Err((label, e)),
    }
}

/// One problem of a SecretProviderClass: the field it is about and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Path of the field, e.g. `spec.parameters.objects[1].objectAlias`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// A YAML key (and optionally its value) whose line locates the problem in the file.
    locate: Option<(String, Option<String>)>,
}

impl Finding {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            locate: None,
        }
    }

    fn at_key(mut self, key: &str) -> Self {
        self.locate = Some((key.to_owned(), None));
        self
    }

    fn at_key_value(mut self, key: &str, value: &str) -> Self {
        self.locate = Some((key.to_owned(), Some(value.to_owned())));
        self
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Findings for one SecretProviderClass.
#[derive(Debug, Default)]
pub struct Report {
    /// Why the class was not checked (another provider's class).
    pub skipped: Option<String>,
    /// Problems that make a Mount fail.
    pub errors: Vec<Finding>,
    /// Problems that are ignored at mount time.
    pub warnings: Vec<Finding>,
    /// One line describing what the class mounts.
    pub summary: String,
}

/// Validates one SecretProviderClass offline. Classes of other providers are skipped, those of
/// `azure` too unless `check_azure` (then they are checked as if they named `rust-azure`).
pub fn check(spc: &SecretProviderClass, options: &MountOptions, check_azure: bool) -> Report {
    let mut report = Report::default();
    match spc.spec.provider.as_str() {
        "rust-azure" => {}
        "azure" if check_azure => report.warnings.push(
            Finding::new(
                "spec.provider",
                "is \"azure\" (the Azure provider); change it to \"rust-azure\" to use rust-azure-provider",
            )
            .at_key("provider"),
        ),
        "azure" => {
            report.skipped = Some(
                "spec.provider is \"azure\", not \"rust-azure\"; pass --check-azure to check it as it would be after migration".into(),
            );
            return report;
        }
        other => {
            report.skipped = Some(format!(
                "spec.provider is {other:?}; validate checks only \"rust-azure\" classes"
            ));
            return report;
        }
    }
    if !spc.api_version.is_empty() && !spc::API_VERSIONS.contains(&spc.api_version.as_str()) {
        report.errors.push(
            Finding::new(
                "apiVersion",
                format!(
                    "{:?} is not served by the driver; use {}",
                    spc.api_version,
                    spc::API_VERSIONS[0]
                ),
            )
            .at_key("apiVersion"),
        );
    }
    if spc.spec.parameters.is_empty() {
        report.errors.push(
            Finding::new(
                "spec.parameters",
                "is empty (the driver refuses such a class)",
            )
            .at_key("spec"),
        );
        return report;
    }
    check_placeholders(spc, &mut report);

    let objects_text = spc
        .spec
        .parameters
        .get(params::OBJECTS)
        .map_or("", String::as_str);
    let mut object_warnings = Vec::new();
    let objects = params::check_objects(objects_text, &mut object_warnings);
    let (specs, objects_ok) = match objects {
        Ok((specs, entry_errors)) => {
            let ok = entry_errors.is_empty();
            for e in &entry_errors {
                report.errors.push(params_finding(e));
            }
            (specs, ok)
        }
        Err(e) => {
            report.errors.push(params_finding(&e));
            (Vec::new(), false)
        }
    };

    match parse_all(spc, options, &mut report) {
        Some(parsed) => {
            report.summary = summary(&parsed);
            for w in &parsed.warnings {
                report.warnings.push(warning_finding(w));
            }
        }
        None if !objects_ok => {
            // The top-level parameters were checked with stand-in objects; the real objects'
            // warnings come from their own parse.
            for w in &object_warnings {
                report.warnings.push(warning_finding(w));
            }
        }
        None => {}
    }

    if spc.spec.provider == "azure" {
        check_extensions_for_azure(&specs, &mut report);
    }
    check_paths(&specs, options, &mut report);
    check_secret_objects(spc, &specs, objects_ok, options, &mut report);
    report
}

/// A class still naming the Azure provider that uses rust-azure's extensions: the Azure provider
/// ignores them, so the class behaves differently until it is migrated.
fn check_extensions_for_azure(specs: &[ObjectSpec], report: &mut Report) {
    for spec in specs {
        let field = |f: &str| format!("spec.parameters.objects[{}].{f}", spec.index);
        if !spec.jmes_path.is_empty() {
            report.warnings.push(
                Finding::new(
                    field(params::JMES_PATH),
                    "jmesPath is a rust-azure extension; the Azure provider ignores it and writes no extracted files",
                )
                .at_key(params::JMES_PATH),
            );
        }
        if spec.keyvault_name.is_some() {
            report.warnings.push(
                Finding::new(
                    field(params::OBJECT_KEYVAULT_NAME),
                    "a per-object keyvaultName is a rust-azure extension; the Azure provider reads the object from the class's keyvaultName",
                )
                .at_key_value("objectName", &spec.object_name),
            );
        }
    }
}

/// The Mount's parameter parsing, repeated with each invalid field replaced by a valid stand-in
/// so that every top-level problem is reported. Returns the parse of the class as written when
/// it needed no stand-in, or of the stand-in version when only the objects were replaced.
fn parse_all(
    spc: &SecretProviderClass,
    options: &MountOptions,
    report: &mut Report,
) -> Option<ParsedParams> {
    let mut parameters = spc.spec.parameters.clone();
    let mut clean = true;
    // Each round fixes one field; there are fewer fields than rounds.
    for _ in 0..16 {
        let mut patched = spc.clone();
        patched.spec.parameters.clone_from(&parameters);
        let input = match offline_input(&patched) {
            Ok(i) => i,
            Err(message) => {
                report.errors.push(Finding::new("spec.parameters", message));
                return None;
            }
        };
        match params::parse_params(&input, options) {
            Ok(parsed) => return clean.then_some(parsed),
            Err(e) => {
                if is_objects_error(&e) {
                    // Reported with every entry by check_objects.
                    parameters.insert(params::OBJECTS.into(), STAND_IN_OBJECTS.into());
                } else {
                    report.errors.push(params_finding(&e));
                    if !stand_in(&e, &mut parameters) {
                        return None;
                    }
                }
                clean = false;
            }
        }
    }
    None
}

/// The request Mount would get for `spc`, with pod fields, service-account tokens and
/// nodePublishSecretRef credentials made up: offline there is no kubelet.
fn offline_input(spc: &SecretProviderClass) -> Result<MountInput, String> {
    let pod = PodInfo {
        name: "validate".into(),
        namespace: spc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        uid: ZERO_GUID.into(),
        service_account: "default".into(),
    };
    let tokens = serde_json::json!({
        "api://AzureADTokenExchange": {"token": OFFLINE_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"},
        "api://AKSIdentityBinding": {"token": OFFLINE_TOKEN, "expirationTimestamp": "2099-01-01T00:00:00Z"},
    })
    .to_string();
    let mut attributes = spc::driver_attributes(spc, &pod, None);
    attributes.remove(request::TOKENS_KEY);
    let secrets: BTreeMap<&str, &str> = [
        ("clientid", "offline-client-id"),
        ("clientsecret", OFFLINE_TOKEN),
    ]
    .into();
    let (Ok(a), Ok(s)) = (
        serde_json::to_string(&attributes),
        serde_json::to_string(&secrets),
    ) else {
        return Err("cannot encode parameters".into());
    };
    let mut input =
        MountInput::decode(&a, &s, "420", String::new(), vec![]).map_err(|e| e.to_string())?;
    input.service_account_tokens = Some(tokens.into());
    Ok(input)
}

fn is_objects_error(e: &ParamsError) -> bool {
    matches!(
        e,
        ParamsError::ObjectsMissing
            | ParamsError::ObjectsYaml { .. }
            | ParamsError::ObjectsKeyCase { .. }
            | ParamsError::ObjectsEmpty
            | ParamsError::ObjectDecode { .. }
            | ParamsError::Object { .. }
    )
}

/// Replaces the field `e` is about with a valid value. False when there is none to try.
fn stand_in(e: &ParamsError, parameters: &mut BTreeMap<String, String>) -> bool {
    let mut set = |k: &str, v: &str| {
        parameters.insert(k.to_owned(), v.to_owned());
    };
    match e {
        ParamsError::KeyCase { key, known } => {
            let value = parameters.remove(key).unwrap_or_default();
            parameters.insert((*known).to_owned(), value);
        }
        ParamsError::InvalidBool { key, .. } => set(key, "false"),
        ParamsError::MultipleModes | ParamsError::Identity { .. } => {
            // Service principal: its credentials are made up offline, so it always resolves.
            for k in [
                params::USE_POD_IDENTITY,
                params::USE_VM_MANAGED_IDENTITY,
                params::USE_AZURE_TOKEN_PROXY,
            ] {
                set(k, "false");
            }
            parameters.remove(params::CLIENT_ID);
        }
        ParamsError::KeyvaultNameMissing | ParamsError::InvalidVaultName { .. } => {
            set(params::KEYVAULT_NAME, "offline-vault");
        }
        ParamsError::TenantMissing => set(params::TENANT_ID, "offline-tenant"),
        ParamsError::InvalidCloud { .. } => set(params::CLOUD_NAME, "AzurePublicCloud"),
        _ => return false,
    }
    true
}

/// The field a parameter error is about, and the message.
fn params_finding(e: &ParamsError) -> Finding {
    let message = e.to_string();
    let param = |key: &str| Finding::new(format!("spec.parameters.{key}"), &message).at_key(key);
    match e {
        ParamsError::KeyCase { key, .. } => param(key),
        ParamsError::InvalidBool { key, .. } => param(key),
        ParamsError::KeyvaultNameMissing => {
            Finding::new("spec.parameters.keyvaultName", &message).at_key("parameters")
        }
        ParamsError::InvalidVaultName { .. } => param(params::KEYVAULT_NAME),
        ParamsError::TenantMissing => {
            Finding::new("spec.parameters.tenantID", &message).at_key("parameters")
        }
        ParamsError::InvalidCloud { .. } => param(params::CLOUD_NAME),
        ParamsError::Identity {
            source: IdentityError::BindingClientIdMissing,
            ..
        } => Finding::new("spec.parameters.clientID", &message).at_key("parameters"),
        ParamsError::MultipleModes | ParamsError::Identity { .. } => {
            Finding::new("spec.parameters", &message).at_key("parameters")
        }
        ParamsError::ObjectsMissing => {
            Finding::new("spec.parameters.objects", &message).at_key("parameters")
        }
        ParamsError::ObjectsYaml { .. }
        | ParamsError::ObjectsKeyCase { .. }
        | ParamsError::ObjectsEmpty => param(params::OBJECTS),
        ParamsError::ObjectDecode { index, problem } => {
            let field = match problem {
                DecodeProblem::KeyCase { key, .. } => format!(".{key}"),
                DecodeProblem::VersionHistory { .. } => ".objectVersionHistory".into(),
                DecodeProblem::Yaml { .. } => String::new(),
            };
            Finding::new(format!("spec.parameters.objects[{index}]{field}"), &message)
                .at_key(params::OBJECTS)
        }
        ParamsError::Object {
            index,
            object_name,
            source,
            ..
        } => {
            let field = match source.as_ref() {
                ObjectError::TypeCase { .. } | ObjectError::InvalidType => "objectType".into(),
                ObjectError::InvalidFormat { .. } | ObjectError::PfxNotSecret => {
                    "objectFormat".into()
                }
                ObjectError::EncodingNotSecret | ObjectError::InvalidEncoding { .. } => {
                    "objectEncoding".into()
                }
                ObjectError::FileNameEmpty | ObjectError::NameMissing => "objectName".into(),
                ObjectError::FileNameAbsolute
                | ObjectError::FileNameDotDot
                | ObjectError::FileNamePath { .. } => "objectAlias".into(),
                ObjectError::FilePermission { .. } => "filePermission".into(),
                ObjectError::InvalidVaultName { .. } => params::OBJECT_KEYVAULT_NAME.into(),
                ObjectError::JmesPathNotSecret | ObjectError::JmesPathWithHistory => {
                    params::JMES_PATH.into()
                }
                ObjectError::JmesPathPathMissing { entry }
                | ObjectError::JmesPathPathInvalid { entry, .. } => {
                    format!("{}[{entry}].path", params::JMES_PATH)
                }
                ObjectError::JmesPathAliasMissing { entry }
                | ObjectError::JmesPathAlias { entry, .. } => {
                    format!("{}[{entry}].objectAlias", params::JMES_PATH)
                }
                ObjectError::JmesPathFilePermission { entry, .. } => {
                    format!("{}[{entry}].filePermission", params::JMES_PATH)
                }
            };
            let finding = Finding::new(
                format!("spec.parameters.objects[{index}].{field}"),
                &message,
            );
            if object_name.is_empty() {
                finding.at_key(params::OBJECTS)
            } else {
                finding.at_key_value("objectName", object_name)
            }
        }
        ParamsError::PodNameMissing | ParamsError::PodNamespaceMissing => {
            Finding::new("pod", &message)
        }
    }
}

fn warning_finding(w: &ParamWarning) -> Finding {
    let field = match (&w.kind, w.object_index) {
        (WarningKind::UnknownObjectsKey, _) => format!("spec.parameters.objects.{}", w.key),
        (_, Some(i)) => format!("spec.parameters.objects[{i}].{}", w.key),
        (_, None) => format!("spec.parameters.{}", w.key),
    };
    Finding::new(field, w.to_string()).at_key(&w.key)
}

/// Angle-bracket placeholders (`<tenant id>`) and the all-zero GUID left in parameters the
/// provider reads: Mount would send them to Entra ID or Key Vault and fail there, late and
/// with a less obvious message.
fn check_placeholders(spc: &SecretProviderClass, report: &mut Report) {
    for (key, value) in &spc.spec.parameters {
        if !params::KNOWN_PARAMETERS.contains(&key.as_str()) {
            continue;
        }
        for line in value.lines() {
            if let Some(placeholder) = find_placeholder(line) {
                report.errors.push(
                    Finding::new(
                        format!("spec.parameters.{key}"),
                        format!("placeholder {placeholder:?} is still in the value; replace it with the real value"),
                    )
                    .at_key(key),
                );
            }
        }
        if GUID_PARAMETERS.contains(&key.as_str()) && value.trim() == ZERO_GUID {
            report.errors.push(
                Finding::new(
                    format!("spec.parameters.{key}"),
                    "the all-zero GUID is a placeholder; set the real ID",
                )
                .at_key(key),
            );
        }
    }
}

/// The first `<…>` in `line` that looks like a placeholder: short, on one line, with a letter.
fn find_placeholder(line: &str) -> Option<&str> {
    let start = line.find('<')?;
    let len = line[start..].find('>')?;
    let candidate = &line[start..=start + len];
    let inner = &candidate[1..candidate.len() - 1];
    (inner.len() <= 120 && !inner.contains('<') && inner.chars().any(char::is_alphabetic))
        .then_some(candidate)
}

fn summary(parsed: &ParsedParams) -> String {
    let p = &parsed.params;
    let identity = match &p.identity {
        IdentityMode::ServicePrincipal { .. } => {
            "service principal (clientid/clientsecret from nodePublishSecretRef at mount time)"
        }
        IdentityMode::WorkloadIdentity { .. } => {
            "workload identity (needs CSIDriver tokenRequests audience api://AzureADTokenExchange)"
        }
        IdentityMode::VmManagedIdentity { .. } => "VM managed identity (IMDS)",
        IdentityMode::PodIdentity => "AAD pod identity (NMI; provider on the host network)",
        IdentityMode::AzureTokenProxy { .. } => {
            "identity binding (needs CSIDriver tokenRequests audience api://AKSIdentityBinding)"
        }
    };
    let vaults = p.vaults();
    let extracted: usize = p.objects.iter().map(|o| o.jmes_path.len()).sum();
    let extracted = if extracted == 0 {
        String::new()
    } else {
        format!(" (+{extracted} jmesPath file(s))")
    };
    format!(
        "{} {}, {} object(s){extracted}, identity: {identity}",
        if vaults.len() == 1 { "vault" } else { "vaults" },
        vaults.join(", "),
        p.objects.len()
    )
}

/// The Mount's output path checks over every file the objects may write: the files certain to
/// be written (Mount checks these before fetching) and those that depend on Key Vault's answer
/// (history versions beyond the first; `.crt`/`.key` with --write-cert-and-key-in-separate-files),
/// which Mount checks after fetching.
fn check_paths(specs: &[ObjectSpec], options: &MountOptions, report: &mut Report) {
    let plan = files::plan_paths(specs, options.write_cert_and_key_in_separate_files);
    let certain: Vec<String> = files::path_problems(files::with_specs(
        plan.iter().filter(|f| f.is_certain()),
        specs,
    ))
    .iter()
    .map(ToString::to_string)
    .collect();
    for problem in files::path_problems(files::with_specs(&plan, specs)) {
        let mut message = problem.to_string();
        if !certain.contains(&message) {
            message.push_str(
                " (Mount fails once Key Vault returns that many versions, or when the secret holds a certificate and --write-cert-and-key-in-separate-files is set)",
            );
        }
        report
            .errors
            .push(Finding::new("spec.parameters.objects", message).at_key(params::OBJECTS));
    }
}

/// The driver's secretObjects rules, plus a check that each file is produced.
fn check_secret_objects(
    spc: &SecretProviderClass,
    specs: &[ObjectSpec],
    objects_ok: bool,
    options: &MountOptions,
    report: &mut Report,
) {
    let split = options.write_cert_and_key_in_separate_files;
    let plan = files::plan_paths(specs, split);
    let produced: Vec<&str> = plan.iter().map(|f| f.path.as_str()).collect();
    let splittable: Vec<String> = files::plan_paths(specs, true)
        .into_iter()
        .filter(|f| matches!(f.kind, PlannedKind::Crt | PlannedKind::Key))
        .map(|f| f.path)
        .collect();
    for (i, so) in spc.spec.secret_objects.iter().enumerate() {
        let at = format!("spec.secretObjects[{i}]");
        let locate = |f: Finding| f.at_key_value("secretName", &so.secret_name);
        if so.secret_name.is_empty() {
            report
                .errors
                .push(Finding::new(format!("{at}.secretName"), "is empty").at_key("secretObjects"));
        }
        if so.secret_type.is_empty() {
            report.errors.push(locate(Finding::new(
                format!("{at}.type"),
                "is empty (use Opaque or kubernetes.io/tls)",
            )));
        }
        if so.data.is_empty() {
            report
                .errors
                .push(locate(Finding::new(format!("{at}.data"), "is empty")));
        }
        for (j, d) in so.data.iter().enumerate() {
            let field = format!("{at}.data[{j}]");
            if d.object_name.is_empty() {
                report.errors.push(locate(Finding::new(
                    format!("{field}.objectName"),
                    "is empty",
                )));
            } else if objects_ok && !produced.contains(&d.object_name.as_str()) {
                let hint = if splittable.contains(&d.object_name) {
                    "; <file>.crt and <file>.key are written only with --write-cert-and-key-in-separate-files (pass it to validate when the provider runs with it)"
                } else {
                    "; use the objectAlias or objectName of an entry in objects (\"<name>/0\" for version history)"
                };
                report.errors.push(
                    Finding::new(
                        format!("{field}.objectName"),
                        format!("{:?} matches no mounted file{hint}", d.object_name),
                    )
                    .at_key_value("objectName", &d.object_name),
                );
            }
            if d.key.is_empty() {
                report
                    .errors
                    .push(locate(Finding::new(format!("{field}.key"), "is empty")));
            }
            if so.secret_type == "kubernetes.io/tls" && d.key != "tls.crt" && d.key != "tls.key" {
                report.errors.push(
                    Finding::new(
                        format!("{field}.key"),
                        format!(
                            "key '{}' is not supported. Only 'tls.key' and 'tls.crt' are supported",
                            d.key
                        ),
                    )
                    .at_key_value("key", &d.key),
                );
            }
        }
    }
}

/// Finds the line of a finding: from the line naming the current class onwards, the first line
/// whose key (and value, when given) matches. serde_norway's `Value` keeps no positions, so
/// lines are found in the text; a finding that cannot be placed is printed without one.
struct LineFinder<'a> {
    lines: Vec<&'a str>,
    next: usize,
    anchor: usize,
}

impl<'a> LineFinder<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            lines: text.lines().collect(),
            next: 0,
            anchor: 0,
        }
    }

    /// Moves to the next class, found by its `name:` line.
    fn enter(&mut self, name: &str) {
        let found = (self.next..self.lines.len())
            .find(|&i| key_value(self.lines[i]).is_some_and(|(k, v)| k == "name" && v == name));
        match found {
            Some(i) => {
                self.anchor = i;
                self.next = i + 1;
            }
            // No line is better than a line of another class.
            None => self.anchor = self.lines.len(),
        }
    }

    /// The 1-based line of the finding, when found.
    fn line(&self, finding: &Finding) -> Option<usize> {
        let (key, value) = finding.locate.as_ref()?;
        (self.anchor..self.lines.len())
            .find(|&i| {
                key_value(self.lines[i])
                    .is_some_and(|(k, v)| k == key && value.as_ref().is_none_or(|want| v == want))
            })
            .map(|i| i + 1)
    }

    /// `file:line` when the finding's line is found, else `file`.
    fn at(&self, label: &str, finding: &Finding) -> String {
        match self.line(finding) {
            Some(l) => format!("{label}:{l}"),
            None => label.to_owned(),
        }
    }
}

/// `key: value` of a YAML line (list dash, indentation and quotes removed).
fn key_value(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    let line = line.strip_prefix("- ").unwrap_or(line).trim_start();
    let (key, value) = line.split_once(':')?;
    let key = key.trim().trim_matches(['"', '\'']);
    let value = value.trim().trim_matches(['"', '\'']);
    Some((key, value))
}
