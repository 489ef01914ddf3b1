//! BLOB columns through the public API: round trips from 0 bytes to 2 GiB, streaming reads in
//! bounded memory, range reads, and deletes, updates, compaction and cleanup keeping blob files
//! consistent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, ArrayRef, Int64Array, LargeBinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, ReadBuf};
use vlake_table::{
    Assignment, BatchStream, BlobMode, BlobSource, CleanupOptions, CompactOptions, MergeInsert, MergeReport, Predicate,
    Table, TableLocation, ValueExpr, WhenMatched, WriteMode, WriteOptions,
};

fn blob_schema() -> SchemaRef {
    let blob = Field::new("data", DataType::LargeBinary, true)
        .with_metadata(HashMap::from([("vlake:blob".to_string(), "true".to_string())]));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        blob,
    ]))
}

/// The byte at position `p` of test blob `seed`: position-dependent, so misplaced bytes show.
fn fill(seed: u64, pos: u64, out: &mut [u8]) {
    let mut p = pos;
    let mut i = 0;
    while i < out.len() {
        let word = splitmix(seed ^ (p / 8)).to_le_bytes();
        let from = (p % 8) as usize;
        let n = (8 - from).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[from..from + n]);
        i += n;
        p += n as u64;
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn value(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill(seed, 0, &mut v);
    v
}

/// A generated blob of `len` bytes, read as a stream (never in memory whole).
struct Pattern {
    seed: u64,
    pos: u64,
    len: u64,
}

impl AsyncRead for Pattern {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.len - self.pos) as usize;
        let mut chunk = vec![0; n];
        fill(self.seed, self.pos, &mut chunk);
        buf.put_slice(&chunk);
        self.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

/// Rows `ids` with values of the sizes `sizes` (`None`: null); value `i` is `value(i, size)`.
fn rows(ids: &[i64], sizes: &[Option<usize>]) -> RecordBatch {
    let data: LargeBinaryArray = ids
        .iter()
        .zip(sizes)
        .map(|(id, s)| s.map(|s| value(*id as u64, s)))
        .collect();
    RecordBatch::try_new(
        blob_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from_iter_values(ids.iter().map(|i| format!("n{i}")))),
            Arc::new(data),
        ],
    )
    .unwrap()
}

