//! Per-column statistics of data files (format-spec/manifest.md#column-statistics).

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, TimeUnit};
use vlake_format::{ColumnStats, Schema, StatValue};

/// Strings longer than this get no min/max (a truncated max would not be an upper bound).
const MAX_STAT_STRING_BYTES: usize = 256;

/// Accumulates statistics of the top-level columns of the batches written to one file.
#[derive(Debug)]
pub(crate) struct StatsCollector {
    columns: Vec<ColumnAcc>,
}

#[derive(Debug)]
struct ColumnAcc {
    field_id: i32,
    null_count: u64,
    min: Option<StatValue>,
    max: Option<StatValue>,
    /// False once a value could not be summarised (NaN, an infinity).
    bounded: bool,
}

impl StatsCollector {
    pub(crate) fn new(schema: &Schema) -> Self {
        let columns = schema
            .fields
            .iter()
            .map(|f| ColumnAcc {
                field_id: f.id,
                null_count: 0,
                min: None,
                max: None,
                bounded: true,
            })
            .collect();
        Self { columns }
    }

    /// Adds a batch whose columns are in the schema's order.
    pub(crate) fn update(&mut self, batch: &RecordBatch) {
        for (acc, array) in self.columns.iter_mut().zip(batch.columns()) {
            acc.null_count += array.null_count() as u64;
            if !acc.bounded || array.null_count() == array.len() {
                continue;
            }
            match min_max(array.as_ref()) {
                MinMax::Values(lo, hi) => {
                    if acc.min.as_ref().is_none_or(|m| lo < *m) {
                        acc.min = Some(lo);
                    }
                    if acc.max.as_ref().is_none_or(|m| hi > *m) {
                        acc.max = Some(hi);
                    }
                }
                MinMax::Unbounded => {
                    acc.bounded = false;
                    acc.min = None;
                    acc.max = None;
                }
                MinMax::NotTracked => {}
            }
        }
    }

    pub(crate) fn finish(self) -> Vec<ColumnStats> {
        self.columns
            .into_iter()
            .map(|c| ColumnStats {
                field_id: c.field_id,
                null_count: c.null_count,
                min: short(c.min),
                max: short(c.max),
            })
            .collect()
    }
}

enum MinMax {
    Values(StatValue, StatValue),
    Unbounded,
    NotTracked,
}

fn ints<T: ArrowPrimitiveType>(array: &dyn Array) -> MinMax
where
    T::Native: Into<i64>,
{
    let a = array.as_primitive::<T>();
    match (arrow_arith::aggregate::min(a), arrow_arith::aggregate::max(a)) {
        (Some(lo), Some(hi)) => MinMax::Values(StatValue::Int(lo.into()), StatValue::Int(hi.into())),
        _ => MinMax::NotTracked,
    }
}

fn floats<T: ArrowPrimitiveType>(array: &dyn Array, to_f64: fn(T::Native) -> f64) -> MinMax {
    let a = array.as_primitive::<T>();
    match (arrow_arith::aggregate::min(a), arrow_arith::aggregate::max(a)) {
        (Some(lo), Some(hi)) => {
            let (lo, hi) = (to_f64(lo), to_f64(hi));
            // NaN has no place in an order and JSON has no infinities: no bounds then.
            if !lo.is_finite() || !hi.is_finite() {
                MinMax::Unbounded
            } else {
                MinMax::Values(StatValue::Float(lo), StatValue::Float(hi))
            }
        }
        _ => MinMax::NotTracked,
    }
}

fn strings(lo: Option<&str>, hi: Option<&str>) -> MinMax {
    match (lo, hi) {
        (Some(lo), Some(hi)) => MinMax::Values(StatValue::String(lo.to_string()), StatValue::String(hi.to_string())),
        _ => MinMax::NotTracked,
    }
}

/// Drops a string bound longer than [`MAX_STAT_STRING_BYTES`] (a truncated max is no bound).
fn short(value: Option<StatValue>) -> Option<StatValue> {
    value.filter(|v| !matches!(v, StatValue::String(s) if s.len() > MAX_STAT_STRING_BYTES))
}

