//! Pipeline files: one declarative TOML file per dataset (`pipeline/*.toml`).
//!
//! ```toml
//! [pipeline]
//! name = "teddy"            # names the work folder: work/teddy/<stage>/
//! layout = "teddy"          # or "flickr8k"
//! data = "../shared/data/teddy/attachment1"
//!
//! [split]                   # one section per stage, parsed by that stage's Params type
//! seed = 2024
//! ```
//!
//! Relative paths are resolved against the current directory (run from the project root).
//! `--data`, `--work` and `--set section.key=value` override the file on the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::data::Layout;
use crate::error::IoError;
use crate::pipeline::PipelineError;

/// The `[pipeline]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Name of the pipeline: a plain folder name, that of the default work folder.
    pub name: String,
    /// How the dataset's files are laid out, which picks its loader.
    pub layout: Layout,
    /// The dataset's folder; `--data` overrides it.
    pub data: PathBuf,
    /// Work folder; default `work/<name>`.
    #[serde(default)]
    pub work: Option<PathBuf>,
    /// Flickr8k: which caption file (`zhc`, `enc`, `zhmtest`).
    #[serde(default)]
    pub captions: Option<String>,
    /// One line about the dataset; `crossmodal comparison` opens its protocol line with it.
    #[serde(default)]
    pub description: Option<String>,
}

/// Parses section `name`'s table into `T`; the error message names the key inside the section
/// (`[fit] kernel_x.gamma_scale: invalid type: ...`), not just the section, for an unknown key
/// and for a value of the wrong type alike. An unknown key's message lists the keys `T` takes;
/// serde lists them itself except for a struct with a flattened part, whose keys are then
/// read off `T::default()`.
pub fn deserialize_section<T>(name: &str, value: toml::Value) -> Result<T, String>
where
    T: serde::de::DeserializeOwned + serde::Serialize + Default,
{
    serde_path_to_error::deserialize(value).map_err(
        |e: serde_path_to_error::Error<toml::de::Error>| {
            let key = e.path().to_string();
            let at = if key.is_empty() || key == "." {
                String::new()
            } else {
                format!(" {key}")
            };
            let mut message = e.inner().message().to_string();
            let top_level = at.is_empty() || !key.contains('.');
            if top_level && message.starts_with("unknown field") && !message.contains("expected") {
                if let Ok(serde_json::Value::Object(keys)) = serde_json::to_value(T::default()) {
                    let keys: Vec<String> = keys.keys().map(|k| format!("`{k}`")).collect();
                    message = format!("{message}, expected one of {}", keys.join(", "));
                }
            }
            format!("[{name}]{at}: {message}")
        },
    )
}

/// A parsed pipeline file with its overrides applied.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// The `[pipeline]` section.
    pub pipeline: PipelineSection,
    /// Every other section, by name, as TOML values; each stage parses its own.
    pub sections: BTreeMap<String, toml::Value>,
}

impl PipelineConfig {
    /// Reads a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e))?;
        Self::parse(path, &text)
    }

    /// Parses pipeline TOML read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, PipelineError> {
        let bad = |message: String| PipelineError::BadConfig {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let section = table
            .remove("pipeline")
            .ok_or_else(|| bad("missing the [pipeline] section".to_string()))?;
        let pipeline: PipelineSection = section
            .try_into()
            .map_err(|e: toml::de::Error| bad(format!("[pipeline]: {}", e.message())))?;
        if pipeline.name.is_empty()
            || pipeline.name.contains(['/', '\\'])
            || pipeline.name.starts_with('.')
        {
            return Err(bad(format!(
                "[pipeline] name must be a plain folder name, got {:?}",
                pipeline.name
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            sections: table.into_iter().collect(),
        })
    }

    /// Applies `--set section.key=value` (the value is TOML; a bare word is taken as a string).
    pub fn set(&mut self, assignment: &str) -> Result<(), PipelineError> {
        let bad = |message: String| PipelineError::BadOverride {
            assignment: assignment.to_string(),
            message,
        };
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected section.key=value".to_string()))?;
        let path: Vec<&str> = key.trim().split('.').collect();
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            return Err(bad("expected section.key=value".to_string()));
        }
        let raw = raw.trim();
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        if path[0] == "pipeline" {
            // Its paths have their own options; the caption set is the one other key a run
            // may want to change.
            if path == ["pipeline", "captions"] {
                self.pipeline.captions = Some(match value {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                });
                return Ok(());
            }
            return Err(bad(
                "use --data and --work to change [pipeline] paths (of [pipeline], only captions can be set)".to_string()
            ));
        }
        let mut node = self
            .sections
            .entry(path[0].to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        for part in &path[1..path.len() - 1] {
            let table = node
                .as_table_mut()
                .ok_or_else(|| bad(format!("{part} is not inside a table")))?;
            node = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        }
        node.as_table_mut()
            .ok_or_else(|| bad("the parent of the key is not a table".to_string()))?
            .insert(path[path.len() - 1].to_string(), value);
        Ok(())
    }

    /// Parses section `name` into `T` (its defaults where the file says nothing).
    pub fn section<T: serde::de::DeserializeOwned + serde::Serialize + Default>(
        &self,
        name: &str,
    ) -> Result<T, PipelineError> {
        match self.sections.get(name) {
            None => Ok(T::default()),
            Some(value) => deserialize_section(name, value.clone()).map_err(|message| {
                PipelineError::BadConfig {
                    path: self.path.clone(),
                    message,
                }
            }),
        }
    }

    /// The work folder: `--work`, else `[pipeline] work`, else `work/<name>`.
    pub fn work_dir(&self) -> PathBuf {
        self.pipeline
            .work
            .clone()
            .unwrap_or_else(|| Path::new("work").join(&self.pipeline.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[pipeline]
name = "demo"
layout = "teddy"
data = "fixtures/demo"

[split]
seed = 1
"#;

    #[test]
    fn parses_sections_and_overrides() {
        let mut config = PipelineConfig::parse(Path::new("p.toml"), FILE).unwrap();
        assert_eq!(config.pipeline.name, "demo");
        assert_eq!(config.work_dir(), Path::new("work/demo"));
        config.set("split.seed=7").unwrap();
        config.set("image_features.sift.step=4").unwrap();
        config.set("text_features.mode=chars").unwrap();
        assert_eq!(config.sections["split"]["seed"].as_integer(), Some(7));
        assert_eq!(
            config.sections["image_features"]["sift"]["step"].as_integer(),
            Some(4)
        );
        assert_eq!(
            config.sections["text_features"]["mode"].as_str(),
            Some("chars")
        );
    }

    #[test]
    fn errors_name_the_file_and_problem() {
        let err = PipelineConfig::parse(Path::new("p.toml"), "[split]\nseed = 1\n").unwrap_err();
        assert_eq!(err.to_string(), "p.toml: missing the [pipeline] section");
        let mut config = PipelineConfig::parse(Path::new("p.toml"), FILE).unwrap();
        let err = config.set("seed").unwrap_err();
        assert!(
            err.to_string().contains("expected section.key=value"),
            "{err}"
        );
    }
}
