//! Helpers shared by the vecdb integration tests (each test binary compiles this module and
//! uses part of it, hence the `dead_code` allowance).

#![allow(dead_code)]

pub mod clustered;
pub mod rng;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Every file under `dir` (recursively) with its bytes: compare two of these to prove that
/// something wrote nothing.
pub fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The write-ahead log (`wal-<gen>.log`) of the collection directory `cdir`; panics if there is none.
pub fn wal_file(cdir: &Path) -> PathBuf {
    fs::read_dir(cdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap_or_else(|| panic!("no wal-*.log in {}", cdir.display()))
}
