//! DuckDB vectors read into Arrow arrays: the inverse of [`crate::vector`], for the rows a
//! `COPY ... TO 'uri' (FORMAT vlake)` statement hands the extension.
//!
//! DuckDB flattens the chunks it gives a COPY function, so every vector read here is flat:
//! row `i` is at index `i` of its data, lists point into their child with offsets, arrays hold
//! `size` child values per row.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, ListArray, PrimitiveArray, RecordBatch, StructArray, UInt64Array,
};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType as ArrowType, Field, Fields, SchemaRef, TimeUnit};
use libduckdb_sys as sys;

use crate::ffi::LogicalType;

/// The Arrow type a DuckDB column of type `ty` is read as: the inverse of
/// [`crate::vector::logical_type`] (`FLOAT[n]` becomes a vector column, `TIMESTAMPTZ` a UTC
/// timestamp in microseconds).
pub(crate) fn arrow_type(ty: &LogicalType) -> Result<ArrowType, String> {
    use sys::*;
    let item = |t: ArrowType| Arc::new(Field::new("item", t, true));
    // SAFETY: `ty` is a live logical type; the child types DuckDB returns are owned by the
    // `LogicalType`s that wrap them.
    unsafe {
        Ok(match duckdb_get_type_id(ty.0) {
            DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN => ArrowType::Boolean,
            DUCKDB_TYPE_DUCKDB_TYPE_TINYINT => ArrowType::Int8,
            DUCKDB_TYPE_DUCKDB_TYPE_SMALLINT => ArrowType::Int16,
            DUCKDB_TYPE_DUCKDB_TYPE_INTEGER => ArrowType::Int32,
            DUCKDB_TYPE_DUCKDB_TYPE_BIGINT => ArrowType::Int64,
            DUCKDB_TYPE_DUCKDB_TYPE_UTINYINT => ArrowType::UInt8,
            DUCKDB_TYPE_DUCKDB_TYPE_USMALLINT => ArrowType::UInt16,
            DUCKDB_TYPE_DUCKDB_TYPE_UINTEGER => ArrowType::UInt32,
            DUCKDB_TYPE_DUCKDB_TYPE_UBIGINT => ArrowType::UInt64,
            DUCKDB_TYPE_DUCKDB_TYPE_FLOAT => ArrowType::Float32,
            DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE => ArrowType::Float64,
            DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR => ArrowType::Utf8,
            DUCKDB_TYPE_DUCKDB_TYPE_BLOB => ArrowType::Binary,
            DUCKDB_TYPE_DUCKDB_TYPE_DATE => ArrowType::Date32,
            DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_S => ArrowType::Timestamp(TimeUnit::Second, None),
            DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_MS => ArrowType::Timestamp(TimeUnit::Millisecond, None),
            DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP => ArrowType::Timestamp(TimeUnit::Microsecond, None),
            DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_NS => ArrowType::Timestamp(TimeUnit::Nanosecond, None),
            DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ => ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            DUCKDB_TYPE_DUCKDB_TYPE_DECIMAL => {
                let scale = duckdb_decimal_scale(ty.0);
                ArrowType::Decimal128(duckdb_decimal_width(ty.0), scale as i8)
            }
            DUCKDB_TYPE_DUCKDB_TYPE_LIST => {
                let child = LogicalType(duckdb_list_type_child_type(ty.0));
                ArrowType::List(item(arrow_type(&child)?))
            }
            DUCKDB_TYPE_DUCKDB_TYPE_ARRAY => {
                let child = LogicalType(duckdb_array_type_child_type(ty.0));
                let size = duckdb_array_type_array_size(ty.0);
                let size = i32::try_from(size).map_err(|_| format!("an array of {size} values is too long"))?;
                ArrowType::FixedSizeList(item(arrow_type(&child)?), size)
            }
            DUCKDB_TYPE_DUCKDB_TYPE_STRUCT => {
                let n = duckdb_struct_type_child_count(ty.0);
                let mut fields = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let name = crate::ffi::owned_c_string(duckdb_struct_type_child_name(ty.0, i));
                    let child = LogicalType(duckdb_struct_type_child_type(ty.0, i));
                    fields.push(Field::new(name, arrow_type(&child)?, true));
                }
                ArrowType::Struct(Fields::from(fields))
            }
            other => return Err(format!("DuckDB type id {other} cannot be written to a vlake table yet")),
        })
    }
}

