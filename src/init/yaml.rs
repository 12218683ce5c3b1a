//! A small block-style YAML writer for the manifests `init` generates:
//! maps, lists and strings as a person writes them, with comments.
//! Strings are plain where YAML reads them back as the same string, and
//! double-quoted (JSON escaping, which YAML's double quotes accept) otherwise.

/// A YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum Y {
    Str(String),
    Bool(bool),
    /// Keys in the order written; a `Comment` value is a comment line in the map.
    Map(Vec<(String, Y)>),
    List(Vec<Y>),
    /// A comment line (only as a map entry's value: the key is ignored).
    Comment(String),
}

impl Y {
    pub fn s(v: impl Into<String>) -> Self {
        Y::Str(v.into())
    }

    pub fn map(entries: impl IntoIterator<Item = (&'static str, Y)>) -> Self {
        Y::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn is_empty_collection(&self) -> bool {
        matches!(self, Y::Map(m) if m.is_empty()) || matches!(self, Y::List(l) if l.is_empty())
    }
}

/// One document: its leading comment lines, then the node.
pub fn document(comments: &[String], node: &Y) -> String {
    let mut out = String::new();
    for c in comments {
        comment(&mut out, 0, c);
    }
    write_map_body(&mut out, node, 0);
    out
}

/// Every line of `text` behind `# `: a document that is shown but not applied.
pub fn commented_out(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { "#\n".to_string() } else { format!("# {l}\n") }).collect()
}

fn comment(out: &mut String, indent: usize, text: &str) {
    for line in text.lines() {
        out.push_str(&" ".repeat(indent));
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
}

fn write_map_body(out: &mut String, node: &Y, indent: usize) {
    match node {
        Y::Map(entries) => {
            for (k, v) in entries {
                // A list item's first key continues the `- ` line.
                if !out.ends_with("- ") {
                    out.push_str(&" ".repeat(indent));
                }
                entry(out, k, v, indent);
            }
        }
        other => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

fn entry(out: &mut String, key: &str, v: &Y, indent: usize) {
    if let Y::Comment(c) = v {
        // The indentation is already written: the first line continues it.
        let mut lines = c.lines();
        out.push_str("# ");
        out.push_str(lines.next().unwrap_or_default());
        out.push('\n');
        for l in lines {
            comment(out, indent, l);
        }
        return;
    }
    out.push_str(&scalar(key));
    out.push(':');
    match v {
        Y::Map(_) | Y::List(_) if !v.is_empty_collection() => {
            out.push('\n');
            block(out, v, indent + 2);
        }
        _ => {
            out.push(' ');
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn block(out: &mut String, v: &Y, indent: usize) {
    match v {
        Y::Map(_) => write_map_body(out, v, indent),
        Y::List(items) => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                out.push_str("- ");
                match item {
                    Y::Map(_) if !item.is_empty_collection() => write_map_body(out, item, indent + 2),
                    Y::List(_) if !item.is_empty_collection() => {
                        out.push('\n');
                        block(out, item, indent + 2);
                    }
                    _ => {
                        out.push_str(&inline(item));
                        out.push('\n');
                    }
                }
            }
        }
        _ => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&inline(v));
            out.push('\n');
        }
    }
}

fn inline(v: &Y) -> String {
    match v {
        Y::Str(s) => scalar(s),
        Y::Bool(b) => b.to_string(),
        Y::Map(_) => "{}".into(),
        Y::List(_) => "[]".into(),
        Y::Comment(_) => String::new(),
    }
}

/// A string as a YAML scalar: plain when that reads back as this string, else double-quoted.
pub fn scalar(s: &str) -> String {
    if plain_ok(s) { s.to_string() } else { serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()) }
}

fn plain_ok(s: &str) -> bool {
    const WORDS: &[&str] = &["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    let Some(first) = s.chars().next() else { return false };
    let safe = |c: char| c.is_ascii_alphanumeric() || "/_.:@+=-*$ ,()'".contains(c);
    (first.is_ascii_alphabetic() || first == '/' || first == '_')
        && s.chars().all(safe)
        && !s.ends_with([':', ' '])
        && !s.contains(": ")
        && !s.contains("  ")
        && !WORDS.contains(&s.to_ascii_lowercase().as_str())
        && s.parse::<f64>().is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_would_read_back_as_something_else_are_quoted() {
        assert_eq!(scalar("web"), "web");
        assert_eq!(scalar("/web/db"), "/web/db");
        assert_eq!(scalar("arn:aws:s3:::bucket/*"), "arn:aws:s3:::bucket/*");
        assert_eq!(scalar("Database password (web), rotated"), "Database password (web), rotated");
        for odd in [
            "123456789012",
            "yes",
            "No",
            "null",
            "",
            "*",
            " a",
            "a ",
            "a: b",
            "a #b",
            "x:",
            "#x",
            "1e3",
            "{a}",
            "-a",
            "'q'",
            "a\nb",
        ] {
            let q = scalar(odd);
            assert!(q.starts_with('"'), "{odd} -> {q}");
            let back: String = serde_saphyr::from_str(&q).expect("reads back");
            assert_eq!(back, odd);
        }
    }

    #[test]
    fn nested_maps_and_lists_read_back_as_written() {
        let node = Y::map([
            ("apiVersion", Y::s("secretwire.dev/v1alpha1")),
            ("note", Y::Comment("a comment\nof two lines".into())),
            (
                "spec",
                Y::map([
                    ("list", Y::List(vec![Y::s("a"), Y::s("b c")])),
                    ("empty", Y::List(vec![])),
                    (
                        "objs",
                        Y::List(vec![Y::map([("name", Y::s("x")), ("n", Y::List(vec![Y::map([("k", Y::s("v"))])]))])]),
                    ),
                    ("flag", Y::Bool(true)),
                ]),
            ),
        ]);
        let text = document(&["head".into()], &node);
        assert!(
            text.starts_with("# head\napiVersion: secretwire.dev/v1alpha1\n# a comment\n# of two lines\n"),
            "{text}"
        );
        let v: serde_json::Value = serde_saphyr::from_str(&text).expect("valid YAML");
        assert_eq!(
            v,
            serde_json::json!({"apiVersion": "secretwire.dev/v1alpha1", "spec": {"list": ["a", "b c"], "empty": [],
                "objs": [{"name": "x", "n": [{"k": "v"}]}], "flag": true}})
        );
        assert!(commented_out(&text).lines().all(|l| l.starts_with('#')));
    }
}
