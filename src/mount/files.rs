//! Output path validation (the driver's atomic-writer rules), modes and object version ids.
//!
//! The driver rejects a whole Mount with a terse `FileWriteError` when one path breaks its rules
//! (protocol.md §5.2), and silently keeps the last file when two objects write the same path
//! (quirk #21). Checking here lets us name the object and the fix instead.
//!
//! How the Mount pipeline uses this module:
//! 1. before any fetch, [`plan_paths`] and [`check_paths`] over the files that are certain to be
//!    written ([`PlannedFile::is_certain`]): catches colliding aliases without network I/O;
//! 2. after rendering, [`check_paths`] again over the final list (which then includes the
//!    `.crt`/`.key` extras of certificate-backed secrets and every history index actually written).

use std::collections::HashMap;

use crate::error::ErrorClass;

use super::params::ObjectSpec;

/// Longest path the driver's writer accepts, in bytes.
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest path element the driver's writer accepts, in bytes.
pub const MAX_ELEMENT_BYTES: usize = 255;

/// A driver path rule that a path breaks (protocol.md §5.2). Messages do not repeat the path;
/// the caller's error names it together with the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathRuleError {
    /// The path is empty.
    #[error("the path is empty")]
    Empty,
    /// The path contains a NUL byte (no file system accepts it).
    #[error("the path contains a NUL character")]
    Nul,
    /// The path starts with `/`.
    #[error("the path must be relative: remove the leading '/'")]
    Absolute,
    /// The path exceeds [`MAX_PATH_BYTES`].
    #[error("the path is {len} bytes long; the driver accepts at most 4096")]
    TooLong {
        /// Length in bytes.
        len: usize,
    },
    /// An element is exactly `..`.
    #[error("the path must not contain a '..' element")]
    DotDotElement,
    /// An element exceeds [`MAX_ELEMENT_BYTES`].
    #[error("a path element is {len} bytes long; the driver accepts at most 255")]
    ElementTooLong {
        /// Length of the element in bytes.
        len: usize,
    },
    /// The first element starts with `..` (reserved for the writer's `..data` and timestamped
    /// directories).
    #[error("the first path element must not start with '..' (reserved by the driver)")]
    ReservedPrefix,
    /// The path is not clean: an empty or `.` element (`a//b`, `./a`, `a/./b`, `a/`, `.`).
    #[error("the path must be clean: no '//', no '.' elements and no trailing '/'")]
    NotClean,
}

/// Validates one output path against the driver's rules: not empty, relative, at most 4096
/// bytes, no `..` element, no element over 255 bytes, first element not starting with `..`, and
/// already clean (Go `filepath.Clean(p) == p`). NUL is rejected too; backslashes are ordinary
/// file-name characters on Linux and stay allowed. A lone `.` is rejected although Go considers it
/// clean: it names the mount directory itself and can never be written as a file.
///
/// The reference's stricter alias rule (no `..` substring anywhere) is applied to file names by
/// `params`, not here, because the driver accepts names such as `a..b`.
///
/// # Errors
/// The first [`PathRuleError`] found.
pub fn validate_path(path: &str) -> Result<(), PathRuleError> {
    if path.is_empty() {
        return Err(PathRuleError::Empty);
    }
    if path.contains('\0') {
        return Err(PathRuleError::Nul);
    }
    if path.starts_with('/') {
        return Err(PathRuleError::Absolute);
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(PathRuleError::TooLong { len: path.len() });
    }
    for element in path.split('/') {
        if element == ".." {
            return Err(PathRuleError::DotDotElement);
        }
        if element.len() > MAX_ELEMENT_BYTES {
            return Err(PathRuleError::ElementTooLong { len: element.len() });
        }
    }
    if path.starts_with("..") {
        return Err(PathRuleError::ReservedPrefix);
    }
    if path.split('/').any(|e| e.is_empty() || e == ".") {
        return Err(PathRuleError::NotClean);
    }
    Ok(())
}

/// Most history indexes [`plan_object_paths`] lists per object. `objectVersionHistory` accepts up
/// to 2³¹ − 1 (a vault rarely holds that many versions); the plan must not allocate that much,
/// and the check over the final, fetched list covers whatever is actually written.
pub const MAX_PLANNED_HISTORY: usize = 1024;

