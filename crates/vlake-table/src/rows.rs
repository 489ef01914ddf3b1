//! Which rows of a data file are live and which row ids they have: deletion files and row-id
//! files (format-spec/manifest.md#deletion-files and #row-id-files). Both are 64-bit Roaring
//! bitmaps in the portable serialisation; they are immutable, so they are cached by path.

use std::sync::Arc;

use roaring::RoaringTreemap;
use vlake_format::{DataFile, Error, Result};
use vlake_io::TableLocation;

use crate::session::{CacheKind, Session, SessionOptions};

/// The live rows of one data file and their row ids.
#[derive(Clone, Debug)]
pub(crate) struct FileRows {
    num_rows: u64,
    row_id_start: u64,
    /// Deleted positions, when the file has a deletion file.
    deleted: Option<Arc<RoaringTreemap>>,
    /// The row ids of the file's rows in ascending order, when the file has a row-id file.
    ids: Option<Arc<RoaringTreemap>>,
}

impl FileRows {
    /// Loads (or takes from the cache) the deletion and row-id files of `file`, after checking
    /// its row count against the file's footer (the count sizes every set built here).
    pub async fn load(location: &TableLocation, session: &Session, file: &DataFile) -> Result<Self> {
        crate::scan::load_footer(location, session, file).await?;
        let deleted = match &file.deletion {
            Some(d) => {
                let bitmap = load_bitmap(location, session, &d.path).await?;
                if bitmap.len() != d.num_deleted || bitmap.max().is_some_and(|m| m >= file.num_rows) {
                    return Err(Error::corrupt(
                        &d.path,
                        format!(
                            "holds {} positions up to {:?}; {} says {} deleted of {} rows",
                            bitmap.len(),
                            bitmap.max(),
                            file.path,
                            d.num_deleted,
                            file.num_rows
                        ),
                    ));
                }
                Some(bitmap)
            }
            None => None,
        };
        let ids = match &file.row_ids {
            Some(r) => {
                let bitmap = load_bitmap(location, session, &r.path).await?;
                if bitmap.len() != file.num_rows || bitmap.min().is_some_and(|m| m != file.row_id_start) {
                    return Err(Error::corrupt(
                        &r.path,
                        format!(
                            "holds {} row ids from {:?}; {} has {} rows from row id {}",
                            bitmap.len(),
                            bitmap.min(),
                            file.path,
                            file.num_rows,
                            file.row_id_start
                        ),
                    ));
                }
                Some(bitmap)
            }
            None => None,
        };
        Ok(Self {
            num_rows: file.num_rows,
            row_id_start: file.row_id_start,
            deleted,
            ids,
        })
    }

    /// The deleted positions (empty when none are).
    pub fn deleted(&self) -> RoaringTreemap {
        self.deleted.as_deref().cloned().unwrap_or_default()
    }

    /// The live positions, or `None` when every row is live.
    pub fn live_positions(&self) -> Option<RoaringTreemap> {
        let deleted = self.deleted.as_deref()?;
        let mut live = RoaringTreemap::new();
        live.insert_range(0..self.num_rows);
        live -= deleted;
        Some(live)
    }

    /// The row id of the row at `position`.
    pub fn id_at(&self, position: u64) -> Option<u64> {
        match &self.ids {
            Some(ids) => ids.select(position),
            None => (position < self.num_rows).then(|| self.row_id_start + position),
        }
    }

    /// The row ids of `positions` (ascending), or of every row when `None`.
    pub fn ids_at(&self, positions: Option<&RoaringTreemap>) -> Vec<u64> {
        match (positions, &self.ids) {
            (None, None) => (self.row_id_start..self.row_id_start + self.num_rows).collect(),
            (None, Some(ids)) => ids.iter().collect(),
            (Some(p), None) => p.iter().map(|p| self.row_id_start + p).collect(),
            (Some(p), Some(ids)) => {
                // Both ascending: walk the ids once.
                let mut all = ids.iter().enumerate();
                p.iter()
                    .filter_map(|want| all.find(|(i, _)| *i as u64 == want).map(|(_, id)| id))
                    .collect()
            }
        }
    }

    /// The position of the live row with id `id`, if this file holds it.
    pub fn position_of(&self, id: u64) -> Option<u64> {
        let position = match &self.ids {
            Some(ids) => ids.contains(id).then(|| ids.rank(id) - 1)?,
            None => {
                let p = id.checked_sub(self.row_id_start)?;
                (p < self.num_rows).then_some(p)?
            }
        };
        match &self.deleted {
            Some(d) if d.contains(position) => None,
            _ => Some(position),
        }
    }

