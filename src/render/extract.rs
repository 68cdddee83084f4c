//! `jmesPath`: one more file per entry, cut out of a secret's JSON value with a JMESPath
//! expression (the shape users know from the AWS provider).
//!
//! Expressions are compiled by the `jmespath` crate, the JMESPath project's own Rust
//! implementation, once while the parameters are parsed (so an invalid one fails before any
//! network call) and again per extraction: compiling is cheap next to a Key Vault round trip, and
//! the compiled form is not `Send`, so it cannot travel with the object spec across tasks.
//!
//! Errors describe positions and kinds only, never the value: a JMESPath runtime error names
//! JSON types ("expects type string, given number"), a JSON syntax error a line and column.

use crate::error::ErrorClass;
use crate::secret::SecretBytes;

/// Why an expression does not compile. The expression is SecretProviderClass text, not secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} at column {column}")]
pub struct ExpressionError {
    /// The parser's reason.
    pub reason: String,
    /// Zero-based column of the problem.
    pub column: usize,
}

/// Longest expression accepted. The crate parses, evaluates and drops expressions recursively,
/// one stack frame per nesting level (`!!!…a`, `((…))`, `a.a.…`); bounding the length bounds the
/// depth, and the evaluation thread's 16 MiB stack covers that depth with a wide margin. Real
/// paths are short (`password`, `db.users[0].name`).
pub const MAX_EXPRESSION_BYTES: usize = 256;

/// Stack of the thread that compiles and evaluates an expression: a SecretProviderClass must
/// not be able to overflow a runtime worker's stack (which aborts the whole provider).
const EVAL_STACK_BYTES: usize = 16 << 20;

/// Runs `f` on a short-lived thread with [`EVAL_STACK_BYTES`] of stack; `None` when the thread
/// cannot be started or `f` panics.
fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("jmespath".into())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(scope, f)
            .ok()?
            .join()
            .ok()
    })
}

/// Checks that `expression` is a valid JMESPath expression of at most
/// [`MAX_EXPRESSION_BYTES`] that calls only functions JMESPath defines.
///
/// # Errors
/// [`ExpressionError`] with the parser's reason and position.
pub fn check_expression(expression: &str) -> Result<(), ExpressionError> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        return Err(ExpressionError {
            reason: format!(
                "the expression is {} bytes long; at most {MAX_EXPRESSION_BYTES} are accepted",
                expression.len()
            ),
            column: MAX_EXPRESSION_BYTES,
        });
    }
    on_big_stack(|| compile_checked(expression)).unwrap_or_else(|| {
        Err(ExpressionError {
            reason: "the expression could not be compiled".into(),
            column: 0,
        })
    })
}

fn compile_checked(expression: &str) -> Result<(), ExpressionError> {
    let compiled = jmespath::compile(expression).map_err(|e| ExpressionError {
        reason: match &e.reason {
            jmespath::ErrorReason::Parse(p) => p.clone(),
            jmespath::ErrorReason::Runtime(r) => r.to_string(),
        },
        column: e.column,
    })?;
    // The crate resolves function names only while evaluating; a misspelt function would
    // otherwise pass validation and fail every Mount.
    match unknown_function(compiled.as_ast()) {
        Some((name, offset)) => Err(ExpressionError {
            reason: format!("unknown function {name}()"),
            column: offset,
        }),
        None => Ok(()),
    }
}

/// The first function call in `ast` that the default runtime does not know, with its offset.
fn unknown_function(ast: &jmespath::ast::Ast) -> Option<(&str, usize)> {
    use jmespath::ast::Ast;
    match ast {
        Ast::Function { name, args, offset } => {
            if jmespath::DEFAULT_RUNTIME.get_function(name).is_none() {
                return Some((name.as_str(), *offset));
            }
            args.iter().find_map(unknown_function)
        }
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => unknown_function(lhs).or_else(|| unknown_function(rhs)),
        Ast::Condition {
            predicate, then, ..
        } => unknown_function(predicate).or_else(|| unknown_function(then)),
        Ast::Expref { ast, .. } => unknown_function(ast),
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            unknown_function(node)
        }
        Ast::MultiList { elements, .. } => elements.iter().find_map(unknown_function),
        Ast::MultiHash { elements, .. } => {
            elements.iter().find_map(|kv| unknown_function(&kv.value))
        }
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => None,
    }
}

