//! Reads a configuration folder from disk (or the built-in demo) for the pure parsers: the
//! configuration (`tenure.toml` and its templates) and the Cedar policies in `policies/`.

use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use tenure_core::config::{Config, ConfigError, SourceFile};
use tenure_engine::tenure_policy::PolicyEngine;

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
        "staff-engineers.toml",
        include_str!("../demo/templates/staff-engineers.toml"),
    ),
    (
        "support.toml",
        include_str!("../demo/templates/support.toml"),
    ),
];
/// The built-in demo policies, as (file name, text).
pub const DEMO_POLICIES: &[(&str, &str)] = &[
    (
        "approvals.cedar",
        include_str!("../demo/policies/approvals.cedar"),
    ),
    ("base.cedar", include_str!("../demo/policies/base.cedar")),
    (
        "contractors.cedar",
        include_str!("../demo/policies/contractors.cedar"),
    ),
    (
        "data-residency.cedar",
        include_str!("../demo/policies/data-residency.cedar"),
    ),
];

/// The folder beside `tenure.toml` that holds the `*.cedar` policy files.
pub const POLICIES_DIR: &str = "policies";

/// A configuration with its policies, validated together.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The policy set (allows everything when there are no policy files).
    pub policy: PolicyEngine,
    /// How many policy files were read.
    pub policy_files: usize,
    /// Located warnings that do not stop tenure.
    pub warnings: Vec<ConfigError>,
}

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

/// Writes the demo configuration (`tenure.toml`, `templates/`, `policies/`) into `dir`, so that
/// `tenure serve --config DIR/tenure.toml` serves it. Refuses to overwrite a file unless `force`.
pub fn write_demo(dir: &Path, force: bool) -> Result<Vec<PathBuf>> {
    let mut files = vec![(dir.join("tenure.toml"), DEMO_CONFIG)];
    for (name, text) in DEMO_TEMPLATES {
        files.push((dir.join("templates").join(name), text));
    }
    for (name, text) in DEMO_POLICIES {
        files.push((dir.join(POLICIES_DIR).join(name), text));
    }
    if !force {
        let existing: Vec<_> = files
            .iter()
            .filter(|(p, _)| p.exists())
            .map(|(p, _)| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "not overwriting existing files (use --force): {}",
                existing.join(", ")
            );
        }
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(files.into_iter().map(|(p, _)| p).collect())
}

/// Reads `tenure.toml`, its templates and its policies, and validates them together (see
/// [`load_all`]); warnings are logged.
pub fn load(path: &Path) -> Result<Config> {
    let loaded = load_all(path)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    Ok(loaded.config)
}

/// Reads `tenure.toml`, every `*.toml` in its templates folder (`templates_dir`, default
/// `templates` beside it) and every `*.cedar` in `policies/` beside it, then validates the
/// configuration and the policies against the schema generated from it; errors name file, line
/// and column.
pub fn load_all(path: &Path) -> Result<Loaded> {
    let (config, main) = load_config(path)?;
    let dir = path.parent().unwrap_or(Path::new(".")).join(POLICIES_DIR);
    let policies = read_dir_files(&dir, "cedar")?;
    let loaded = PolicyEngine::load(&config, Some(&main), &policies)
        .map_err(|e| anyhow!("invalid policy:\n{e}"))?;
    Ok(Loaded {
        config,
        policy: loaded.engine,
        policy_files: policies.len(),
        warnings: loaded.warnings,
    })
}

/// Every `*.{ext}` file in `dir` (none if it does not exist), in name order.
fn read_dir_files(dir: &Path, ext: &str) -> Result<Vec<SourceFile>> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let p = entry.path();
        if p.is_file() && p.extension().is_some_and(|e| e == ext) {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            out.push(SourceFile {
                path: p.display().to_string(),
                text,
            });
        }
    }
    Ok(out)
}

