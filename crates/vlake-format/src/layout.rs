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
}