/// Why an entry produced no file. Messages never contain the secret's value; callers prefix
/// them with the object, the entry's path and its objectAlias.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The value (after `objectEncoding`) is not UTF-8 JSON.
    #[error(
        "the secret's value is not JSON ({0}); store the value as a JSON document or remove jmesPath"
    )]
    NotJson(String),
    /// The expression yields `null`: a missing key, an index out of range or no match.
    #[error(
        "the expression yields null (a missing key or no match); fix the path or add the key to the secret's JSON value"
    )]
    Null,
    /// The expression fails at run time (a function applied to the wrong JSON type).
    #[error("the expression fails on the secret's value: {0}")]
    Runtime(String),
    /// The expression no longer compiles (it was checked when the parameters were parsed).
    #[error("the expression is not valid JMESPath: {0}")]
    Expression(#[source] ExpressionError),
}

impl ExtractError {
    /// Class deciding the gRPC code: the stored content does not fit the SecretProviderClass.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Expression(_) => ErrorClass::InvalidArgument,
            _ => ErrorClass::FailedPrecondition,
        }
    }

    /// Bounded code for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "jmespath_not_json",
            Self::Null => "jmespath_null",
            Self::Runtime(_) => "jmespath_runtime",
            Self::Expression(_) => "jmespath_invalid",
        }
    }
}

/// Evaluates `expression` against the JSON document `value`: a string result is written as its
/// raw text, any other result as compact JSON (object members in key order).
///
/// # Errors
/// [`ExtractError`]: not JSON, a `null` result, a runtime error.
pub fn extract(value: &[u8], expression: &str) -> Result<SecretBytes, ExtractError> {
    if expression.len() > MAX_EXPRESSION_BYTES {
        // Checked when the parameters were parsed; kept here so no caller can skip it.
        return Err(ExtractError::Expression(ExpressionError {
            reason: format!("the expression is longer than {MAX_EXPRESSION_BYTES} bytes"),
            column: MAX_EXPRESSION_BYTES,
        }));
    }
    on_big_stack(|| evaluate(value, expression)).unwrap_or_else(|| {
        Err(ExtractError::Runtime(
            "the expression could not be evaluated".into(),
        ))
    })
}

fn evaluate(value: &[u8], expression: &str) -> Result<SecretBytes, ExtractError> {
    let compiled = jmespath::compile(expression).map_err(|e| {
        ExtractError::Expression(ExpressionError {
            reason: e.reason.to_string(),
            column: e.column,
        })
    })?;
    let data: jmespath::Variable =
        serde_json::from_slice(value).map_err(|e| ExtractError::NotJson(describe_json(&e)))?;
    let result = compiled.search(data).map_err(|e| match e.reason {
        jmespath::ErrorReason::Runtime(r) => ExtractError::Runtime(r.to_string()),
        jmespath::ErrorReason::Parse(p) => ExtractError::Runtime(p),
    })?;
    match &*result {
        jmespath::Variable::Null => Err(ExtractError::Null),
        jmespath::Variable::String(s) => Ok(SecretBytes::new(s.as_bytes().to_vec())),
        other => serde_json::to_vec(other)
            .map(SecretBytes::new)
            .map_err(|e| ExtractError::Runtime(describe_json(&e))),
    }
}

