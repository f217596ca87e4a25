//! Reader for PyTorch's legacy (pre-1.6, non-zip) checkpoint format.
//!
//! candle's `pickle::read_all` / `VarBuilder::from_pth` only read the zip format, so this module
//! parses the legacy layout on top of candle's pickle support:
//!
//! 1. a pickle holding the magic number `0x1950a86a20f9469cfc6c`,
//! 2. a pickle holding the protocol version (1001),
//! 3. a pickle holding system info (endianness, type sizes),
//! 4. the pickled object (here a `state_dict`: name → `torch._utils._rebuild_tensor_v2(...)`),
//!    whose storages are persistent ids `('storage', torch.FloatStorage, key, location, numel, view)`,
//! 5. a pickle listing the storage keys in file order,
//! 6. the raw storages, in that order, each preceded by its element count as 8-byte little endian.
//!
//! Tensors are materialized in their logical (row-major, PyTorch) order by following the
//! strides recorded in the pickle: the EfficientNet-Lite checkpoints store convolutions with
//! TensorFlow's HWIO memory layout and the classifier column-major.

use std::collections::HashMap;
use std::io::BufRead;

use candle_core::pickle::{Object, Stack};

use crate::error::{FeatureError, Result};

/// The magic-number pickle every legacy checkpoint starts with (protocol 2, LONG1 of 10 bytes).
const MAGIC_PICKLE: [u8; 15] =
    [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e];
/// The only legacy protocol version PyTorch ever wrote.
const PROTOCOL_VERSION: i64 = 1001;

/// One tensor of a checkpoint, materialized in logical row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct PthTensor {
    /// Logical shape (PyTorch order, e.g. OIHW for convolutions).
    pub shape: Vec<usize>,
    /// The values, row-major over `shape`. Integer tensors are converted to `f32`.
    pub data: Vec<f32>,
}

/// Element type of a legacy storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    F32,
    I64,
}

impl StorageKind {
    fn from_class(name: &str) -> Option<Self> {
        match name {
            "FloatStorage" => Some(StorageKind::F32),
            "LongStorage" => Some(StorageKind::I64),
            _ => None,
        }
    }
    fn size(self) -> usize {
        match self {
            StorageKind::F32 => 4,
            StorageKind::I64 => 8,
        }
    }
}

