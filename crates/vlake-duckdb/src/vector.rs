//! Arrow arrays written straight into DuckDB vectors, and the type mapping between the two
//! (written down in the crate's README).
//!
//! The arrays are copied value by value (fixed-width values with one `memcpy`) into the vectors
//! of the output chunk; no Arrow C Data Interface is involved, so the extension needs no Arrow
//! `ffi` feature (enabling it would recompile the workspace's Arrow and everything above it).

use std::ffi::CString;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType as ArrowType, TimeUnit};
use libduckdb_sys as ffi;

use crate::ffi::{c_string, LogicalType};

/// The DuckDB type a column of Arrow type `dt` is returned as.
pub(crate) fn logical_type(dt: &ArrowType) -> Result<LogicalType, String> {
    use ffi::*;
    let id = match dt {
        ArrowType::Boolean => DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN,
        ArrowType::Int8 => DUCKDB_TYPE_DUCKDB_TYPE_TINYINT,
        ArrowType::Int16 => DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT,
        ArrowType::Int32 => DUCKDB_TYPE_DUCKDB_TYPE_INTEGER,
        ArrowType::Int64 => DUCKDB_TYPE_DUCKDB_TYPE_BIGINT,
        ArrowType::UInt8 => DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT,
        ArrowType::UInt16 => DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT,
        ArrowType::UInt32 => DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER,
        ArrowType::UInt64 => DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT,
        // f16 is widened: DuckDB has no half-precision type.
        ArrowType::Float16 | ArrowType::Float32 => DUCKDB_TYPE_DUCKDB_TYPE_FLOAT,
        ArrowType::Float64 => DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE,
        ArrowType::Utf8 | ArrowType::LargeUtf8 | ArrowType::Utf8View => DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR,
        ArrowType::Binary | ArrowType::LargeBinary | ArrowType::BinaryView => DUCKDB_TYPE_DUCKDB_TYPE_BLOB,
        ArrowType::Date32 => DUCKDB_TYPE_DUCKDB_TYPE_DATE,
        // With a time zone: an instant, TIMESTAMP WITH TIME ZONE (microseconds).
        ArrowType::Timestamp(_, Some(_)) => DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ,
        ArrowType::Timestamp(TimeUnit::Second, None) => DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_S,
        ArrowType::Timestamp(TimeUnit::Millisecond, None) => DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_MS,
        ArrowType::Timestamp(TimeUnit::Microsecond, None) => DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP,
        ArrowType::Timestamp(TimeUnit::Nanosecond, None) => DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_NS,
        ArrowType::Decimal128(p, s) => {
            let scale = u8::try_from(*s).map_err(|_| format!("decimal scale {s} is not supported by DuckDB"))?;
            if *p > 38 || scale > *p {
                return Err(format!("DECIMAL({p}, {s}) is not supported by DuckDB"));
            }
            return Ok(LogicalType::decimal(*p, scale));
        }
        ArrowType::FixedSizeList(item, n) => {
            let size = u64::try_from(*n).map_err(|_| format!("bad fixed list size {n}"))?;
            return Ok(LogicalType::array(&logical_type(item.data_type())?, size));
        }
        ArrowType::List(item) | ArrowType::LargeList(item) => {
            return Ok(LogicalType::list(&logical_type(item.data_type())?))
        }
        ArrowType::Struct(fields) => {
            let members = fields
                .iter()
                .map(|f| Ok((c_string(f.name()), logical_type(f.data_type())?)))
                .collect::<Result<Vec<(CString, LogicalType)>, String>>()?;
            return Ok(LogicalType::structure(&members));
        }
        other => return Err(format!("Arrow type {other} has no DuckDB mapping in vlake yet")),
    };
    Ok(LogicalType::new(id))
}

