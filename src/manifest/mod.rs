//! Manifests: load a directory of YAML documents, validate them, and turn them
//! into the desired model. Problems are collected, never thrown one at a time.

pub mod diag;
pub mod load;
pub mod schema;
pub mod tenant;
pub mod validate;

use std::path::Path;

pub use diag::Diagnostic;

use crate::model::Desired;

/// What loading a manifest directory found.
#[derive(Debug, Default)]
pub struct Load {
    /// Every valid object; refused ones are in `invalid` and `refused`.
    pub desired: Desired,
    /// Problems of the manifests themselves, in file order.
    pub errors: Vec<Diagnostic>,
    /// Breaches of a tenant rule: each refuses its object alone.
    pub refusals: Vec<Diagnostic>,
}

/// Loads and validates a manifest directory as one tenant. The desired state
/// holds every valid object; the diagnostics list every problem, in file order.
pub fn load_dir(dir: &Path) -> (Desired, Vec<Diagnostic>) {
    let l = load(dir, None);
    (l.desired, l.errors)
}

/// Loads and validates a manifest directory, holding every object to the
/// rules of its tenant when `tenants` is given.
pub fn load(dir: &Path, tenants: Option<&tenant::Tenants>) -> Load {
    let mut diags = Vec::new();
    if !dir.is_dir() {
        diags.push(Diagnostic::file(dir, "manifest directory does not exist"));
        return Load { errors: diags, ..Default::default() };
    }
    let mut per_file = Vec::new();
    for file in load::manifest_files(dir, &mut diags) {
        let (mut docs, mut file_diags) = (Vec::new(), Vec::new());
        match load::read_text(&file) {
            Ok(text) => load::parse_file(&file, &text, &mut docs, &mut file_diags),
            Err(d) => file_diags.push(d),
        }
        per_file.push((file, docs, file_diags));
    }
    // A YAML task definition template may live beside the manifests; it is read
    // as the template of the Service that names it, not as a manifest.
    let templates: std::collections::HashSet<std::path::PathBuf> = per_file
        .iter()
        .flat_map(|(_, docs, _)| docs.iter())
        .filter_map(|l| match &l.doc.spec {
            schema::Spec::Service(s) => {
                let t = s.task_definition.as_ref()?.template.as_ref()?;
                std::fs::canonicalize(l.path.parent()?.join(&t.value)).ok()
            }
            _ => None,
        })
        .collect();
    let mut docs = Vec::new();
    for (file, file_docs, mut file_diags) in per_file {
        if std::fs::canonicalize(&file).is_ok_and(|c| templates.contains(&c)) {
            continue;
        }
        docs.extend(file_docs);
        diags.append(&mut file_diags);
    }
    let tenancy = tenants.map(|t| validate::Tenancy::new(t, dir, &docs));
    let mut refusals = Vec::new();
    let desired = validate::build(docs, tenancy.as_ref(), &mut diags, &mut refusals);
    Load { desired, errors: diags, refusals }
}

#[cfg(test)]
mod target_tests;
#[cfg(test)]
mod tenant_tests;
#[cfg(test)]
mod tests;