/// Which of an object's files a [`PlannedFile`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlannedKind {
    /// The object's content (`<file>` or `<file>/<i>`).
    Main,
    /// The certificates of a certificate-backed secret (`<file>.crt`), split-files flag only.
    Crt,
    /// The private key of a certificate-backed secret (`<file>.key`), split-files flag only.
    Key,
    /// The result of the object's `jmesPath` entry at this position (its `objectAlias`).
    Extracted(usize),
}

/// A path an object may write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    /// Relative output path.
    pub path: String,
    /// `ObjectSpec::index` of the object writing it.
    pub object_index: usize,
    /// `Some(i)` in version-history mode.
    pub history_index: Option<usize>,
    /// Which file of the object this is.
    pub kind: PlannedKind,
}

impl PlannedFile {
    /// True when the file is written whatever Key Vault returns: the main file of a
    /// single-version object and index 0 of a history. `.crt`/`.key` exist only for
    /// certificate-backed secrets, and history indexes above 0 only when that many versions exist.
    pub fn is_certain(&self) -> bool {
        matches!(self.kind, PlannedKind::Main | PlannedKind::Extracted(_))
            && self.history_index.is_none_or(|i| i == 0)
    }
}

/// The path of one emitted file: `<file>` or `<file>/<i>`, plus `.crt`/`.key` for the extras.
/// Version-history extras are `<file>/<i>.crt` and `<file>/<i>.key`; a `jmesPath` entry's file
/// is its `objectAlias`.
pub fn output_path(spec: &ObjectSpec, history_index: Option<usize>, kind: PlannedKind) -> String {
    if let PlannedKind::Extracted(entry) = kind
        && let Some(e) = spec.jmes_path.get(entry)
    {
        return e.object_alias.clone();
    }
    let base = match history_index {
        Some(i) => format!("{}/{i}", spec.file_name()),
        None => spec.file_name().to_owned(),
    };
    match kind {
        PlannedKind::Main | PlannedKind::Extracted(_) => base,
        PlannedKind::Crt => format!("{base}.crt"),
        PlannedKind::Key => format!("{base}.key"),
    }
}

/// Every path `spec` may write, in emission order (`.crt`, `.key`, then the main file, per
/// version, then each `jmesPath` entry's file). History mode plans `/0` … `/N-1` (quirk #1:
/// exactly N, not the reference's N + 1), at most [`MAX_PLANNED_HISTORY`] of them.
/// `split_cert_and_key` is `--write-cert-and-key-in-separate-files`; the extras are planned for
/// every secret because only the fetched content tells whether a secret backs a certificate.
pub fn plan_object_paths(spec: &ObjectSpec, split_cert_and_key: bool) -> Vec<PlannedFile> {
    let histories: Vec<Option<usize>> = if spec.is_history() {
        let n = usize::try_from(spec.object_version_history).unwrap_or(MAX_PLANNED_HISTORY);
        (0..n.min(MAX_PLANNED_HISTORY)).map(Some).collect()
    } else {
        vec![None]
    };
    let kinds: &[PlannedKind] =
        if split_cert_and_key && spec.object_type == super::params::ObjectType::Secret {
            &[PlannedKind::Crt, PlannedKind::Key, PlannedKind::Main]
        } else {
            &[PlannedKind::Main]
        };
    let extracted = (0..spec.jmes_path.len()).map(|entry| PlannedFile {
        path: output_path(spec, None, PlannedKind::Extracted(entry)),
        object_index: spec.index,
        history_index: None,
        kind: PlannedKind::Extracted(entry),
    });
    histories
        .into_iter()
        .flat_map(|h| {
            kinds.iter().map(move |kind| PlannedFile {
                path: output_path(spec, h, *kind),
                object_index: spec.index,
                history_index: h,
                kind: *kind,
            })
        })
        .chain(extracted)
        .collect()
}

/// [`plan_object_paths`] for every object, in `objects` order.
pub fn plan_paths(specs: &[ObjectSpec], split_cert_and_key: bool) -> Vec<PlannedFile> {
    specs
        .iter()
        .flat_map(|s| plan_object_paths(s, split_cert_and_key))
        .collect()
}

