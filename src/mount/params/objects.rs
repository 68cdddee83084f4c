//! The `objects` parameter: a YAML `array:` of YAML strings -> validated [`ObjectSpec`]s.
//!
//! The reference decodes with `gopkg.in/yaml.v3` into Go `string` fields, so a plain scalar keeps
//! its literal source text (`filePermission: 0755` is `"0755"`, an all-digit version stays as
//! written). Every field is therefore read through `deserialize_str`, which hands over the literal
//! text, or `deserialize_option`, which maps YAML null (`~`, `null`, nothing) to "unset" like
//! yaml.v3 does for a Go string. Our visitors produce their own messages so that errors describe
//! the shape and position of a problem, never the YAML content.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::unknown_keys::{KeyCheck, check_key};
use super::{
    DecodeProblem, JMES_PATH, JMES_PATH_FIELDS, JmesPathEntry, KNOWN_OBJECT_FIELDS,
    OBJECT_KEYVAULT_NAME, ObjectEncoding, ObjectError, ObjectFormat, ObjectSpec, ObjectType,
    ParamWarning, ParamsError, WarningKind, vault_name_problem,
};
use crate::mount::files::validate_path;
use crate::render::extract::check_expression;

/// Largest `objectVersionHistory` the reference can decode (Go `int32`).
const MAX_VERSION_HISTORY: i64 = i32::MAX as i64;

/// Parses the (non-empty) `objects` parameter into validated specs plus unknown-key warnings.
pub(super) fn parse_objects(
    text: &str,
    warnings: &mut Vec<ParamWarning>,
) -> Result<Vec<ObjectSpec>, ParamsError> {
    let (specs, mut entry_errors) = parse_objects_all(text, warnings)?;
    if entry_errors.is_empty() {
        Ok(specs)
    } else {
        Err(entry_errors.swap_remove(0))
    }
}

/// [`parse_objects`] that goes on after an invalid entry: the valid specs and every entry's
/// error, in `array` order. Problems of the document as a whole are still returned as `Err`.
pub(super) fn parse_objects_all(
    text: &str,
    warnings: &mut Vec<ParamWarning>,
) -> Result<(Vec<ObjectSpec>, Vec<ParamsError>), ParamsError> {
    let doc: ObjectsDoc =
        serde_norway::from_str(text).map_err(|source| ParamsError::ObjectsYaml { source })?;
    for key in &doc.other_keys {
        match check_key(key, &["array"], |_| false) {
            KeyCheck::Known => {}
            KeyCheck::CaseVariant(known) => {
                return Err(ParamsError::ObjectsKeyCase {
                    key: key.clone(),
                    known,
                });
            }
            KeyCheck::Unknown(suggestion) => warnings.push(ParamWarning {
                key: key.clone(),
                suggestion: suggestion.map(str::to_owned),
                object_index: None,
                kind: WarningKind::UnknownObjectsKey,
            }),
        }
    }
    // Quirk #3: the reference returns success without files and the driver then reports the
    // misleading `missing object versions`.
    if doc.array.is_empty() {
        return Err(ParamsError::ObjectsEmpty);
    }
    let mut specs = Vec::with_capacity(doc.array.len());
    let mut errors = Vec::new();
    for (index, entry) in doc.array.iter().enumerate() {
        match parse_entry(index, entry, warnings) {
            Ok(spec) => specs.push(spec),
            Err(e) => errors.push(e),
        }
    }
    Ok((specs, errors))
}