/// Writes `array` into rows `start..start + array.len()` of `vector`, whose type is
/// [`logical_type`] of the array's type.
///
/// # Safety
/// `vector` must be a live, writable DuckDB vector of that type with room for those rows
/// (list vectors grow their child themselves).
pub(crate) unsafe fn write(vector: ffi::duckdb_vector, array: &dyn Array, start: usize) -> Result<(), String> {
    // SAFETY: the caller guarantees the vector's type and capacity, which every arm relies on.
    unsafe {
        write_validity(vector, array, start);
        match array.data_type() {
            ArrowType::Boolean => {
                let data = ffi::duckdb_vector_get_data(vector).cast::<bool>().add(start);
                let values = array.as_boolean();
                for i in 0..values.len() {
                    *data.add(i) = values.value(i);
                }
            }
            ArrowType::Int8 => copy::<Int8Type>(vector, array, start),
            ArrowType::Int16 => copy::<Int16Type>(vector, array, start),
            ArrowType::Int32 => copy::<Int32Type>(vector, array, start),
            ArrowType::Int64 => copy::<Int64Type>(vector, array, start),
            ArrowType::UInt8 => copy::<UInt8Type>(vector, array, start),
            ArrowType::UInt16 => copy::<UInt16Type>(vector, array, start),
            ArrowType::UInt32 => copy::<UInt32Type>(vector, array, start),
            ArrowType::UInt64 => copy::<UInt64Type>(vector, array, start),
            ArrowType::Float32 => copy::<Float32Type>(vector, array, start),
            ArrowType::Float64 => copy::<Float64Type>(vector, array, start),
            ArrowType::Date32 => copy::<Date32Type>(vector, array, start),
            ArrowType::Float16 => {
                let data = ffi::duckdb_vector_get_data(vector).cast::<f32>().add(start);
                for (i, v) in array.as_primitive::<Float16Type>().values().iter().enumerate() {
                    *data.add(i) = v.to_f32();
                }
            }
            ArrowType::Timestamp(unit, tz) => {
                // Without a time zone the unit maps to DuckDB's type of that unit; with one,
                // TIMESTAMP WITH TIME ZONE counts microseconds.
                let (values, to_micros): (&[i64], fn(i64) -> i64) = match unit {
                    TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().values(), |v| {
                        v.saturating_mul(1_000_000)
                    }),
                    TimeUnit::Millisecond => (array.as_primitive::<TimestampMillisecondType>().values(), |v| {
                        v.saturating_mul(1_000)
                    }),
                    TimeUnit::Microsecond => (array.as_primitive::<TimestampMicrosecondType>().values(), |v| v),
                    TimeUnit::Nanosecond => (array.as_primitive::<TimestampNanosecondType>().values(), |v| {
                        v.div_euclid(1_000)
                    }),
                };
                let data = ffi::duckdb_vector_get_data(vector).cast::<i64>().add(start);
                if tz.is_some() {
                    for (i, v) in values.iter().enumerate() {
                        *data.add(i) = to_micros(*v);
                    }
                } else {
                    std::ptr::copy_nonoverlapping(values.as_ptr(), data, values.len());
                }
            }
            ArrowType::Decimal128(p, _) => {
                let values = array.as_primitive::<Decimal128Type>().values();
                // DuckDB stores a decimal in the narrowest integer its width fits.
                match p {
                    0..=4 => narrow::<i16>(vector, values, start),
                    5..=9 => narrow::<i32>(vector, values, start),
                    10..=18 => narrow::<i64>(vector, values, start),
                    _ => narrow::<i128>(vector, values, start),
                }
            }
            ArrowType::Utf8 => strings(vector, array, start, |i| array.as_string::<i32>().value(i).as_bytes()),
            ArrowType::LargeUtf8 => strings(vector, array, start, |i| array.as_string::<i64>().value(i).as_bytes()),
            ArrowType::Utf8View => strings(vector, array, start, |i| array.as_string_view().value(i).as_bytes()),
            ArrowType::Binary => strings(vector, array, start, |i| array.as_binary::<i32>().value(i)),
            ArrowType::LargeBinary => strings(vector, array, start, |i| array.as_binary::<i64>().value(i)),
            ArrowType::BinaryView => strings(vector, array, start, |i| array.as_binary_view().value(i)),
            ArrowType::FixedSizeList(_, n) => {
                let list = array.as_fixed_size_list();
                let size = usize::try_from(*n).map_err(|_| format!("bad fixed list size {n}"))?;
                write(
                    ffi::duckdb_array_vector_get_child(vector),
                    list.values().as_ref(),
                    start * size,
                )?;
            }
            ArrowType::List(_) => {
                let list = array.as_list::<i32>();
                let offsets: Vec<u64> = list.value_offsets().iter().map(|o| *o as u64).collect();
                lists(vector, &offsets, list.values(), start)?;
            }
            ArrowType::LargeList(_) => {
                let list = array.as_list::<i64>();
                let offsets: Vec<u64> = list.value_offsets().iter().map(|o| *o as u64).collect();
                lists(vector, &offsets, list.values(), start)?;
            }
            ArrowType::Struct(_) => {
                for (i, column) in array.as_struct().columns().iter().enumerate() {
                    write(
                        ffi::duckdb_struct_vector_get_child(vector, i as u64),
                        column.as_ref(),
                        start,
                    )?;
                }
            }
            other => return Err(format!("Arrow type {other} has no DuckDB mapping in vlake yet")),
        }
    }
    Ok(())
}

