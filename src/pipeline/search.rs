//! `search`: ad-hoc retrieval with a trained pipeline — the images for a caption one types,
//! the captions for an image file, or either for an item of the dataset by its id.
//!
//! What `submit` does for the contest's attachments, done for a handful of queries: a typed
//! caption is described by the partition's fitted text model, an image file by its fitted image
//! model (vocabularies, PCA, blocks), both projected by its CCA, and ranked against the images
//! and captions `embed` wrote for a part of the split (all of it by default). The ranking is the
//! pipeline's own (`[rank]`): plain cosine; CSLS with neighbours from the training items, as
//! `evaluate` takes them; or the inverted softmax, with the gallery's own other side as the bank
//! (a caption query is ranked against the images, each image normalised over the captions of the
//! searched part), so that a query taken by id from the test part gets exactly the ranking
//! `rank` wrote for it. Each query is ranked on its own: what else is asked in the same call
//! changes nothing. For a query taken by id, the rank of its true match in the whole gallery is
//! given too. The gallery's side of a hubness correction, which does not depend on the query,
//! is kept in the `embed` stage's folder for the next search (`GalleryPenalties`).

use std::collections::HashMap;
use std::path::PathBuf;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::Serialize;

use super::artifacts::{read_dense, write_dense};
use super::stages::evaluate::{PartEmbeddings, RankStageParams, pairs_embeddings, part_embeddings};
use super::stages::features::{load_image_model, load_split, load_text_model};
use super::stages::fusion::{load_cca, load_embeddings, pairs_in};
use super::stages::submit::{embed_images, embed_texts};
use super::{Context, PipelineError};
use crate::data::{ImageEntry, Part, TextEntry};
use crate::error::{Error, IoError};
use crate::retrieval::{Csls, Hubness, top_k};

/// One query of `search`.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchQuery {
    /// A caption, typed: the images are ranked for it.
    Text(String),
    /// A caption of the dataset, by its id (as in `split/text_ids.txt`).
    TextId(String),
    /// An image file, described with the fitted image model: the captions are ranked for it.
    Image(PathBuf),
    /// An image of the dataset, by its id (as in `split/image_ids.txt`).
    ImageId(String),
}

impl SearchQuery {
    fn searches_images(&self) -> bool {
        matches!(self, SearchQuery::Text(_) | SearchQuery::TextId(_))
    }

    /// The query in words; a caption taken by id is quoted too (`caption`).
    fn describe(&self, caption: Option<&str>) -> String {
        match self {
            SearchQuery::Text(text) => format!("caption {text:?}"),
            SearchQuery::TextId(id) => match caption {
                Some(caption) => format!("caption {id} {caption:?}"),
                None => format!("caption {id}"),
            },
            SearchQuery::Image(path) => format!("image file {}", path.display()),
            SearchQuery::ImageId(id) => format!("image {id}"),
        }
    }
}

/// Options of `search`.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// Results listed per query.
    pub k: usize,
    /// The partition whose fitted models are used (the first one for `None`).
    pub partition: Option<String>,
    /// The parts of the split searched (every part when empty).
    pub parts: Vec<Part>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            k: 10,
            partition: None,
            parts: Vec::new(),
        }
    }
}

/// One result of a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    /// 1 for the best.
    pub rank: usize,
    /// The ranking score: cosine, or the corrected score of CSLS or the inverted softmax.
    pub score: f32,
    /// The image's id (for a caption, the id of its image).
    pub image_id: String,
    /// The caption's id (captions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_id: Option<String>,
    /// The caption (captions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The image file (images only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The part of the split the item's image is in (`train`, `validation`, `test`).
    pub part: &'static str,
    /// Whether it is the query's true match (queries by id only).
    pub relevant: bool,
}