fn parse_entry(
    index: usize,
    entry: &str,
    warnings: &mut Vec<ParamWarning>,
) -> Result<ObjectSpec, ParamsError> {
    let decode_err = |problem| ParamsError::ObjectDecode { index, problem };
    let raw: RawObject = serde_norway::from_str(entry)
        .map_err(|source| decode_err(DecodeProblem::Yaml { source }))?;
    for key in &raw.unknown {
        match check_key(key, KNOWN_OBJECT_FIELDS, |_| false) {
            KeyCheck::Known => {}
            KeyCheck::CaseVariant(known) => {
                return Err(decode_err(DecodeProblem::KeyCase {
                    key: key.clone(),
                    known,
                }));
            }
            KeyCheck::Unknown(suggestion) => warnings.push(ParamWarning {
                key: key.clone(),
                suggestion: suggestion.map(str::to_owned),
                object_index: Some(index),
                kind: WarningKind::UnknownKey,
            }),
        }
    }
    for (entry, fields) in raw.jmes_path.iter().flatten().enumerate() {
        for (key, _) in fields {
            match check_key(key, JMES_PATH_FIELDS, |_| false) {
                KeyCheck::Known => {}
                KeyCheck::CaseVariant(known) => {
                    return Err(decode_err(DecodeProblem::KeyCase {
                        key: format!("{JMES_PATH}[{entry}].{key}"),
                        known,
                    }));
                }
                KeyCheck::Unknown(suggestion) => warnings.push(ParamWarning {
                    key: format!("{JMES_PATH}[{entry}].{key}"),
                    suggestion: suggestion.map(str::to_owned),
                    object_index: Some(index),
                    kind: WarningKind::UnknownKey,
                }),
            }
        }
    }
    let history = parse_history(raw.field(OBJECT_VERSION_HISTORY)).map_err(decode_err)?;
    validate_object(index, &raw, history)
}

/// `objectVersionHistory`: a non-negative decimal integer. Quoted `"2"` is accepted too
/// (the reference rejects it; being lenient only turns a failing SPC into a working one).
fn parse_history(text: &str) -> Result<u32, DecodeProblem> {
    if text.is_empty() {
        return Ok(0);
    }
    let invalid = || DecodeProblem::VersionHistory {
        value: text.to_owned(),
    };
    let digits = text.strip_prefix('+').unwrap_or(text);
    let (negative, digits) = match digits.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, digits),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    if negative {
        return Err(invalid());
    }
    let n: i64 = digits.parse().map_err(|_| invalid())?;
    if n > MAX_VERSION_HISTORY {
        return Err(invalid());
    }
    u32::try_from(n).map_err(|_| invalid())
}

fn validate_object(index: usize, raw: &RawObject, history: u32) -> Result<ObjectSpec, ParamsError> {
    let name = raw.field(OBJECT_NAME);
    let type_text = raw.field(OBJECT_TYPE);
    let version_text = raw.field(OBJECT_VERSION);
    let wrap = |source: ObjectError| ParamsError::Object {
        index,
        object_type: type_text.to_owned(),
        object_name: name.to_owned(),
        object_version: version_text.to_owned(),
        source: Box::new(source),
    };

    // Quirk #12: the reference checks the type only when fetching; we check it before any I/O.
    let object_type = parse_object_type(type_text).map_err(wrap)?;
    let object_format = parse_format(raw.field(OBJECT_FORMAT), object_type).map_err(wrap)?;
    let object_encoding = parse_encoding(raw.field(OBJECT_ENCODING), object_type).map_err(wrap)?;

    // An empty alias means "no alias" in the reference, so it stays accepted.
    let alias = raw.field(OBJECT_ALIAS);
    let object_alias = (!alias.is_empty()).then(|| alias.to_owned());
    validate_file_name(object_alias.as_deref().unwrap_or(name)).map_err(wrap)?;
    if name.is_empty() {
        return Err(wrap(ObjectError::NameMissing));
    }

    let file_permission = parse_file_permission(name, raw.field(FILE_PERMISSION)).map_err(wrap)?;

    let vault = raw.field(OBJECT_KEYVAULT_NAME);
    let keyvault_name = if vault.is_empty() {
        None
    } else if let Some(problem) = vault_name_problem(vault) {
        return Err(wrap(ObjectError::InvalidVaultName {
            name: vault.to_owned(),
            problem,
        }));
    } else {
        Some(vault.to_owned())
    };

    let jmes_path = match &raw.jmes_path {
        None => Vec::new(),
        Some(_) if object_type != ObjectType::Secret => {
            return Err(wrap(ObjectError::JmesPathNotSecret));
        }
        Some(_) if history > 1 => return Err(wrap(ObjectError::JmesPathWithHistory)),
        Some(entries) => entries
            .iter()
            .enumerate()
            .map(|(entry, fields)| parse_jmes_entry(entry, fields))
            .collect::<Result<Vec<_>, _>>()
            .map_err(wrap)?,
    };

    // Quirk #14: `latest` means latest in single-version mode too. Key Vault version ids are hex,
    // so no real version is lost by matching `latest` in any letter case.
    let object_version = (!version_text.is_empty() && !version_text.eq_ignore_ascii_case("latest"))
        .then(|| version_text.to_owned());

    Ok(ObjectSpec {
        index,
        object_name: name.to_owned(),
        object_type,
        object_alias,
        object_version,
        object_version_history: history,
        object_format,
        object_encoding,
        file_permission,
        keyvault_name,
        jmes_path,
    })
}