    /// The row ids of the live rows.
    pub fn live_ids(&self) -> RoaringTreemap {
        let mut ids = match &self.ids {
            Some(ids) => ids.as_ref().clone(),
            None => {
                let mut all = RoaringTreemap::new();
                all.insert_range(self.row_id_start..self.row_id_start + self.num_rows);
                all
            }
        };
        if let Some(deleted) = &self.deleted {
            for p in deleted.iter() {
                if let Some(id) = self.id_at(p) {
                    ids.remove(id);
                }
            }
        }
        ids
    }
}

/// Serialises a bitmap as the spec's portable 64-bit Roaring format.
pub(crate) fn encode_bitmap(bitmap: &RoaringTreemap) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(bitmap.serialized_size());
    bitmap
        .serialize_into(&mut bytes)
        .map_err(|e| Error::Internal(format!("cannot encode a bitmap: {e}")))?;
    Ok(bytes)
}

/// Deletion and row-id bitmaps, by table URI and path.
struct Bitmaps;

impl CacheKind for Bitmaps {
    type Key = (String, String);
    type Value = Arc<RoaringTreemap>;
    const NAME: &'static str = "bitmaps";

    fn capacity(options: &SessionOptions) -> usize {
        options.metadata_cache_bytes
    }

    fn weigh(value: &Arc<RoaringTreemap>) -> usize {
        value.serialized_size()
    }
}

/// Reads the bitmap at `path`, from the session's cache when it was read before.
async fn load_bitmap(location: &TableLocation, session: &Session, path: &str) -> Result<Arc<RoaringTreemap>> {
    let key = (location.uri().to_string(), path.to_string());
    session
        .cache::<Bitmaps>()
        .get_or_load(key, async {
            let bytes = match location.get(path).await {
                Err(Error::NotFound { .. }) => {
                    return Err(Error::not_found(format!("{path} of table {}", location.uri())));
                }
                other => other?,
            };
            Ok(Arc::new(RoaringTreemap::deserialize_from(&bytes[..]).map_err(|e| {
                Error::corrupt(path, format!("not a 64-bit Roaring bitmap: {e}"))
            })?))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(num_rows: u64, start: u64, deleted: &[u64], ids: Option<&[u64]>) -> FileRows {
        FileRows {
            num_rows,
            row_id_start: start,
            deleted: (!deleted.is_empty()).then(|| Arc::new(deleted.iter().copied().collect())),
            ids: ids.map(|i| Arc::new(i.iter().copied().collect())),
        }
    }

    #[test]
    fn positions_and_ids_agree() {
        let plain = rows(5, 10, &[1, 3], None);
        assert_eq!(plain.live_ids().iter().collect::<Vec<_>>(), [10, 12, 14]);
        assert_eq!(plain.position_of(12), Some(2));
        assert_eq!(plain.position_of(11), None, "deleted");
        assert_eq!(plain.position_of(15), None, "outside");
        let live = plain.live_positions().unwrap();
        assert_eq!(plain.ids_at(Some(&live)), [10, 12, 14]);

        let mapped = rows(4, 3, &[2], Some(&[3, 7, 8, 20]));
        assert_eq!(mapped.live_ids().iter().collect::<Vec<_>>(), [3, 7, 20]);
        assert_eq!(mapped.position_of(20), Some(3));
        assert_eq!(mapped.position_of(8), None, "deleted");
        assert_eq!(mapped.position_of(4), None, "not in the file");
        assert_eq!(mapped.ids_at(mapped.live_positions().as_ref()), [3, 7, 20]);
        assert_eq!(mapped.ids_at(None), [3, 7, 8, 20]);
    }

    #[test]
    fn bitmaps_round_trip_in_the_portable_format() {
        let bitmap: RoaringTreemap = [0u64, 5, 1 << 33].into_iter().collect();
        let bytes = encode_bitmap(&bitmap).unwrap();
        // Portable 64-bit format: a little-endian u64 count of 32-bit bitmaps first.
        assert_eq!(&bytes[..8], &2u64.to_le_bytes());
        assert_eq!(RoaringTreemap::deserialize_from(&bytes[..]).unwrap(), bitmap);
    }
}