/// The results of one query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// What was asked, in words.
    pub query: String,
    /// `images` or `captions`: what was ranked.
    pub searched: &'static str,
    /// Whether the query is an item of the dataset, taken by its id (then its true match is
    /// known).
    pub by_id: bool,
    /// For a query by id: the rank of its first true match in the whole gallery (`None` when
    /// no true match is in the searched parts); always `None` for typed captions and files.
    pub true_match_rank: Option<usize>,
    /// The first [`SearchOptions::k`] of the ranking, best first.
    pub hits: Vec<SearchHit>,
}

/// Everything `search` found, with what it searched and how it ranked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchReport {
    /// The pipeline's name (`[pipeline] name`).
    pub pipeline: String,
    /// The partition whose fitted models described and ranked the queries.
    pub partition: String,
    /// The parts searched, e.g. `["train", "validation", "test"]`.
    pub parts: Vec<&'static str>,
    /// How many images the image gallery holds.
    pub images: usize,
    /// How many captions the caption gallery holds.
    pub captions: usize,
    /// The ranking, in words (`cosine`, `CSLS k = 10`, `inverted softmax T = 0.2`).
    pub ranking: String,
    /// One per query, in the order asked.
    pub results: Vec<SearchResult>,
}

/// The results as plain-text tables, one per query: rank, score, part, item (`*` marks a true
/// match).
impl std::fmt::Display for SearchReport {
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            out,
            "{} (partition {}): {} images and {} captions of the {} part{}, ranked by {}",
            self.pipeline,
            self.partition,
            self.images,
            self.captions,
            self.parts.join(", "),
            if self.parts.len() > 1 { "s" } else { "" },
            self.ranking
        )?;
        for result in &self.results {
            write!(out, "\n{} → {}", result.query, result.searched)?;
            match result.true_match_rank {
                Some(rank) => {
                    writeln!(out, " (true match at rank {rank}, marked *)")?;
                }
                None if result.by_id => {
                    writeln!(out, " (true match not in the parts searched)")?;
                }
                None => {
                    writeln!(out)?;
                }
            }
            for hit in &result.hits {
                let mark = if hit.relevant { '*' } else { ' ' };
                let what = match (&hit.caption, &hit.path) {
                    // Teddy's captions share their image's id; Flickr8k's name it in theirs.
                    (Some(caption), _) => match hit.text_id.as_deref() {
                        Some(id) if id != hit.image_id => format!(
                            "{id} (image {}) {}",
                            hit.image_id,
                            caption.replace('\n', " ")
                        ),
                        _ => format!("{} {}", hit.image_id, caption.replace('\n', " ")),
                    },
                    (None, Some(path)) => format!("{} {}", hit.image_id, path.display()),
                    (None, None) => hit.image_id.clone(),
                };
                writeln!(
                    out,
                    "{mark}{:>4}  {:>8.4}  {:<10}  {what}",
                    hit.rank, hit.score, hit.part
                )?;
            }
        }
        Ok(())
    }
}