/// One `jmesPath` entry: `path` compiles, `objectAlias` obeys the file-name rules,
/// `filePermission` is an octal mode.
fn parse_jmes_entry(
    entry: usize,
    fields: &[(String, String)],
) -> Result<JmesPathEntry, ObjectError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let path = field("path");
    if path.is_empty() {
        return Err(ObjectError::JmesPathPathMissing { entry });
    }
    check_expression(path).map_err(|source| ObjectError::JmesPathPathInvalid {
        entry,
        path: path.to_owned(),
        source,
    })?;
    let alias = field(OBJECT_ALIAS);
    if alias.is_empty() {
        return Err(ObjectError::JmesPathAliasMissing { entry });
    }
    validate_file_name(alias).map_err(|source| ObjectError::JmesPathAlias {
        entry,
        source: Box::new(source),
    })?;
    let permission = field(FILE_PERMISSION);
    let file_permission =
        parse_mode(permission).ok_or_else(|| ObjectError::JmesPathFilePermission {
            entry,
            value: permission.to_owned(),
        })?;
    Ok(JmesPathEntry {
        path: path.to_owned(),
        object_alias: alias.to_owned(),
        file_permission,
    })
}

fn parse_object_type(text: &str) -> Result<ObjectType, ObjectError> {
    const TYPES: [ObjectType; 3] = [ObjectType::Secret, ObjectType::Key, ObjectType::Cert];
    if let Some(t) = TYPES.iter().find(|t| t.as_str() == text) {
        return Ok(*t);
    }
    match TYPES.iter().find(|t| t.as_str().eq_ignore_ascii_case(text)) {
        Some(t) => Err(ObjectError::TypeCase {
            given: text.to_owned(),
            expected: t.as_str(),
        }),
        None => Err(ObjectError::InvalidType),
    }
}

fn parse_format(text: &str, object_type: ObjectType) -> Result<ObjectFormat, ObjectError> {
    if text.is_empty() || text.eq_ignore_ascii_case("pem") {
        return Ok(ObjectFormat::Pem);
    }
    if !text.eq_ignore_ascii_case("pfx") {
        return Err(ObjectError::InvalidFormat {
            value: text.to_owned(),
        });
    }
    // Quirk #13: the reference rejects only lower-case `pfx` on keys and certificates.
    if object_type != ObjectType::Secret {
        return Err(ObjectError::PfxNotSecret);
    }
    Ok(ObjectFormat::Pfx)
}

fn parse_encoding(text: &str, object_type: ObjectType) -> Result<ObjectEncoding, ObjectError> {
    if text.is_empty() {
        return Ok(ObjectEncoding::Utf8);
    }
    if object_type != ObjectType::Secret {
        return Err(ObjectError::EncodingNotSecret);
    }
    if text.eq_ignore_ascii_case("utf-8") {
        Ok(ObjectEncoding::Utf8)
    } else if text.eq_ignore_ascii_case("hex") {
        Ok(ObjectEncoding::Hex)
    } else if text.eq_ignore_ascii_case("base64") {
        Ok(ObjectEncoding::Base64)
    } else {
        Err(ObjectError::InvalidEncoding {
            value: text.to_owned(),
        })
    }
}

