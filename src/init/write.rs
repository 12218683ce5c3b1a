//! `secretwire init`'s output: the generated manifests to stdout or under a
//! directory (never over a file).

use std::path::Path;

use super::found::Found;

/// Writes what `init` found; returns the exit code.
pub fn write(found: &Found, clusters: &[String], services: &[String], out: Option<&Path>) -> anyhow::Result<i32> {
    for s in services {
        if !found.services.iter().any(|f| &f.name == s) {
            eprintln!("warning: service {s} was not found in {}", clusters.join(", "));
        }
    }
    let g = super::generate(found);
    match out {
        None => {
            let text: Vec<String> = g.files.iter().map(|(p, t)| format!("# {p}\n{t}")).collect();
            crate::stdout::emit(&text.join("---\n"));
        }
        Some(dir) => {
            let exists: Vec<String> = g
                .files
                .iter()
                .map(|(p, _)| dir.join(p))
                .filter(|p| p.exists())
                .map(|p| p.display().to_string())
                .collect();
            if !exists.is_empty() {
                eprintln!("error: would overwrite {}; nothing was written", exists.join(", "));
                return Ok(1);
            }
            for (p, text) in &g.files {
                let path = dir.join(p);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&path, text)?;
            }
        }
    }
    for (name, why) in &g.skipped {
        eprintln!("note: {name} is written commented out: {why}");
    }
    eprintln!(
        "{} service(s), {} parameter(s), {} secret(s){}; next: secretwire plan -m {}",
        g.services,
        g.parameters,
        g.secrets,
        out.map_or(String::new(), |d| format!(" written to {}", d.display())),
        out.map_or("DIR".into(), |d| d.display().to_string())
    );
    Ok(0)
}