async fn create(uri: &str, batch: RecordBatch) -> Table {
    let stream = BatchStream::from_batches(blob_schema(), vec![batch]);
    Table::write(
        TableLocation::parse(uri).unwrap(),
        stream,
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap()
}

/// `id -> value` of every row, read with the blobs as bytes.
async fn read_all(table: &Table) -> BTreeMap<i64, Option<Vec<u8>>> {
    let batches = table.scan().blobs(BlobMode::Bytes).collect().await.unwrap();
    let mut out = BTreeMap::new();
    for b in batches {
        assert_eq!(b.schema().field(2).data_type(), &DataType::LargeBinary);
        let ids = b.column(0).as_primitive::<Int64Type>();
        let data = b.column(2).as_binary::<i64>();
        for i in 0..b.num_rows() {
            out.insert(ids.value(i), data.is_valid(i).then(|| data.value(i).to_vec()));
        }
    }
    out
}

/// Sizes of the files under `_blobs/`.
fn blob_file_sizes(root: &std::path::Path) -> BTreeMap<String, u64> {
    let Ok(dir) = std::fs::read_dir(root.join("_blobs")) else {
        return BTreeMap::new();
    };
    dir.map(|e| {
        let e = e.unwrap();
        (
            format!("_blobs/{}", e.file_name().to_string_lossy()),
            e.metadata().unwrap().len(),
        )
    })
    .collect()
}

/// Fails naming the rows whose values differ (not printing the values).
fn assert_same(got: &BTreeMap<i64, Option<Vec<u8>>>, want: &BTreeMap<i64, Option<Vec<u8>>>) {
    let len = |m: &BTreeMap<i64, Option<Vec<u8>>>, id| m.get(id).map(|v| v.as_ref().map(Vec::len));
    let differ: Vec<_> = got
        .keys()
        .chain(want.keys())
        .filter(|id| got.get(id) != want.get(id))
        .map(|id| (id, len(got, id), len(want, id)))
        .collect();
    assert!(differ.is_empty(), "(row, got length, expected length): {differ:?}");
}

fn sizes(n: usize) -> Vec<Option<usize>> {
    // 0 bytes, 1 byte, nulls, many small values and one larger than a blob file of its own.
    (0..n)
        .map(|i| match i {
            0 => Some(0),
            1 => Some(1),
            i if i % 17 == 3 => None,
            5 => Some(9 << 20),
            i => Some((i * 7919) % 20_000),
        })
        .collect()
}

#[tokio::test]
async fn values_round_trip_as_descriptors_bytes_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let ids: Vec<i64> = (0..200).collect();
    let sizes = sizes(ids.len());
    let table = create(&uri, rows(&ids, &sizes)).await;
    assert!(table.manifest().reader_features.contains("blob_files"));
    assert!(table.manifest().writer_features.contains("blob_files"));

    // Descriptors by default: `{path, offset, size}`, null for null values.
    let batches = table.scan().columns(&["id", "data"]).collect().await.unwrap();
    let descriptors = batches[0].column(1).as_struct();
    assert_eq!(descriptors.column_names(), ["path", "offset", "size"]);
    let size = descriptors.column(2).as_primitive::<UInt64Type>();
    for (i, expected) in sizes.iter().enumerate() {
        assert_eq!(descriptors.is_valid(i), expected.is_some());
        if let Some(s) = expected {
            assert_eq!(size.value(i), *s as u64, "row {i}");
        }
    }
    assert!(
        descriptors.column(0).is_null(0),
        "an empty value points into no blob file"
    );

    // Small values share a packed file, the 9 MiB one has its own.
    let files = blob_file_sizes(&dir.path().join("t"));
    assert_eq!(files.len(), 2, "{files:?}");
    let live: u64 = sizes.iter().flatten().map(|s| *s as u64).sum();
    assert_eq!(files.values().sum::<u64>(), live);
    let listed: BTreeMap<String, u64> = table
        .manifest()
        .blob_files()
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    assert_eq!(listed, files);

    // Bytes on request, from a scan and by row id.
    let all = read_all(&Table::open(&uri).await.unwrap()).await;
    for (id, expected) in ids.iter().zip(&sizes) {
        assert_eq!(all[id], expected.map(|s| value(*id as u64, s)), "row {id}");
    }
    let taken = table.take_blobs(&[5, 1, 0], "data").await.unwrap();
    let taken = taken.as_binary::<i64>();
    assert_eq!(taken.value(0), value(5, 9 << 20).as_slice());
    assert_eq!(taken.value(1), value(1, 1).as_slice());
    assert_eq!(taken.value(2), b"");

    // Streams and random range reads against the source.
    let mut blob = table.open_blob(5, "data").await.unwrap();
    assert_eq!(blob.len(), 9 << 20);
    let source = value(5, 9 << 20);
    let mut state = 7u64;
    for _ in 0..50 {
        state = splitmix(state);
        let at = state % source.len() as u64;
        let len = (splitmix(state) % 100_000) as usize;
        let end = (at as usize + len).min(source.len());
        let got = blob.read_at(at, len).await.unwrap();
        assert_eq!(got.as_ref(), &source[at as usize..end]);
        blob.seek(SeekFrom::Start(at)).await.unwrap();
        let mut buf = vec![0; end - at as usize];
        blob.read_exact(&mut buf).await.unwrap();
        assert_eq!(buf, &source[at as usize..end]);
    }
    blob.seek(SeekFrom::End(-3)).await.unwrap();
    let mut tail = Vec::new();
    blob.read_to_end(&mut tail).await.unwrap();
    assert_eq!(tail, &source[source.len() - 3..]);
    assert!(blob.read_at(1 << 40, 10).await.unwrap().is_empty());
    let mut empty = table.open_blob(0, "data").await.unwrap();
    assert_eq!(empty.read_to_end(&mut Vec::new()).await.unwrap(), 0);
    assert!(matches!(
        table.open_blob(3, "data").await,
        Err(vlake_table::Error::NotFound { .. })
    ));
    assert!(matches!(
        table.open_blob(1, "name").await,
        Err(vlake_table::Error::InvalidInput(_))
    ));
}

