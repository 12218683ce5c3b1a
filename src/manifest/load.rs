//! Stage one of loading: find manifest files, read them as UTF-8 and parse every
//! YAML document into the schema, within budgets that make an alias bomb or
//! absurd nesting fail fast. Every problem becomes a located [`Diagnostic`];
//! one bad document does not hide the next one.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::diag::Diagnostic;
use super::schema::Document;

/// A parsed document and the file it came from.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: std::sync::Arc<str>,
    pub doc: Document,
}

/// Largest manifest file read; a GitOps manifest is never near this.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

pub fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 64;
    budget.max_nodes = 1_000_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_total_scalar_bytes = 16 * 1024 * 1024;
    budget.max_documents = 100_000;
    let mut opts = serde_saphyr::Options::default();
    opts.budget = Some(budget);
    opts.alias_limits.max_total_replayed_events = 100_000;
    opts.alias_limits.max_replay_stack_depth = 16;
    opts.alias_limits.max_alias_expansions_per_anchor = 100;
    opts.with_snippet = false;
    opts
}

/// Lists `*.yaml`/`*.yml` files below `dir`, sorted, skipping hidden entries.
/// Directory symlink loops are reported, not followed forever.
pub fn manifest_files(dir: &Path, diags: &mut Vec<Diagnostic>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    walk(dir, &mut files, &mut seen, diags);
    files.sort();
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let canonical = match fs::canonicalize(dir) {
        Ok(c) => c,
        Err(e) => {
            diags.push(Diagnostic::file(dir, format!("cannot read directory: {e}")));
            return;
        }
    };
    if !seen.insert(canonical) {
        diags.push(Diagnostic::file(dir, "directory visited twice (symlink loop?); skipped"));
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::file(dir, format!("cannot read directory: {e}")));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, files, seen, diags),
            Ok(_) if is_manifest(&path) => files.push(path),
            Ok(_) => {}
            Err(e) if is_manifest(&path) => diags.push(Diagnostic::file(&path, format!("cannot read file: {e}"))),
            Err(_) => {}
        }
    }
}

fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Reads a file as UTF-8 text, or explains why it cannot.
pub fn read_text(path: &Path) -> Result<String, Diagnostic> {
    let meta = fs::metadata(path).map_err(|e| Diagnostic::file(path, format!("cannot read file: {e}")))?;
    if !meta.is_file() {
        // A FIFO or device would block or never end.
        return Err(Diagnostic::file(path, "cannot read file: not a regular file"));
    }
    let too_big = || Diagnostic::file(path, format!("file is larger than {MAX_FILE_BYTES} bytes"));
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_big());
    }
    // Bounded even if the file grows between the size check and the read.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| Diagnostic::file(path, format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() as u64 + 1;
        let col = valid.iter().rev().take_while(|b| **b != b'\n').count() as u64 + 1;
        Diagnostic {
            path: path.to_path_buf(),
            line,
            column: col,
            message: "file is not valid UTF-8".into(),
            source_line: None,
        }
    })
}

/// Parses every document of one file. Errors are located; after a
/// deserialization error the next document is still read.
pub fn parse_file(path: &Path, text: &str, out: &mut Vec<Loaded>, diags: &mut Vec<Diagnostic>) {
    let shared: std::sync::Arc<str> = text.into();
    let mut reader = text.as_bytes();
    for result in serde_saphyr::read_with_options::<_, Document>(&mut reader, yaml_options()) {
        match result {
            Ok(doc) => out.push(Loaded { path: path.to_path_buf(), text: shared.clone(), doc }),
            Err(err) => diags.push(yaml_diagnostic(path, text, &err)),
        }
    }
}

pub fn yaml_diagnostic(path: &Path, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let err = err.without_snippet();
    let message = strip_location_suffix(&err.to_string());
    match err.location() {
        Some(loc) if loc.line() > 0 => Diagnostic::at(path, text, loc, message),
        _ => Diagnostic::file(path, message),
    }
}

/// serde-saphyr appends " at line L column C"; the location is printed in front instead.
fn strip_location_suffix(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message);
    match first.rfind(" at line ") {
        Some(i) if first[i..].contains(" column ") => first[..i].to_string(),
        _ => first.to_string(),
    }
}
