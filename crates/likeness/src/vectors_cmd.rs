//! `likeness vectors import|search|export`: raw vectors in and out of a collection (for
//! benchmarks, for users who compute their own embeddings, and to take the image embeddings
//! likeness computed to other tools). Files: `.npy` (2-D float) and `.fvecs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::json;
use vecdb::{CollectionSchema, Database, Metric, Query, Record, SearchRequest, Vector, VectorField};

use crate::image_meta::ImageMeta;
use crate::vector_files::{self, Matrix};

/// `likeness vectors ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum VectorsCommand {
    /// Import vectors from a .npy or .fvecs file (ids = row numbers + --start-id).
    Import(ImportArgs),
    /// Search a collection with the query vectors of a .npy or .fvecs file.
    Search(SearchArgs),
    /// Write one dense field of a collection to a .npy file (rows in id order), with the ids
    /// (and paths, when the records have them) in a tab-separated side file.
    Export(ExportArgs),
}

/// Arguments of `likeness vectors export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Database directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Collection.
    #[arg(long, default_value = crate::catalog::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Vector field, e.g. `cnn` (default: cnn when present, else the collection's first).
    #[arg(long)]
    pub field: Option<String>,
    /// The .npy file to write (float32, one row per record).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write `id<TAB>path` lines, one per row, to this file.
    #[arg(long)]
    pub ids: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness vectors import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The vectors (.npy 2-D float32/float64, or .fvecs).
    pub file: PathBuf,
    /// Database directory (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Collection (created if missing with one field of the file's dimension).
    #[arg(long)]
    pub collection: String,
    /// Vector field name.
    #[arg(long, default_value = "vector")]
    pub field: String,
    /// Metric of a new collection: l2, cosine, dot.
    #[arg(long, default_value = "l2")]
    pub metric: Metric,
    /// Index factory spec of a new collection: `Auto` (default: exact below 10,000 vectors,
    /// then a graph built in the background; see --memory-budget), or pinned, e.g. Flat, HNSW32,
    /// IVF256,PQ16.
    #[arg(long, default_value = crate::index_policy::DEFAULT_INDEX)]
    pub index: String,
    /// Memory the automatic index may take (e.g. 4G, 512MiB; default half of the RAM): past it
    /// the graph traverses 8-bit codes and re-ranks with the mapped vectors.
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
    /// Id of the first row.
    #[arg(long, default_value_t = 0)]
    pub start_id: u64,
    /// Import only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Rows per durable batch.
    #[arg(long, default_value_t = 10_000)]
    pub batch: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness vectors search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Query vectors (.npy or .fvecs).
    pub queries: PathBuf,
    /// Database directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Collection.
    #[arg(long)]
    pub collection: String,
    /// Vector field (default: the collection's first).
    #[arg(long)]
    pub field: Option<String>,
    /// Results per query.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Range search radius instead of top-k.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Use only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub knobs: crate::knobs::IndexKnobs,
    /// Ground-truth neighbours (.ivecs) to report recall@k against.
    #[arg(long)]
    pub ground_truth: Option<PathBuf>,
    /// Print the result ids as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a `likeness vectors` subcommand.
pub fn run(cmd: &VectorsCommand) -> Result<()> {
    match cmd {
        VectorsCommand::Import(a) => import(a),
        VectorsCommand::Search(a) => search(a),
        VectorsCommand::Export(a) => export(a),
    }
}

