//! The byte layout of index segment files (format-spec/indexes.md#segment-files).
//!
//! ```text
//! offset 0   8 bytes   magic "VLKIDX01"
//! offset 8   8 bytes   header length H, u64 little-endian
//! offset 16  H bytes   header: JSON {"kind", "params", "blobs": {name: [offset, length]}}
//! ...                  blobs, each at an offset that is a multiple of 8, little-endian values
//! ```
//! A reader fetches the first 16 bytes, then the header, then only the blobs it needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// File magic.
pub const MAGIC: &[u8; 8] = b"VLKIDX01";
/// Bytes before the header.
pub const PREFIX_LEN: usize = 16;

/// The JSON header of a segment file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegmentHeader {
    /// `ivf` or `hnsw`.
    pub kind: String,
    /// Kind-specific parameters.
    pub params: serde_json::Value,
    /// Byte ranges of the blobs, by name.
    pub blobs: BTreeMap<String, (u64, u64)>,
}

impl SegmentHeader {
    /// The byte range of blob `name`.
    pub fn blob(&self, name: &str, path: &str) -> Result<std::ops::Range<u64>> {
        let (offset, len) = self
            .blobs
            .get(name)
            .ok_or_else(|| Error::corrupt(path, format!("index segment lacks blob '{name}'")))?;
        Ok(*offset..offset + len)
    }
}

/// Builds a segment file in memory.
#[derive(Debug, Default)]
pub struct SegmentWriter {
    blobs: Vec<(String, Vec<u8>)>,
}

impl SegmentWriter {
    /// Adds a blob of raw bytes.
    pub fn blob(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.blobs.push((name.into(), bytes));
    }

    /// Lays out the file.
    pub fn finish(self, kind: &str, params: serde_json::Value) -> Result<Vec<u8>> {
        // Offsets depend on the header length, which depends on the offsets' digits: lay out
        // with a generous fixed header size, then pad the real header up to it.
        let names: Vec<(String, u64)> = self.blobs.iter().map(|(n, b)| (n.clone(), b.len() as u64)).collect();
        let layout = |start: u64| {
            let mut offset = start;
            let mut blobs = BTreeMap::new();
            for (name, len) in &names {
                blobs.insert(name.clone(), (offset, *len));
                offset = (offset + len).div_ceil(8) * 8;
            }
            SegmentHeader {
                kind: kind.to_string(),
                params: params.clone(),
                blobs,
            }
        };
        let encode = |h: &SegmentHeader| serde_json::to_vec(h).map_err(|e| Error::Internal(e.to_string()));
        let estimate = encode(&layout(u64::MAX / 2))?.len() as u64;
        let data_start = (PREFIX_LEN as u64 + estimate).div_ceil(8) * 8;
        let header = layout(data_start);
        let mut json = encode(&header)?;
        json.resize((data_start - PREFIX_LEN as u64) as usize, b' ');
        let mut out = Vec::with_capacity(data_start as usize + self.blobs.iter().map(|b| b.1.len() + 8).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        // Each blob is freed once copied, so the file and its blobs are not held in full twice.
        for (_, bytes) in self.blobs {
            out.resize(out.len().div_ceil(8) * 8, 0);
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }
}

/// Reads the header length from the first [`PREFIX_LEN`] bytes.
pub fn header_len(prefix: &[u8], path: &str) -> Result<usize> {
    if prefix.len() < PREFIX_LEN || &prefix[..8] != MAGIC {
        return Err(Error::corrupt(path, "not a vlake index segment (bad magic)"));
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&prefix[8..16]);
    let len = u64::from_le_bytes(len);
    usize::try_from(len)
        .ok()
        .filter(|l| *l < 1 << 30)
        .ok_or_else(|| Error::corrupt(path, format!("index header length {len} is absurd")))
}

/// Parses the header bytes (those after the prefix).
pub fn parse_header(bytes: &[u8], path: &str) -> Result<SegmentHeader> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, format!("bad index header: {e}")))
}

/// f32 values as little-endian bytes.
pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// u64 values as little-endian bytes.
pub fn u64_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// u32 values as little-endian bytes.
pub fn u32_bytes(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode<const N: usize, T>(bytes: &[u8], path: &str, what: &str, f: fn([u8; N]) -> T) -> Result<Vec<T>> {
    if !bytes.len().is_multiple_of(N) {
        return Err(Error::corrupt(
            path,
            format!("{what}: {} bytes is not a multiple of {N}", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| f(c.try_into().unwrap_or([0; N])))
        .collect())
}

/// Little-endian bytes as f32 values.
pub fn to_f32(bytes: &[u8], path: &str, what: &str) -> Result<Vec<f32>> {
    decode(bytes, path, what, f32::from_le_bytes)
}

/// Little-endian bytes as u64 values.
pub fn to_u64(bytes: &[u8], path: &str, what: &str) -> Result<Vec<u64>> {
    decode(bytes, path, what, u64::from_le_bytes)
}

/// Little-endian bytes as u32 values.
pub fn to_u32(bytes: &[u8], path: &str, what: &str) -> Result<Vec<u32>> {
    decode(bytes, path, what, u32::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        let mut w = SegmentWriter::default();
        w.blob("a", f32_bytes(&[1.0, 2.5]));
        w.blob("b", vec![1, 2, 3]);
        w.blob("c", u64_bytes(&[7, u64::MAX]));
        let bytes = w.finish("ivf", serde_json::json!({"dim": 2})).unwrap();
        let len = header_len(&bytes, "x").unwrap();
        let header = parse_header(&bytes[PREFIX_LEN..PREFIX_LEN + len], "x").unwrap();
        let range = |n: &str| {
            let r = header.blob(n, "x").unwrap();
            assert_eq!(r.start % 8, 0);
            &bytes[r.start as usize..r.end as usize]
        };
        assert_eq!(to_f32(range("a"), "x", "a").unwrap(), [1.0, 2.5]);
        assert_eq!(range("b"), [1, 2, 3]);
        assert_eq!(to_u64(range("c"), "x", "c").unwrap(), [7, u64::MAX]);
        assert!(header_len(b"garbage garbage!", "x").is_err());
        assert!(to_f32(&[1, 2, 3], "x", "a").is_err());
    }
}
