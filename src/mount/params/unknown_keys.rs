//! The unknown-key rule (azure-behaviour.md §12.2): classify a parameter or object field name
//! against the known names.

/// What the unknown-key rule says about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyCheck {
    /// Exactly a known key.
    Known,
    /// Equal to this known key ignoring ASCII case: an error, because the reference would silently
    /// ignore it and use a default (issue #853).
    CaseVariant(&'static str),
    /// Not known; ignored with a warning, naming the closest known key when one is near.
    Unknown(Option<&'static str>),
}

/// Largest case-insensitive edit distance at which a known key is suggested.
const MAX_SUGGESTION_DISTANCE: usize = 2;

/// Classifies `key` against `known`. `is_known_extra` accepts keys outside the list (such as the
/// `csi.storage.k8s.io/` family) before any other rule applies.
pub(crate) fn check_key(
    key: &str,
    known: &[&'static str],
    is_known_extra: impl Fn(&str) -> bool,
) -> KeyCheck {
    if known.contains(&key) || is_known_extra(key) {
        return KeyCheck::Known;
    }
    // The list order decides ties: `tenantid` resolves to the preferred `tenantID`.
    if let Some(k) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        return KeyCheck::CaseVariant(k);
    }
    let lower = key.to_ascii_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for k in known {
        let d = levenshtein(&lower, &k.to_ascii_lowercase());
        if d <= MAX_SUGGESTION_DISTANCE && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    KeyCheck::Unknown(best.map(|(_, k)| k))
}

/// Levenshtein distance over Unicode scalar values (insert, delete, substitute cost 1).
pub(crate) fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["tenantID", "tenantId", "objectAlias", "clientID"];

    #[test]
    fn levenshtein_table() {
        for (a, b, d) in [
            ("", "", 0),
            ("a", "", 1),
            ("", "abc", 3),
            ("kitten", "sitting", 3),
            ("objectaliass", "objectalias", 1),
            ("flaw", "lawn", 2),
            ("same", "same", 0),
            ("ab", "ba", 2),
        ] {
            assert_eq!(levenshtein(a, b), d, "{a} -> {b}");
            assert_eq!(levenshtein(b, a), d, "{b} -> {a}");
        }
    }

    #[test]
    fn classification() {
        let none = |_: &str| false;
        assert_eq!(check_key("tenantID", KNOWN, none), KeyCheck::Known);
        assert_eq!(check_key("tenantId", KNOWN, none), KeyCheck::Known);
        assert_eq!(
            check_key("tenantid", KNOWN, none),
            KeyCheck::CaseVariant("tenantID")
        );
        assert_eq!(
            check_key("ClientId", KNOWN, none),
            KeyCheck::CaseVariant("clientID")
        );
        assert_eq!(
            check_key("objectAliass", KNOWN, none),
            KeyCheck::Unknown(Some("objectAlias"))
        );
        assert_eq!(
            check_key("ObjectAlia", KNOWN, none),
            KeyCheck::Unknown(Some("objectAlias"))
        );
        assert_eq!(
            check_key("resourceGroup", KNOWN, none),
            KeyCheck::Unknown(None)
        );
        assert_eq!(
            check_key("csi.x/y", KNOWN, |k: &str| k.starts_with("csi.")),
            KeyCheck::Known
        );
    }
}