/// Reads and validates `tenure.toml` and its templates only; returns the main file too.
pub fn load_config(path: &Path) -> Result<(Config, SourceFile)> {
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
    let templates = read_dir_files(&dir, "toml")?;
    let config =
        Config::parse(&main, &templates).map_err(|e| anyhow!("invalid configuration:\n{e}"))?;
    check_connectors(&main, &config)?;
    Ok((config, main))
}

/// Checks every system's connector settings the way `serve` reads them when it builds the
/// connectors ([`tenure_connectors::check_settings`]), each error located at the system's
/// `settings` table in `tenure.toml` (or at its id when it has none).
pub fn check_connectors(main: &SourceFile, config: &Config) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Located {
        #[serde(default)]
        systems: Vec<LocatedSystem>,
    }
    #[derive(serde::Deserialize)]
    struct LocatedSystem {
        id: toml::Spanned<String>,
        #[serde(default)]
        settings: Option<toml::Spanned<toml::Table>>,
    }
    let spans: Vec<LocatedSystem> = toml::from_str::<Located>(&main.text)
        .map(|l| l.systems)
        .unwrap_or_default();
    let mut errors = Vec::new();
    for system in config.systems.values() {
        let Err(e) = tenure_connectors::check_settings(&system.connector, &system.settings) else {
            continue;
        };
        let at = spans
            .iter()
            .find(|s| *s.id.get_ref() == system.id)
            .map_or(0, |s| {
                s.settings.as_ref().map_or(s.id.span(), |t| t.span()).start
            });
        let before = &main.text[..main.text.floor_char_boundary(at.min(main.text.len()))];
        errors.push(ConfigError {
            file: main.path.clone(),
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            message: format!("system `{}`: {e}", system.id),
        });
    }
    if errors.is_empty() {
        return Ok(());
    }
    bail!(
        "invalid configuration:\n{}",
        tenure_core::config::ConfigErrors(errors)
    )
}

/// The files of a configuration folder (or of the built-in demo), before validation.
#[derive(Debug, Clone)]
pub struct Sources {
    /// `tenure.toml`.
    pub main: SourceFile,
    /// `templates/*.toml`.
    pub templates: Vec<SourceFile>,
    /// `policies/*.cedar`.
    pub policies: Vec<SourceFile>,
}