/// The object version id reported to the driver: `<type>/<name>[/<index>]`, always the object
/// name, never the alias (azure-behaviour.md §4; `.crt`/`.key` extras share the main file's id,
/// `jmesPath` files report none).
///
/// An object with its own `keyvaultName` gets `<type>/<name>@<vault>[/<index>]` (the vault as
/// written), so objects of one name in two vaults keep distinct ids; Key Vault names cannot
/// contain `@` or `/`, so no id of one form can equal an id of the other.
pub fn object_id(spec: &ObjectSpec, history_index: Option<usize>) -> String {
    let t = spec.object_type.as_str();
    let name = match &spec.keyvault_name {
        Some(vault) => format!("{}@{vault}", spec.object_name),
        None => spec.object_name.clone(),
    };
    match history_index {
        Some(i) => format!("{t}/{name}/{i}"),
        None => format!("{t}/{name}"),
    }
}

/// The mode of an object's files: `filePermission` when set, else the request's default.
pub fn file_mode(spec: &ObjectSpec, default_mode: u32) -> u32 {
    spec.file_permission.unwrap_or(default_mode)
}

/// Names an object in error messages: `secret/db-password (objects entry at index 0)`.
fn describe(spec: &ObjectSpec) -> String {
    format!(
        "{}/{} (objects entry at index {})",
        spec.object_type.as_str(),
        spec.object_name,
        spec.index
    )
}

/// An output path the driver would reject, or two objects writing one path.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A path breaks one of the driver's rules.
    #[error(
        "object {object} would write the file {path:?}, which the driver rejects: {source}; change objectAlias"
    )]
    InvalidPath {
        /// The path.
        path: String,
        /// The object writing it.
        object: String,
        /// The rule it breaks.
        #[source]
        source: PathRuleError,
    },
    /// Two objects write the same path (quirk #21: the driver would keep only the last).
    #[error(
        "objects {first_object} and {second_object} both write the file {path:?}; give one of them a different objectAlias"
    )]
    Duplicate {
        /// The path.
        path: String,
        /// The object writing it first.
        first_object: String,
        /// The object writing it again.
        second_object: String,
    },
    /// One object writes the same path twice (its own file and a `jmesPath` entry, or two
    /// entries).
    #[error(
        "object {object} writes the file {path:?} twice (its own file and a jmesPath objectAlias, or two jmesPath entries); give each jmesPath entry its own objectAlias"
    )]
    DuplicateInObject {
        /// The path.
        path: String,
        /// The object.
        object: String,
    },
    /// One object writes a file where another needs a directory (`a` and `a/b`).
    #[error(
        "object {file_object} writes the file {file:?} but object {nested_object} writes {nested:?} inside a directory of that name; give one of them a different objectAlias"
    )]
    FileDirConflict {
        /// The plain file.
        file: String,
        /// The object writing the plain file.
        file_object: String,
        /// The path nested below it.
        nested: String,
        /// The object writing the nested path.
        nested_object: String,
    },
}

impl FilesError {
    /// Class deciding the gRPC code: always the SecretProviderClass's fault.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::InvalidArgument
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidPath { .. } => "path_invalid",
            Self::Duplicate { .. }
            | Self::DuplicateInObject { .. }
            | Self::FileDirConflict { .. } => "path_conflict",
        }
    }
}

/// Fails when two entries share a path, or when one entry's path is a directory prefix of
/// another's (the writer cannot create both `a` and `a/b`).
///
/// # Errors
/// [`FilesError::Duplicate`] or [`FilesError::FileDirConflict`] naming both objects.
pub fn check_unique<'a, I>(files: I) -> Result<(), FilesError>
where
    I: IntoIterator<Item = (&'a str, &'a ObjectSpec)>,
{
    first(conflicts(files))
}

/// Every conflict [`check_unique`] looks for, not only the first: duplicates in input order,
/// then file/directory conflicts. `validate` reports them all.
pub fn conflicts<'a, I>(files: I) -> Vec<FilesError>
where
    I: IntoIterator<Item = (&'a str, &'a ObjectSpec)>,
{
    let mut found = Vec::new();
    let mut owners: HashMap<&'a str, &'a ObjectSpec> = HashMap::new();
    let mut ordered: Vec<(&'a str, &'a ObjectSpec)> = Vec::new();
    for (path, spec) in files {
        match owners.entry(path) {
            std::collections::hash_map::Entry::Occupied(first)
                if std::ptr::eq(*first.get(), spec) =>
            {
                found.push(FilesError::DuplicateInObject {
                    path: path.to_owned(),
                    object: describe(spec),
                });
                continue;
            }
            std::collections::hash_map::Entry::Occupied(first) => {
                found.push(FilesError::Duplicate {
                    path: path.to_owned(),
                    first_object: describe(first.get()),
                    second_object: describe(spec),
                });
                continue;
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(spec);
            }
        }
        ordered.push((path, spec));
    }
    for (path, spec) in ordered {
        for (pos, _) in path.match_indices('/') {
            let parent = &path[..pos];
            if let Some(owner) = owners.get(parent) {
                found.push(FilesError::FileDirConflict {
                    file: parent.to_owned(),
                    file_object: describe(owner),
                    nested: path.to_owned(),
                    nested_object: describe(spec),
                });
            }
        }
    }
    found
}

