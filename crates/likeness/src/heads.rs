//! Projection heads (`cnn+head:PATH`, made by `likeness train`) kept inside the database.
//!
//! A collection created with `--features cnn+head:heads/catalogue` gets a field named
//! `cnn-head.catalogue`, and the head's two files are copied into
//! `<db>/heads/catalogue.{safetensors,json}`. Every later command (re-index, search, serve,
//! dedup) rebuilds the extractor from that copy, so the collection keeps working when the
//! original file moves or is retrained, and when the database is moved.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use features::head::artifact_paths;
use features::registry::head_feature_name;

/// (feature prefix taking a path, field-name prefix taking the head's name, Lite2 backbone).
const KINDS: [(&str, &str, bool); 2] =
    [("cnn+head:", "cnn-head.", false), ("cnn-lite2+head:", "cnn-lite2-head.", true)];

/// `(spec prefix, lite2, path)` of a feature given as `cnn+head:PATH`, `None` for other names.
fn split_spec(name: &str) -> Option<(&'static str, bool, &str)> {
    KINDS.iter().find_map(|(spec, _, lite2)| name.strip_prefix(spec).map(|rest| (*spec, *lite2, rest)))
}

/// `(spec prefix, head name)` of a head field name such as `cnn-head.catalogue`.
fn split_field(name: &str) -> Option<(&'static str, &str)> {
    KINDS.iter().find_map(|(spec, field, _)| name.strip_prefix(field).map(|rest| (*spec, rest)))
}

/// True for the field of a projection head (`cnn-head.NAME`, `cnn-lite2-head.NAME`).
pub fn is_head_field(name: &str) -> bool {
    split_field(name).is_some()
}

/// Where a database keeps its heads.
pub fn dir(db: &Path) -> PathBuf {
    db.join("heads")
}

/// The field name a feature gets: heads are named by their file stem
/// (`cnn+head:heads/catalogue` → `cnn-head.catalogue`); other names are unchanged.
pub fn canonical(name: &str) -> String {
    match split_spec(name) {
        Some((_, lite2, rest)) if !rest.is_empty() => head_feature_name(lite2, Path::new(rest)),
        _ => name.to_string(),
    }
}

/// Copy every head given by path in `names` into `db` and return the field names
/// ([`canonical`]). A head already installed under the same name must be byte-identical;
/// an installed head may also be named by its field (`cnn-head.catalogue`).
pub fn install(db: &Path, names: &[String]) -> Result<Vec<String>> {
    names.iter().map(|n| install_one(db, n)).collect()
}

fn install_one(db: &Path, name: &str) -> Result<String> {
    if let Some((_, label)) = split_field(name) {
        if artifact_paths(&dir(db).join(label)).0.is_file() {
            return Ok(name.to_string());
        }
        bail!("{name}: no head named '{label}' in {}", dir(db).display());
    }
    let Some((_, _, rest)) = split_spec(name) else {
        return Ok(name.to_string());
    };
    let field = canonical(name);
    let label = split_field(&field).map_or("", |(_, l)| l);
    if label.is_empty() || field.len() > 64 || !label.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)) {
        bail!(
            "head file name '{label}' in '{name}': use up to 48 letters, digits, '_' or '-' (it becomes the field \
             name {field})"
        );
    }
    let (dst_w, dst_j) = artifact_paths(&dir(db).join(label));
    let (src_w, src_j) = artifact_paths(Path::new(rest));
    if !src_w.is_file() {
        bail!("{name}: no head at {} (train one with `likeness train … --out {rest}`)", src_w.display());
    }
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let (w, j) = (read(&src_w)?, read(&src_j)?);
    if dst_w.is_file() {
        if read(&dst_w)? == w && read(&dst_j)? == j {
            return Ok(field);
        }
        bail!(
            "{name}: a different head named '{label}' is already in {}; give the new head another file name",
            dir(db).display()
        );
    }
    std::fs::create_dir_all(dir(db)).with_context(|| format!("creating {}", dir(db).display()))?;
    // The weights land last, atomically: a half-copied head is never taken as installed.
    std::fs::write(&dst_j, &j).with_context(|| format!("writing {}", dst_j.display()))?;
    let tmp = dst_w.with_extension("safetensors.tmp");
    std::fs::write(&tmp, &w).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &dst_w).with_context(|| format!("writing {}", dst_w.display()))?;
    Ok(field)
}

/// The name to build an extractor from: a head field of `db` resolves to the copy installed
/// there (`cnn-head.catalogue` → `cnn+head:<db>/heads/catalogue`); anything else is unchanged.
pub fn resolve(name: &str, db: Option<&Path>) -> String {
    match (split_field(name), db) {
        (Some((spec, label)), Some(db)) => format!("{spec}{}", dir(db).join(label).display()),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_named_by_file_stem_and_copied_once() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        let src = tmp.path().join("heads").join("catalogue");
        std::fs::create_dir_all(src.parent().unwrap()).unwrap();
        std::fs::write(src.with_extension("safetensors"), b"weights").unwrap();
        std::fs::write(src.with_extension("json"), b"{}").unwrap();
        let spec = format!("cnn+head:{}", src.display());
        assert_eq!(canonical(&spec), "cnn-head.catalogue");
        assert_eq!(canonical("cnn-lite2+head:x/y.json"), "cnn-lite2-head.y");
        assert_eq!(canonical("color"), "color");
        let e = install(&db, &["cnn-head.catalogue".into()]).unwrap_err().to_string();
        assert!(e.contains("no head named 'catalogue'"), "{e}");
        let names = install(&db, &[spec.clone(), "phash".into()]).unwrap();
        assert_eq!(names, ["cnn-head.catalogue", "phash"]);
        assert!(is_head_field(&names[0]) && !is_head_field("cnn"));
        assert_eq!(std::fs::read(dir(&db).join("catalogue.safetensors")).unwrap(), b"weights");
        // Installing again is a no-op; the field name works once installed.
        assert_eq!(install(&db, &[spec.clone(), "cnn-head.catalogue".into()]).unwrap().len(), 2);
        let resolved = resolve("cnn-head.catalogue", Some(&db));
        assert_eq!(resolved, format!("cnn+head:{}", dir(&db).join("catalogue").display()));
        assert_eq!(resolve("cnn-head.catalogue", None), "cnn-head.catalogue");
        assert_eq!(resolve("cnn", Some(&db)), "cnn");
        // A different head under the same name is refused; so are missing files and odd names.
        std::fs::write(src.with_extension("safetensors"), b"retrained").unwrap();
        let e = install(&db, &[spec]).unwrap_err().to_string();
        assert!(e.contains("different head named 'catalogue'"), "{e}");
        let e = install(&db, &["cnn+head:nowhere/x".into()]).unwrap_err().to_string();
        assert!(e.contains("no head at"), "{e}");
        for bad in ["cnn+head:bad name", "cnn+head:dots.in.name", &format!("cnn+head:{}", "x".repeat(60))] {
            let e = install(&db, &[bad.to_string()]).unwrap_err().to_string();
            assert!(e.contains("letters, digits"), "{bad}: {e}");
        }
    }
}