fn export(a: &ExportArgs) -> Result<()> {
    let db = Database::open_read_only(&a.db)?;
    let name = a.collection.clone();
    let coll = crate::catalog::open_collection(&db, &name)?;
    let fname = crate::catalog::choose_feature(&coll, a.field.as_deref())?;
    let schema = coll.schema();
    let field = schema.fields.iter().find(|f| f.name == fname).context("chosen field is in the schema")?;
    if field.metric == Metric::Hamming {
        bail!("field '{}' holds bit vectors; export writes float matrices", field.name);
    }
    let dim = field.dim;
    let mut data: Vec<f32> = Vec::with_capacity(coll.count() * dim);
    let mut lines = String::new();
    coll.for_each(|r| {
        if let Some(Vector::Dense(v)) = r.vectors.get(&fname) {
            data.extend_from_slice(v);
            let path = ImageMeta::from_metadata(r.metadata.clone()).path.unwrap_or_default();
            lines.push_str(&format!("{}\t{}\n", r.id, path));
        }
    })?;
    let rows = data.len() / dim;
    vector_files::write_npy_f32(&a.out, &Matrix::new(rows, dim, data)?)?;
    if let Some(p) = &a.ids {
        std::fs::write(p, lines).with_context(|| format!("writing {}", p.display()))?;
    }
    if a.json {
        println!("{}", json!({"collection": name, "field": fname, "rows": rows, "dim": dim, "out": a.out}));
    } else {
        println!("wrote {rows} × {dim} vectors of '{name}.{fname}' to {}", a.out.display());
    }
    Ok(())
}

/// Read a 2-D float matrix by file extension.
pub fn read_matrix(path: &Path) -> Result<Matrix<f32>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    Ok(match ext.as_str() {
        "npy" => vector_files::read_npy_f32(path)?,
        "fvecs" => vector_files::read_fvecs(path)?,
        other => bail!("{}: unsupported vector file type '.{other}' (expected .npy or .fvecs)", path.display()),
    })
}

/// Rows of a vector file a block at a time: `.npy` files are streamed (memory stays one
/// block), other formats are read whole.
enum RowSource {
    Whole { m: Matrix<f32>, next: usize },
    Npy(vector_files::NpyRows),
}

impl RowSource {
    fn open(path: &Path) -> Result<RowSource> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
        Ok(match ext.as_str() {
            "npy" => RowSource::Npy(vector_files::NpyRows::open(path)?),
            _ => RowSource::Whole { m: read_matrix(path)?, next: 0 },
        })
    }
    fn rows(&self) -> usize {
        match self {
            RowSource::Whole { m, .. } => m.rows,
            RowSource::Npy(r) => r.rows(),
        }
    }
    fn cols(&self) -> usize {
        match self {
            RowSource::Whole { m, .. } => m.cols,
            RowSource::Npy(r) => r.cols(),
        }
    }
    /// The next block of up to `n` rows into `out`; returns how many (0 at the end).
    fn next_block(&mut self, n: usize, out: &mut Vec<f32>) -> Result<usize> {
        match self {
            RowSource::Whole { m, next } => {
                let n = n.min(m.rows - *next);
                out.clear();
                out.extend_from_slice(&m.data[*next * m.cols..(*next + n) * m.cols]);
                *next += n;
                Ok(n)
            }
            RowSource::Npy(r) => Ok(r.next_block(n, out)?),
        }
    }
}