/// The reference's file-name rules, then the driver's path rules (so the writer never rejects a
/// path we produced). The `..`-substring rule is the reference's and stricter than the driver's.
fn validate_file_name(file_name: &str) -> Result<(), ObjectError> {
    if file_name.is_empty() {
        return Err(ObjectError::FileNameEmpty);
    }
    if file_name.starts_with('/') {
        return Err(ObjectError::FileNameAbsolute);
    }
    if file_name.contains("..") {
        return Err(ObjectError::FileNameDotDot);
    }
    validate_path(file_name).map_err(|source| ObjectError::FileNamePath {
        file_name: file_name.to_owned(),
        source,
    })
}

/// Quirk #2: the reference discards the parse error and writes mode 0000; we reject instead.
fn parse_file_permission(name: &str, text: &str) -> Result<Option<u32>, ObjectError> {
    parse_mode(text).ok_or_else(|| ObjectError::FilePermission {
        object_name: name.to_owned(),
        value: text.to_owned(),
    })
}

/// An octal mode in 0000–0777: `Some(None)` when empty, `None` when invalid.
fn parse_mode(text: &str) -> Option<Option<u32>> {
    if text.is_empty() {
        return Some(None);
    }
    if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    let mode = u32::from_str_radix(text, 8).ok()?;
    (mode <= 0o777).then_some(Some(mode))
}

const OBJECT_NAME: &str = "objectName";
const OBJECT_TYPE: &str = "objectType";
const OBJECT_ALIAS: &str = "objectAlias";
const OBJECT_VERSION: &str = "objectVersion";
const OBJECT_VERSION_HISTORY: &str = "objectVersionHistory";
const OBJECT_FORMAT: &str = "objectFormat";
const OBJECT_ENCODING: &str = "objectEncoding";
const FILE_PERMISSION: &str = "filePermission";

/// The top-level `objects` document: `array` plus whatever other keys were present.
#[derive(Default)]
struct ObjectsDoc {
    array: Vec<String>,
    other_keys: Vec<String>,
}

impl<'de> Deserialize<'de> for ObjectsDoc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectsDocVisitor)
    }
}

const NOT_A_MAPPING: &str = "objects must be a YAML mapping with the key `array` holding a list of strings, one YAML document per object";

struct ObjectsDocVisitor;

impl<'de> Visitor<'de> for ObjectsDocVisitor {
    type Value = ObjectsDoc;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping with the key `array`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectsDoc, A::Error> {
        let mut doc = ObjectsDoc::default();
        let mut seen_array = false;
        while let Some(Text(key)) = map.next_key()? {
            if key == "array" {
                if seen_array {
                    return Err(de::Error::custom(
                        "mapping key `array` is defined more than once",
                    ));
                }
                seen_array = true;
                doc.array = map.next_value::<ArrayValue>()?.0;
            } else {
                map.next_value::<IgnoredAny>()?;
                doc.other_keys.push(key);
            }
        }
        Ok(doc)
    }

