//! The metadata stored beside an image record's vectors, as one typed struct.
//!
//! vecdb keeps a record's metadata as a JSON object ([`vecdb::Metadata`]); likeness writes
//! these keys (absent ones are left out of the object):
//!
//! | key | type | what |
//! |---|---|---|
//! | `path` | string | the file's absolute path (lossy when the path is not valid UTF-8) |
//! | `path_raw` | string | only for a path that is not valid UTF-8: its bytes in hex, exact |
//! | `label` | string | ImageFolder label (the first folder under the root) |
//! | `size` | integer | size in bytes |
//! | `mtime` | integer | modification time, seconds since the Unix epoch |
//! | `mtime_ns` | integer | modification time, nanoseconds since the Unix epoch |
//! | `width`, `height` | integer | full-resolution size of the decoded, oriented image |
//! | `format` | string | detected format (`jpeg`, `png`, …) |
//! | `tags` | array of strings | top ImageNet labels, when a classifier ran |
//! | `root` | string | the indexed folder the file was found under (lossy as `path`) |
//! | `root_raw` | string | only for a root that is not valid UTF-8: its bytes in hex, exact |
//! | `original_name` | string | an upload's file name as the client sent it |
//!
//! [`ImageMeta::to_metadata`] gives exactly the object earlier versions wrote key by key, so
//! databases read and write the same. Reading is lenient, as the old key-by-key reads were:
//! a key that is missing, `null` or of another type (collections made by `likeness vectors
//! import` hold whatever metadata the user gave) reads as absent, and keys this struct does
//! not know are kept in [`ImageMeta::extra`].
//!
//! File names on Unix are bytes, not text. A path that is valid UTF-8 (nearly all) is stored as
//! it is; any other keeps a readable `path` (invalid bytes shown as U+FFFD) for people and an
//! exact `path_raw` that [`ImageMeta::path_buf`] reads back, so such a file is found, shown and
//! recognised as unchanged like any other.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use vecdb::Metadata;

/// The metadata of one image record (see the [module docs](self) for the stored keys).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageMeta {
    /// The file's absolute path.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub path: Option<String>,
    /// ImageFolder label.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub label: Option<String>,
    /// Size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub size: Option<u64>,
    /// Modification time, whole seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub mtime: Option<u64>,
    /// Modification time, nanoseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub mtime_ns: Option<u64>,
    /// Width of the decoded, oriented image (full resolution).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub width: Option<u32>,
    /// Height of the decoded, oriented image (full resolution).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub height: Option<u32>,
    /// Detected format (`jpeg`, `png`, …).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub format: Option<String>,
    /// Top ImageNet labels, most likely first (empty when no classifier ran).
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "lenient_or_default")]
    pub tags: Vec<String>,
    /// The indexed root folder the file was found under (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub root: Option<String>,
    /// For an upload, the file name the client sent.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub original_name: Option<String>,
    /// The path's bytes in hex, when they are not valid UTF-8 (see [`ImageMeta::path_buf`]).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub path_raw: Option<String>,
    /// The root's bytes in hex, when they are not valid UTF-8 (see [`ImageMeta::root_buf`]).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient")]
    pub root_raw: Option<String>,
    /// Keys this struct does not know, kept as they are.
    #[serde(flatten)]
    pub extra: Metadata,
}

impl ImageMeta {
    /// Read a stored metadata object (never fails: see the [module docs](self)).
    pub fn from_metadata(meta: Metadata) -> ImageMeta {
        // Every typed field reads leniently and `extra` takes any other key, so an object
        // always deserializes; the fallback is unreachable.
        serde_json::from_value(Value::Object(meta)).unwrap_or_default()
    }

    /// The metadata object to store.
    pub fn to_metadata(&self) -> Metadata {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            // Strings, integers and a map of JSON values always serialize to an object.
            other => unreachable!("ImageMeta serialized to {other:?}"),
        }
    }

    /// Store `path` losslessly: `path` for display, plus `path_raw` when it is not UTF-8.
    pub fn set_path(&mut self, path: &Path) {
        (self.path, self.path_raw) = encode_path(path);
    }

    /// Store `root` losslessly, as [`ImageMeta::set_path`] does.
    pub fn set_root(&mut self, root: &Path) {
        (self.root, self.root_raw) = encode_path(root);
    }

    /// The file's exact path (from `path_raw` when present).
    pub fn path_buf(&self) -> Option<PathBuf> {
        decode_path(self.path.as_deref(), self.path_raw.as_deref())
    }

    /// The indexed root's exact path (from `root_raw` when present).
    pub fn root_buf(&self) -> Option<PathBuf> {
        decode_path(self.root.as_deref(), self.root_raw.as_deref())
    }

    /// True when this record was made from the file version of this size and modification time.
    pub fn is_unchanged(&self, size: u64, mtime_ns: u64) -> bool {
        self.size == Some(size) && self.mtime_ns == Some(mtime_ns)
    }
}

