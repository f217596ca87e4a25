//! The on-disk cache of backbone embeddings, keyed by file path, size and modification time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::FeatureError;

/// Backbone embeddings of image files kept on disk between runs, so that training epochs (and later
/// runs on the same tree) do not recompute them. Entries are keyed by file path, size and modification
/// time, so an edited file is recomputed. One cache file holds one base extractor's vectors; it is a
/// safetensors file with a `vectors [n, dim]` tensor and the keys as JSON metadata.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingCache {
    base: String,
    dim: usize,
    entries: HashMap<(String, u64, u64), Vec<f32>>,
}

const CACHE_FORMAT: &str = "likeness-embedding-cache-v1";

impl EmbeddingCache {
    /// An empty cache for vectors of extractor `base`.
    pub fn new(base: &str) -> Self {
        EmbeddingCache { base: base.to_string(), dim: 0, entries: HashMap::new() }
    }

    /// Read `file`; a missing file gives an empty cache, and so does one written for another base
    /// extractor or in another format (it will be overwritten on [`EmbeddingCache::save`]). A file that
    /// exists but cannot be parsed is an error naming it.
    pub fn open(file: &Path, base: &str) -> Result<Self, FeatureError> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(base)),
            Err(source) => return Err(FeatureError::Io { path: file.to_path_buf(), source }),
        };
        let bad = |why: String| FeatureError::ModelFormat(format!("{}: not an embedding cache: {why}", file.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(CACHE_FORMAT)
            || meta.get("base").map(String::as_str) != Some(base)
        {
            return Ok(Self::new(base));
        }
        let keys: Vec<(String, u64, u64)> =
            serde_json::from_str(meta.get("keys").map_or("", String::as_str)).map_err(|e| bad(format!("keys: {e}")))?;
        let t = st.tensor("vectors").map_err(|e| bad(e.to_string()))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 || t.shape()[0] != keys.len() {
            return Err(bad(format!("vectors tensor is {:?} {:?} for {} keys", t.dtype(), t.shape(), keys.len())));
        }
        let dim = t.shape()[1];
        let floats: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let entries = keys.into_iter().zip(floats.chunks(dim.max(1)).map(<[f32]>::to_vec)).collect();
        Ok(EmbeddingCache { base: base.to_string(), dim, entries })
    }

    /// The cached vector of `path` if its size and modification time still match.
    pub fn get(&self, path: &Path, size: u64, mtime_ns: u64) -> Option<&[f32]> {
        self.entries.get(&(path.to_string_lossy().into_owned(), size, mtime_ns)).map(Vec::as_slice)
    }

    /// Remember `vector` for `path` (replacing any older entry of the same file).
    pub fn insert(&mut self, path: &Path, size: u64, mtime_ns: u64, vector: Vec<f32>) -> Result<(), FeatureError> {
        if self.dim == 0 {
            self.dim = vector.len();
        }
        if vector.len() != self.dim || vector.is_empty() {
            return Err(FeatureError::InvalidArgument(format!(
                "embedding cache holds {}-d vectors, {} gave {}",
                self.dim,
                path.display(),
                vector.len()
            )));
        }
        let name = path.to_string_lossy().into_owned();
        self.entries.retain(|(p, _, _), _| *p != name);
        self.entries.insert((name, size, mtime_ns), vector);
        Ok(())
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write the cache to `file` (through a temporary file and a rename, so a crash leaves the old one).
    pub fn save(&self, file: &Path) -> Result<(), FeatureError> {
        let mut keys: Vec<&(String, u64, u64)> = self.entries.keys().collect();
        keys.sort();
        let mut data = Vec::with_capacity(keys.len() * self.dim * 4);
        for k in &keys {
            data.extend(self.entries[*k].iter().flat_map(|x| x.to_le_bytes()));
        }
        let meta = HashMap::from([
            ("format".to_string(), CACHE_FORMAT.to_string()),
            ("base".to_string(), self.base.clone()),
            ("keys".to_string(), serde_json::to_string(&keys).unwrap_or_default()),
        ]);
        let fail = |why: String| {
            FeatureError::InvalidArgument(format!("{}: cannot write embedding cache: {why}", file.display()))
        };
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![keys.len(), self.dim], &data)
            .map_err(|e| fail(e.to_string()))?;
        let bytes = safetensors::serialize([("vectors", view)], Some(meta)).map_err(|e| fail(e.to_string()))?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FeatureError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).map_err(|source| FeatureError::Io { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, file).map_err(|source| FeatureError::Io { path: file.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_cache_round_trip_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c/emb.safetensors");
        let mut c = EmbeddingCache::open(&file, "cnn").unwrap();
        assert!(c.is_empty());
        c.insert(Path::new("/a.png"), 10, 5, vec![1.0, 2.0, 3.0]).unwrap();
        c.insert(Path::new("/b.png"), 11, 6, vec![4.0, 5.0, 6.0]).unwrap();
        assert!(c.insert(Path::new("/c.png"), 1, 1, vec![1.0]).is_err());
        c.save(&file).unwrap();
        let mut r = EmbeddingCache::open(&file, "cnn").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(Path::new("/b.png"), 11, 6), Some(&[4.0f32, 5.0, 6.0][..]));
        assert_eq!(r.get(Path::new("/b.png"), 11, 7), None, "a touched file is recomputed");
        r.insert(Path::new("/b.png"), 11, 7, vec![0.0; 3]).unwrap();
        assert_eq!(r.len(), 2, "the stale entry is replaced");
        assert!(EmbeddingCache::open(&file, "cnn-lite2").unwrap().is_empty(), "another base starts empty");
        std::fs::write(&file, b"garbage").unwrap();
        let err = EmbeddingCache::open(&file, "cnn").unwrap_err();
        assert!(err.to_string().contains("emb.safetensors"), "{err}");
    }
}