#[tokio::test]
async fn streamed_appends_deletes_compaction_and_cleanup_keep_blob_files_exact() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let uri = root.display().to_string();
    let ids: Vec<i64> = (0..60).collect();
    let sizes = sizes(ids.len());
    let v1 = create(&uri, rows(&ids, &sizes)).await;
    // Streamed appends: a file on disk (large enough to be streamed), a reader, bytes.
    let on_disk = dir.path().join("big.bin");
    std::fs::write(&on_disk, value(100, 12 << 20)).unwrap();
    let sources = vec![
        BlobSource::File(on_disk),
        BlobSource::Reader(Box::new(Pattern {
            seed: 101,
            pos: 0,
            len: 300_000,
        })),
        BlobSource::Bytes(value(102, 10).into()),
        BlobSource::Reader(Box::new(Pattern {
            seed: 103,
            pos: 0,
            len: 0,
        })),
    ];
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![100, 101, 102, 103]))],
    )
    .unwrap();
    let v2 = v1
        .append_blobs("data", sources, Some(other), &WriteOptions::default())
        .await
        .unwrap();
    let mut expected = read_all(&v1).await;
    for (id, len) in [(100, 12 << 20), (101, 300_000), (102, 10), (103, 0)] {
        expected.insert(id, Some(value(id as u64, len)));
    }
    assert_same(&read_all(&v2).await, &expected);

    // An update keeps the values; assigning a BLOB column is refused.
    let v3 = v2
        .update(
            &[Assignment {
                column: "name".into(),
                value: ValueExpr::Literal(vlake_table::Literal::String("renamed".into())),
            }],
            Some(&Predicate::parse("id = 101 OR id = 7").unwrap()),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_same(&read_all(&v3).await, &expected);
    let assign_blob = Assignment {
        column: "data".into(),
        value: ValueExpr::Literal(vlake_table::Literal::Null),
    };
    assert!(v3.update(&[assign_blob], None, &WriteOptions::default()).await.is_err());

    // Delete the streamed file's row, the 9 MiB value and a third of the small ones.
    let doomed: Vec<String> = (0..60)
        .filter(|i| i % 3 == 0)
        .chain([100, 5])
        .map(|i| i.to_string())
        .collect();
    let filter = Predicate::parse(&format!("id IN ({})", doomed.join(", "))).unwrap();
    let v4 = v3.delete(&filter).await.unwrap();
    expected.retain(|id, _| !doomed.contains(&id.to_string()));
    assert_same(&read_all(&v4).await, &expected);
    let (v5, report) = v4
        .compact(&CompactOptions {
            blob_garbage_ratio: 0.0,
            ..CompactOptions::default()
        })
        .await
        .unwrap();
    assert!(report.blob_files_rewritten >= 1, "{report:?}");
    assert_same(&read_all(&v5).await, &expected);
    // Before cleanup, old versions still read every value they had.
    assert_eq!(
        read_all(
            &Table::open(&uri)
                .await
                .unwrap()
                .checkout(vlake_table::VersionRef::Version(2))
                .await
                .unwrap()
        )
        .await
        .len(),
        64
    );

    let cleanup = v5
        .cleanup(&CleanupOptions::new(Duration::ZERO).dangerously_remove_files_younger_than_min_age(Duration::ZERO))
        .await
        .unwrap();
    assert!(cleanup.files_removed > 0);
    let on_disk = blob_file_sizes(&root);
    let live: u64 = expected.values().flatten().map(|v| v.len() as u64).sum();
    assert_eq!(
        on_disk.values().sum::<u64>(),
        live,
        "orphan or lost blob bytes: {on_disk:?}"
    );
    let listed: BTreeMap<String, u64> = v5
        .manifest()
        .blob_files()
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    assert_eq!(listed, on_disk);
    assert_same(&read_all(&Table::open(&uri).await.unwrap()).await, &expected);
}

