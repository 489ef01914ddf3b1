//! The error type shared by the vlake crates below the engine adapters.
//!
//! Callers branch on the variant (the *kind*); messages name the thing that is wrong.

/// Result alias using [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in vlake, by kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A table, version, tag, column or file does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked for, e.g. `version 7 of table /data/t`.
        what: String,
    },
    /// Something that must be new already exists (a table, a tag).
    #[error("already exists: {what}")]
    AlreadyExists {
        /// What already exists.
        what: String,
    },
    /// A concurrent commit won and this transaction cannot be rebased onto it.
    #[error("commit conflict at version {version}: {reason}")]
    CommitConflict {
        /// The version that was taken by the other writer.
        version: u64,
        /// Why the two transactions cannot both apply.
        reason: String,
        /// Whether running the whole operation again (re-reading the table) may succeed.
        retryable: bool,
    },
    /// The caller passed something invalid (a schema mismatch, a bad filter, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The table needs a feature or format version this build does not support.
    #[error("unsupported: {feature}")]
    Unsupported {
        /// The feature, with enough context to act on it.
        feature: String,
    },
    /// Bytes read from storage are not what the spec says they must be.
    #[error("corrupt data in {path}: {reason}")]
    Corrupt {
        /// The object that is corrupt.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The storage layer failed.
    #[error("I/O error{}: {source}", path.as_deref().map(|p| format!(" on {p}")).unwrap_or_default())]
    Io {
        /// The object being accessed, when known.
        path: Option<String>,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A bug in vlake: an invariant did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidInput(msg.into())
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    /// Shorthand for [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Unsupported`].
    pub fn unsupported(feature: impl Into<String>) -> Self {
        Self::Unsupported {
            feature: feature.into(),
        }
    }

    /// Wraps a storage or codec error that happened while accessing `path`.
    pub fn io(path: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Io {
            path: Some(path.into()),
            source: source.into(),
        }
    }

    /// A short, stable name of the kind, for bindings and `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::AlreadyExists { .. } => "already_exists",
            Self::CommitConflict { .. } => "commit_conflict",
            Self::InvalidInput(_) => "invalid_input",
            Self::Unsupported { .. } => "unsupported",
            Self::Corrupt { .. } => "corrupt",
            Self::Io { .. } => "io",
            Self::Internal(_) => "internal",
        }
    }
}

/// Arrow errors by kind: errors in the data (bad values, casts, arithmetic, JSON or CSV that
/// does not fit the schema) are invalid input; a wrapped vlake error keeps its kind; failures of
/// reading or writing bytes are I/O errors; what Arrow cannot do yet is unsupported.
impl From<arrow_schema::ArrowError> for Error {
    fn from(e: arrow_schema::ArrowError) -> Self {
        use arrow_schema::ArrowError as A;
        match e {
            A::InvalidArgumentError(m)
            | A::CastError(m)
            | A::SchemaError(m)
            | A::ParseError(m)
            | A::ComputeError(m)
            | A::JsonError(m)
            | A::CsvError(m)
            | A::ArithmeticOverflow(m) => Self::InvalidInput(m),
            A::DivideByZero => Self::InvalidInput("division by zero".to_string()),
            e @ (A::DictionaryKeyOverflowError | A::RunEndIndexOverflowError | A::OffsetOverflowError(_)) => {
                Self::InvalidInput(e.to_string())
            }
            A::NotYetImplemented(m) => Self::unsupported(m),
            A::ExternalError(inner) => match inner.downcast::<Error>() {
                Ok(e) => *e,
                Err(other) => Self::Io {
                    path: None,
                    source: other,
                },
            },
            other => Self::Io {
                path: None,
                source: Box::new(other),
            },
        }
    }
}
