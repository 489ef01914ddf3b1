//! Where things live under a table root (format-spec/layout.md).

/// Directory of manifests.
pub const VERSIONS_DIR: &str = "_versions";
/// Directory of data files.
pub const DATA_DIR: &str = "data";
/// Directory of deletion files.
pub const DELETIONS_DIR: &str = "_deletions";
/// Directory of row-id files.
pub const ROW_IDS_DIR: &str = "_row_ids";
/// Directory of blob files.
pub const BLOBS_DIR: &str = "_blobs";
/// Directory of index files.
pub const INDEXES_DIR: &str = "_indexes";
/// Directory of tags.
pub const TAGS_DIR: &str = "_refs/tags";
/// The latest-version hint.
pub const LATEST_HINT: &str = "_latest.json";
/// Number of digits of a manifest file name.
const VERSION_DIGITS: usize = 20;

/// Path of the manifest of `version`, relative to the table root.
pub fn manifest_path(version: u64) -> String {
    format!("{VERSIONS_DIR}/{version:0width$}.json", width = VERSION_DIGITS)
}

/// The version a manifest file name (the last path segment) stands for, if it is one.
pub fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == VERSION_DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Path of tag `name`, relative to the table root.
pub fn tag_path(name: &str) -> String {
    format!("{TAGS_DIR}/{name}.json")
}

/// Path of a new data file with the given unique stem.
pub fn data_file_path(stem: &str, extension: &str) -> String {
    format!("{DATA_DIR}/{stem}.{extension}")
}

/// Path of a new deletion file with the given unique stem.
pub fn deletion_file_path(stem: &str) -> String {
    format!("{DELETIONS_DIR}/{stem}.bin")
}

/// Path of a new row-id file with the given unique stem.
pub fn row_id_file_path(stem: &str) -> String {
    format!("{ROW_IDS_DIR}/{stem}.bin")
}

/// Path of a new blob file with the given unique stem.
pub fn blob_file_path(stem: &str) -> String {
    format!("{BLOBS_DIR}/{stem}.blob")
}

/// Whether `rel` (a path relative to the table root) is a file that vlake writers create in
/// their own directories, named exactly as format-spec/layout.md gives: `data/<hex>.parquet`,
/// `_deletions/<hex>.bin`, `_row_ids/<hex>.bin`, `_blobs/<hex>.blob` and
/// `_indexes/<uuid>/<hex>.idx`, `<hex>` a UUID in 32 lowercase hexadecimal digits. Cleanup removes
/// nothing else (format-spec/commit.md#cleanup).
pub fn is_vlake_file(rel: &str) -> bool {
    let parts: Vec<&str> = rel.split('/').collect();
    let stem = |name: &str, ext: &str| name.strip_suffix(ext).is_some_and(is_simple_uuid);
    match parts.as_slice() {
        [DATA_DIR, name] => stem(name, ".parquet"),
        [DELETIONS_DIR | ROW_IDS_DIR, name] => stem(name, ".bin"),
        [BLOBS_DIR, name] => stem(name, ".blob"),
        [INDEXES_DIR, id, name] => {
            uuid::Uuid::try_parse(id).is_ok_and(|u| u.hyphenated().to_string() == *id) && stem(name, ".idx")
        }
        _ => false,
    }
}

/// Whether `rel` is a staging file `<name>#<n>` that a crashed upload of the vlake object
/// `<name>` left on a local file system (format-spec/layout.md#staging-files-of-interrupted-uploads).
pub fn is_vlake_staging_file(rel: &str) -> bool {
    let Some((name, n)) = rel.rsplit_once('#') else {
        return false;
    };
    let vlake_object = is_vlake_file(name)
        || name == LATEST_HINT
        || name
            .strip_prefix(VERSIONS_DIR)
            .and_then(|n| n.strip_prefix('/'))
            .is_some_and(|n| parse_manifest_name(n).is_some())
        || name
            .strip_prefix(TAGS_DIR)
            .and_then(|n| n.strip_prefix('/'))
            .is_some_and(|n| !n.contains('/') && n.ends_with(".json"));
    vlake_object && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
}

/// Whether `s` is a UUID written as 32 lowercase hexadecimal digits.
fn is_simple_uuid(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_round_trip_and_sort() {
        assert_eq!(manifest_path(7), "_versions/00000000000000000007.json");
        assert_eq!(parse_manifest_name("00000000000000000007.json"), Some(7));
        assert_eq!(
            parse_manifest_name(&manifest_path(u64::MAX)[VERSIONS_DIR.len() + 1..]),
            Some(u64::MAX)
        );
        assert_eq!(parse_manifest_name("7.json"), None);
        assert_eq!(parse_manifest_name("0000000000000000000x.json"), None);
        assert!(manifest_path(9) < manifest_path(10));
    }

    #[test]
    fn only_vlake_names_are_vlake_files() {
        let hex = "3f2b8c0e9a1d4e6f8b7c5a4d3e2f1a0b";
        let id = "3f2b8c0e-9a1d-4e6f-8b7c-5a4d3e2f1a0b";
        for ok in [
            format!("data/{hex}.parquet"),
            format!("_deletions/{hex}.bin"),
            format!("_row_ids/{hex}.bin"),
            format!("_blobs/{hex}.blob"),
            format!("_indexes/{id}/{hex}.idx"),
        ] {
            assert!(is_vlake_file(&ok), "{ok}");
            assert!(is_vlake_staging_file(&format!("{ok}#12")), "{ok}");
            assert!(!is_vlake_staging_file(&format!("{ok}#x")), "{ok}");
        }
        for not in [
            "notes/#draft.md#".to_string(),
            "notes/issue#42.txt".to_string(),
            format!("data/{hex}.parquet.bak"),
            format!("data/sub/{hex}.parquet"),
            format!("data/{}.parquet", hex.to_uppercase()),
            "data/my-export.parquet".to_string(),
            format!("_blobs/{hex}.bin"),
            format!("_indexes/{hex}/{hex}.idx"),
            format!("_indexes/{id}/notes.txt"),
            format!("other/{hex}.parquet"),
        ] {
            assert!(!is_vlake_file(&not), "{not}");
            assert!(!is_vlake_staging_file(&format!("{not}#1")), "{not}");
        }
        assert!(is_vlake_staging_file("_latest.json#3"));
        assert!(is_vlake_staging_file("_versions/00000000000000000007.json#41"));
        assert!(is_vlake_staging_file("_refs/tags/gold.json#2"));
        assert!(!is_vlake_staging_file("_versions/7.json#41"));
        assert!(!is_vlake_staging_file("notes/#draft.md#"));
    }
}