fn import(a: &ImportArgs) -> Result<()> {
    if a.metric == Metric::Hamming {
        bail!("vectors import reads float vectors; hamming collections take bit vectors (use the library API)");
    }
    let mut src = RowSource::open(&a.file)?;
    let (rows, cols) = (a.limit.map_or(src.rows(), |n| n.min(src.rows())), src.cols());
    if rows == 0 {
        bail!("{} holds no vectors", a.file.display());
    }
    let db = Database::open(&a.db)?;
    let coll = if db.collection_names().contains(&a.collection) {
        let c = db.collection(&a.collection)?;
        let f = c
            .schema()
            .fields
            .iter()
            .find(|f| f.name == a.field)
            .with_context(|| format!("collection '{}' has no field '{}'", a.collection, a.field))?;
        if f.dim != cols {
            bail!("{} has {}-d vectors but field '{}' holds {}-d ones", a.file.display(), cols, a.field, f.dim);
        }
        c
    } else {
        let spec = crate::index_policy::with_budget(&a.index, a.memory_budget.as_deref())?;
        let schema = CollectionSchema { fields: vec![VectorField::new(&a.field, cols, a.metric, spec)] };
        db.create_collection(&a.collection, schema)?
    };
    let start = Instant::now();
    let (mut block, mut done, mut b) = (Vec::new(), 0usize, 0usize);
    while done < rows {
        let n = src.next_block(a.batch.max(1).min(rows - done), &mut block)?;
        if n == 0 {
            break;
        }
        let recs: Vec<Record> = block
            .chunks_exact(cols)
            .enumerate()
            .map(|(i, v)| {
                Record::new(a.start_id + (done + i) as u64).with_vector(a.field.as_str(), Vector::Dense(v.to_vec()))
            })
            .collect();
        coll.upsert(recs).with_context(|| format!("storing batch {b}"))?;
        done += n;
        b += 1;
    }
    // An `Auto` collection that crossed its threshold builds its graph in the background: wait,
    // so that the graph is saved for the next command (counted in the time).
    crate::index_policy::wait_for_builds(&coll, a.json);
    let secs = start.elapsed().as_secs_f64();
    let rate = rows as f64 / secs.max(1e-9);
    let index = coll.stats().fields.iter().find(|f| f.name == a.field).map(|f| f.index.clone());
    if a.json {
        println!(
            "{}",
            json!({"imported": rows, "dim": cols, "seconds": secs, "vectors_per_second": rate, "count": coll.count(), "index": index})
        );
    } else {
        println!(
            "imported {} vectors of dim {} into '{}' in {:.2} s ({:.0} vectors/s); collection now holds {}",
            rows,
            cols,
            a.collection,
            secs,
            rate,
            coll.count()
        );
    }
    Ok(())
}

fn search(a: &SearchArgs) -> Result<()> {
    let mut q = read_matrix(&a.queries)?;
    if let Some(n) = a.limit {
        q = q.head(n);
    }
    let db = Database::open_read_only(&a.db)?;
    let coll = crate::catalog::open_collection(&db, &a.collection)?;
    let field = match &a.field {
        Some(f) => f.clone(),
        None => coll.schema().fields[0].name.clone(),
    };
    let params = a.knobs.params();
    let reqs: Vec<SearchRequest> = (0..q.rows)
        .map(|i| {
            let mut r = SearchRequest::new(field.as_str(), Query::Vector(Vector::Dense(q.row(i).to_vec())), a.k);
            r.threshold = a.threshold;
            r.include_metadata = false;
            r.params = params.clone();
            r
        })
        .collect();
    let start = Instant::now();
    let hits = coll.search_batch(&reqs)?;
    let secs = start.elapsed().as_secs_f64();
    let qps = q.rows as f64 / secs.max(1e-9);
    let recall = match &a.ground_truth {
        Some(gt) => {
            let gt = vector_files::read_ivecs(gt)?;
            if gt.rows < q.rows {
                bail!("ground truth has {} rows for {} queries", gt.rows, q.rows);
            }
            let mut found = 0usize;
            let mut total = 0usize;
            for (i, h) in hits.iter().enumerate() {
                let truth: Vec<u64> = gt.row(i).iter().take(a.k).map(|&x| x as u64).collect();
                total += truth.len();
                found += h.iter().filter(|x| truth.contains(&x.id)).count();
            }
            Some(found as f64 / total.max(1) as f64)
        }
        None => None,
    };
    if a.json {
        let ids: Vec<Vec<(u64, f32)>> = hits.iter().map(|h| h.iter().map(|x| (x.id, x.distance)).collect()).collect();
        println!("{}", json!({"queries": q.rows, "seconds": secs, "qps": qps, "recall": recall, "results": ids}));
    } else {
        for (i, h) in hits.iter().enumerate().take(10) {
            let row: Vec<String> = h.iter().map(|x| format!("{}:{:.4}", x.id, x.distance)).collect();
            println!("query {i}: {}", row.join(" "));
        }
        if hits.len() > 10 {
            println!("… {} more queries", hits.len() - 10);
        }
        print!("{} queries in {:.3} s ({:.0} queries/s)", q.rows, secs, qps);
        match recall {
            Some(r) => println!(", recall@{} {:.4}", a.k, r),
            None => println!(),
        }
    }
    Ok(())
}
