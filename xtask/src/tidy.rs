//! Hygiene checks that run under `cargo test` (rust-analyzer's `tidy.rs` pattern): every Rust
//! source file opens with a `//!` doc, every `configs/*.toml` and doc page stays free of
//! package-registry host names, and the docs list every top-level training key.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        crate::project_root()
    }

    fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "fixtures" {
                    files(&path, ext, out);
                }
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }

    #[test]
    fn every_rust_file_opens_with_a_module_doc() {
        let mut rs = Vec::new();
        for dir in ["crates", "benches", "xtask", "build"] {
            files(&root().join(dir), "rs", &mut rs);
        }
        assert!(rs.len() > 20, "found only {} Rust files", rs.len());
        let missing: Vec<String> = rs
            .iter()
            .filter(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "files without a leading `//!` doc: {missing:?}"
        );
    }

    #[test]
    fn no_registry_host_names_in_sources_docs_or_configs() {
        // Built from parts so that this file does not contain the names it looks for.
        let hosts: Vec<String> = [
            ["pypi", "org"],
            ["pythonhosted", "org"],
            ["crates", "io"],
            ["pytorch", "org"],
        ]
        .iter()
        .map(|p| p.join("."))
        .collect();
        let mut paths = Vec::new();
        for (dir, ext) in [
            ("crates", "rs"),
            ("benches", "rs"),
            ("xtask", "rs"),
            ("docs", "md"),
            ("configs", "toml"),
        ] {
            files(&root().join(dir), ext, &mut paths);
        }
        paths.push(root().join("README.md"));
        let hits: Vec<String> = paths
            .iter()
            .filter_map(|p| {
                let text = std::fs::read_to_string(p).ok()?.to_lowercase();
                let host = hosts.iter().find(|h| text.contains(h.as_str()))?;
                Some(format!("{} mentions {host}", p.display()))
            })
            .collect();
        assert!(hits.is_empty(), "{hits:?}");
    }

    #[test]
    fn configs_doc_lists_every_training_key() {
        let source = std::fs::read_to_string(root().join("crates/hrm-train/src/config.rs"))
            .expect("config.rs");
        let doc = std::fs::read_to_string(root().join("docs/configs.md")).expect("docs/configs.md");
        let body = &source[source.find("pub struct TrainConfig").expect("TrainConfig")..];
        let body = &body[..body.find("\n}\n").expect("end of TrainConfig")];
        let keys: Vec<&str> = body
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().strip_prefix("pub "))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert!(keys.len() > 15, "parsed only {keys:?}");
        let documented = |k: &str| {
            [format!("`{k}`"), format!("`{k}."), format!("[{k}]")]
                .iter()
                .any(|f| doc.contains(f))
        };
        let undocumented: Vec<&&str> = keys.iter().filter(|k| !documented(k)).collect();
        assert!(
            undocumented.is_empty(),
            "docs/configs.md does not mention {undocumented:?}"
        );
    }
}
