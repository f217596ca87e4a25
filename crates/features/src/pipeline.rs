//! Parallel extraction over many files with bounded memory.
//!
//! [`extract_many`] walks the input in chunks. A producer thread decodes one chunk at a time in
//! parallel (rayon) while the calling thread runs the extractors on the previous chunk, so at
//! most three chunks of images are alive at once (being decoded, queued, being extracted).
//! Batching extractors (the CNN, `batch_size() > 1`) get [`FeatureExtractor::extract_batch`]
//! calls of their batch size; the others run image-parallel with rayon.
//!
//! Every decoded image is first reduced to a *working image* whose shorter side is at most
//! [`WORKING_MAX_SHORTER_SIDE`] px (no extractor looks at more than ~300 px, and a 4000×3000
//! photo shrinks from 36 MB to about 2.4 MB). Query-time code should go through
//! [`extract_path`], [`extract_bytes`] or [`extract_image`], which apply the same reduction, so
//! query vectors match indexed ones exactly.
//!
//! JPEGs are decoded at a reduced size in the DCT domain (1/2 or 1/4,
//! [`crate::decode::DecodeSize::AtLeast`]) as long as both sides stay at least twice the largest
//! [`FeatureExtractor::min_input_side`] of the extractors ([`decode_size`]): a 24 MP photo for
//! the CNN (shorter side 256, so 512) is decoded at 1/4, 1500 × 1000, instead of 6000 × 4000. The
//! query-side entry points decode the same way, so a query file's vectors equal its indexed ones.
//!
//! [`extract_inputs`] runs the same pipeline over in-memory inputs too (encoded bytes, decoded
//! pixels: [`ImageInput`]).
//!
//! A file that fails (decode error, or an extractor error or panic on it) yields an `Err` in
//! its slot; the others go on.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use image::RgbImage;
use rayon::prelude::*;

use crate::decode::{decode_bytes_sized, load_image_sized, DecodeLimits, DecodeSize, DecodedImage};
use crate::error::{FeatureError, Result};
use crate::extractor::{FeatureExtractor, Features};
use crate::preprocess::{resize_shorter_side_with, ResizeFilter};

/// Images with a longer shorter side are reduced to it before extraction.
pub const WORKING_MAX_SHORTER_SIDE: u32 = 768;

/// One image's metadata and features.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// The file.
    pub path: PathBuf,
    /// Width of the decoded, oriented image (full resolution).
    pub width: u32,
    /// Height of the decoded, oriented image (full resolution).
    pub height: u32,
    /// Detected format (`jpeg`, `png`, …).
    pub format: String,
    /// Features by extractor name.
    pub features: BTreeMap<String, Features>,
}

/// Progress of [`extract_many`], reported after each chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Files finished (successfully or not).
    pub done: usize,
    /// Files in total.
    pub total: usize,
    /// Files that failed so far.
    pub failed: usize,
}

/// The image the extractors see: `image` itself when its shorter side is at most
/// [`WORKING_MAX_SHORTER_SIDE`], else a reduced copy.
pub fn working_image(image: RgbImage) -> RgbImage {
    if image.width().min(image.height()) <= WORKING_MAX_SHORTER_SIDE {
        image
    } else {
        resize_shorter_side_with(&image, WORKING_MAX_SHORTER_SIDE, ResizeFilter::Bilinear)
    }
}

/// How much larger than an extractor's own input size a reduced decode stays: the extractor's
/// antialiased resize then still averages about two decoded pixels per output pixel. At 1×, a
/// 512 px JPEG decoded at 1/2 lands right on the CNN's 256 px and a q30 copy of a photo moved
/// 0.173 in cosine distance from its original (over the 0.16 near-duplicate threshold); at 2×
/// the copies stay within the calibration (docs/app.md).
pub const DECODE_MARGIN: u32 = 2;

/// How large the pipeline decodes images for `extractors`: JPEGs reduced as long as both sides
/// stay at least [`DECODE_MARGIN`] × the largest [`FeatureExtractor::min_input_side`] (never
/// more than the working image keeps, [`WORKING_MAX_SHORTER_SIDE`]); every pixel when there
/// are no extractors.
pub fn decode_size(extractors: &[Box<dyn FeatureExtractor>]) -> DecodeSize {
    match extractors.iter().map(|e| e.min_input_side()).max() {
        Some(side) => DecodeSize::AtLeast(side.saturating_mul(DECODE_MARGIN).min(WORKING_MAX_SHORTER_SIDE)),
        None => DecodeSize::Full,
    }
}