/// Marks the null rows of `array` invalid in `vector`.
///
/// # Safety
/// As for [`write`].
unsafe fn write_validity(vector: ffi::duckdb_vector, array: &dyn Array, start: usize) {
    let Some(nulls) = array.logical_nulls().filter(|n| n.null_count() > 0) else {
        return;
    };
    // SAFETY: the vector is live and has room for the rows (the caller's contract).
    unsafe {
        ffi::duckdb_vector_ensure_validity_writable(vector);
        let validity = ffi::duckdb_vector_get_validity(vector);
        for i in nulls.iter().enumerate().filter(|(_, valid)| !valid).map(|(i, _)| i) {
            ffi::duckdb_validity_set_row_invalid(validity, (start + i) as u64);
        }
    }
}

/// Copies fixed-width values whose layout DuckDB shares.
///
/// # Safety
/// As for [`write`], with a vector whose values have the layout of `T::Native`.
unsafe fn copy<T: ArrowPrimitiveType>(vector: ffi::duckdb_vector, array: &dyn Array, start: usize) {
    let values = array.as_primitive::<T>().values();
    // SAFETY: the vector holds `T::Native` values with room for `start + len` rows.
    unsafe {
        let data = ffi::duckdb_vector_get_data(vector).cast::<T::Native>().add(start);
        std::ptr::copy_nonoverlapping(values.as_ptr(), data, values.len());
    }
}

/// Writes 128-bit decimals as the narrower integer DuckDB keeps for their width (the value
/// fits: Arrow checks precision on write). Written unaligned: DuckDB aligns its 128-bit
/// integers to 8 bytes, not 16.
///
/// # Safety
/// As for [`write`], with a decimal vector stored as `T`.
unsafe fn narrow<T: TryFrom<i128> + Default>(vector: ffi::duckdb_vector, values: &[i128], start: usize) {
    // SAFETY: the vector holds `T` values with room for `start + len` rows; unaligned writes
    // need no alignment.
    unsafe {
        let data = ffi::duckdb_vector_get_data(vector).cast::<T>().add(start);
        for (i, v) in values.iter().enumerate() {
            data.add(i).write_unaligned(T::try_from(*v).unwrap_or_default());
        }
    }
}

/// Writes string or binary values (DuckDB copies them).
///
/// # Safety
/// As for [`write`], with a VARCHAR or BLOB vector.
unsafe fn strings<'a>(vector: ffi::duckdb_vector, array: &dyn Array, start: usize, value: impl Fn(usize) -> &'a [u8]) {
    for i in 0..array.len() {
        if array.is_valid(i) {
            let bytes = value(i);
            // SAFETY: `bytes` is live for the call; DuckDB copies it into the vector.
            unsafe {
                ffi::duckdb_vector_assign_string_element_len(
                    vector,
                    (start + i) as u64,
                    bytes.as_ptr().cast(),
                    bytes.len() as u64,
                )
            };
        }
    }
}