/// [`validate_path`] on every entry, then [`check_unique`].
///
/// # Errors
/// The first [`FilesError`] found.
pub fn check_paths<'a, I>(files: I) -> Result<(), FilesError>
where
    I: IntoIterator<Item = (&'a str, &'a ObjectSpec)>,
{
    first(path_problems(files))
}

/// Every problem [`check_paths`] looks for, in the order it looks: invalid paths first (a path
/// that breaks a rule is not checked for conflicts), then [`conflicts`].
pub fn path_problems<'a, I>(files: I) -> Vec<FilesError>
where
    I: IntoIterator<Item = (&'a str, &'a ObjectSpec)>,
{
    let mut found = Vec::new();
    let mut valid = Vec::new();
    for (path, spec) in files {
        match validate_path(path) {
            Ok(()) => valid.push((path, spec)),
            Err(source) => found.push(FilesError::InvalidPath {
                path: path.to_owned(),
                object: describe(spec),
                source,
            }),
        }
    }
    if found.is_empty() {
        found.extend(conflicts(valid));
    }
    found
}

fn first(problems: Vec<FilesError>) -> Result<(), FilesError> {
    match problems.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Pairs planned files with their specs for [`check_paths`]. Files whose `object_index` matches
/// no spec are skipped (they cannot come from [`plan_paths`] over the same slice).
pub fn with_specs<'a>(
    files: impl IntoIterator<Item = &'a PlannedFile>,
    specs: &'a [ObjectSpec],
) -> impl Iterator<Item = (&'a str, &'a ObjectSpec)> {
    files.into_iter().filter_map(move |f| {
        specs
            .iter()
            .find(|s| s.index == f.object_index)
            .map(|s| (f.path.as_str(), s))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mount::params::ObjectType;

    #[test]
    fn validate_path_table() {
        let long_element = "e".repeat(255);
        let too_long_element = "e".repeat(256);
        let long_path = vec!["d"; 2048].join("/"); // 4095 bytes
        let too_long_path = format!("{long_path}xx");
        let accepted = [
            "a",
            "a.pem",
            "dir/file",
            "a/b/c/d",
            "a..b",
            ".hidden",
            "a/..b",
            "a/.b",
            "x\\y",
            "spaces are fine",
            "ünïcode",
            long_element.as_str(),
            long_path.as_str(),
        ];
        for p in accepted {
            assert_eq!(validate_path(p), Ok(()), "{p:?}");
        }
        let rejected: &[(&str, PathRuleError)] = &[
            ("", PathRuleError::Empty),
            ("a\0b", PathRuleError::Nul),
            ("/etc/passwd", PathRuleError::Absolute),
            ("/", PathRuleError::Absolute),
            ("//a", PathRuleError::Absolute),
            (&too_long_path, PathRuleError::TooLong { len: 4097 }),
            ("..", PathRuleError::DotDotElement),
            ("../a", PathRuleError::DotDotElement),
            ("a/../b", PathRuleError::DotDotElement),
            ("a/..", PathRuleError::DotDotElement),
            (
                &too_long_element,
                PathRuleError::ElementTooLong { len: 256 },
            ),
            ("..data", PathRuleError::ReservedPrefix),
            ("..x/y", PathRuleError::ReservedPrefix),
            ("..2026_01_01_00_00_00.123", PathRuleError::ReservedPrefix),
            ("./a", PathRuleError::NotClean),
            ("a/./b", PathRuleError::NotClean),
            ("a//b", PathRuleError::NotClean),
            ("a/", PathRuleError::NotClean),
            ("a/.", PathRuleError::NotClean),
            (".", PathRuleError::NotClean),
        ];
        for (p, e) in rejected {
            assert_eq!(validate_path(p), Err(*e), "{p:?}");
        }
    }

    #[test]
    fn path_rule_messages() {
        for (e, text) in [
            (PathRuleError::Empty, "the path is empty"),
            (PathRuleError::Nul, "the path contains a NUL character"),
            (
                PathRuleError::Absolute,
                "the path must be relative: remove the leading '/'",
            ),
            (
                PathRuleError::TooLong { len: 5000 },
                "the path is 5000 bytes long; the driver accepts at most 4096",
            ),
            (
                PathRuleError::DotDotElement,
                "the path must not contain a '..' element",
            ),
            (
                PathRuleError::ElementTooLong { len: 300 },
                "a path element is 300 bytes long; the driver accepts at most 255",
            ),
            (
                PathRuleError::ReservedPrefix,
                "the first path element must not start with '..' (reserved by the driver)",
            ),
            (
                PathRuleError::NotClean,
                "the path must be clean: no '//', no '.' elements and no trailing '/'",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn plans_single_history_and_split_files() {
        let s = ObjectSpec::secret("s").with_alias("dir/s.pem");
        let paths = |specs: &[ObjectSpec], split| -> Vec<String> {
            plan_paths(specs, split)
                .into_iter()
                .map(|f| f.path)
                .collect()
        };
        assert_eq!(paths(std::slice::from_ref(&s), false), ["dir/s.pem"]);
        assert_eq!(
            paths(std::slice::from_ref(&s), true),
            ["dir/s.pem.crt", "dir/s.pem.key", "dir/s.pem"]
        );
        // Keys and certificates never get extras.
        assert_eq!(
            paths(&[ObjectSpec::key("k"), ObjectSpec::cert("c")], true),
            ["k", "c"]
        );
        // History: exactly N files (quirk #1); 0 and 1 are single-version mode.
        let h = ObjectSpec::secret("h").with_history(3);
        assert_eq!(
            paths(std::slice::from_ref(&h), false),
            ["h/0", "h/1", "h/2"]
        );
        assert_eq!(
            paths(&[ObjectSpec::secret("h").with_history(1)], false),
            ["h"]
        );
        assert_eq!(
            plan_paths(&[ObjectSpec::secret("h").with_history(u32::MAX)], false).len(),
            MAX_PLANNED_HISTORY
        );
        assert_eq!(
            paths(&[ObjectSpec::secret("h").with_history(2)], true),
            ["h/0.crt", "h/0.key", "h/0", "h/1.crt", "h/1.key", "h/1"]
        );

        let plan = plan_paths(&[h.clone().with_index(4)], true);
        assert_eq!(plan[0].object_index, 4);
        assert_eq!(plan[0].history_index, Some(0));
        assert_eq!(plan[0].kind, PlannedKind::Crt);
        let certain: Vec<&str> = plan
            .iter()
            .filter(|f| f.is_certain())
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(certain, ["h/0"]);
        assert!(
            plan_paths(&[s], true)
                .iter()
                .filter(|f| f.is_certain())
                .count()
                == 1
        );
    }

    #[test]
    fn object_ids_and_modes() {
        let s = ObjectSpec::secret("db-password").with_alias("other");
        assert_eq!(object_id(&s, None), "secret/db-password");
        assert_eq!(object_id(&ObjectSpec::key("k1"), None), "key/k1");
        assert_eq!(object_id(&ObjectSpec::cert("c1"), Some(2)), "cert/c1/2");
        assert_eq!(file_mode(&s, 0o644), 0o644);
        assert_eq!(file_mode(&s.with_permission(0o600), 0o644), 0o600);
        assert_eq!(
            ObjectSpec::new(ObjectType::Key, "x").object_type,
            ObjectType::Key
        );
    }

    #[test]
    fn object_ids_with_their_own_vault_name_it() {
        let s = ObjectSpec::secret("db").with_keyvault("kv-two");
        assert_eq!(object_id(&s, None), "secret/db@kv-two");
        assert_eq!(
            object_id(&ObjectSpec::cert("c").with_keyvault("kv-two"), Some(1)),
            "cert/c@kv-two/1"
        );
        // Same name in two vaults: distinct ids; the class-level vault keeps the reference id.
        assert_ne!(
            object_id(&ObjectSpec::secret("db").with_keyvault("kv-one"), None),
            object_id(&s, None)
        );
        assert_eq!(object_id(&ObjectSpec::secret("db"), None), "secret/db");
        // An object named like a history index cannot collide with another object's history.
        assert_ne!(
            object_id(&ObjectSpec::secret("0").with_keyvault("kv1"), None),
            object_id(&ObjectSpec::secret("kv1"), Some(0))
        );
    }

    #[test]
    fn jmes_path_files_are_planned_certain_and_checked() {
        use crate::mount::params::JmesPathEntry;
        let db = ObjectSpec::secret("db")
            .with_jmes_path(JmesPathEntry::new("user", "db/user"))
            .with_jmes_path(JmesPathEntry::new("password", "db-password"));
        let plan = plan_object_paths(&db, false);
        let paths: Vec<_> = plan.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["db", "db/user", "db-password"]);
        assert!(plan.iter().all(PlannedFile::is_certain));
        assert_eq!(plan[1].kind, PlannedKind::Extracted(0));
        // The object's own file `db` and the entry's `db/user` cannot both exist.
        assert!(matches!(
            check(std::slice::from_ref(&db), false),
            Err(FilesError::FileDirConflict { .. })
        ));

        // Same path twice inside one object.
        let twice = ObjectSpec::secret("db")
            .with_jmes_path(JmesPathEntry::new("a", "x"))
            .with_jmes_path(JmesPathEntry::new("b", "x"));
        let e = check(std::slice::from_ref(&twice), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "object secret/db (objects entry at index 0) writes the file \"x\" twice (its own file and a jmesPath objectAlias, or two jmesPath entries); give each jmesPath entry its own objectAlias"
        );
        assert_eq!(e.code(), "path_conflict");
        let own = ObjectSpec::secret("db").with_jmes_path(JmesPathEntry::new("a", "db"));
        assert!(matches!(
            check(std::slice::from_ref(&own), false),
            Err(FilesError::DuplicateInObject { .. })
        ));

        // Across objects: an entry's alias against another object's file.
        let specs = [
            ObjectSpec::secret("a").with_jmes_path(JmesPathEntry::new("p", "b")),
            ObjectSpec::secret("b").with_index(1),
        ];
        assert!(matches!(
            check(&specs, false),
            Err(FilesError::Duplicate { path, .. }) if path == "b"
        ));
    }

    fn check(specs: &[ObjectSpec], split: bool) -> Result<(), FilesError> {
        let plan = plan_paths(specs, split);
        check_paths(with_specs(&plan, specs))
    }

    #[test]
    fn duplicates_name_both_objects() {
        let specs = [
            ObjectSpec::secret("a"),
            ObjectSpec::key("b").with_index(1).with_alias("a"),
        ];
        let e = check(&specs, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "objects secret/a (objects entry at index 0) and key/b (objects entry at index 1) both write the file \"a\"; give one of them a different objectAlias"
        );
        assert_eq!(e.class(), ErrorClass::InvalidArgument);
        assert_eq!(e.code(), "path_conflict");

        // The same object listed twice.
        let specs = [
            ObjectSpec::secret("a"),
            ObjectSpec::secret("a").with_index(1),
        ];
        assert!(matches!(
            check(&specs, false),
            Err(FilesError::Duplicate { .. })
        ));

        // Split extras collide with an alias only when the flag is on.
        let specs = [
            ObjectSpec::secret("tls"),
            ObjectSpec::secret("other")
                .with_index(1)
                .with_alias("tls.crt"),
        ];
        assert!(check(&specs, false).is_ok());
        assert!(
            matches!(check(&specs, true), Err(FilesError::Duplicate { path, .. }) if path == "tls.crt")
        );
        // ... and the up-front check over certain files does not fire on them.
        let plan = plan_paths(&specs, true);
        assert!(check_paths(with_specs(plan.iter().filter(|f| f.is_certain()), &specs)).is_ok());
    }

    #[test]
    fn conflicts_lists_every_problem_in_check_order() {
        let specs = [
            ObjectSpec::secret("a").with_index(0).with_alias("x"),
            ObjectSpec::secret("b").with_index(1).with_alias("x"),
            ObjectSpec::secret("c").with_index(2).with_alias("y"),
            ObjectSpec::secret("d").with_index(3).with_alias("y/z"),
        ];
        let found = conflicts(specs.iter().map(|s| (s.file_name(), s)));
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(matches!(&found[0], FilesError::Duplicate { path, .. } if path == "x"));
        assert!(matches!(&found[1], FilesError::FileDirConflict { file, .. } if file == "y"));
        let first = check_unique(specs.iter().map(|s| (s.file_name(), s))).unwrap_err();
        assert_eq!(first.to_string(), found[0].to_string());
    }

    #[test]
    fn file_and_directory_conflict() {
        let specs = [
            ObjectSpec::secret("a"),
            ObjectSpec::secret("b").with_index(1).with_alias("a/b"),
        ];
        let e = check(&specs, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "object secret/a (objects entry at index 0) writes the file \"a\" but object secret/b (objects entry at index 1) writes \"a/b\" inside a directory of that name; give one of them a different objectAlias"
        );
        assert_eq!(e.code(), "path_conflict");
        // Order does not matter; deeper nesting is found too.
        let specs = [
            ObjectSpec::secret("b").with_alias("x/y/z"),
            ObjectSpec::secret("a").with_index(1).with_alias("x"),
        ];
        assert!(matches!(
            check(&specs, false),
            Err(FilesError::FileDirConflict { file, nested, .. }) if file == "x" && nested == "x/y/z"
        ));
        // History directories conflict with a plain file of the same name.
        let specs = [
            ObjectSpec::secret("h").with_history(2),
            ObjectSpec::secret("h").with_index(1),
        ];
        assert!(matches!(
            check(&specs, false),
            Err(FilesError::FileDirConflict { .. })
        ));
        // Shared directories and name prefixes are fine.
        let specs = [
            ObjectSpec::secret("a").with_alias("d/a"),
            ObjectSpec::secret("b").with_index(1).with_alias("d/b"),
            ObjectSpec::secret("c").with_index(2).with_alias("d2"),
            ObjectSpec::secret("e").with_index(3).with_alias("ab"),
        ];
        assert!(check(&specs, true).is_ok());
    }

    #[test]
    fn invalid_planned_path_names_the_object() {
        let specs = [ObjectSpec::secret("s").with_alias("e".repeat(252))];
        assert!(check(&specs, false).is_ok());
        let e = check(&specs, true).unwrap_err();
        assert!(matches!(
            e,
            FilesError::InvalidPath {
                source: PathRuleError::ElementTooLong { len: 256 },
                ..
            }
        ));
        assert!(
            e.to_string()
                .starts_with("object secret/s (objects entry at index 0) would write the file"),
            "{e}"
        );
        assert_eq!(e.code(), "path_invalid");
    }

    /// Go's `filepath.Clean` for relative paths without `..` handling beyond what the rules need.
    fn go_clean(p: &str) -> String {
        let mut out: Vec<&str> = Vec::new();
        for e in p.split('/') {
            match e {
                "" | "." => {}
                ".." => {
                    if out.last().is_some_and(|l| *l != "..") {
                        out.pop();
                    } else {
                        out.push("..");
                    }
                }
                other => out.push(other),
            }
        }
        if out.is_empty() {
            ".".to_owned()
        } else {
            out.join("/")
        }
    }

    fn element() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("..data".to_owned()),
            Just("a..b".to_owned()),
            "[a-z.]{1,6}",
            Just("\0".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn never_accepts_absolute_or_dotdot(elements in prop::collection::vec(element(), 1..6), lead in any::<bool>()) {
            let joined = elements.join("/");
            let path = if lead { format!("/{joined}") } else { joined };
            if validate_path(&path).is_ok() {
                prop_assert!(!path.starts_with('/'));
                prop_assert!(!path.split('/').any(|e| e == ".."));
                prop_assert!(!path.starts_with(".."));
                prop_assert!(!path.contains('\0'));
                // Accepted paths are exactly what the driver's clean check accepts.
                prop_assert_eq!(go_clean(&path), path.clone());
                prop_assert_ne!(path.as_str(), ".");
            } else {
                let driver_accepts = !path.is_empty()
                    && !path.starts_with('/')
                    && !path.contains('\0')
                    && !path.split('/').any(|e| e == "..")
                    && !path.starts_with("..")
                    && path != "."
                    && go_clean(&path) == path;
                prop_assert!(!driver_accepts, "rejected a path the driver accepts: {:?}", path);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(path in ".{0,300}") {
            let _ = validate_path(&path);
        }
    }
}
