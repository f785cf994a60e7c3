//! Helpers shared by the integration tests: run the real binary in a temporary folder.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Small vocabularies and CCA, so the debug build runs the image stage and the fit in seconds.
pub const LIGHT: &str = r#"
[image_features]
max_side = 160
[image_features.sift.bow]
k = 64
[image_features.sift.vlad]
k = 8
[image_features.sift.fisher]
k = 8
pca_dim = 16
[image_features.hog.bow]
k = 32
[image_features.fit]
max_descriptors = 20000

[fit]
dims = 48
pca_dims = 96
"#;

/// The `crossmodal` binary cargo built for these tests.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crossmodal"))
}

/// Runs the binary with `args` in `dir`; returns the output.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    binary()
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

/// Runs and asserts success, showing both streams when it fails.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "crossmodal {args:?} failed:\n{text}");
    text
}

/// Runs and asserts failure; returns stderr.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run_in(dir, args);
    assert!(
        !out.status.success(),
        "crossmodal {args:?} should have failed"
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A temporary folder holding a generated fixture (`data/`) and a pipeline file
/// (`pipeline.toml`) whose work folder is `work/`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// Generates `images` synthetic images (bad cases included) and writes the pipeline file
    /// with `extra` TOML appended.
    pub fn new(images: usize, make_fixture_flags: &[&str], extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let n = images.to_string();
        let mut args = vec!["make-fixture", "data", "--images", &n];
        args.extend_from_slice(make_fixture_flags);
        ok(dir.path(), &args);
        let pipeline = format!(
            "[pipeline]\nname = \"t\"\nlayout = \"teddy\"\ndata = \"data\"\nwork = \"work\"\n\n[split]\nseed = 1\n{extra}"
        );
        std::fs::write(dir.path().join("pipeline.toml"), pipeline).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn stage(&self, stage: &str) -> PathBuf {
        self.dir.path().join("work").join(stage)
    }

    pub fn manifest(&self, stage: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.stage(stage).join("manifest.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

/// `../shared/data`, when this checkout has it; prints that the test skipped otherwise.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if dir.is_dir() {
        Some(dir.canonicalize().unwrap())
    } else {
        eprintln!(
            "SKIPPED {test}: {} is absent (real data not available)",
            dir.display()
        );
        None
    }
}

/// Copies the files under `from` to `to`, recursively (new modification times).
pub fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_folder(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