#[tokio::test]
async fn bad_blob_input_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    // BLOB metadata on a column that is not large_binary.
    let bad = Arc::new(Schema::new(vec![Field::new("d", DataType::Utf8, true)
        .with_metadata(HashMap::from([("vlake:blob".to_string(), "true".to_string())]))]));
    assert!(matches!(
        Table::create(&uri, bad).await,
        Err(vlake_table::Error::InvalidInput(_))
    ));
    let table = create(&uri, rows(&[1, 2], &[Some(5), Some(6)])).await;
    // A descriptor that points outside the table's blob files.
    let foreign = tempfile::tempdir().unwrap();
    let other = create(&foreign.path().join("o").display().to_string(), rows(&[1], &[Some(3)])).await;
    let scanned = other.scan().collect().await.unwrap();
    let err = table
        .append(
            BatchStream::from_batches(other.schema().clone(), scanned),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not a blob file of this table"), "{err}");
    // Appending this table's own descriptors reuses its blob files without copying them.
    let own = table.scan().collect().await.unwrap();
    let before = blob_file_sizes(&dir.path().join("t"));
    let doubled = table
        .append(
            BatchStream::from_batches(table.schema().clone(), own),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(blob_file_sizes(&dir.path().join("t")), before);
    assert_eq!(
        doubled
            .take_blobs(&[2], "data")
            .await
            .unwrap()
            .as_binary::<i64>()
            .value(0),
        value(1, 5).as_slice()
    );
    assert_eq!(table.version(), 1);
    assert_eq!(Table::open(&uri).await.unwrap().version(), 2);

    // Failed writes leave no blob files behind: a source that cannot be read after one that was
    // stored, and rows that lack a non-nullable column.
    let failing = vec![
        BlobSource::Bytes(value(7, 9 << 20).into()),
        BlobSource::File(dir.path().join("missing.bin")),
    ];
    let opts = WriteOptions::default();
    let err = doubled.append_blobs("data", failing, None, &opts).await.unwrap_err();
    assert!(matches!(err, vlake_table::Error::Io { .. }), "{err}");
    let without_ids = vec![BlobSource::Bytes(value(8, 100).into())];
    let err = doubled
        .append_blobs("data", without_ids, None, &opts)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lacks column 'id'"), "{err}");
    assert_eq!(blob_file_sizes(&dir.path().join("t")), before);
    assert_eq!(Table::open(&uri).await.unwrap().version(), 2);
}

/// The big-blob size: 2 GiB and a bit (so chunks do not line up), or `VLAKE_BLOB_TEST_BYTES`.
fn big_size() -> u64 {
    std::env::var("VLAKE_BLOB_TEST_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((2 << 30) + 12_345)
}

const BIG_SEED: u64 = 0x5eed;

/// Peak resident set of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

/// The half of `two_gib_blob_streams_in_constant_memory` that runs in a child process (so its
/// peak memory is its own): writes or reads the big blob, then prints its peak RSS.
#[tokio::test]
async fn big_blob_child() {
    let Ok(mode) = std::env::var("VLAKE_BLOB_CHILD") else {
        return;
    };
    let uri = std::env::var("VLAKE_BLOB_URI").unwrap();
    let size = big_size();
    let start = Instant::now();
    match mode.as_str() {
        "write" => {
            let table = Table::open(&uri).await.unwrap();
            let source = Pattern {
                seed: BIG_SEED,
                pos: 0,
                len: size,
            };
            let ids = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
                vec![Arc::new(Int64Array::from(vec![0])) as ArrayRef],
            )
            .unwrap();
            table
                .append_blobs(
                    "data",
                    vec![BlobSource::Reader(Box::new(source))],
                    Some(ids),
                    &WriteOptions::default(),
                )
                .await
                .unwrap();
        }
        _ => {
            let table = Table::open(&uri).await.unwrap();
            let mut blob = table.open_blob(0, "data").await.unwrap();
            assert_eq!(blob.len(), size);
            let mut got = vec![0u8; 1 << 20];
            let mut want = vec![0u8; 1 << 20];
            let mut pos = 0u64;
            loop {
                let n = blob.read(&mut got).await.unwrap();
                if n == 0 {
                    break;
                }
                fill(BIG_SEED, pos, &mut want[..n]);
                assert!(got[..n] == want[..n], "bytes differ near position {pos}");
                pos += n as u64;
            }
            assert_eq!(pos, size);
        }
    }
    println!("CHILD_SECONDS={}", start.elapsed().as_secs_f64());
    println!("CHILD_PEAK_RSS={}", peak_rss());
}

fn run_child(mode: &str, uri: &str) -> (f64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "big_blob_child", "--nocapture", "--test-threads=1"])
        .env("VLAKE_BLOB_CHILD", mode)
        .env("VLAKE_BLOB_URI", uri)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode} child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |key: &str| {
        let at = stdout
            .find(key)
            .unwrap_or_else(|| panic!("{mode} child printed no {key}: {stdout}"));
        stdout[at + key.len()..]
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    (
        get("CHILD_SECONDS=").parse().unwrap(),
        get("CHILD_PEAK_RSS=").parse().unwrap(),
    )
}

