//! Checks of the `registry:` section: where the registry document lives and
//! whether registered mirrors may point inside the site's own network.
//!
//! The document itself is not opened here (that is the store's job, at
//! start): a missing file is a valid empty registry. What can be known now
//! is checked now, so a typo is caught by `check-config` rather than by the
//! first registration: the directory must exist, and the path must not be a
//! directory.

use super::file::RawRegistry;
use super::validate::{resolve, Checker};
use super::RegistryConfig;

pub(super) fn registry(c: &mut Checker<'_>, raw: RawRegistry) -> RegistryConfig {
    let allow_private_targets = raw.allow_private_targets.unwrap_or(false);
    let Some(p) = raw.path else {
        if allow_private_targets {
            // Without a registry nothing is registered, so the setting would
            // silently do nothing: most likely `path` was forgotten.
            c.err(
                "registry.allow_private_targets",
                "has no effect without registry.path; set registry.path to enable the registry",
            );
        }
        return RegistryConfig::default();
    };
    if p.trim().is_empty() {
        c.err(
            "registry.path",
            "is empty; give the path of the registry file",
        );
        return RegistryConfig::default();
    }
    let path = resolve(c.base, &p);
    if path.is_dir() {
        c.err(
            "registry.path",
            format!(
                "{} is a directory; give the path of a file in it",
                path.display()
            ),
        );
        return RegistryConfig::default();
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        // The store writes temporary files beside the document and renames
        // them over it, so the directory must exist (it is not created: a
        // typo would otherwise scatter registries across the disk).
        c.err(
            "registry.path",
            format!("the directory {} does not exist", dir.display()),
        );
        return RegistryConfig::default();
    }
    RegistryConfig {
        path: Some(path),
        allow_private_targets,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, RegistryConfig};

    fn load(dir: &std::path::Path, section: &str) -> Result<Config, String> {
        let yaml = format!("fallback: https://origin.example.org/\n{section}");
        Config::from_yaml(&yaml, dir).map_err(|e| e.to_string())
    }

    #[test]
    fn absent_section_means_registry_off() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(dir.path(), "").unwrap();
        assert_eq!(c.registry, RegistryConfig::default());
        assert!(c.registry.path.is_none() && !c.registry.allow_private_targets);
    }

    #[test]
    fn relative_path_is_resolved_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let c = load(
            dir.path(),
            "registry:\n  path: reg.json\n  allow_private_targets: true\n",
        )
        .unwrap();
        assert_eq!(c.registry.path, Some(dir.path().join("reg.json")));
        assert!(c.registry.allow_private_targets);
    }

    #[test]
    fn bad_values_are_refused_with_their_place() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("registry:\n  path: \"\"\n", "registry.path: is empty"),
            (
                "registry:\n  path: no/such/dir/reg.json\n",
                "registry.path: the directory",
            ),
            ("registry:\n  path: .\n", "registry.path:"),
            (
                "registry:\n  allow_private_targets: true\n",
                "registry.allow_private_targets: has no effect without registry.path",
            ),
            ("registry:\n  paht: x.json\n", "registry.paht"),
            (
                "registry:\n  allow_private_targets: maybe\n",
                "registry.allow_private_targets",
            ),
        ];
        for (section, want) in cases {
            let err = load(dir.path(), section).unwrap_err();
            assert!(err.contains(want), "{section:?}: {err}");
        }
    }
}
