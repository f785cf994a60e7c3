//! The stage engine's make logic, on toy stages: what runs, what is skipped, and what an
//! interrupted stage leaves behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossmodal::Error;
use crossmodal::pipeline::{Context, Freshness, Pipeline, PipelineConfig, Stage, StageWriter};
use ndarray::Array2;

/// A toy stage: reads section `[<name>] value`, writes a 1x1 matrix holding value plus the
/// upstream's value, and counts its runs. `fail` makes it write once and then fail.
struct Toy {
    name: &'static str,
    upstream: &'static [&'static str],
    sections: &'static [&'static str],
    runs: Arc<AtomicUsize>,
    fail: bool,
}

impl Stage for Toy {
    fn name(&self) -> &'static str {
        self.name
    }
    fn about(&self) -> &'static str {
        "toy"
    }
    fn upstream(&self) -> &'static [&'static str] {
        self.upstream
    }
    fn sections(&self) -> &'static [&'static str] {
        self.sections
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let value = ctx
            .config
            .sections
            .get(self.name)
            .and_then(|s| s.get("value"))
            .and_then(|v| v.as_integer())
            .unwrap_or(0);
        Ok(serde_json::json!({ "value": value }))
    }
    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut value = self.params(ctx)?["value"].as_i64().unwrap() as f32;
        for up in self.upstream {
            let m =
                crossmodal::pipeline::artifacts::read_dense(&ctx.stage_dir(up).join("value.npy"))?;
            value += m[[0, 0]];
        }
        out.dense(
            "value.npy",
            &Array2::from_elem((1, 1), value),
            None,
            "the value",
        )?;
        if self.fail {
            return Err(crossmodal::pipeline::PipelineError::MissingUpstream {
                stage: "toy".into(),
                upstream: "failure injected".into(),
            }
            .into());
        }
        out.summary("value", value);
        Ok(())
    }
}

struct Harness {
    dir: tempfile::TempDir,
    runs: Vec<Arc<AtomicUsize>>,
}

const NAMES: [&str; 3] = ["a", "b", "c"];

impl Harness {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            runs: (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect(),
        }
    }

    /// a → b → c, with `[a] value = a_value`; stage `failing` fails after its first write.
    fn pipeline(&self, a_value: i64, failing: Option<&str>) -> Pipeline {
        let text = format!(
            "[pipeline]\nname = \"toy\"\nlayout = \"teddy\"\ndata = \".\"\n[a]\nvalue = {a_value}\n[b]\nvalue = 10\n"
        );
        let config = PipelineConfig::parse(Path::new("toy.toml"), &text).unwrap();
        let ctx = Context {
            config,
            data_dir: self.dir.path().to_path_buf(),
            work_dir: self.dir.path().join("work"),
            show_progress: false,
        };
        let upstreams: [&'static [&'static str]; 3] = [&[], &["a"], &["b"]];
        let sections: [&'static [&'static str]; 3] = [&["a"], &["b"], &["c"]];
        let stages: Vec<Box<dyn Stage>> = (0..3)
            .map(|i| {
                Box::new(Toy {
                    name: NAMES[i],
                    upstream: upstreams[i],
                    sections: sections[i],
                    runs: self.runs[i].clone(),
                    fail: failing == Some(NAMES[i]),
                }) as Box<dyn Stage>
            })
            .collect();
        Pipeline::new(ctx, stages).unwrap()
    }

    fn counts(&self) -> Vec<usize> {
        self.runs.iter().map(|r| r.load(Ordering::SeqCst)).collect()
    }

    fn value(&self, stage: &str) -> f32 {
        crossmodal::pipeline::artifacts::read_dense(
            &self.dir.path().join("work").join(stage).join("value.npy"),
        )
        .unwrap()[[0, 0]]
    }
}

#[test]
fn second_run_skips_everything() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    assert_eq!(h.counts(), vec![1, 1, 1]);
    let reports = h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    assert_eq!(h.counts(), vec![1, 1, 1]);
    assert!(reports.iter().all(|r| r.ran_because.is_none()));
    assert!(
        h.pipeline(1, None)
            .status()
            .unwrap()
            .iter()
            .all(|s| s.freshness == Freshness::Fresh)
    );
}