fn min_max(array: &dyn Array) -> MinMax {
    use arrow_arith::aggregate as agg;
    match array.data_type() {
        ArrowType::Int8 => ints::<Int8Type>(array),
        ArrowType::Int16 => ints::<Int16Type>(array),
        ArrowType::Int32 => ints::<Int32Type>(array),
        ArrowType::Int64 => ints::<Int64Type>(array),
        ArrowType::Date32 => ints::<Date32Type>(array),
        ArrowType::Timestamp(TimeUnit::Second, _) => ints::<TimestampSecondType>(array),
        ArrowType::Timestamp(TimeUnit::Millisecond, _) => ints::<TimestampMillisecondType>(array),
        ArrowType::Timestamp(TimeUnit::Microsecond, _) => ints::<TimestampMicrosecondType>(array),
        ArrowType::Timestamp(TimeUnit::Nanosecond, _) => ints::<TimestampNanosecondType>(array),
        ArrowType::UInt8 => ints::<UInt8Type>(array),
        ArrowType::UInt16 => ints::<UInt16Type>(array),
        ArrowType::UInt32 => ints::<UInt32Type>(array),
        ArrowType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            match (agg::min(a), agg::max(a)) {
                (Some(lo), Some(hi)) => MinMax::Values(StatValue::Uint(lo), StatValue::Uint(hi)),
                _ => MinMax::NotTracked,
            }
        }
        ArrowType::Float16 => floats::<Float16Type>(array, f64::from),
        ArrowType::Float32 => floats::<Float32Type>(array, f64::from),
        ArrowType::Float64 => floats::<Float64Type>(array, |v| v),
        ArrowType::Utf8 => strings(
            agg::min_string(array.as_string::<i32>()),
            agg::max_string(array.as_string::<i32>()),
        ),
        ArrowType::LargeUtf8 => strings(
            agg::min_string(array.as_string::<i64>()),
            agg::max_string(array.as_string::<i64>()),
        ),
        ArrowType::Boolean => {
            let a = array.as_boolean();
            match (agg::min_boolean(a), agg::max_boolean(a)) {
                (Some(lo), Some(hi)) => MinMax::Values(StatValue::Bool(lo), StatValue::Bool(hi)),
                _ => MinMax::NotTracked,
            }
        }
        _ => MinMax::NotTracked,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, StringArray};
    use arrow_schema::{Field as ArrowField, Schema as ArrowSchema};

    use super::*;

    #[test]
    fn non_finite_floats_and_long_strings_have_no_bounds() {
        let arrow = Arc::new(ArrowSchema::new(vec![
            ArrowField::new("f", ArrowType::Float64, true),
            ArrowField::new("s", ArrowType::Utf8, true),
        ]));
        let schema = Schema::from_arrow(&arrow, 1).unwrap();
        let mut stats = StatsCollector::new(&schema);
        let batch = |f: Vec<Option<f64>>, s: Vec<&str>| {
            RecordBatch::try_new(
                arrow.clone(),
                vec![Arc::new(Float64Array::from(f)), Arc::new(StringArray::from(s))],
            )
            .unwrap()
        };
        stats.update(&batch(vec![Some(1.0), None], vec!["b", "c"]));
        let long = "z".repeat(300);
        stats.update(&batch(vec![Some(f64::INFINITY), Some(0.5)], vec!["a", &long]));
        let out = stats.finish();
        assert_eq!(
            (out[0].min.clone(), out[0].max.clone(), out[0].null_count),
            (None, None, 1)
        );
        assert_eq!(out[1].min, Some(StatValue::String("a".into())));
        assert_eq!(out[1].max, None, "a 300-byte max is dropped");
        // The result encodes as JSON and back (no infinities reach the manifest).
        let json = serde_json::to_string(&out).unwrap();
        assert_eq!(serde_json::from_str::<Vec<ColumnStats>>(&json).unwrap(), out);
    }
}
