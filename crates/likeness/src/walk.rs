//! Recursive discovery of image files under one or more folders.
//!
//! Files are found by extension ([`features::decode::is_image_path`]); hidden files and
//! folders (names starting with `.`) are skipped, symbolic links are not followed, and
//! an optional set of excluded folders (e.g. the database itself when it lives inside
//! an indexed tree) is never entered. Results are sorted by path so runs are repeatable.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{bail, Context, Result};

/// One image file found under a root.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundFile {
    /// The root folder it was found under (absolute, canonical).
    pub root: PathBuf,
    /// Absolute path of the file (the root joined with the relative path).
    pub path: PathBuf,
    /// ImageFolder label: the first folder below the root, `None` for files directly in the root.
    pub label: Option<String>,
    /// File size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when unknown).
    pub mtime_ns: u64,
}

/// Make `dir` absolute and canonical, checking that it is a directory.
pub fn canonical_dir(dir: &Path) -> Result<PathBuf> {
    let c = dir.canonicalize().with_context(|| format!("cannot open folder {}", dir.display()))?;
    if !c.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    Ok(c)
}

/// The ImageFolder label of `path` under `root`: the first path component below the root
/// when the file sits in a sub-folder.
pub fn label_for(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut comps = rel.components();
    let first = comps.next()?;
    // A file directly in the root has a single component: no label.
    comps.next()?;
    Some(first.as_os_str().to_string_lossy().into_owned())
}

/// Size and modification time (ns since epoch) of a file's metadata.
pub fn size_and_mtime(meta: &std::fs::Metadata) -> (u64, u64) {
    let mtime =
        meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_nanos() as u64).unwrap_or(0);
    (meta.len(), mtime)
}

/// Walk every root recursively and return the image files found, sorted by path.
///
/// Folders listed in `exclude` (canonical paths) are not entered. Errors reading a
/// folder entry are returned in the second list as `(path, reason)` and do not stop the walk.
pub fn find_images(roots: &[PathBuf], exclude: &[PathBuf]) -> (Vec<FoundFile>, Vec<(PathBuf, String)>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for root in roots {
        let walker = walkdir::WalkDir::new(root).follow_links(false).into_iter().filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            let excluded = e.file_type().is_dir() && exclude.iter().any(|x| e.path() == x);
            !hidden && !excluded
        });
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let p = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.clone());
                    errors.push((p, e.to_string()));
                    continue;
                }
            };
            if !entry.file_type().is_file() || !features::decode::is_image_path(entry.path()) {
                continue;
            }
            let (size, mtime_ns) = match entry.metadata() {
                Ok(m) => size_and_mtime(&m),
                Err(e) => {
                    errors.push((entry.path().to_path_buf(), e.to_string()));
                    continue;
                }
            };
            found.push(FoundFile {
                root: root.clone(),
                path: entry.path().to_path_buf(),
                label: label_for(root, entry.path()),
                size,
                mtime_ns,
            });
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found.dedup_by(|a, b| a.path == b.path);
    (found, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_image_folder_layout() {
        let root = Path::new("/data/pets");
        assert_eq!(label_for(root, Path::new("/data/pets/cat/1.jpg")).as_deref(), Some("cat"));
        assert_eq!(label_for(root, Path::new("/data/pets/cat/x/2.jpg")).as_deref(), Some("cat"));
        assert_eq!(label_for(root, Path::new("/data/pets/3.jpg")), None);
        assert_eq!(label_for(root, Path::new("/elsewhere/3.jpg")), None);
    }

    #[test]
    fn walk_finds_images_skips_hidden_and_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let root = canonical_dir(dir.path()).unwrap();
        for p in ["a/1.jpg", "a/2.PNG", "b/c/3.webp", "4.gif", ".hidden/5.jpg", "a/.6.jpg", "db/7.jpg", "a/notes.txt"] {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, b"x").unwrap();
        }
        let (found, errors) = find_images(std::slice::from_ref(&root), &[root.join("db")]);
        assert!(errors.is_empty());
        let rel: Vec<String> =
            found.iter().map(|f| f.path.strip_prefix(&root).unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(rel, ["4.gif", "a/1.jpg", "a/2.PNG", "b/c/3.webp"]);
        assert_eq!(found[1].label.as_deref(), Some("a"));
        assert_eq!(found[3].label.as_deref(), Some("b"));
        assert_eq!(found[0].label, None);
        assert!(found.iter().all(|f| f.size == 1 && f.mtime_ns > 0));
    }
}