/// A serde_json error by category and position only: some of its messages quote input.
fn describe_json(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "invalid data",
        serde_json::error::Category::Eof => "unexpected end of input",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"username":"app","password":"s3cr3t-Value","port":5432,
        "hosts":["a.example","b.example"],"tls":{"enabled":true,"ca":"PEM"},"empty":"","none":null}"#;

    fn run(expression: &str) -> Result<String, ExtractError> {
        extract(DOC.as_bytes(), expression)
            .map(|b| String::from_utf8(b.expose().to_vec()).unwrap_or_default())
    }

    #[test]
    fn strings_are_raw_text_other_results_compact_json() {
        assert_eq!(run("password").unwrap(), "s3cr3t-Value");
        assert_eq!(run("tls.ca").unwrap(), "PEM");
        assert_eq!(run("empty").unwrap(), "");
        assert_eq!(run("port").unwrap(), "5432");
        assert_eq!(run("tls.enabled").unwrap(), "true");
        assert_eq!(run("hosts").unwrap(), r#"["a.example","b.example"]"#);
        assert_eq!(run("hosts[1]").unwrap(), "b.example");
        assert_eq!(run("tls").unwrap(), r#"{"ca":"PEM","enabled":true}"#);
        assert_eq!(
            run("{user: username, port: port}").unwrap(),
            r#"{"port":5432,"user":"app"}"#
        );
        assert_eq!(run("length(hosts)").unwrap(), "2");
        assert_eq!(run("\"quoted-key\"").unwrap_err(), ExtractError::Null);
    }

    #[test]
    fn null_results_fail() {
        for e in ["missing", "none", "hosts[5]", "tls.missing.deeper"] {
            assert_eq!(run(e).unwrap_err(), ExtractError::Null, "{e}");
        }
    }

    #[test]
    fn errors_never_contain_the_value() {
        let not_json = extract(b"s3cr3t-Value", "a").unwrap_err();
        assert!(matches!(not_json, ExtractError::NotJson(_)));
        let runtime = run("length(port)").unwrap_err();
        assert!(matches!(runtime, ExtractError::Runtime(_)), "{runtime:?}");
        let binary = extract(&[0xff, 0xfe, 0x00], "a").unwrap_err();
        assert!(matches!(binary, ExtractError::NotJson(_)));
        for e in [not_json, runtime, binary] {
            let text = e.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(!text.contains("5432"), "{text}");
            assert_eq!(e.class(), ErrorClass::FailedPrecondition);
        }
    }

    #[test]
    fn expressions_are_checked() {
        for ok in ["a", "a.b[0]", "a[?b=='c'].d | [0]", "`1`", "@"] {
            assert_eq!(check_expression(ok), Ok(()), "{ok}");
        }
        for bad in ["a[", "", "a..b", "[?", "foo(", "a.", "'unterminated"] {
            assert!(check_expression(bad).is_err(), "{bad}");
        }
        // Misspelt functions are found anywhere in the tree, not only when evaluated.
        for bad in [
            "lenght(a)",
            "a.b | sort_by(@, &nosuch(x))",
            "{x: [a, upper(b)]}",
            "a[?nosuch(b)]",
            "a || !nosuch(b)",
        ] {
            let e = check_expression(bad).unwrap_err();
            assert!(e.reason.starts_with("unknown function"), "{bad}: {e}");
        }
        assert_eq!(check_expression("length(a) && to_string(b)"), Ok(()));
    }

    /// Deep nesting within the length limit neither overflows a stack nor aborts; longer
    /// expressions are rejected before they are parsed. Runs on a thread with a runtime worker's
    /// default 2 MiB stack.
    #[test]
    fn nesting_is_bounded() {
        let run = || {
            let n = 127;
            let deep = [
                format!("{}a{}", "(".repeat(n), ")".repeat(n)),
                format!("{}a{}", "[".repeat(n), "]".repeat(n)),
                format!("{}a", "!".repeat(255)),
                format!("{}a", "a.".repeat(n)),
                format!("a{}", "[*]".repeat(85)),
                format!("a{}", "|a".repeat(n)),
                format!("a{}", "||a".repeat(85)),
                format!("a{}", "&&a".repeat(85)),
                format!("{}a{}", "{a:".repeat(63), "}".repeat(63)),
                "[]".repeat(n),
                format!("a{}", ".*".repeat(n)),
                format!("{}a{}", "not_null(".repeat(24), ")".repeat(24)),
            ];
            for e in &deep {
                assert!(e.len() <= MAX_EXPRESSION_BYTES, "{}", e.len());
                if check_expression(e).is_ok() {
                    let _ = extract(br#"{"a":{"a":[1,2]}}"#, e);
                }
            }
            for e in [
                format!("{}a", "!".repeat(100_000)),
                format!("{}a{}", "(".repeat(50_000), ")".repeat(50_000)),
                "a.".repeat(200),
            ] {
                let err = check_expression(&e).unwrap_err();
                assert!(err.reason.contains("at most 256"), "{err}");
                assert!(matches!(
                    extract(b"{}", &e),
                    Err(ExtractError::Expression(_))
                ));
            }
        };
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
        let e = check_expression("a[").unwrap_err();
        assert!(!e.reason.is_empty());
    }
}
