//! Reads a configuration folder from disk (or the built-in demo) for the pure parser.

use anyhow::{Context, Result, anyhow};
use std::path::Path;
use tenure_core::config::{Config, SourceFile};

/// The built-in demo configuration: `tenure.toml` and its templates.
pub const DEMO_CONFIG: &str = include_str!("../demo/tenure.toml");
/// The built-in demo templates, as (file name, text).
pub const DEMO_TEMPLATES: &[(&str, &str)] = &[
    (
        "all-staff.toml",
        include_str!("../demo/templates/all-staff.toml"),
    ),
    (
        "client-account-lead.toml",
        include_str!("../demo/templates/client-account-lead.toml"),
    ),
    (
        "client-consultant.toml",
        include_str!("../demo/templates/client-consultant.toml"),
    ),
    (
        "contractors.toml",
        include_str!("../demo/templates/contractors.toml"),
    ),
    (
        "engineering.toml",
        include_str!("../demo/templates/engineering.toml"),
    ),
    ("sales.toml", include_str!("../demo/templates/sales.toml")),
    (
        "support.toml",
        include_str!("../demo/templates/support.toml"),
    ),
];

/// Parses the built-in demo configuration.
pub fn demo() -> Config {
    let main = SourceFile {
        path: "demo/tenure.toml".into(),
        text: DEMO_CONFIG.into(),
    };
    let templates: Vec<_> = DEMO_TEMPLATES
        .iter()
        .map(|(name, text)| SourceFile {
            path: format!("demo/templates/{name}"),
            text: (*text).into(),
        })
        .collect();
    Config::parse(&main, &templates).expect("the built-in demo configuration is valid")
}

/// Reads `tenure.toml` and every `*.toml` in its templates folder (`templates_dir`, default
/// `templates` beside it), then validates the whole; errors name file, line and column.
pub fn load(path: &Path) -> Result<Config> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let main = SourceFile {
        path: path.display().to_string(),
        text,
    };
    let dir_name = toml::from_str::<toml::Table>(&main.text)
        .ok()
        .and_then(|t| {
            t.get("templates_dir")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "templates".into());
    let dir = path.parent().unwrap_or(Path::new(".")).join(dir_name);
    let mut templates = Vec::new();
    if dir.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let p = entry.path();
            if p.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading {}", p.display()))?;
                templates.push(SourceFile {
                    path: p.display().to_string(),
                    text,
                });
            }
        }
    }
    Config::parse(&main, &templates).map_err(|e| anyhow!("invalid configuration:\n{e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_configuration_is_valid() {
        let c = super::demo();
        assert_eq!(c.systems.len(), 4);
        assert_eq!(c.clients.len(), 3);
    }
}
