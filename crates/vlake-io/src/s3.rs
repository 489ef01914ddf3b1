//! `s3://` stores: the builder with vlake's timeouts, and errors that say when the endpoint
//! did not answer.
//!
//! Timeouts (README, "S3 timeouts") come from the table-URI options, then `VLAKE_S3_*`
//! variables, then defaults a person waits for: connect 5 s, request 30 s, retries for 30 s.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    ClientConfigKey, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RetryConfig,
};
use vlake_format::{Error, Result};

/// How long vlake waits for an S3 endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S3Timeouts {
    /// Connecting to the endpoint (option `connect_timeout`, `VLAKE_S3_CONNECT_TIMEOUT`).
    pub connect: Duration,
    /// One request, from sending it to the end of the response (option `timeout`,
    /// `VLAKE_S3_TIMEOUT`).
    pub request: Duration,
    /// All attempts of a request together, retries included (option `retry_timeout`,
    /// `VLAKE_S3_RETRY_TIMEOUT`).
    pub retry: Duration,
    /// Retries of a failed request (option `max_retries`, `VLAKE_S3_MAX_RETRIES`).
    pub max_retries: usize,
}

impl Default for S3Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
            retry: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

/// The timeout settings: table-URI option, environment variables (first set wins).
const SETTINGS: [(&str, [&str; 2]); 4] = [
    ("connect_timeout", ["VLAKE_S3_CONNECT_TIMEOUT", "AWS_CONNECT_TIMEOUT"]),
    ("timeout", ["VLAKE_S3_TIMEOUT", "AWS_TIMEOUT"]),
    ("retry_timeout", ["VLAKE_S3_RETRY_TIMEOUT", "AWS_RETRY_TIMEOUT"]),
    ("max_retries", ["VLAKE_S3_MAX_RETRIES", "AWS_MAX_RETRIES"]),
];

impl S3Timeouts {
    /// Reads the settings from `options` (taking them out) and the environment.
    fn resolve(options: &mut HashMap<String, String>) -> Result<Self> {
        let mut out = Self::default();
        for (option, vars) in SETTINGS {
            let given = options
                .remove(option)
                .or_else(|| options.remove(&format!("aws_{option}")))
                .map(|v| (format!("option '{option}'"), v))
                .or_else(|| {
                    vars.iter()
                        .find_map(|var| std::env::var(var).ok().map(|v| (var.to_string(), v)))
                });
            let Some((source, value)) = given else { continue };
            match option {
                "max_retries" => {
                    out.max_retries = value.trim().parse().map_err(|_| {
                        Error::invalid(format!("{source} must be a whole number of retries, not '{value}'"))
                    })?
                }
                _ => {
                    let d = parse_duration(&value).ok_or_else(|| {
                        Error::invalid(format!(
                            "{source} must be a duration such as '5s', '500ms' or '2m', not '{value}'"
                        ))
                    })?;
                    match option {
                        "connect_timeout" => out.connect = d,
                        "timeout" => out.request = d,
                        _ => out.retry = d,
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Parses `5`, `5s`, `1.5s`, `500ms` or `2m` (a number without a unit is seconds).
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok().filter(|d| !d.is_zero())
}

/// Opens the S3 store of bucket `bucket`, configured by `AWS_*` variables, then `options`
/// (object_store's S3 keys plus the timeouts of [`S3Timeouts`]).
pub(crate) fn open(uri: &str, bucket: &str, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let mut options = options.clone();
    let timeouts = S3Timeouts::resolve(&mut options)?;
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (k, v) in &options {
        let key = k
            .parse()
            .map_err(|e| Error::invalid(format!("unknown S3 option '{k}': {e}")))?;
        builder = builder.with_config(key, v);
    }
    let millis = |d: Duration| format!("{}ms", d.as_millis());
    let mut retry = RetryConfig::default();
    retry.max_retries = timeouts.max_retries;
    retry.retry_timeout = timeouts.retry;
    builder = builder
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            millis(timeouts.connect),
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            millis(timeouts.request),
        )
        .with_retry(retry);
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::Endpoint)
        .unwrap_or_else(|| "AWS S3".to_string());
    let store = builder.build().map_err(|e| Error::io(uri, e))?;
    Ok(Arc::new(S3Store {
        inner: Arc::new(store),
        endpoint,
        timeouts,
    }))
}

/// An S3 store whose errors say which timeout expired when the endpoint did not answer.
#[derive(Debug)]
struct S3Store {
    inner: Arc<dyn ObjectStore>,
    endpoint: String,
    timeouts: S3Timeouts,
}

impl S3Store {
    /// `e`, explained when it is a connect failure or a timeout.
    fn explain(&self, e: object_store::Error) -> object_store::Error {
        explain(e, &self.endpoint, &self.timeouts)
    }
}

fn explain(e: object_store::Error, endpoint: &str, t: &S3Timeouts) -> object_store::Error {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    let mut kind = None;
    while let Some(c) = cause {
        if let Some(http) = c.downcast_ref::<HttpError>() {
            kind = Some(http.kind());
            break;
        }
        cause = c.source();
    }
    let what = match kind {
        Some(HttpErrorKind::Timeout) => format!(
            "did not answer within the request timeout of {:?} (option 'timeout' or VLAKE_S3_TIMEOUT)",
            t.request
        ),
        Some(HttpErrorKind::Connect) => format!(
            "could not be reached: connecting failed or took longer than the connect timeout of {:?} (option 'connect_timeout' or VLAKE_S3_CONNECT_TIMEOUT)",
            t.connect
        ),
        _ => return e,
    };
    object_store::Error::Generic {
        store: "S3",
        source: format!(
            "the endpoint {endpoint} {what}; gave up after retrying for up to {:?} (at most {} retries; 'retry_timeout', 'max_retries'): {e}",
            t.retry, t.max_retries
        )
        .into(),
    }
}

impl fmt::Display for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner
            .put_opts(location, payload, opts)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner
            .put_multipart_opts(location, opts)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner
            .get_opts(location, options)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<bytes::Bytes>> {
        self.inner
            .get_ranges(location, ranges)
            .await
            .map_err(|e| self.explain(e))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let (endpoint, t) = (self.endpoint.clone(), self.timeouts);
        self.inner
            .delete_stream(locations)
            .map(move |r| r.map_err(|e| explain(e, &endpoint, &t)))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (endpoint, t) = (self.endpoint.clone(), self.timeouts);
        self.inner
            .list(prefix)
            .map(move |r| r.map_err(|e| explain(e, &endpoint, &t)))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let (endpoint, t) = (self.endpoint.clone(), self.timeouts);
        self.inner
            .list_with_offset(prefix, offset)
            .map(move |r| r.map_err(|e| explain(e, &endpoint, &t)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner
            .list_with_delimiter(prefix)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.inner
            .copy_opts(from, to, options)
            .await
            .map_err(|e| self.explain(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_settings_parse() {
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
        let mut options = HashMap::from([
            ("timeout".to_string(), "2s".to_string()),
            ("max_retries".to_string(), "0".to_string()),
            ("aws_region".to_string(), "x".to_string()),
        ]);
        let t = S3Timeouts::resolve(&mut options).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!((t.request, t.max_retries), (Duration::from_secs(2), 0));
        assert_eq!(options.len(), 1, "timeout settings are taken out: {options:?}");
        let mut bad = HashMap::from([("retry_timeout".to_string(), "forever".to_string())]);
        let err = S3Timeouts::resolve(&mut bad).unwrap_err();
        assert!(err.to_string().contains("retry_timeout"), "{err}");
    }
}