#[tokio::test]
async fn two_gib_blob_streams_in_constant_memory() {
    if std::env::var("VLAKE_BLOB_CHILD").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    Table::create(&uri, blob_schema()).await.unwrap();
    let size = big_size();
    let (write_s, write_rss) = run_child("write", &uri);
    let (read_s, read_rss) = run_child("read", &uri);
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{} MiB blob: write {:.0} MiB/s (peak RSS {:.1} MiB), streaming read + verify {:.0} MiB/s (peak RSS {:.1} MiB)",
        mib(size),
        mib(size) / write_s,
        mib(write_rss),
        mib(size) / read_s,
        mib(read_rss)
    );
    assert!(
        read_rss < 64 << 20,
        "reading the blob peaked at {:.1} MiB",
        mib(read_rss)
    );
    assert!(
        write_rss < 64 << 20,
        "writing the blob peaked at {:.1} MiB",
        mib(write_rss)
    );

    // The value has a blob file of its own, exactly its size.
    let files = blob_file_sizes(&dir.path().join("t"));
    assert_eq!(files.values().copied().collect::<Vec<_>>(), vec![size]);
    // Random range reads, across chunk boundaries and at the end.
    let table = Table::open(&uri).await.unwrap();
    let blob = table.open_blob(0, "data").await.unwrap();
    let mut state = 11u64;
    for i in 0..40 {
        state = splitmix(state);
        let at = if i == 0 { size - 100 } else { state % size };
        let len = (splitmix(state) % (3 << 20)) as usize;
        let got = blob.read_at(at, len).await.unwrap();
        let mut want = vec![0; got.len()];
        fill(BIG_SEED, at, &mut want);
        assert_eq!(got.len() as u64, len.min((size - at) as usize) as u64);
        assert!(got.as_ref() == want.as_slice(), "range at {at}");
    }
}

/// Writes `batch` as one merge into `table`, in data files of at most `max_rows` rows.
async fn merge(table: &Table, batch: RecordBatch, merge: &MergeInsert, max_rows: usize) -> (Table, MergeReport) {
    let opts = WriteOptions {
        max_rows_per_file: max_rows,
        ..Default::default()
    };
    let source = BatchStream::from_batches(blob_schema(), vec![batch]);
    table.merge_insert(source, merge, &opts).await.unwrap()
}

#[tokio::test]
async fn upserts_write_blob_values_and_leave_no_orphan_blob_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let ids: Vec<i64> = (0..6).collect();
    let first = rows(&ids, &sizes(6));
    let opts = WriteOptions {
        primary_key: vec!["id".into()],
        ..Default::default()
    };
    let source = BatchStream::from_batches(blob_schema(), vec![first]);
    let location = TableLocation::parse(&root.display().to_string()).unwrap();
    let v1 = Table::write(location, source, WriteMode::Create, &opts).await.unwrap();
    let mut expected = read_all(&v1).await;

    // Rows 4 and 5 are replaced by values of other sizes, 6..10 inserted.
    let upsert: Vec<i64> = (4..10).collect();
    let new_sizes: Vec<Option<usize>> = upsert.iter().map(|i| Some(*i as usize * 3 + 1)).collect();
    let (v2, report) = merge(&v1, rows(&upsert, &new_sizes), &MergeInsert::upsert(), 1024).await;
    assert_eq!((report.inserted, report.updated), (4, 2));
    for (id, size) in upsert.iter().zip(&new_sizes) {
        expected.insert(*id, size.map(|s| value(*id as u64, s)));
    }
    assert_same(&read_all(&v2).await, &expected);

    // Keys 0 and 1 match and are kept: their source file is dropped, but the values of the
    // inserted keys 20 and 21 (another source file) may share its blob file, which must stay.
    let keep = MergeInsert {
        when_matched: WhenMatched::DoNothing,
        ..MergeInsert::upsert()
    };
    let (v3, report) = merge(&v2, rows(&[0, 1, 20, 21], &[Some(7); 4]), &keep, 2).await;
    assert_eq!((report.inserted, report.updated), (2, 0));
    for id in [20, 21] {
        expected.insert(id, Some(value(id as u64, 7)));
    }
    assert_same(&read_all(&v3).await, &expected);

    // A merge that changes nothing commits nothing and leaves no blob file behind.
    let before = blob_file_sizes(&root);
    let (v4, _) = merge(&v3, rows(&[0, 1], &[Some(5); 2]), &keep, 1).await;
    assert_eq!(v4.version(), v3.version());
    assert_eq!(blob_file_sizes(&root), before);

    // After cleanup the blob files are exactly those the latest version lists.
    v4.cleanup(&CleanupOptions::new(Duration::ZERO).dangerously_remove_files_younger_than_min_age(Duration::ZERO))
        .await
        .unwrap();
    let listed: BTreeMap<String, u64> = v4
        .manifest()
        .blob_files()
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
    assert_eq!(blob_file_sizes(&root), listed);
    assert_same(
        &read_all(&Table::open(&root.display().to_string()).await.unwrap()).await,
        &expected,
    );
}