/// Rows `0..len` of `vector`, whose DuckDB type is the one [`arrow_type`] mapped to `ty`, as an
/// Arrow array of type `ty`.
///
/// # Safety
/// `vector` must be a live, flat DuckDB vector of that type holding at least `len` rows.
pub(crate) unsafe fn read(vector: sys::duckdb_vector, ty: &ArrowType, len: usize) -> Result<ArrayRef, String> {
    // SAFETY: the caller's contract, which every helper relies on.
    unsafe { read_at(vector, ty, 0, len) }
}

/// Rows `start..start + len` of `vector` (see [`read`]).
///
/// # Safety
/// As for [`read`], with at least `start + len` rows.
unsafe fn read_at(vector: sys::duckdb_vector, ty: &ArrowType, start: usize, len: usize) -> Result<ArrayRef, String> {
    // SAFETY: the caller guarantees the vector's type and length.
    unsafe {
        let nulls = validity(vector, start, len);
        let data = sys::duckdb_vector_get_data(vector);
        Ok(match ty {
            ArrowType::Boolean => {
                let values = std::slice::from_raw_parts(data.cast::<bool>().add(start), len);
                Arc::new(BooleanArray::new(values.iter().copied().collect(), nulls))
            }
            ArrowType::Int8 => primitive::<Int8Type>(data, start, len, nulls),
            ArrowType::Int16 => primitive::<Int16Type>(data, start, len, nulls),
            ArrowType::Int32 => primitive::<Int32Type>(data, start, len, nulls),
            ArrowType::Int64 => primitive::<Int64Type>(data, start, len, nulls),
            ArrowType::UInt8 => primitive::<UInt8Type>(data, start, len, nulls),
            ArrowType::UInt16 => primitive::<UInt16Type>(data, start, len, nulls),
            ArrowType::UInt32 => primitive::<UInt32Type>(data, start, len, nulls),
            ArrowType::UInt64 => primitive::<UInt64Type>(data, start, len, nulls),
            ArrowType::Float32 => primitive::<Float32Type>(data, start, len, nulls),
            ArrowType::Float64 => primitive::<Float64Type>(data, start, len, nulls),
            ArrowType::Date32 => primitive::<Date32Type>(data, start, len, nulls),
            ArrowType::Timestamp(TimeUnit::Second, _) => primitive::<TimestampSecondType>(data, start, len, nulls),
            ArrowType::Timestamp(TimeUnit::Millisecond, _) => {
                primitive::<TimestampMillisecondType>(data, start, len, nulls)
            }
            ArrowType::Timestamp(TimeUnit::Microsecond, tz) => {
                Arc::new(typed::<TimestampMicrosecondType>(data, start, len, nulls).with_timezone_opt(tz.clone()))
            }
            ArrowType::Timestamp(TimeUnit::Nanosecond, _) => {
                primitive::<TimestampNanosecondType>(data, start, len, nulls)
            }
            ArrowType::Decimal128(width, scale) => {
                // DuckDB keeps a decimal in the narrowest integer its width fits.
                let values: Vec<i128> = match width {
                    0..=4 => widen::<i16>(data, start, len),
                    5..=9 => widen::<i32>(data, start, len),
                    10..=18 => widen::<i64>(data, start, len),
                    _ => widen::<i128>(data, start, len),
                };
                Arc::new(
                    PrimitiveArray::<Decimal128Type>::new(ScalarBuffer::from(values), nulls)
                        .with_precision_and_scale(*width, *scale)
                        .map_err(|e| e.to_string())?,
                )
            }
            ArrowType::Utf8 => {
                let mut builder = StringBuilder::with_capacity(len, 0);
                for i in 0..len {
                    match string(data, start + i, nulls.as_ref().is_none_or(|n| n.is_valid(i))) {
                        Some(bytes) => builder.append_value(
                            std::str::from_utf8(bytes).map_err(|e| format!("a VARCHAR value is not UTF-8: {e}"))?,
                        ),
                        None => builder.append_null(),
                    }
                }
                Arc::new(builder.finish())
            }
            ArrowType::Binary => {
                let mut builder = BinaryBuilder::with_capacity(len, 0);
                for i in 0..len {
                    builder.append_option(string(data, start + i, nulls.as_ref().is_none_or(|n| n.is_valid(i))));
                }
                Arc::new(builder.finish())
            }
            ArrowType::FixedSizeList(item, size) => {
                let n = usize::try_from(*size).map_err(|_| format!("bad array size {size}"))?;
                let child = sys::duckdb_array_vector_get_child(vector);
                let values = read_at(child, item.data_type(), start * n, len * n)?;
                Arc::new(
                    FixedSizeListArray::try_new(Arc::clone(item), *size, values, nulls).map_err(|e| e.to_string())?,
                )
            }
            ArrowType::List(item) => {
                let entries = std::slice::from_raw_parts(data.cast::<sys::duckdb_list_entry>().add(start), len);
                list(vector, item, entries, nulls)?
            }
            ArrowType::Struct(fields) => {
                let mut columns = Vec::with_capacity(fields.len());
                for (i, field) in fields.iter().enumerate() {
                    let child = sys::duckdb_struct_vector_get_child(vector, i as u64);
                    columns.push(read_at(child, field.data_type(), start, len)?);
                }
                Arc::new(StructArray::try_new(fields.clone(), columns, nulls).map_err(|e| e.to_string())?)
            }
            other => return Err(format!("Arrow type {other} is not read from DuckDB")),
        })
    }
}