/// Run every extractor on one in-memory image (reduced with [`working_image`] first).
/// `name` is used in errors.
pub fn extract_image(
    image: RgbImage,
    name: &Path,
    extractors: &[Box<dyn FeatureExtractor>],
) -> Result<BTreeMap<String, Features>> {
    let image = working_image(image);
    let mut out = BTreeMap::new();
    for ex in extractors {
        let f = guarded(|| ex.extract(&image)).map_err(|e| extract_error(name, ex.name(), e))?;
        out.insert(ex.name().to_string(), f);
    }
    Ok(out)
}

/// Decode one file and run every extractor on it (what [`extract_many`] does per file).
pub fn extract_path(
    path: &Path,
    extractors: &[Box<dyn FeatureExtractor>],
    limits: &DecodeLimits,
) -> Result<ImageRecord> {
    let decoded = load_image_sized(path, limits, decode_size(extractors))?;
    record_from(decoded, path, extractors)
}

/// Decode an in-memory file (e.g. an upload) and run every extractor on it.
pub fn extract_bytes(
    bytes: &[u8],
    name: &Path,
    extractors: &[Box<dyn FeatureExtractor>],
    limits: &DecodeLimits,
) -> Result<ImageRecord> {
    let decoded = decode_bytes_sized(bytes, name, limits, decode_size(extractors))?;
    record_from(decoded, name, extractors)
}

fn record_from(decoded: DecodedImage, path: &Path, extractors: &[Box<dyn FeatureExtractor>]) -> Result<ImageRecord> {
    let DecodedImage { image, width, height, format } = decoded;
    let features = extract_image(image, path, extractors)?;
    Ok(ImageRecord { path: path.to_path_buf(), width, height, format, features })
}

/// Run `f`, turning a panic into an error.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(FeatureError::InvalidArgument(format!("extractor panicked: {msg}")))
    })
}

/// Attach the file and extractor to an extractor's error (errors that already name a file
/// are kept as they are).
fn extract_error(path: &Path, extractor: &str, e: FeatureError) -> FeatureError {
    if e.path().is_some() {
        return e;
    }
    FeatureError::Extract { path: path.to_path_buf(), extractor: extractor.to_string(), reason: e.to_string() }
}

/// Files per chunk: a multiple of the largest batch size, enough to keep the threads busy.
fn chunk_size(extractors: &[Box<dyn FeatureExtractor>]) -> usize {
    let batch = extractors.iter().map(|e| e.batch_size().max(1)).max().unwrap_or(1);
    let want = (4 * rayon::current_num_threads()).clamp(8, 128);
    want.div_ceil(batch).max(1) * batch
}

/// One image for [`extract_inputs`]: a file, an encoded file in memory, or decoded pixels.
#[derive(Debug, Clone)]
pub enum ImageInput {
    /// A file, decoded on the pipeline's threads.
    Path(PathBuf),
    /// An encoded file in memory (e.g. an upload); `name` stands for it in records and errors.
    Bytes {
        /// The encoded file.
        bytes: Vec<u8>,
        /// Its name in records and errors.
        name: PathBuf,
    },
    /// Decoded RGB pixels (format `"array"`); `name` stands for them in records and errors.
    Pixels {
        /// The pixels.
        image: RgbImage,
        /// Their name in records and errors.
        name: PathBuf,
    },
}

impl ImageInput {
    /// The path or name the record and errors of this input carry.
    pub fn name(&self) -> &Path {
        match self {
            ImageInput::Path(p) => p,
            ImageInput::Bytes { name, .. } | ImageInput::Pixels { name, .. } => name,
        }
    }

    /// Decode (files, bytes) at `size` and reduce to the working image.
    fn decode(self, limits: &DecodeLimits, size: DecodeSize) -> Result<DecodedImage> {
        let mut decoded = match self {
            ImageInput::Path(p) => load_image_sized(&p, limits, size)?,
            ImageInput::Bytes { bytes, name } => decode_bytes_sized(&bytes, &name, limits, size)?,
            ImageInput::Pixels { image, name } => {
                let (width, height) = image.dimensions();
                if width == 0 || height == 0 {
                    return Err(FeatureError::TooSmall { path: name, width, height });
                }
                DecodedImage { image, width, height, format: "array".into() }
            }
        };
        decoded.image = working_image(decoded.image);
        Ok(decoded)
    }
}

