//! Conversions between DataFusion and vlake: filter expressions to vlake predicates (what a
//! scan can evaluate itself), errors, constant arguments, and blocking on async work from
//! DataFusion's synchronous planning hooks.

use std::future::Future;

use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::execution::context::ExecutionProps;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::create_physical_expr;
use datafusion::{arrow::datatypes::Schema, common::DFSchema};
use vlake_table::{CmpOp, Literal, Predicate};

/// Wraps a vlake error for DataFusion, keeping its message.
pub fn df_err(e: vlake_table::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// A DataFusion error as a vlake error: the one place DataFusion and Arrow errors get their
/// vlake kind. vlake's own errors keep their kind; errors in the SQL or the data (parsing,
/// planning, schemas, unsupported statements, execution checks, casts, arithmetic such as a
/// division by zero) are invalid input; storage errors are I/O errors; anything else (a bug)
/// is internal.
pub fn from_df(e: DataFusionError) -> vlake_table::Error {
    use vlake_table::Error;
    match e {
        DataFusionError::External(inner) => from_boxed(inner),
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => from_df(*inner),
        DataFusionError::ArrowError(e, _) => from_arrow(*e),
        DataFusionError::Plan(m) | DataFusionError::Execution(m) | DataFusionError::Configuration(m) => {
            Error::invalid(m)
        }
        DataFusionError::SQL(e, detail) => {
            let nested = matches!(
                *e,
                datafusion::sql::sqlparser::parser::ParserError::RecursionLimitExceeded
            );
            let detail = detail.unwrap_or_default();
            match nested {
                true => Error::invalid(format!(
                    "the statement is nested too deeply for the SQL parser ({e}{detail}); simplify it"
                )),
                false => Error::invalid(format!("{e}{detail}")),
            }
        }
        e @ (DataFusionError::SchemaError(..) | DataFusionError::NotImplemented(_)) => Error::invalid(e.to_string()),
        DataFusionError::ResourcesExhausted(m) => Error::invalid(format!("resources exhausted: {m}")),
        DataFusionError::ObjectStore(e) => Error::Io { path: None, source: e },
        DataFusionError::ParquetError(e) => Error::Io { path: None, source: e },
        DataFusionError::IoError(e) => Error::Io {
            path: None,
            source: Box::new(e),
        },
        DataFusionError::Collection(errors) => match errors.into_iter().next() {
            Some(first) => from_df(first),
            None => Error::Internal("an empty collection of errors".to_string()),
        },
        DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(e) => from_df(e),
            Err(shared) => from_df(copy(&shared)),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// An error shared by several holders, rebuilt with its kind and message (DataFusion errors
/// are not `Clone`).
fn copy(e: &DataFusionError) -> DataFusionError {
    match e {
        DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => copy(inner),
        DataFusionError::Shared(inner) => copy(inner),
        DataFusionError::Plan(m) => DataFusionError::Plan(m.clone()),
        DataFusionError::Execution(m) => DataFusionError::Execution(m.clone()),
        DataFusionError::ArrowError(a, _) => match a.as_ref() {
            datafusion::arrow::error::ArrowError::ExternalError(_)
            | datafusion::arrow::error::ArrowError::IoError(..) => DataFusionError::Internal(e.to_string()),
            _ => DataFusionError::Execution(e.to_string()),
        },
        DataFusionError::External(inner) => match inner.downcast_ref::<vlake_table::Error>() {
            Some(v) => DataFusionError::External(Box::new(copy_vlake(v))),
            None => DataFusionError::Internal(e.to_string()),
        },
        other => DataFusionError::Internal(other.to_string()),
    }
}

/// A vlake error of the same kind and message.
fn copy_vlake(e: &vlake_table::Error) -> vlake_table::Error {
    use vlake_table::Error;
    match e {
        Error::NotFound { what } => Error::not_found(what.clone()),
        Error::AlreadyExists { what } => Error::AlreadyExists { what: what.clone() },
        Error::CommitConflict {
            version,
            reason,
            retryable,
        } => Error::CommitConflict {
            version: *version,
            reason: reason.clone(),
            retryable: *retryable,
        },
        Error::InvalidInput(m) => Error::invalid(m.clone()),
        Error::Unsupported { feature } => Error::unsupported(feature.clone()),
        Error::Corrupt { path, reason } => Error::corrupt(path.clone(), reason.clone()),
        Error::Io { path, source } => Error::Io {
            path: path.clone(),
            source: source.to_string().into(),
        },
        other => Error::Internal(other.to_string()),
    }
}

/// An Arrow error as a vlake error: errors of the data are invalid input (vlake's rules, in
/// `vlake_format`); wrapped vlake or DataFusion errors keep their kind.
fn from_arrow(e: datafusion::arrow::error::ArrowError) -> vlake_table::Error {
    match e {
        datafusion::arrow::error::ArrowError::ExternalError(inner) => from_boxed(inner),
        other => vlake_table::Error::from(other),
    }
}

/// A boxed error from DataFusion or Arrow: a vlake error, a DataFusion error, an Arrow error or
/// something else (internal).
fn from_boxed(inner: Box<dyn std::error::Error + Send + Sync>) -> vlake_table::Error {
    let inner = match inner.downcast::<vlake_table::Error>() {
        Ok(e) => return *e,
        Err(other) => other,
    };
    let inner = match inner.downcast::<DataFusionError>() {
        Ok(e) => return from_df(*e),
        Err(other) => other,
    };
    match inner.downcast::<datafusion::arrow::error::ArrowError>() {
        Ok(e) => from_arrow(*e),
        Err(other) => vlake_table::Error::Internal(other.to_string()),
    }
}

/// The vlake predicate equivalent to `expr`, or `None` when vlake cannot evaluate it exactly
/// (DataFusion then filters the rows itself).
pub fn to_predicate(expr: &Expr) -> Option<Predicate> {
    Some(match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
            Operator::And => Predicate::And(vec![to_predicate(left)?, to_predicate(right)?]),
            Operator::Or => Predicate::Or(vec![to_predicate(left)?, to_predicate(right)?]),
            _ => {
                let op = cmp_op(*op)?;
                match (left.as_ref(), right.as_ref()) {
                    (Expr::Column(c), Expr::Literal(v, _)) => Predicate::Compare {
                        column: c.name.clone(),
                        op,
                        value: literal(v)?,
                    },
                    (Expr::Literal(v, _), Expr::Column(c)) => Predicate::Compare {
                        column: c.name.clone(),
                        op: flip(op),
                        value: literal(v)?,
                    },
                    _ => return None,
                }
            }
        },
        Expr::Not(e) => Predicate::Not(Box::new(to_predicate(e)?)),
        Expr::IsNull(e) | Expr::IsNotNull(e) => match e.as_ref() {
            Expr::Column(c) => Predicate::IsNull {
                column: c.name.clone(),
                negated: matches!(expr, Expr::IsNotNull(_)),
            },
            _ => return None,
        },
        Expr::InList(list) => match list.expr.as_ref() {
            Expr::Column(c) => Predicate::InList {
                column: c.name.clone(),
                values: list
                    .list
                    .iter()
                    .map(|e| match e {
                        Expr::Literal(v, _) => literal(v),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
                negated: list.negated,
            },
            _ => return None,
        },
        Expr::Like(like) if like.escape_char.is_none() => match (like.expr.as_ref(), like.pattern.as_ref()) {
            (
                Expr::Column(c),
                Expr::Literal(
                    ScalarValue::Utf8(Some(p)) | ScalarValue::Utf8View(Some(p)) | ScalarValue::LargeUtf8(Some(p)),
                    _,
                ),
            ) => Predicate::Like {
                column: c.name.clone(),
                pattern: p.clone(),
                negated: like.negated,
                case_insensitive: like.case_insensitive,
            },
            _ => return None,
        },
        Expr::Literal(ScalarValue::Boolean(Some(b)), _) => Predicate::Const(*b),
        _ => return None,
    })
}

fn cmp_op(op: Operator) -> Option<CmpOp> {
    Some(match op {
        Operator::Eq => CmpOp::Eq,
        Operator::NotEq => CmpOp::NotEq,
        Operator::Lt => CmpOp::Lt,
        Operator::LtEq => CmpOp::LtEq,
        Operator::Gt => CmpOp::Gt,
        Operator::GtEq => CmpOp::GtEq,
        _ => return None,
    })
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::LtEq => CmpOp::GtEq,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::GtEq => CmpOp::LtEq,
        other => other,
    }
}

/// A literal of a vlake expression: [`literal`]'s, or null.
pub(crate) fn literal_or_null(v: &ScalarValue) -> Option<Literal> {
    match v.is_null() {
        true => Some(Literal::Null),
        false => literal(v),
    }
}

/// A non-null literal vlake predicates can compare with.
fn literal(v: &ScalarValue) -> Option<Literal> {
    Some(match v {
        ScalarValue::Boolean(Some(b)) => Literal::Bool(*b),
        ScalarValue::Int8(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::Int32(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Literal::Int(*x),
        ScalarValue::UInt8(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Literal::Int(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => Literal::Int(i64::try_from(*x).ok()?),
        ScalarValue::Float32(Some(x)) => Literal::Float(f64::from(*x)),
        ScalarValue::Float64(Some(x)) => Literal::Float(*x),
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            Literal::String(s.clone())
        }
        _ => return None,
    })
}

/// Evaluates an expression without columns (a literal, `[0.1, 0.2]`, a cast) to its value.
pub fn eval_const(expr: &Expr) -> Result<ScalarValue> {
    if let Expr::Literal(v, _) = expr {
        return Ok(v.clone());
    }
    let schema = DFSchema::try_from(Schema::empty())?;
    let physical = create_physical_expr(expr, &schema, &ExecutionProps::new())?;
    let batch = datafusion::arrow::record_batch::RecordBatch::try_new_with_options(
        std::sync::Arc::new(Schema::empty()),
        vec![],
        &datafusion::arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(1)),
    )?;
    match physical.evaluate(&batch)? {
        datafusion::logical_expr::ColumnarValue::Scalar(s) => Ok(s),
        datafusion::logical_expr::ColumnarValue::Array(a) => ScalarValue::try_from_array(&a, 0),
    }
}

/// The error for a value that is not a vector.
fn not_a_vector(what: &str, detail: String) -> DataFusionError {
    DataFusionError::Plan(format!("{what} must be a vector such as [0.1, 0.2]: {detail}"))
}

/// A vector written as text, `'[0.1, 0.2]'` (a JSON list of numbers).
pub(crate) fn parse_vector(what: &str, s: &str) -> Result<Vec<f32>> {
    serde_json::from_str::<Vec<f32>>(s).map_err(|e| not_a_vector(what, format!("'{s}' is not a JSON list ({e})")))
}

/// A vector from a constant SQL value such as `[0.1, 0.2]` or `'[0.1, 0.2]'`.
pub fn vector_from_scalar(what: &str, v: &ScalarValue) -> Result<Vec<f32>> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{DataType, Float32Type};
    let bad = |detail: String| not_a_vector(what, detail);
    let elements = match v {
        ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s)) => {
            return parse_vector(what, s)
        }
        ScalarValue::List(a) if a.is_valid(0) => a.value(0),
        ScalarValue::LargeList(a) if a.is_valid(0) => a.value(0),
        ScalarValue::FixedSizeList(a) if a.is_valid(0) => a.value(0),
        ScalarValue::List(_) | ScalarValue::LargeList(_) | ScalarValue::FixedSizeList(_) => {
            return Err(bad("it is NULL".into()))
        }
        other => return Err(bad(format!("got a value of type {}", other.data_type()))),
    };
    // Elements that are NULL or do not convert to numbers become NULL here.
    let floats = datafusion::arrow::compute::cast(&elements, &DataType::Float32)?;
    if let Some(i) = (0..floats.len()).find(|&i| floats.is_null(i)) {
        let x = ScalarValue::try_from_array(&elements, i)?;
        return Err(bad(format!("element {x} is not a number")));
    }
    Ok(floats.as_primitive::<Float32Type>().values().to_vec())
}

/// Runs `fut` to completion from synchronous code, even inside an async runtime (DataFusion
/// calls table functions synchronously while planning), on a helper thread with its own runtime.
pub fn block_on<T: Send>(fut: impl Future<Output = T> + Send) -> Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(fut))
        })
        .join()
        .map_err(|_| DataFusionError::Internal("a planning thread panicked".into()))?
        .map_err(|e| DataFusionError::External(Box::new(e)))
    })
}
