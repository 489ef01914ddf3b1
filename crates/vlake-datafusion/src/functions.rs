//! Vector distance functions for SQL: `l2_distance`, `cosine_distance` and `inner_product` over
//! vector columns (fixed-size lists of f16, f32 or f64), array literals such as `[0.1, 0.2]` and
//! vectors written as text (`'[0.1, 0.2]'`, what a prepared statement's parameter can bind
//! without planning an array of numbers).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float32Array, ListArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float32Type};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use vlake_index::distance::{dot, l2_sq, norm};
use vlake_index::Metric;

use crate::convert::parse_vector;

/// Which distance a [`DistanceUdf`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistanceKind {
    /// Euclidean distance, `sqrt(sum((a - b)^2))`.
    L2,
    /// `1 - cos(a, b)`; 1 when either vector is all zeros.
    Cosine,
    /// The dot product `sum(a * b)` (larger is closer).
    InnerProduct,
}

impl DistanceKind {
    /// Every distance function.
    pub const ALL: [Self; 3] = [Self::L2, Self::Cosine, Self::InnerProduct];

    /// The SQL function name.
    pub fn name(self) -> &'static str {
        match self {
            Self::L2 => "l2_distance",
            Self::Cosine => "cosine_distance",
            Self::InnerProduct => "inner_product",
        }
    }

    /// The index metric that ranks rows as this function does, and whether closer rows
    /// have smaller function values (`ORDER BY f ASC`) or larger ones (`DESC`).
    pub fn metric(self) -> (Metric, bool) {
        match self {
            Self::L2 => (Metric::L2, true),
            Self::Cosine => (Metric::Cosine, true),
            Self::InnerProduct => (Metric::Dot, false),
        }
    }

    fn compute(self, a: &[f32], a_norm: f32, b: &[f32]) -> f32 {
        match self {
            Self::L2 => l2_sq(a, b).sqrt(),
            Self::InnerProduct => dot(a, b),
            Self::Cosine => {
                let denom = a_norm * norm(b);
                if denom > 0.0 {
                    (1.0 - dot(a, b) / denom).max(0.0)
                } else {
                    1.0
                }
            }
        }
    }
}

/// A distance between two vectors as an SQL scalar function returning `FLOAT` (NULL when
/// either vector is NULL).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistanceUdf {
    kind: DistanceKind,
    signature: Signature,
}

impl DistanceUdf {
    /// The function for `kind`.
    pub fn new(kind: DistanceKind) -> Self {
        Self {
            kind,
            signature: Signature::new(TypeSignature::Any(2), Volatility::Immutable),
        }
    }

    /// What the function computes.
    pub fn kind(&self) -> DistanceKind {
        self.kind
    }
}

/// The three distance functions, ready to register.
pub fn distance_udfs() -> Vec<ScalarUDF> {
    DistanceKind::ALL
        .into_iter()
        .map(|k| ScalarUDF::new_from_impl(DistanceUdf::new(k)))
        .collect()
}

impl ScalarUDFImpl for DistanceUdf {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        for t in arg_types {
            element_type(self.name(), t)?;
        }
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [a, b] = args.args.as_slice() else {
            return exec_err!("{} takes two vectors", self.name());
        };
        let all_scalar = matches!((a, b), (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)));
        let rows = if all_scalar { 1 } else { args.number_rows };
        let a = Vectors::new(self.name(), a, rows)?;
        let b = Vectors::new(self.name(), b, rows)?;
        let mut out = Vec::with_capacity(rows);
        // A constant side (a query vector) has its norm computed once.
        let (fixed, other, fixed_norm) = match (a.constant(), b.constant()) {
            (Some(q), _) => (Some(q), &b, norm(q)),
            (None, Some(q)) => (Some(q), &a, norm(q)),
            _ => (None, &a, 0.0),
        };
        for i in 0..rows {
            let (x, x_norm, y) = match fixed {
                Some(q) => (Some(q), fixed_norm, other.row(i)),
                None => {
                    let x = a.row(i);
                    (x, x.map_or(0.0, norm), b.row(i))
                }
            };
            out.push(match (x, y) {
                (Some(x), Some(y)) if x.len() == y.len() => Some(self.kind.compute(x, x_norm, y)),
                (Some(_), Some(_)) => {
                    let len = |v: &Vectors| v.row(i).map_or(0, <[f32]>::len);
                    return exec_err!(
                        "{}: the vectors have different dimensions ({} and {})",
                        self.name(),
                        len(&a),
                        len(&b)
                    );
                }
                _ => None,
            });
        }
        let array = Float32Array::from(out);
        if all_scalar {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&array, 0)?));
        }
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