/// Decode and extract features of `paths` in parallel, in bounded memory. The result has one
/// entry per path, in input order; failures are per file. `on_progress` is called on the
/// calling thread after each chunk.
pub fn extract_many(
    paths: &[PathBuf],
    extractors: &[Box<dyn FeatureExtractor>],
    limits: &DecodeLimits,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> Vec<Result<ImageRecord, FeatureError>> {
    extract_inputs(paths.iter().cloned().map(ImageInput::Path).collect(), extractors, limits, on_progress)
}

/// [`extract_many`] over any mix of files, encoded bytes and decoded pixels: the same chunked
/// pipeline (parallel decoding of one chunk while the previous one is extracted, the CNN in
/// batches of its batch size, the other extractors image-parallel on every core). One entry
/// per input, in input order; failures are per input.
pub fn extract_inputs(
    inputs: Vec<ImageInput>,
    extractors: &[Box<dyn FeatureExtractor>],
    limits: &DecodeLimits,
    on_progress: &(dyn Fn(Progress) + Sync),
) -> Vec<Result<ImageRecord, FeatureError>> {
    let total = inputs.len();
    let mut results: Vec<Result<ImageRecord>> = Vec::with_capacity(total);
    let mut failed = 0;
    extract_inputs_with(inputs, extractors, limits, &mut |chunk| {
        for r in chunk {
            failed += usize::from(r.is_err());
            results.push(r);
        }
        on_progress(Progress { done: results.len(), total, failed });
        true
    });
    results
}

/// [`extract_inputs`] handing the results over as they come: `on_chunk` gets the results of
/// each chunk of consecutive inputs, in input order, on the calling thread, while the next
/// chunk is being decoded. It returns `false` to stop: the inputs not delivered yet are dropped.
/// The caller can so store one chunk while the next is decoded and embedded.
pub fn extract_inputs_with(
    inputs: Vec<ImageInput>,
    extractors: &[Box<dyn FeatureExtractor>],
    limits: &DecodeLimits,
    on_chunk: &mut dyn FnMut(Vec<Result<ImageRecord>>) -> bool,
) {
    let chunk = chunk_size(extractors);
    let size = decode_size(extractors);
    std::thread::scope(|scope| {
        type Decoded = (Vec<PathBuf>, Vec<Result<DecodedImage>>);
        let (tx, rx) = mpsc::sync_channel::<Decoded>(1);
        scope.spawn(move || {
            let mut rest = inputs.into_iter();
            loop {
                let part: Vec<ImageInput> = rest.by_ref().take(chunk).collect();
                if part.is_empty() {
                    break;
                }
                let names = part.iter().map(|i| i.name().to_path_buf()).collect();
                let decoded = part.into_par_iter().map(|i| i.decode(limits, size)).collect();
                if tx.send((names, decoded)).is_err() {
                    break;
                }
            }
        });
        for (names, decoded) in rx {
            if !on_chunk(extract_chunk(&names, decoded, extractors)) {
                // Dropping the receiver stops the decoding thread at its next send.
                break;
            }
        }
    });
}

/// Run all extractors on one decoded chunk.
fn extract_chunk(
    paths: &[PathBuf],
    decoded: Vec<Result<DecodedImage>>,
    extractors: &[Box<dyn FeatureExtractor>],
) -> Vec<Result<ImageRecord>> {
    let mut records: Vec<Result<ImageRecord>> = Vec::with_capacity(decoded.len());
    let mut images: Vec<RgbImage> = Vec::new();
    let mut owner: Vec<usize> = Vec::new();
    for (i, (d, path)) in decoded.into_iter().zip(paths).enumerate() {
        match d {
            Ok(DecodedImage { image, width, height, format }) => {
                records.push(Ok(ImageRecord { path: path.clone(), width, height, format, features: BTreeMap::new() }));
                images.push(image);
                owner.push(i);
            }
            Err(e) => records.push(Err(e)),
        }
    }
    for ex in extractors {
        let outputs = run_extractor(ex.as_ref(), &images);
        for (out, &i) in outputs.into_iter().zip(&owner) {
            let Ok(rec) = &mut records[i] else { continue };
            match out {
                Ok(f) => {
                    rec.features.insert(ex.name().to_string(), f);
                }
                Err(e) => {
                    let err = extract_error(&rec.path, ex.name(), e);
                    records[i] = Err(err);
                }
            }
        }
    }
    records
}

/// One extractor over a slice of images: batched when the extractor batches (a failed batch
/// is retried image by image to find the culprit), image-parallel otherwise.
fn run_extractor(ex: &dyn FeatureExtractor, images: &[RgbImage]) -> Vec<Result<Features>> {
    let batch = ex.batch_size();
    if batch <= 1 {
        return images.par_iter().map(|im| guarded(|| ex.extract(im))).collect();
    }
    let mut out = Vec::with_capacity(images.len());
    for part in images.chunks(batch) {
        match guarded(|| ex.extract_batch(part)) {
            Ok(fs) if fs.len() == part.len() => out.extend(fs.into_iter().map(Ok)),
            _ => out.extend(part.iter().map(|im| guarded(|| ex.extract(im)))),
        }
    }
    out
}