/// A path as (display string, hex of its bytes when they are not UTF-8).
fn encode_path(path: &Path) -> (Option<String>, Option<String>) {
    match path.to_str() {
        Some(s) => (Some(s.to_string()), None),
        None => (Some(path.to_string_lossy().into_owned()), Some(to_hex(&path_bytes(path)))),
    }
}

/// The exact path: from the hex bytes when present and well-formed, else the string.
fn decode_path(text: Option<&str>, raw: Option<&str>) -> Option<PathBuf> {
    if let Some(bytes) = raw.and_then(from_hex) {
        return Some(path_from_bytes(bytes));
    }
    text.map(PathBuf::from)
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> Vec<u8> {
    path.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// A value of type `T`, or `None` when it is `null` or of another type.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// A value of type `T`, or `T::default()` when it is `null` or of another type.
fn lenient_or_default<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(d: D) -> Result<T, D::Error> {
    Ok(lenient(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's metadata as `likeness index` has written it (keys in vecdb's stored order).
    const STORED: &str = r#"{"format":"jpeg","height":480,"label":"cats","mtime":1700000000,"mtime_ns":1700000000123456789,"path":"/photos/cats/a.jpg","root":"/photos","size":12345,"tags":["tabby","Egyptian cat"],"width":640}"#;

    fn parse(json: &str) -> Metadata {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn stored_metadata_round_trips_byte_for_byte() {
        let meta = ImageMeta::from_metadata(parse(STORED));
        assert_eq!(meta.path.as_deref(), Some("/photos/cats/a.jpg"));
        assert_eq!(meta.label.as_deref(), Some("cats"));
        assert_eq!(meta.root.as_deref(), Some("/photos"));
        assert_eq!(meta.size, Some(12345));
        assert_eq!(meta.mtime, Some(1_700_000_000));
        assert_eq!(meta.mtime_ns, Some(1_700_000_000_123_456_789));
        assert_eq!((meta.width, meta.height), (Some(640), Some(480)));
        assert_eq!(meta.format.as_deref(), Some("jpeg"));
        assert_eq!(meta.tags, ["tabby", "Egyptian cat"]);
        assert_eq!(meta.original_name, None);
        assert!(meta.extra.is_empty());
        assert_eq!(serde_json::to_string(&meta.to_metadata()).unwrap(), STORED);
    }

    #[test]
    fn absent_keys_are_left_out_and_unknown_keys_kept() {
        let json = r#"{"camera":{"iso":200,"make":"X"},"original_name":"cat.png","path":"/u/1.png","rating":4.5}"#;
        let meta = ImageMeta::from_metadata(parse(json));
        assert_eq!(meta.original_name.as_deref(), Some("cat.png"));
        assert_eq!(meta.label, None);
        assert!(meta.tags.is_empty());
        assert_eq!(meta.extra.len(), 2, "{:?}", meta.extra);
        assert_eq!(meta.extra["rating"], 4.5);
        assert_eq!(serde_json::to_string(&meta.to_metadata()).unwrap(), json);
    }

    #[test]
    fn keys_of_another_type_read_as_absent() {
        let meta = ImageMeta::from_metadata(parse(r#"{"path":7,"label":null,"size":"big","tags":"x","width":-1}"#));
        assert_eq!(meta, ImageMeta::default());
        assert_eq!(ImageMeta::from_metadata(Metadata::new()), ImageMeta::default());
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_paths_round_trip_exactly() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/photos/caf\xe9/\xff.png"));
        let mut meta = ImageMeta::default();
        meta.set_path(path);
        meta.set_root(Path::new("/photos"));
        assert_eq!(meta.path.as_deref(), Some("/photos/caf\u{fffd}/\u{fffd}.png"));
        assert_eq!(meta.path_raw.as_deref(), Some("2f70686f746f732f636166e92fff2e706e67"));
        assert_eq!(meta.root_raw, None, "a UTF-8 path has no raw copy");
        let back = ImageMeta::from_metadata(meta.to_metadata());
        assert_eq!(back.path_buf().as_deref(), Some(path));
        assert_eq!(back.root_buf().as_deref(), Some(Path::new("/photos")));
        // a damaged raw copy falls back to the readable string
        let odd = ImageMeta { path: Some("/a".into()), path_raw: Some("zz".into()), ..Default::default() };
        assert_eq!(odd.path_buf().as_deref(), Some(Path::new("/a")));
    }

    #[test]
    fn unchanged_needs_same_size_and_mtime() {
        let meta = ImageMeta { size: Some(10), mtime_ns: Some(1_700_000_000_123_456_789), ..Default::default() };
        assert!(meta.is_unchanged(10, 1_700_000_000_123_456_789));
        assert!(!meta.is_unchanged(11, 1_700_000_000_123_456_789));
        assert!(!meta.is_unchanged(10, 1_700_000_000_123_456_788));
        assert!(!ImageMeta::default().is_unchanged(0, 0));
    }
}
