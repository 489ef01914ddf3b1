//! `s3://` tables against a real S3-compatible server (moto's, on loopback): commits with
//! conditional puts, 8 concurrent writers, reads. Needs `moto_server` (pip `moto[server]`);
//! CI installs it, so under `CI` a missing server is a failure, elsewhere the test is skipped.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_moto() -> Option<(Server, u16)> {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = match Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => return None,
        Err(e) => panic!("moto_server is required under CI (pip install 'moto[server]'): {e}"),
    };
    let server = Server(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, port))
}

fn vlake(port: u16, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vlake"));
    c.args(args)
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    c
}

fn json(port: u16, args: &[&str]) -> serde_json::Value {
    let out = vlake(port, args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn write_ids(path: &std::path::Path, ids: std::ops::Range<i64>) {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from_iter_values(ids))]).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

#[test]
fn eight_writers_append_to_an_s3_table() {
    let Some((_server, port)) = start_moto() else {
        eprintln!("moto_server not found: skipping the S3 test");
        return;
    };
    // Create the bucket (S3 CreateBucket is a PUT on the bucket).
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "PUT /vlake HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");

    let dir = tempfile::tempdir().unwrap();
    let uri = "s3://vlake/tables/t";
    let seed = dir.path().join("seed.parquet");
    write_ids(&seed, 0..0);
    assert_eq!(
        json(port, &["import", seed.to_str().unwrap(), uri, "--json"])["version"],
        1
    );
    let children: Vec<_> = (0..8)
        .map(|i| {
            let p = dir.path().join(format!("p{i}.parquet"));
            write_ids(&p, i * 100..(i + 1) * 100);
            vlake(port, &["import", p.to_str().unwrap(), uri, "--mode", "append"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let info = json(port, &["info", uri, "--json"]);
    assert_eq!((info["version"].as_u64(), info["rows"].as_u64()), (Some(9), Some(800)));
    let rows = json(port, &["head", uri, "-n", "10000", "--json"]);
    let mut ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..800).collect::<Vec<_>>(), "every row exactly once");
    let versions: Vec<u64> = json(port, &["versions", uri, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=9).collect::<Vec<_>>());
    // Creating over an existing S3 table is refused by the conditional put.
    let out = vlake(port, &["import", seed.to_str().unwrap(), uri]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // BLOB values through multipart uploads (a 20 MB value is three 8 MiB parts) and range reads.
    let blobs = "s3://vlake/tables/blobs";
    let big: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (big_path, small_path) = (dir.path().join("big.bin"), dir.path().join("small.txt"));
    std::fs::write(&big_path, &big).unwrap();
    std::fs::write(&small_path, b"small").unwrap();
    let put = json(
        port,
        &[
            "blob",
            "put",
            blobs,
            "--column",
            "data",
            "--create",
            big_path.to_str().unwrap(),
            small_path.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(put["row_ids"], serde_json::json!([0, 1]));
    let get = |args: &[&str]| {
        let out = vlake(port, &[&["blob", "get", blobs, "--column", "data"], args].concat())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    assert!(get(&["--row-id", "0"]) == big);
    assert_eq!(
        get(&["--row-id", "0", "--offset", "16777210", "--length", "12"]),
        &big[16_777_210..16_777_222]
    );
    assert_eq!(get(&["--row-id", "1"]), b"small");
}

/// An S3 endpoint that accepts connections and never answers must not hang the command: it
/// fails within the timeouts set, saying that the endpoint did not answer and which timeout
/// expired. Needs no S3 server.
#[test]
fn an_unresponsive_endpoint_fails_fast_with_a_clear_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        // Hold every connection open without reading or writing.
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    let started = Instant::now();
    let out = vlake(port, &["info", "s3://bucket/t", "--json"])
        .env("VLAKE_S3_TIMEOUT", "1s")
        .env("VLAKE_S3_RETRY_TIMEOUT", "2s")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}: {stderr}");
    assert!(
        stderr.contains("did not answer") && stderr.contains("request timeout of 1s"),
        "{stderr}"
    );
    // While it retried, it said so.
    assert!(stderr.contains("note:") && stderr.contains("still trying"), "{stderr}");
    // A bad setting is refused, naming it.
    let out = vlake(port, &["info", "s3://bucket/t"])
        .env("VLAKE_S3_CONNECT_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("VLAKE_S3_CONNECT_TIMEOUT"));
}