/// Ranks the gallery for every query with partition `options.partition`'s models; `embed` must
/// be up to date (the command line brings it up to date first).
pub fn search(
    ctx: &Context,
    queries: &[SearchQuery],
    options: &SearchOptions,
) -> Result<SearchReport, Error> {
    if options.k == 0 {
        return Err(PipelineError::Invalid("search: k must be at least 1, got 0".into()).into());
    }
    if queries.is_empty() {
        return Err(PipelineError::Invalid(
            "search: no query; give --text, --text-id, --image or --image-id".into(),
        )
        .into());
    }
    let rank: RankStageParams = ctx.config.section("rank")?;
    let hubness = rank.rank.hubness()?;
    let split = load_split(ctx, "search")?;
    let partition = split.partition(options.partition.as_deref(), "search", &ctx.config.path)?;
    let p = &partition.name;
    let embeddings = load_embeddings(ctx, p)?;

    let mut parts: Vec<Part> = Vec::new();
    for &part in &options.parts {
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        parts = vec![Part::Train, Part::Validation, Part::Test];
    }
    let pairs: Vec<(usize, usize)> = parts
        .iter()
        .flat_map(|&part| pairs_in(&split, partition, &embeddings.image_rows, part))
        .collect();
    if pairs.is_empty() {
        return Err(PipelineError::Invalid(format!(
            "search: partition {p} has no images with captions in the {} part",
            parts
                .iter()
                .map(|part| part.as_str())
                .collect::<Vec<_>>()
                .join(" and ")
        ))
        .into());
    }
    let gallery = pairs_embeddings(&split, &embeddings, &pairs);
    let penalties = GalleryPenalties::new(ctx, p, &parts);
    // CSLS takes its neighbourhoods from the training items, as `evaluate` does.
    let train = match hubness {
        Hubness::Csls(_) => Some(part_embeddings(
            &split,
            partition,
            &embeddings,
            Part::Train,
        )?),
        _ => None,
    };

    // Where each id is: in the split (images, captions) and among the embedded image rows.
    let (image_index, text_index) = (positions(&split.image_ids), positions(&split.text_ids));
    let image_row = positions(&embeddings.image_rows);
    let cca = load_cca(ctx, p)?;

    // Every query in the shared space, with the gallery rows of its true matches (by id only):
    // typed captions and image files described with the fitted models (loaded only for them).
    let (mut typed_captions, mut files) = (Vec::new(), Vec::new());
    for query in queries {
        match query {
            SearchQuery::Text(text) => typed_captions.push(TextEntry {
                id: "query".into(),
                caption: text.clone(),
            }),
            SearchQuery::Image(path) => files.push(ImageEntry {
                id: "query".into(),
                path: path.clone(),
            }),
            SearchQuery::TextId(_) | SearchQuery::ImageId(_) => {}
        }
    }
    let typed = if typed_captions.is_empty() {
        Array2::zeros((0, cca.dims()))
    } else {
        let model = load_text_model(ctx, p)?;
        embed_texts(ctx, &model, &cca, &typed_captions, "describing captions")?
    };
    let described = if files.is_empty() {
        Array2::zeros((0, cca.dims()))
    } else {
        let model = load_image_model(ctx, p)?;
        let (described, skipped) = embed_images(ctx, &model, &cca, &files, "describing images")?;
        if let Some(skip) = skipped.first() {
            return Err(PipelineError::Invalid(format!(
                "search: cannot describe image {}: {}",
                skip.path.display(),
                skip.reason
            ))
            .into());
        }
        described
    };
    let (mut next_typed, mut next_file) = (0, 0);
    let mut rows = Vec::with_capacity(queries.len());
    let mut relevant: Vec<Vec<usize>> = Vec::with_capacity(queries.len());
    for query in queries {
        match query {
            SearchQuery::Text(_) => {
                rows.push(typed.row(next_typed).to_owned());
                next_typed += 1;
                relevant.push(Vec::new());
            }
            SearchQuery::TextId(id) => {
                let &t = text_index
                    .get(id.as_str())
                    .ok_or_else(|| unknown("caption", id))?;
                let image = &split.image_ids[split.text_image[t]];
                rows.push(embeddings.texts.row(t).to_owned());
                relevant.push(
                    (0..gallery.image_ids.len())
                        .filter(|&g| &gallery.image_ids[g] == image)
                        .collect(),
                );
            }
            SearchQuery::Image(_) => {
                rows.push(described.row(next_file).to_owned());
                next_file += 1;
                relevant.push(Vec::new());
            }
            SearchQuery::ImageId(id) => {
                if !image_index.contains_key(id.as_str()) {
                    return Err(unknown("image", id).into());
                }
                let &r = image_row.get(id.as_str()).ok_or_else(|| {
                    PipelineError::Invalid(format!(
                        "search: image {id} could not be described when the features were made \
                         (`crossmodal inspect` on the image-features stage lists why)"
                    ))
                })?;
                rows.push(embeddings.images.row(r).to_owned());
                relevant.push(
                    (0..gallery.text_ids.len())
                        .filter(|&t| gallery.image_ids[gallery.text_image[t]] == *id)
                        .collect(),
                );
            }
        }
    }

    // Each direction ranked once for all its queries (a query's ranking does not depend on the
    // others: the banks and references are the gallery's and the training items).
    let mut orders: Vec<Vec<(usize, f32)>> = vec![Vec::new(); queries.len()];
    for searches_images in [true, false] {
        let asked: Vec<usize> = (0..queries.len())
            .filter(|&q| queries[q].searches_images() == searches_images)
            .collect();
        if asked.is_empty() {
            continue;
        }
        let views: Vec<_> = asked.iter().map(|&q| rows[q].view()).collect();
        let stacked = ndarray::stack(Axis(0), &views).expect("rows of one width");
        let ranked = rank_gallery(
            &stacked.view(),
            &gallery,
            train.as_ref(),
            hubness,
            rank.rank.block_rows,
            searches_images,
            &penalties,
        )?;
        for (&q, order) in asked.iter().zip(ranked) {
            orders[q] = order;
        }
    }

    let mut results = Vec::with_capacity(queries.len());
    for ((query, order), relevant) in queries.iter().zip(&orders).zip(&relevant) {
        let searches_images = query.searches_images();
        let true_match_rank = order
            .iter()
            .position(|(g, _)| relevant.contains(g))
            .map(|at| at + 1);
        let hits = order
            .iter()
            .take(options.k)
            .enumerate()
            .map(|(at, &(g, score))| {
                let (image_id, text_id, caption, path) = if searches_images {
                    let path = gallery.image_paths[g].clone();
                    (gallery.image_ids[g].clone(), None, None, Some(path))
                } else {
                    let image_id = gallery.image_ids[gallery.text_image[g]].clone();
                    let caption = gallery.captions[g].clone();
                    (
                        image_id,
                        Some(gallery.text_ids[g].clone()),
                        Some(caption),
                        None,
                    )
                };
                let part = partition.parts[image_index[image_id.as_str()]].as_str();
                SearchHit {
                    rank: at + 1,
                    score,
                    image_id,
                    text_id,
                    caption,
                    path,
                    part,
                    relevant: relevant.contains(&g),
                }
            })
            .collect();
        let caption = match query {
            SearchQuery::TextId(id) => text_index
                .get(id.as_str())
                .map(|&t| split.captions[t].as_str()),
            _ => None,
        };
        results.push(SearchResult {
            query: query.describe(caption),
            searched: if searches_images {
                "images"
            } else {
                "captions"
            },
            by_id: matches!(query, SearchQuery::TextId(_) | SearchQuery::ImageId(_)),
            true_match_rank,
            hits,
        });
    }
    Ok(SearchReport {
        pipeline: ctx.config.pipeline.name.clone(),
        partition: p.clone(),
        parts: parts.iter().map(|part| part.as_str()).collect(),
        images: gallery.images.nrows(),
        captions: gallery.texts.nrows(),
        ranking: hubness.to_string(),
        results,
    })
}