/// The null rows of `vector` among `start..start + len`, or `None` when all are valid.
///
/// # Safety
/// As for [`read_at`].
unsafe fn validity(vector: sys::duckdb_vector, start: usize, len: usize) -> Option<NullBuffer> {
    // SAFETY: the vector is live; a null mask pointer means every row is valid.
    unsafe {
        let mask = sys::duckdb_vector_get_validity(vector);
        if mask.is_null() {
            return None;
        }
        let valid: Vec<bool> = (0..len)
            .map(|i| sys::duckdb_validity_row_is_valid(mask, (start + i) as u64))
            .collect();
        let nulls = NullBuffer::from(valid);
        (nulls.null_count() > 0).then_some(nulls)
    }
}

/// Fixed-width values whose layout DuckDB shares with Arrow, copied once.
///
/// # Safety
/// `data` must hold at least `start + len` values of `T::Native`.
unsafe fn typed<T: ArrowPrimitiveType>(
    data: *mut std::ffi::c_void,
    start: usize,
    len: usize,
    nulls: Option<NullBuffer>,
) -> PrimitiveArray<T> {
    // SAFETY: the caller's contract.
    let values = unsafe { std::slice::from_raw_parts(data.cast::<T::Native>().add(start), len) };
    PrimitiveArray::<T>::new(ScalarBuffer::from(values.to_vec()), nulls)
}

/// [`typed`], as an array reference.
///
/// # Safety
/// As for [`typed`].
unsafe fn primitive<T: ArrowPrimitiveType>(
    data: *mut std::ffi::c_void,
    start: usize,
    len: usize,
    nulls: Option<NullBuffer>,
) -> ArrayRef {
    // SAFETY: the caller's contract.
    Arc::new(unsafe { typed::<T>(data, start, len, nulls) })
}

/// Decimal values stored as `T`, widened to 128 bits. Read unaligned: DuckDB aligns its
/// 128-bit integers (`hugeint`, two 64-bit halves, low first) to 8 bytes, not 16.
///
/// # Safety
/// `data` must hold at least `start + len` values of `T`.
unsafe fn widen<T: Copy + Into<i128>>(data: *mut std::ffi::c_void, start: usize, len: usize) -> Vec<i128> {
    let data = data.cast::<T>();
    // SAFETY: the caller's contract; unaligned reads need no alignment.
    (start..start + len)
        .map(|i| unsafe { data.add(i).read_unaligned() }.into())
        .collect()
}