#[test]
fn changed_parameter_reruns_that_stage_and_downstream_only() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    // Change b's input only by changing a: all three rerun.
    let status = h.pipeline(2, None).status().unwrap();
    assert_eq!(
        status[0].freshness,
        Freshness::Stale(vec!["parameter value changed".into()])
    );
    assert_eq!(
        status[1].freshness,
        Freshness::Stale(vec!["upstream `a` is stale".into()])
    );
    h.pipeline(2, None).make(None, false, |_, _| {}).unwrap();
    assert_eq!(h.counts(), vec![2, 2, 2]);
    assert_eq!(h.value("c"), 12.0);
}

#[test]
fn making_a_target_runs_only_its_prerequisites() {
    let h = Harness::new();
    h.pipeline(1, None)
        .make(Some("b"), false, |_, _| {})
        .unwrap();
    assert_eq!(h.counts(), vec![1, 1, 0]);
    h.pipeline(1, None)
        .make(Some("c"), false, |_, _| {})
        .unwrap();
    assert_eq!(h.counts(), vec![1, 1, 1]);
    h.pipeline(1, None)
        .make(Some("b"), true, |_, _| {})
        .unwrap();
    assert_eq!(h.counts(), vec![1, 2, 1], "--force reruns the target only");
}

#[test]
fn missing_output_makes_the_stage_stale() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    std::fs::remove_file(h.dir.path().join("work/b/value.npy")).unwrap();
    let status = h.pipeline(1, None).status().unwrap();
    assert_eq!(
        status[1].freshness,
        Freshness::Stale(vec!["output value.npy is missing".into()])
    );
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    assert_eq!(
        h.counts(),
        vec![1, 2, 1],
        "b's rerun gives the same fingerprint, so c stays fresh"
    );
}

#[test]
fn failed_stage_keeps_previous_artifacts_and_leaves_no_staging() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    assert_eq!(h.value("a"), 1.0);
    let err = h
        .pipeline(5, Some("a"))
        .make(None, false, |_, _| {})
        .unwrap_err();
    assert!(err.to_string().contains("failure injected"), "{err}");
    assert_eq!(h.value("a"), 1.0, "the old artifact is intact");
    let leftovers: Vec<_> = std::fs::read_dir(h.dir.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        leftovers.len(),
        3,
        "only the three stage folders: {leftovers:?}"
    );
    // The old manifest still describes the old artifacts: the stage is stale for the new value.
    assert_ne!(
        h.pipeline(5, None).status().unwrap()[0].freshness,
        Freshness::Fresh
    );
}

#[test]
fn interrupted_swap_is_recovered() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    let work = h.dir.path().join("work");
    // As if killed between "move the old folder aside" and "move the new one in".
    std::fs::rename(work.join("b"), work.join(".b.old-12345")).unwrap();
    std::fs::create_dir(work.join(".b.staging-12345")).unwrap();
    let p = h.pipeline(1, None);
    assert!(
        work.join("b/value.npy").exists(),
        "the previous folder is put back"
    );
    assert!(
        !work.join(".b.staging-12345").exists(),
        "the half-made staging folder is removed"
    );
    assert!(
        p.status()
            .unwrap()
            .iter()
            .all(|s| s.freshness == Freshness::Fresh)
    );
}

#[test]
fn clean_removes_a_stage_and_its_downstream() {
    let h = Harness::new();
    h.pipeline(1, None).make(None, false, |_, _| {}).unwrap();
    let removed = h.pipeline(1, None).clean(Some("b")).unwrap();
    assert_eq!(removed.len(), 2);
    let work = h.dir.path().join("work");
    assert!(work.join("a").exists() && !work.join("b").exists() && !work.join("c").exists());
}

#[test]
fn unknown_section_is_refused_with_the_known_ones() {
    let h = Harness::new();
    let text = "[pipeline]\nname = \"toy\"\nlayout = \"teddy\"\ndata = \".\"\n[typo]\nvalue = 1\n";
    let config = PipelineConfig::parse(Path::new("toy.toml"), text).unwrap();
    let ctx = Context {
        config,
        data_dir: h.dir.path().to_path_buf(),
        work_dir: h.dir.path().join("work"),
        show_progress: false,
    };
    let err = Pipeline::new(ctx, vec![]).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("unknown section [typo] in toy.toml"),
        "{err}"
    );
}