/// Each id's position in `ids`.
fn positions(ids: &[String]) -> HashMap<&str, usize> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect()
}

fn unknown(kind: &str, id: &str) -> PipelineError {
    PipelineError::Invalid(format!(
        "search: no {kind} with id {id:?} in the split (the ids are in split/{}_ids.txt)",
        if kind == "image" { "image" } else { "text" }
    ))
}

/// The whole gallery for every query row, best first, as `(gallery index, score)`: images for
/// captions (`searches_images`), captions for images; corrected for hubness as `[rank]` asks
/// (CSLS from the training items; the inverted softmax over the gallery's other side), the
/// gallery's side of the correction kept in `cache`.
fn rank_gallery(
    queries: &ArrayView2<f32>,
    gallery: &PartEmbeddings,
    train: Option<&PartEmbeddings>,
    hubness: Hubness,
    block_rows: usize,
    searches_images: bool,
    cache: &GalleryPenalties,
) -> Result<Vec<Vec<(usize, f32)>>, Error> {
    let (items, bank): (&Array2<f32>, &Array2<f32>) = if searches_images {
        (&gallery.images, &gallery.texts)
    } else {
        (&gallery.texts, &gallery.images)
    };
    let searched = if searches_images {
        "images"
    } else {
        "captions"
    };
    let penalties = match hubness {
        Hubness::None => None,
        Hubness::InvertedSoftmax(t) => Some(Csls {
            query_penalty: Array1::zeros(queries.nrows()),
            gallery_penalty: cache.get(
                &format!("{searched}-inverted-softmax-{t}"),
                items.nrows(),
                || {
                    Ok(
                        Csls::inverted_softmax(queries, &items.view(), &bank.view(), t)?
                            .gallery_penalty,
                    )
                },
            )?,
        }),
        Hubness::Csls(k) => {
            let train = train.expect("the training items are loaded for CSLS");
            let (query_side, gallery_side) = if searches_images {
                (&train.texts, &train.images)
            } else {
                (&train.images, &train.texts)
            };
            Some(Csls {
                query_penalty: Csls::csls_query_penalty(queries, &gallery_side.view(), k)?,
                gallery_penalty: cache.get(
                    &format!("{searched}-csls-{k}"),
                    items.nrows(),
                    || {
                        Ok(Csls::csls_gallery_penalty(
                            &items.view(),
                            &query_side.view(),
                            k,
                        )?)
                    },
                )?,
            })
        }
    };
    let top = top_k(
        queries,
        &items.view(),
        items.nrows(),
        block_rows,
        penalties.as_ref(),
    )?;
    Ok(top
        .indices
        .rows()
        .into_iter()
        .zip(top.scores.rows())
        .map(|(indices, scores)| {
            indices
                .iter()
                .zip(scores)
                .map(|(&g, &s)| (g as usize, s))
                .collect()
        })
        .collect())
}

