//! Deterministic, seeded, hash-based splits.
//!
//! Each image gets a number in [0, 1) from a keyed hash of its id (BLAKE3 keyed by the seed), so
//! an image's part depends only on its id and the seed: adding images never moves the others.
//! Captions follow their image, so no caption of a test image is ever seen in training.
//! With `folds = k`, the hash picks one of k folds and each fold in turn is the test part
//! (validation carved out of the rest the same way). A dataset with its own split (Flickr8k)
//! keeps its lists; validation is then carved out of its training images, since its own
//! validation images are not shipped here.

use serde::{Deserialize, Serialize};

use super::{DataError, Dataset, Part};

/// How to split a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplitParams {
    /// Seed of the keyed hash.
    pub seed: u64,
    /// Fraction of images (of the non-test ones, with folds) held out for validation.
    pub validation: f64,
    /// Fraction of images held out for test (ignored with folds or a predefined split).
    pub test: f64,
    /// 0 for one train/validation/test split, else the number of folds.
    pub folds: usize,
    /// Use the dataset's own split lists when it has them.
    pub use_predefined: bool,
}

impl Default for SplitParams {
    fn default() -> Self {
        Self {
            seed: 2024,
            validation: 0.1,
            test: 0.2,
            folds: 0,
            use_predefined: true,
        }
    }
}

impl SplitParams {
    /// Checks the fractions and fold count.
    pub fn check(&self) -> Result<(), DataError> {
        let fraction_ok = |f: f64| (0.0..1.0).contains(&f);
        if !fraction_ok(self.validation)
            || !fraction_ok(self.test)
            || self.validation + self.test >= 1.0
        {
            return Err(DataError::SplitFractions {
                validation: self.validation,
                test: self.test,
            });
        }
        if self.folds == 1 || self.folds > 100 {
            return Err(DataError::Folds(self.folds));
        }
        Ok(())
    }
}

/// One assignment of every image to a part: the whole split, or one fold.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// `main` for a plain split, `fold-<i>` for fold i.
    pub name: String,
    /// The part of each image of the dataset, by image index.
    pub parts: Vec<Part>,
}

impl Partition {
    /// Indices of the images in `part`.
    pub fn images_in(&self, part: Part) -> Vec<usize> {
        (0..self.parts.len())
            .filter(|&i| self.parts[i] == part)
            .collect()
    }

    /// Number of images in `part`.
    pub fn count(&self, part: Part) -> usize {
        self.parts.iter().filter(|&&p| p == part).count()
    }
}

/// A number in [0, 1) from `id`, keyed by `seed` and a purpose string.
pub fn unit_hash(seed: u64, purpose: &str, id: &str) -> f64 {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    let mut hasher = blake3::Hasher::new_keyed(&key);
    hasher.update(purpose.as_bytes());
    hasher.update(&[0]);
    hasher.update(id.as_bytes());
    let bytes = hasher.finalize();
    let word = u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes"));
    (word >> 11) as f64 / (1u64 << 53) as f64
}