/// Where a tensor's values live.
#[derive(Debug)]
struct TensorRef {
    name: String,
    storage_key: String,
    kind: StorageKind,
    storage_numel: usize,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn format_err(what: impl std::fmt::Display) -> FeatureError {
    FeatureError::ModelFormat(format!("legacy .pth: {what}"))
}

fn read_pickle<R: BufRead>(r: &mut R, what: &str) -> Result<Object> {
    let mut stack = Stack::empty();
    stack.read_loop(r).map_err(|e| format_err(format!("cannot read the {what} pickle: {e}")))?;
    stack.finalize().map_err(|e| format_err(format!("empty {what} pickle: {e}")))
}

fn usize_of(o: Object, what: &str) -> Result<usize> {
    let v = o.int_or_long().map_err(|o| format_err(format!("{what}: expected an integer, found {o:?}")))?;
    usize::try_from(v).map_err(|_| format_err(format!("{what}: negative value {v}")))
}

fn usize_tuple(o: Object, what: &str) -> Result<Vec<usize>> {
    let items = o.tuple().map_err(|o| format_err(format!("{what}: expected a tuple, found {o:?}")))?;
    items.into_iter().map(|i| usize_of(i, what)).collect()
}

/// Parse one `name → _rebuild_tensor_v2(storage, offset, size, stride, ...)` entry.
fn tensor_ref(name: String, value: Object) -> Result<TensorRef> {
    let (callable, args) = value.reduce().map_err(|o| format_err(format!("{name}: expected a tensor, found {o:?}")))?;
    match callable {
        Object::Class { module_name, class_name }
            if module_name == "torch._utils" && class_name == "_rebuild_tensor_v2" => {}
        other => return Err(format_err(format!("{name}: unsupported tensor constructor {other:?}"))),
    }
    let mut args = args.tuple().map_err(|o| format_err(format!("{name}: bad tensor arguments {o:?}")))?.into_iter();
    let (Some(storage), Some(offset), Some(size), Some(stride)) = (args.next(), args.next(), args.next(), args.next())
    else {
        return Err(format_err(format!("{name}: too few tensor arguments")));
    };
    let pid = storage
        .persistent_load()
        .and_then(|p| p.tuple())
        .map_err(|o| format_err(format!("{name}: bad storage reference {o:?}")))?;
    if pid.len() < 5 || pid[0] != Object::Unicode("storage".into()) {
        return Err(format_err(format!("{name}: bad storage reference {pid:?}")));
    }
    let mut pid = pid.into_iter().skip(1);
    let class = pid.next().unwrap_or(Object::None);
    let kind = match &class {
        Object::Class { module_name, class_name } if module_name == "torch" => StorageKind::from_class(class_name),
        _ => None,
    }
    .ok_or_else(|| format_err(format!("{name}: unsupported storage type {class:?}")))?;
    let storage_key = pid
        .next()
        .and_then(|k| k.unicode().ok())
        .ok_or_else(|| format_err(format!("{name}: storage key is not a string")))?;
    let _location = pid.next();
    let storage_numel = usize_of(pid.next().unwrap_or(Object::None), &format!("{name} storage size"))?;
    let offset = usize_of(offset, &format!("{name} offset"))?;
    let shape = usize_tuple(size, &format!("{name} size"))?;
    let stride = usize_tuple(stride, &format!("{name} stride"))?;
    if shape.len() != stride.len() {
        return Err(format_err(format!("{name}: size {shape:?} and stride {stride:?} differ in rank")));
    }
    // The furthest element addressed must lie inside the storage.
    let numel: usize = shape.iter().product();
    if numel > 0 {
        let last: usize = offset + shape.iter().zip(&stride).map(|(d, s)| (d - 1) * s).sum::<usize>();
        if last >= storage_numel {
            return Err(format_err(format!(
                "{name}: size {shape:?} stride {stride:?} offset {offset} overruns its storage of {storage_numel} elements"
            )));
        }
    }
    Ok(TensorRef { name, storage_key, kind, storage_numel, offset, shape, stride })
}

/// Copy a strided view of `storage` into a row-major vector.
fn gather(storage: &[f32], t: &TensorRef) -> Vec<f32> {
    let numel: usize = t.shape.iter().product();
    let mut out = Vec::with_capacity(numel);
    if numel == 0 {
        return out;
    }
    let rank = t.shape.len();
    let mut index = vec![0usize; rank];
    for _ in 0..numel {
        let pos: usize = t.offset + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        out.push(storage[pos]);
        for d in (0..rank).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Read every tensor of a legacy checkpoint (a plain `state_dict`).
pub fn read_legacy_pth<R: BufRead>(mut r: R) -> Result<Vec<(String, PthTensor)>> {
    let mut magic = [0u8; MAGIC_PICKLE.len()];
    r.read_exact(&mut magic).map_err(|e| format_err(format!("cannot read the header: {e}")))?;
    if magic != MAGIC_PICKLE {
        let hint =
            if magic.starts_with(b"PK") { " (this is a zip-format checkpoint, not the legacy format)" } else { "" };
        return Err(format_err(format!("not a legacy PyTorch checkpoint: bad magic number{hint}")));
    }
    let protocol = read_pickle(&mut r, "protocol version")?
        .int_or_long()
        .map_err(|o| format_err(format!("protocol version is not an integer: {o:?}")))?;
    if protocol != PROTOCOL_VERSION {
        return Err(format_err(format!("unsupported protocol version {protocol}")));
    }
    // System info: only little-endian files are supported.
    let sys_info = read_pickle(&mut r, "system info")?;
    if let Object::Dict(items) = &sys_info {
        let little = items.iter().find(|(k, _)| *k == Object::Unicode("little_endian".into()));
        if let Some((_, Object::Bool(false))) = little {
            return Err(format_err("big-endian checkpoints are not supported"));
        }
    }
    let state = read_pickle(&mut r, "state_dict")?
        .dict()
        .map_err(|o| format_err(format!("the checkpoint is not a state_dict but {o:?}")))?;
    let mut refs = Vec::with_capacity(state.len());
    for (name, value) in state {
        let name = name.unicode().map_err(|o| format_err(format!("state_dict key is not a string: {o:?}")))?;
        if name == "_metadata" {
            continue; // module versions, attached to the OrderedDict as an attribute
        }
        refs.push(tensor_ref(name, value)?);
    }
    let keys_obj = read_pickle(&mut r, "storage keys")?;
    let keys: Vec<String> = match keys_obj {
        Object::List(items) | Object::Tuple(items) => items
            .into_iter()
            .map(|k| k.unicode().map_err(|o| format_err(format!("storage key is not a string: {o:?}"))))
            .collect::<Result<_>>()?,
        other => return Err(format_err(format!("storage keys are not a list: {other:?}"))),
    };
    // What each storage holds, as declared by the tensors that use it.
    let mut declared: HashMap<&str, (StorageKind, usize)> = HashMap::new();
    for t in &refs {
        if let Some((k, n)) = declared.insert(&t.storage_key, (t.kind, t.storage_numel)) {
            if k != t.kind || n != t.storage_numel {
                return Err(format_err(format!("{}: storage {} declared twice differently", t.name, t.storage_key)));
            }
        }
    }
    let mut storages: HashMap<String, Vec<f32>> = HashMap::with_capacity(keys.len());
    for key in keys {
        let mut count = [0u8; 8];
        r.read_exact(&mut count).map_err(|e| format_err(format!("storage {key}: truncated file ({e})")))?;
        let count = u64::from_le_bytes(count) as usize;
        let (kind, numel) = declared.get(key.as_str()).copied().unwrap_or((StorageKind::F32, count));
        if count != numel {
            return Err(format_err(format!("storage {key}: {count} elements in the file, {numel} declared")));
        }
        let mut bytes = vec![0u8; count * kind.size()];
        r.read_exact(&mut bytes).map_err(|e| format_err(format!("storage {key}: truncated file ({e})")))?;
        let values = match kind {
            StorageKind::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            StorageKind::I64 => {
                bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect()
            }
        };
        storages.insert(key, values);
    }
    refs.into_iter()
        .map(|t| {
            let storage = storages
                .get(&t.storage_key)
                .ok_or_else(|| format_err(format!("{}: storage {} is missing from the file", t.name, t.storage_key)))?;
            let data = gather(storage, &t);
            Ok((t.name.clone(), PthTensor { shape: t.shape, data }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_follows_strides() {
        // A 2×3 matrix stored column-major: logical [[0,1,2],[3,4,5]].
        let storage = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
        let t = TensorRef {
            name: "x".into(),
            storage_key: "0".into(),
            kind: StorageKind::F32,
            storage_numel: 6,
            offset: 0,
            shape: vec![2, 3],
            stride: vec![1, 2],
        };
        assert_eq!(gather(&storage, &t), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_non_checkpoints() {
        let err = read_legacy_pth(&b"PK\x03\x04 this is a zip file, not legacy"[..]).unwrap_err();
        assert!(matches!(err, FeatureError::ModelFormat(ref m) if m.contains("zip")), "{err}");
        let err = read_legacy_pth(&b"short"[..]).unwrap_err();
        assert!(matches!(err, FeatureError::ModelFormat(_)), "{err}");
    }
}