/// The gallery's side of the hubness correction (`r_g` of every item ranked) kept between
/// searches: it depends on the gallery and the ranking, not on the query, and at the contest's
/// 50,000 items it took 24 s under the inverted softmax and 16 s under CSLS, against 0.8 s for
/// the rest of a search. Kept inside the `embed` stage's folder, in `embed/search/<p>/`, one
/// `.npy` per searched parts, side and ranking: a run of `embed` replaces its whole folder and
/// `clean` removes it, so a kept file never outlives the embeddings it was made from. A file
/// that cannot be read or written costs a recomputation, never the search.
struct GalleryPenalties {
    dir: PathBuf,
    /// The parts searched, joined by `+`.
    parts: String,
}

impl GalleryPenalties {
    fn new(ctx: &Context, p: &str, parts: &[Part]) -> Self {
        let parts: Vec<&str> = parts.iter().map(|part| part.as_str()).collect();
        Self {
            dir: ctx.stage_dir("embed").join("search").join(p),
            parts: parts.join("+"),
        }
    }

    /// The `items` penalties named `what` (side and ranking), read if kept, else `compute`d
    /// and kept.
    fn get(
        &self,
        what: &str,
        items: usize,
        compute: impl FnOnce() -> Result<Array1<f32>, Error>,
    ) -> Result<Array1<f32>, Error> {
        let path = self.dir.join(format!("{}-{what}.npy", self.parts));
        if let Ok(kept) = read_dense(&path) {
            if kept.dim() == (items, 1) {
                log::debug!("search: gallery penalties read from {}", path.display());
                return Ok(kept.column(0).to_owned());
            }
        }
        let penalties = compute()?;
        let kept = std::fs::create_dir_all(&self.dir)
            .map_err(|e| PipelineError::from(IoError::new("creating", &self.dir, e)))
            .and_then(|_| write_dense(&path, &penalties.view().insert_axis(Axis(1)).to_owned()));
        if let Err(e) = kept {
            log::warn!("search: could not keep the gallery penalties: {e:#}");
        }
        Ok(penalties)
    }
}