/// The bytes of the VARCHAR or BLOB value at `row`, if it is valid.
///
/// # Safety
/// `data` must be the data of a string vector with more than `row` rows; the bytes live as long
/// as the vector.
unsafe fn string<'a>(data: *mut std::ffi::c_void, row: usize, valid: bool) -> Option<&'a [u8]> {
    if !valid {
        return None;
    }
    // SAFETY: the caller's contract; DuckDB returns the string's length and a pointer to its
    // bytes (inside the value when inlined, which stays in the vector).
    unsafe {
        let value = data.cast::<sys::duckdb_string_t>().add(row);
        let len = sys::duckdb_string_t_length(*value) as usize;
        let bytes = sys::duckdb_string_t_data(value);
        Some(std::slice::from_raw_parts(bytes.cast::<u8>(), len))
    }
}

/// A LIST vector's rows, given their entries (offset and length into the child).
///
/// # Safety
/// As for [`read_at`], with a LIST vector whose entries are `entries`.
unsafe fn list(
    vector: sys::duckdb_vector,
    item: &Arc<Field>,
    entries: &[sys::duckdb_list_entry],
    nulls: Option<NullBuffer>,
) -> Result<ArrayRef, String> {
    let valid = |i: usize| nulls.as_ref().is_none_or(|n| n.is_valid(i));
    let lengths = entries
        .iter()
        .enumerate()
        .map(|(i, e)| if valid(i) { e.length as usize } else { 0 });
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    // SAFETY: the vector is a live LIST vector (the caller's contract).
    let child = unsafe { sys::duckdb_list_vector_get_child(vector) };
    let used: Vec<&sys::duckdb_list_entry> = entries
        .iter()
        .enumerate()
        .filter(|(i, e)| valid(*i) && e.length > 0)
        .map(|(_, e)| e)
        .collect();
    let contiguous = used.windows(2).all(|w| w[0].offset + w[0].length == w[1].offset);
    let values = match (used.first(), contiguous) {
        (None, _) => arrow_array::new_empty_array(item.data_type()),
        // The usual layout: the rows' values one after another in the child.
        (Some(first), true) => {
            let total = used.iter().map(|e| e.length as usize).sum();
            // SAFETY: the child holds the values the entries point at.
            unsafe { read_at(child, item.data_type(), first.offset as usize, total)? }
        }
        // Otherwise read the child's whole extent and pick each row's values.
        (Some(_), false) => {
            let end = used.iter().map(|e| e.offset + e.length).max().unwrap_or(0) as usize;
            // SAFETY: the child holds at least `end` values.
            let all = unsafe { read_at(child, item.data_type(), 0, end)? };
            let picks: UInt64Array = used.iter().flat_map(|e| e.offset..e.offset + e.length).collect();
            arrow_select::take::take(all.as_ref(), &picks, None).map_err(|e| e.to_string())?
        }
    };
    Ok(Arc::new(
        ListArray::try_new(Arc::clone(item), offsets, values, nulls).map_err(|e| e.to_string())?,
    ))
}

/// The rows of `chunk` as a batch of `schema` (one Arrow column per DuckDB column, of the types
/// [`arrow_type`] gave).
///
/// # Safety
/// `chunk` must be a live, flat data chunk whose columns have those types.
pub(crate) unsafe fn batch(chunk: sys::duckdb_data_chunk, schema: &SchemaRef) -> Result<RecordBatch, String> {
    // SAFETY: the chunk is live (the caller's contract).
    let len = unsafe { sys::duckdb_data_chunk_get_size(chunk) } as usize;
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, field)| {
            // SAFETY: column `i` exists and has the field's type (the caller's contract).
            unsafe {
                read(
                    sys::duckdb_data_chunk_get_vector(chunk, i as u64),
                    field.data_type(),
                    len,
                )
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| format!("vlake: {e}"))
}