impl Sources {
    /// Reads the folder of `path` (a `tenure.toml`), or takes the built-in demo when `None`.
    pub fn read(path: Option<&Path>) -> Result<Sources> {
        let Some(path) = path else {
            let files = |dir: &str, list: &[(&str, &str)]| -> Vec<SourceFile> {
                list.iter()
                    .map(|(name, text)| SourceFile {
                        path: format!("demo/{dir}/{name}"),
                        text: (*text).into(),
                    })
                    .collect()
            };
            return Ok(Sources {
                main: SourceFile {
                    path: "demo/tenure.toml".into(),
                    text: DEMO_CONFIG.into(),
                },
                templates: files("templates", DEMO_TEMPLATES),
                policies: files(POLICIES_DIR, DEMO_POLICIES),
            });
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let main = SourceFile {
            path: path.display().to_string(),
            text,
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let templates = read_dir_files(&base.join(templates_dir(&main.text)), "toml")?;
        let policies = read_dir_files(&base.join(POLICIES_DIR), "cedar")?;
        Ok(Sources {
            main,
            templates,
            policies,
        })
    }

    /// Lays the files of a what-if over these, by file name: a file sent replaces the one of
    /// the same name or is added, `None` removes one (an error when there is none of that
    /// name, so a misspelt removal is not silently a no-op).
    pub fn overlay(&mut self, files: &tenure_api::RuleFiles) -> Result<()> {
        files.check_names()?;
        if let Some(text) = &files.config {
            self.main.text = text.clone();
        }
        if let Some(t) = &files.templates {
            overlay_set(&mut self.templates, "templates", t)?;
        }
        if let Some(p) = &files.policies {
            overlay_set(&mut self.policies, POLICIES_DIR, p)?;
        }
        Ok(())
    }

    /// Validates the configuration, then the policies against the schema generated from it.
    pub fn load(&self) -> Result<Loaded> {
        let config = Config::parse(&self.main, &self.templates)
            .map_err(|e| anyhow!("invalid configuration:\n{e}"))?;
        check_connectors(&self.main, &config)?;
        let loaded = PolicyEngine::load(&config, Some(&self.main), &self.policies)
            .map_err(|e| anyhow!("invalid policy:\n{e}"))?;
        Ok(Loaded {
            config,
            policy: loaded.engine,
            policy_files: self.policies.len(),
            warnings: loaded.warnings,
        })
    }
}

/// The loader `serve` hands the API for reload and what-if: the folder read afresh each time.
pub fn rules_loader(path: Option<PathBuf>) -> tenure_api::RulesLoader {
    std::sync::Arc::new(move |files: &tenure_api::RuleFiles| {
        let mut sources = Sources::read(path.as_deref()).map_err(|e| format!("{e:#}"))?;
        sources.overlay(files).map_err(|e| format!("{e:#}"))?;
        let loaded = sources.load().map_err(|e| format!("{e:#}"))?;
        Ok((loaded.config, loaded.policy))
    })
}

/// The file name of a source file (its path's last part).
fn file_name(f: &SourceFile) -> &str {
    Path::new(&f.path)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(&f.path)
}

/// Lays `changes` over one folder's files by name; the result is in name order, as a folder is
/// read.
fn overlay_set(
    files: &mut Vec<SourceFile>,
    dir: &str,
    changes: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<()> {
    for (name, text) in changes {
        let at = files.iter().position(|f| file_name(f) == name);
        match (text, at) {
            (Some(text), Some(i)) => {
                files[i] = SourceFile {
                    path: format!("{dir}/{name}"),
                    text: text.clone(),
                }
            }
            (Some(text), None) => files.push(SourceFile {
                path: format!("{dir}/{name}"),
                text: text.clone(),
            }),
            (None, Some(i)) => {
                files.remove(i);
            }
            (None, None) => bail!("{dir}/{name}: no such file in the folder to remove"),
        }
    }
    files.sort_by(|a, b| file_name(a).cmp(file_name(b)));
    Ok(())
}

/// The `templates_dir` a `tenure.toml` names, else `templates`.
fn templates_dir(main: &str) -> String {
    toml::from_str::<toml::Table>(main)
        .ok()
        .and_then(|t| {
            t.get("templates_dir")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "templates".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_core::model::{GrantSource, Person, PersonStatus, WorkerType};
    use tenure_engine::tenure_policy::{Approver, GrantContext};

    #[test]
    fn the_demo_configuration_is_valid() {
        let c = super::demo();
        assert_eq!(c.systems.len(), 4);
        assert_eq!(c.clients.len(), 3);
    }

    fn person(worker_type: WorkerType, title: &str, location: &str) -> Person {
        Person {
            id: "p".into(),
            name: "P".into(),
            email: "p@example.com".into(),
            worker_type,
            department: Some("Engineering".into()),
            title: Some(title.into()),
            location: Some(location.into()),
            manager: None,
            start_date: None,
            end_date: None,
            status: PersonStatus::Active,
            attributes: Default::default(),
        }
    }

    #[test]
    fn the_demo_policies_say_what_their_comments_say() {
        let c = demo();
        let p = Sources::read(None).unwrap().load().unwrap().policy;
        assert!(p.is_enforcing());
        assert_eq!(p.policy_ids().len(), 4);
        let ask = |person: &Person, ent: &str| {
            let e = &c.entitlements[ent];
            let client = e.client.as_ref().and_then(|id| c.clients.get(id));
            let ctx = GrantContext {
                source: GrantSource::Birthright,
                source_ref: "t",
            };
            p.authorize(person, e, client, ctx)
        };
        let staff = person(WorkerType::Employee, "Staff Engineer", "London");
        let contractor = person(WorkerType::Contractor, "Staff Engineer", "Berlin");
        let berlin = person(WorkerType::Employee, "Software Engineer", "Berlin");
        // Base permit.
        let d = ask(&staff, "directory:all-staff");
        assert!(d.allowed && !d.needs_approval(), "{d:?}");
        // Contractors never privileged; employees wait for the owner.
        let d = ask(&contractor, "directory:admins");
        assert_eq!(d.reasons, vec!["contractors-never-privileged"]);
        assert!(!d.allowed);
        let d = ask(&staff, "directory:admins");
        assert!(d.needs_approval(), "{d:?}");
        assert_eq!(d.approvals[0].approver, Approver::Owner);
        // acme keeps its data in the EU; globex does not.
        let d = ask(&staff, "crm:client-acme");
        assert_eq!(d.reasons, vec!["eu-data-stays-with-eu-staff"]);
        assert!(ask(&berlin, "crm:client-acme").allowed);
        assert!(ask(&staff, "crm:client-globex").allowed);
    }

    fn names(files: &[SourceFile]) -> Vec<&str> {
        files.iter().map(file_name).collect()
    }

    #[test]
    fn a_what_if_lays_its_files_over_the_folder_by_name() {
        let demo = Sources::read(None).unwrap();
        let files: tenure_api::RuleFiles = serde_json::from_value(serde_json::json!({
            "policies": {
                "contractors.cedar": "// nothing forbidden\n",
                "extra.cedar": "// new\n",
                "data-residency.cedar": null,
            },
            "templates": { "sales.toml": null },
        }))
        .unwrap();
        let mut s = demo.clone();
        s.overlay(&files).unwrap();
        assert_eq!(
            names(&s.policies),
            [
                "approvals.cedar",
                "base.cedar",
                "contractors.cedar",
                "extra.cedar"
            ]
        );
        let contractors = &s.policies[2];
        assert_eq!(contractors.text, "// nothing forbidden\n");
        // Every file not named is the folder's own, untouched.
        assert_eq!(s.policies[1].text, demo.policies[1].text);
        assert_eq!(s.templates.len(), demo.templates.len() - 1);
        assert!(!names(&s.templates).contains(&"sales.toml"));
        assert_eq!(s.main.text, demo.main.text);
        let loaded = s.load().unwrap();
        assert_eq!(loaded.policy_files, 4);

        // Nothing sent: the folder as it is.
        let mut same = demo.clone();
        same.overlay(&Default::default()).unwrap();
        assert_eq!(names(&same.policies), names(&demo.policies));

        // Removing what is not there names it; a name that is no file of its folder is refused.
        for (body, says) in [
            (
                serde_json::json!({ "policies": { "bsae.cedar": null } }),
                "policies/bsae.cedar: no such file in the folder to remove",
            ),
            (
                serde_json::json!({ "templates": { "../tenure.toml": "" } }),
                "templates.../tenure.toml: not a file name of the templates folder",
            ),
            (
                serde_json::json!({ "policies": { "base.toml": "" } }),
                "policies.base.toml: not a file name of the policies folder",
            ),
        ] {
            let files: tenure_api::RuleFiles = serde_json::from_value(body).unwrap();
            let err = demo.clone().overlay(&files).unwrap_err().to_string();
            assert!(err.starts_with(says), "{err}");
        }
    }

    #[test]
    fn init_writes_a_configuration_that_loads_with_its_policies() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_demo(dir.path(), false).unwrap();
        assert_eq!(
            written.len(),
            1 + DEMO_TEMPLATES.len() + DEMO_POLICIES.len()
        );
        let loaded = load_all(&dir.path().join("tenure.toml")).unwrap();
        assert_eq!(loaded.policy_files, DEMO_POLICIES.len());
        assert!(loaded.policy.is_enforcing());
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        assert!(write_demo(dir.path(), false).is_err());
        write_demo(dir.path(), true).unwrap();
    }
}