/// Splits `dataset` as `params` says: one partition, or one per fold.
pub fn partitions(dataset: &Dataset, params: &SplitParams) -> Result<Vec<Partition>, DataError> {
    params.check()?;
    let ids: Vec<&str> = dataset.images.iter().map(|i| i.id.as_str()).collect();
    let validation_of_rest = |id: &str, rest_fraction: f64| {
        unit_hash(params.seed, "validation", id)
            < params.validation / rest_fraction.max(f64::MIN_POSITIVE)
    };
    if params.folds >= 2 {
        let fold_of: Vec<usize> = ids
            .iter()
            .map(|id| {
                ((unit_hash(params.seed, "fold", id) * params.folds as f64) as usize)
                    .min(params.folds - 1)
            })
            .collect();
        return Ok((0..params.folds)
            .map(|fold| Partition {
                name: format!("fold-{fold}"),
                parts: ids
                    .iter()
                    .zip(&fold_of)
                    .map(|(id, &f)| {
                        if f == fold {
                            Part::Test
                        } else if unit_hash(params.seed, "validation", id) < params.validation {
                            Part::Validation
                        } else {
                            Part::Train
                        }
                    })
                    .collect(),
            })
            .collect());
    }
    let parts = match (&dataset.predefined, params.use_predefined) {
        (Some(predefined), true) => predefined
            .iter()
            .zip(&ids)
            .map(|(&part, id)| match part {
                // The shipped copy has no validation images: carve validation out of train.
                Part::Train if unit_hash(params.seed, "validation", id) < params.validation => {
                    Part::Validation
                }
                other => other,
            })
            .collect(),
        _ => ids
            .iter()
            .map(|id| {
                if unit_hash(params.seed, "test", id) < params.test {
                    Part::Test
                } else if validation_of_rest(id, 1.0 - params.test) {
                    Part::Validation
                } else {
                    Part::Train
                }
            })
            .collect(),
    };
    Ok(vec![Partition {
        name: "main".to_string(),
        parts,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageEntry;

    fn dataset(n: usize) -> Dataset {
        Dataset {
            images: (0..n)
                .map(|i| ImageEntry {
                    id: format!("img-{i}"),
                    path: format!("{i}.jpg").into(),
                })
                .collect(),
            ..Dataset::default()
        }
    }

    #[test]
    fn fractions_are_close_to_the_parameters() {
        let params = SplitParams::default();
        let p = &partitions(&dataset(10_000), &params).unwrap()[0];
        let test = p.count(Part::Test) as f64 / 10_000.0;
        let validation = p.count(Part::Validation) as f64 / 10_000.0;
        assert!((test - 0.2).abs() < 0.02, "test fraction {test}");
        assert!(
            (validation - 0.1).abs() < 0.02,
            "validation fraction {validation}"
        );
    }

    #[test]
    fn split_is_stable_when_images_are_added() {
        let params = SplitParams::default();
        let small = &partitions(&dataset(100), &params).unwrap()[0];
        let large = &partitions(&dataset(200), &params).unwrap()[0];
        assert_eq!(small.parts[..], large.parts[..100]);
    }

    #[test]
    fn different_seeds_give_different_splits() {
        let a = &partitions(&dataset(200), &SplitParams::default()).unwrap()[0];
        let b = &partitions(
            &dataset(200),
            &SplitParams {
                seed: 7,
                ..SplitParams::default()
            },
        )
        .unwrap()[0];
        assert_ne!(a.parts, b.parts);
    }

    #[test]
    fn folds_cover_every_image_exactly_once_as_test() {
        let params = SplitParams {
            folds: 5,
            ..SplitParams::default()
        };
        let folds = partitions(&dataset(500), &params).unwrap();
        assert_eq!(folds.len(), 5);
        for i in 0..500 {
            let tests = folds.iter().filter(|f| f.parts[i] == Part::Test).count();
            assert_eq!(tests, 1, "image {i} is test in {tests} folds");
        }
        for fold in &folds {
            assert!(fold.count(Part::Test) > 60 && fold.count(Part::Test) < 140);
        }
    }

    #[test]
    fn predefined_split_is_kept_and_validation_comes_from_train() {
        let mut d = dataset(300);
        d.predefined = Some(
            (0..300)
                .map(|i| if i < 100 { Part::Test } else { Part::Train })
                .collect(),
        );
        let p = &partitions(&d, &SplitParams::default()).unwrap()[0];
        assert!(p.parts[..100].iter().all(|&x| x == Part::Test));
        assert!(p.parts[100..].iter().all(|&x| x != Part::Test));
        assert!(p.count(Part::Validation) > 0);
    }

    #[test]
    fn bad_fractions_are_rejected_with_their_values() {
        let err = SplitParams {
            validation: 0.5,
            test: 0.6,
            ..SplitParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "split fractions must be in [0, 1) and sum to less than 1, got validation 0.5 and test 0.6"
        );
    }
}
