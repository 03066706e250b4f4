//! Raw file -> typed [`Config`], collecting every error with its place (stub).

use std::fmt;
use std::path::Path;

use super::Config;

/// One problem, with its place in the file (`mirrors[2].url`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub place: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.place.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.place, self.message)
        }
    }
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

pub(super) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            place: path.display().to_string(),
            message: e.to_string(),
        }])
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    from_yaml(&text, base)
}

pub(super) fn from_yaml(_text: &str, _base: &Path) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors(vec![ConfigError {
        place: String::new(),
        message: "not implemented".into(),
    }]))
}