    fn visit_unit<E: de::Error>(self) -> Result<ObjectsDoc, E> {
        Ok(ObjectsDoc::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<ObjectsDoc, E> {
        Ok(ObjectsDoc::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<ObjectsDoc, A::Error> {
        Err(de::Error::custom(format_args!(
            "found a list at the top level; {NOT_A_MAPPING}"
        )))
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<ObjectsDoc, E> {
        Err(E::custom(format_args!(
            "found a single value at the top level; {NOT_A_MAPPING}"
        )))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<ObjectsDoc, E> {
        self.visit_str(if v { "true" } else { "false" })
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<ObjectsDoc, E> {
        self.visit_str("")
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<ObjectsDoc, E> {
        self.visit_str("")
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<ObjectsDoc, E> {
        self.visit_str("")
    }
}

/// The value of `array`: a list of strings; null counts as empty.
struct ArrayValue(Vec<String>);

impl<'de> Deserialize<'de> for ArrayValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArrayVisitor)
    }
}

const ARRAY_NOT_A_LIST: &str =
    "`array` must be a list of strings, each a YAML document describing one object";

struct ArrayVisitor;

impl<'de> Visitor<'de> for ArrayVisitor {
    type Value = ArrayValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArrayValue, A::Error> {
        let mut out = Vec::new();
        while let Some(EntryText(s)) = seq.next_element()? {
            out.push(s);
        }
        Ok(ArrayValue(out))
    }

    fn visit_unit<E: de::Error>(self) -> Result<ArrayValue, E> {
        Ok(ArrayValue(Vec::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<ArrayValue, E> {
        Ok(ArrayValue(Vec::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<ArrayValue, A::Error> {
        Err(de::Error::custom(format_args!(
            "found a mapping; {ARRAY_NOT_A_LIST}"
        )))
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<ArrayValue, E> {
        Err(E::custom(format_args!(
            "found a single value; {ARRAY_NOT_A_LIST} (start each entry with `- |`)"
        )))
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<ArrayValue, E> {
        self.visit_str("")
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<ArrayValue, E> {
        self.visit_str("")
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<ArrayValue, E> {
        self.visit_str("")
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<ArrayValue, E> {
        self.visit_str("")
    }
}

/// One entry of `array`: the literal text of a scalar.
struct EntryText(String);

impl<'de> Deserialize<'de> for EntryText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor(
            "a string holding one object's YAML (write each entry as `- |` followed by the indented fields)",
        ))
        .map(EntryText)
    }
}

/// A scalar's literal source text (mapping keys).
struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(TextVisitor("a string")).map(Text)
    }
}

/// A field value: `None` for YAML null, else the scalar's literal source text.
struct FieldText(Option<String>);

impl<'de> Deserialize<'de> for FieldText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_option(FieldVisitor).map(FieldText)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a single value (not a list or mapping)")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(TextVisitor("a single value (not a list or mapping)"))
            .map(Some)
    }
}

/// Accepts only strings; serde_norway passes every scalar's literal text to `visit_str`.
struct TextVisitor(&'static str);

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
}

/// One object entry: known fields (trimmed literal text) and the other keys seen.
#[derive(Default)]
struct RawObject {
    fields: Vec<(&'static str, String)>,
    /// `jmesPath`: each entry's keys and trimmed values; `None` when absent or null.
    jmes_path: Option<Vec<Vec<(String, String)>>>,
    unknown: Vec<String>,
}

impl RawObject {
    /// The trimmed value of a known field, `""` when absent or null.
    fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawObjectVisitor)
    }
}

const OBJECT_NOT_A_MAPPING: &str =
    "each entry must be a YAML mapping of fields such as objectName and objectType";

struct RawObjectVisitor;

impl<'de> Visitor<'de> for RawObjectVisitor {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping of object fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
        let mut raw = RawObject::default();
        let mut seen_jmes_path = false;
        while let Some(Text(key)) = map.next_key()? {
            if key == JMES_PATH {
                if seen_jmes_path {
                    return Err(de::Error::custom(format_args!(
                        "mapping key {JMES_PATH:?} is defined more than once"
                    )));
                }
                seen_jmes_path = true;
                raw.jmes_path = map.next_value::<JmesPathList>()?.0;
                continue;
            }
            match KNOWN_OBJECT_FIELDS.iter().find(|k| **k == key) {
                Some(known) => {
                    // yaml.v3 rejects duplicate keys too ("mapping key ... already defined").
                    if raw.fields.iter().any(|(k, _)| k == known) {
                        return Err(de::Error::custom(format_args!(
                            "mapping key {known:?} is defined more than once"
                        )));
                    }
                    let FieldText(value) = map.next_value()?;
                    raw.fields
                        .push((known, value.unwrap_or_default().trim().to_owned()));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                    raw.unknown.push(key);
                }
            }
        }
        Ok(raw)
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawObject, E> {
        Ok(RawObject::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<RawObject, E> {
        Ok(RawObject::default())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<RawObject, A::Error> {
        Err(de::Error::custom(format_args!(
            "found a list; {OBJECT_NOT_A_MAPPING}"
        )))
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<RawObject, E> {
        Err(E::custom(format_args!(
            "found a single value; {OBJECT_NOT_A_MAPPING}"
        )))
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<RawObject, E> {
        self.visit_str("")
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<RawObject, E> {
        self.visit_str("")
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<RawObject, E> {
        self.visit_str("")
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<RawObject, E> {
        self.visit_str("")
    }
}

const JMES_PATH_SHAPE: &str = "jmesPath must be a list of entries, each a mapping such as `- path: password` with `objectAlias: db-password`";

/// The value of `jmesPath`: a list of mappings of scalars; null counts as absent.
struct JmesPathList(Option<Vec<Vec<(String, String)>>>);

impl<'de> Deserialize<'de> for JmesPathList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JmesPathListVisitor)
    }
}

struct JmesPathListVisitor;

impl<'de> Visitor<'de> for JmesPathListVisitor {
    type Value = JmesPathList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(JMES_PATH_SHAPE)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JmesPathList, A::Error> {
        let mut out = Vec::new();
        while let Some(JmesPathEntryFields(fields)) = seq.next_element()? {
            out.push(fields);
        }
        Ok(JmesPathList(Some(out)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JmesPathList, E> {
        Ok(JmesPathList(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<JmesPathList, E> {
        Ok(JmesPathList(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<JmesPathList, A::Error> {
        Err(de::Error::custom(format_args!(
            "found a mapping; {JMES_PATH_SHAPE} (start each entry with `- `)"
        )))
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<JmesPathList, E> {
        Err(E::custom(format_args!(
            "found a single value; {JMES_PATH_SHAPE}"
        )))
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<JmesPathList, E> {
        self.visit_str("")
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<JmesPathList, E> {
        self.visit_str("")
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<JmesPathList, E> {
        self.visit_str("")
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<JmesPathList, E> {
        self.visit_str("")
    }
}

/// One `jmesPath` entry: keys with their trimmed literal text (null is empty).
struct JmesPathEntryFields(Vec<(String, String)>);

impl<'de> Deserialize<'de> for JmesPathEntryFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JmesPathEntryVisitor)
    }
}

struct JmesPathEntryVisitor;

impl<'de> Visitor<'de> for JmesPathEntryVisitor {
    type Value = JmesPathEntryFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(JMES_PATH_SHAPE)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JmesPathEntryFields, A::Error> {
        let mut fields: Vec<(String, String)> = Vec::new();
        while let Some(Text(key)) = map.next_key()? {
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!(
                    "jmesPath entry: mapping key {key:?} is defined more than once"
                )));
            }
            let value = match JMES_PATH_FIELDS.iter().find(|k| **k == key) {
                Some(&known) => map.next_value_seed(EntryFieldSeed(known))?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            fields.push((key, value.unwrap_or_default().trim().to_owned()));
        }
        Ok(JmesPathEntryFields(fields))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<JmesPathEntryFields, A::Error> {
        Err(de::Error::custom(format_args!(
            "a jmesPath entry is a list; {JMES_PATH_SHAPE}"
        )))
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<JmesPathEntryFields, E> {
        Err(E::custom(format_args!(
            "a jmesPath entry is a single value; {JMES_PATH_SHAPE}"
        )))
    }

    fn visit_unit<E: de::Error>(self) -> Result<JmesPathEntryFields, E> {
        self.visit_str("")
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<JmesPathEntryFields, E> {
        self.visit_str("")
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<JmesPathEntryFields, E> {
        self.visit_str("")
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<JmesPathEntryFields, E> {
        self.visit_str("")
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<JmesPathEntryFields, E> {
        self.visit_str("")
    }
}

/// A `jmesPath` entry field: its literal text, or `None` for null; a list or mapping fails with
/// a message naming the field.
struct EntryFieldSeed(&'static str);

impl<'de> de::DeserializeSeed<'de> for EntryFieldSeed {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(EntryFieldVisitor(self.0))
    }
}

struct EntryFieldVisitor(&'static str);

impl<'de> Visitor<'de> for EntryFieldVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "jmesPath {} as a single string value", self.0)
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_str(self)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<String>, E> {
        Ok(Some(v.to_owned()))
    }
}