/// Writes list entries (offsets into the child) and appends the lists' values to the child.
///
/// # Safety
/// As for [`write`], with a LIST vector.
unsafe fn lists(vector: ffi::duckdb_vector, offsets: &[u64], values: &ArrayRef, start: usize) -> Result<(), String> {
    let (Some(first), Some(last)) = (offsets.first(), offsets.last()) else {
        return Ok(());
    };
    let count = last - first;
    // SAFETY: the vector is a live LIST vector; its child is grown before it is written, and the
    // entries array has room for `start + len` rows.
    unsafe {
        let base = ffi::duckdb_list_vector_get_size(vector);
        if ffi::duckdb_list_vector_reserve(vector, base + count) != ffi::DuckDBSuccess {
            return Err("cannot grow a DuckDB list vector".to_string());
        }
        let entries = ffi::duckdb_vector_get_data(vector)
            .cast::<ffi::duckdb_list_entry>()
            .add(start);
        for (i, w) in offsets.windows(2).enumerate() {
            *entries.add(i) = ffi::duckdb_list_entry {
                offset: base + (w[0] - first),
                length: w[1] - w[0],
            };
        }
        let child_values = values.slice(*first as usize, count as usize);
        write(
            ffi::duckdb_list_vector_get_child(vector),
            child_values.as_ref(),
            base as usize,
        )?;
        if ffi::duckdb_list_vector_set_size(vector, base + count) != ffi::DuckDBSuccess {
            return Err("cannot size a DuckDB list vector".to_string());
        }
    }
    Ok(())
}

/// One column of a table function's output: where its values are in the batches produced,
/// and the Arrow type it was bound with (its DuckDB type is [`logical_type`] of that).
pub(crate) struct Output {
    /// Index of the column in the batches.
    pub(crate) source: usize,
    /// The Arrow type the DuckDB column was declared from.
    pub(crate) bound: ArrowType,
}

/// Writes rows `offset..offset + len` of `batch` into `chunk` (at most the vector size), one
/// vector per output; a column whose type differs from the bound one is cast to it first, so
/// a vector is never written with another type's layout.
///
/// # Safety
/// `chunk` must be DuckDB's output chunk of the table function whose columns `outputs` bound.
pub(crate) unsafe fn emit(
    chunk: ffi::duckdb_data_chunk,
    batch: &arrow_array::RecordBatch,
    outputs: &[Output],
    offset: usize,
    len: usize,
) -> Result<(), String> {
    for (j, out) in outputs.iter().enumerate() {
        let column = batch
            .columns()
            .get(out.source)
            .ok_or_else(|| format!("vlake: internal error: the scan returned no column {}", out.source))?
            .slice(offset, len);
        let column = if column.data_type() == &out.bound {
            column
        } else {
            arrow_cast::cast(&column, &out.bound)
                .map_err(|e| format!("vlake: column {j} is {}, not {}: {e}", column.data_type(), out.bound))?
        };
        // SAFETY: the chunk's vector `j` was declared with `logical_type(&out.bound)` and holds
        // the vector size's rows; `len` is at most that.
        unsafe { write(ffi::duckdb_data_chunk_get_vector(chunk, j as u64), column.as_ref(), 0)? };
    }
    // SAFETY: the chunk is live; `len` rows were written.
    unsafe { ffi::duckdb_data_chunk_set_size(chunk, len as u64) };
    Ok(())
}

/// The number of rows a DuckDB vector holds.
pub(crate) fn vector_size() -> usize {
    // SAFETY: a constant of the loaded DuckDB; no preconditions.
    unsafe { ffi::duckdb_vector_size() as usize }
}