/// The element type of a vector type, or a planning error naming the function.
fn element_type<'a>(func: &str, t: &'a DataType) -> Result<&'a DataType> {
    let element = match t {
        DataType::FixedSizeList(f, _) | DataType::List(f) | DataType::LargeList(f) => f.data_type(),
        DataType::Null => return Ok(t),
        // Text such as '[0.1, 0.2]', parsed when the function runs.
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => return Ok(&DataType::Float32),
        other => return plan_err!("{func} expects vectors (lists of numbers), got {other}"),
    };
    if element.is_numeric() || element.is_null() {
        Ok(element)
    } else {
        plan_err!("{func} expects vectors of numbers, got a list of {element}")
    }
}

/// Vectors written as text (`'[0.1, 0.2]'`, NULL stays NULL) as a list array of f32.
fn parse_vectors(func: &str, text: &ArrayRef) -> Result<ArrayRef> {
    let text = cast(text, &DataType::Utf8)?;
    let vectors = text
        .as_string::<i32>()
        .iter()
        .map(|s| {
            s.map(|s| parse_vector(&format!("{func}'s argument"), s))
                .transpose()
                .map(|v| v.map(|v| v.into_iter().map(Some)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(ListArray::from_iter_primitive::<Float32Type, _, _>(vectors)))
}

/// One argument of a distance function as f32 rows.
struct Vectors {
    /// The list array, with f32 values.
    list: ArrayRef,
    values: Float32Array,
    /// Whether the argument was a single value for all rows.
    scalar: bool,
}

impl Vectors {
    fn new(func: &str, arg: &ColumnarValue, rows: usize) -> Result<Self> {
        let (array, scalar) = match arg {
            ColumnarValue::Array(a) => (a.clone(), false),
            ColumnarValue::Scalar(s) => (s.to_array_of_size(1)?, true),
        };
        element_type(func, array.data_type())?;
        let array = match array.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => parse_vectors(func, &array)?,
            _ => array,
        };
        let values = match array.data_type() {
            DataType::Null => Arc::new(Float32Array::from(Vec::<f32>::new())) as ArrayRef,
            DataType::FixedSizeList(..) => cast(array.as_fixed_size_list().values(), &DataType::Float32)?,
            DataType::List(_) => cast(array.as_list::<i32>().values(), &DataType::Float32)?,
            _ => cast(array.as_list::<i64>().values(), &DataType::Float32)?,
        }
        .as_primitive::<Float32Type>()
        .clone();
        if !scalar && array.len() != rows {
            return exec_err!("{func}: argument has {} rows, expected {rows}", array.len());
        }
        Ok(Self {
            list: array,
            values,
            scalar,
        })
    }

    /// The vector shared by every row, when the argument is a constant.
    fn constant(&self) -> Option<&[f32]> {
        if self.scalar {
            self.row(0)
        } else {
            None
        }
    }

    fn row(&self, i: usize) -> Option<&[f32]> {
        let i = if self.scalar { 0 } else { i };
        if self.list.is_null(i) {
            return None;
        }
        let (start, end) = match self.list.data_type() {
            DataType::FixedSizeList(_, n) => {
                // Slicing a fixed-size list slices its values too.
                let n = *n as usize;
                let start = i * n;
                (start, start + n)
            }
            DataType::List(_) => {
                let o = self.list.as_list::<i32>().value_offsets();
                (o[i] as usize, o[i + 1] as usize)
            }
            DataType::LargeList(_) => {
                let o = self.list.as_list::<i64>().value_offsets();
                (o[i] as usize, o[i + 1] as usize)
            }
            _ => return None,
        };
        Some(&self.values.values()[start..end])
    }
}
