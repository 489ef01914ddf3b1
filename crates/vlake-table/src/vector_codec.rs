//! Vector columns in data files (format-spec/data-files.md#vector-columns).
//!
//! A vector column `FixedSizeList<Float32|Float16, dim>` is stored as a Parquet
//! `FIXED_LEN_BYTE_ARRAY` of `dim * element size` little-endian bytes per row: one value per
//! row instead of `dim` values with repetition and definition levels, so writing and reading it
//! is a copy. Null vectors are null values; a vector with a null element cannot be stored.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type};
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, FixedSizeListArray, Float16Array, Float32Array};
use arrow_buffer::{Buffer, MutableBuffer};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use vlake_format::schema::blob_descriptor_type;
use vlake_format::{DataType, Error, Field, Result, Schema};

/// Bytes per element of a vector column's element type.
fn element_bytes(element: &DataType) -> usize {
    match element {
        DataType::Float16 => 2,
        _ => 4,
    }
}

/// The Arrow schema of data files: the table schema with field ids, vectors as fixed-size
/// binary, BLOB columns as descriptors.
pub(crate) fn file_schema(schema: &Schema) -> ArrowSchema {
    let fields: Vec<ArrowField> = schema
        .fields
        .iter()
        .map(|field| {
            let arrow = field.to_arrow(true);
            if field.is_blob() {
                return arrow.with_data_type(blob_descriptor_type());
            }
            match field.vector_dim() {
                Some((dim, element)) => {
                    let width = dim * element_bytes(element) as i32;
                    ArrowField::new(field.name.clone(), ArrowType::FixedSizeBinary(width), field.nullable)
                        .with_metadata(arrow.metadata().clone())
                }
                None => arrow,
            }
        })
        .collect();
    ArrowSchema::new(fields)
}

/// Encodes a vector column (already of the table type) as fixed-size binary, without copying.
pub(crate) fn encode(field: &Field, column: &ArrayRef) -> Result<ArrayRef> {
    let Some((dim, element)) = field.vector_dim() else {
        return Ok(column.clone());
    };
    let list = column.as_fixed_size_list();
    let values = list.values();
    if values.null_count() > 0 {
        let dim = dim as usize;
        let bad = (0..list.len()).find(|&row| list.is_valid(row) && (0..dim).any(|j| values.is_null(row * dim + j)));
        if let Some(row) = bad {
            return Err(Error::invalid(format!(
                "vector column '{}' has a null element in row {row}",
                field.name
            )));
        }
    }
    let bytes = match element {
        DataType::Float16 => values.as_primitive::<Float16Type>().values().inner().clone(),
        _ => values.as_primitive::<Float32Type>().values().inner().clone(),
    };
    let width = dim * element_bytes(element) as i32;
    Ok(Arc::new(FixedSizeBinaryArray::new(width, bytes, list.nulls().cloned())))
}

/// Decodes a fixed-size binary column of a data file back to the vector type `target`.
pub(crate) fn decode(field: &Field, column: &ArrayRef, target: &ArrowType) -> Result<ArrayRef> {
    let (Some((dim, element)), ArrowType::FixedSizeBinary(_), ArrowType::FixedSizeList(item, _)) =
        (field.vector_dim(), column.data_type(), target)
    else {
        return Ok(column.clone());
    };
    let binary = column.as_fixed_size_binary();
    let width = dim as usize * element_bytes(element);
    if binary.value_length() as usize != width {
        return Err(Error::corrupt(
            format!("column '{}'", field.name),
            format!(
                "vectors are stored as {} bytes, but {dim} x {element:?} needs {width}",
                binary.value_length()
            ),
        ));
    }
    let n = binary.len() * dim as usize;
    let bytes = binary.values().slice_with_length(0, n * element_bytes(element));
    let values: ArrayRef = match element {
        DataType::Float16 => Arc::new(Float16Array::new(aligned(bytes, 2).into(), None)),
        _ => Arc::new(Float32Array::new(aligned(bytes, 4).into(), None)),
    };
    let item = Arc::new(ArrowField::new(
        item.name(),
        item.data_type().clone(),
        item.is_nullable(),
    ));
    Ok(Arc::new(FixedSizeListArray::try_new(
        item,
        dim,
        values,
        binary.nulls().cloned(),
    )?))
}

/// The buffer itself when it is aligned to `align` bytes, else an aligned copy.
fn aligned(bytes: Buffer, align: usize) -> Buffer {
    if bytes.as_ptr().align_offset(align) == 0 {
        bytes
    } else {
        let mut copy = MutableBuffer::new(bytes.len());
        copy.extend_from_slice(bytes.as_slice());
        copy.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_field(element: ArrowType) -> (Field, ArrowType) {
        let item = Arc::new(ArrowField::new("item", element, true));
        let t = ArrowType::FixedSizeList(item, 3);
        let schema = Schema::from_arrow(
            &arrow_schema::Schema::new(vec![ArrowField::new("v", t.clone(), true)]),
            1,
        )
        .unwrap();
        (schema.fields[0].clone(), t)
    }

    #[test]
    fn round_trips_sliced_and_null_vectors() {
        let (field, t) = vector_field(ArrowType::Float32);
        let values = Float32Array::from((0..30).map(|i| i as f32).collect::<Vec<_>>());
        let ArrowType::FixedSizeList(item, _) = &t else {
            unreachable!()
        };
        let nulls = arrow_buffer::NullBuffer::from(vec![true, false, true, true, true, true, true, true, true, true]);
        let list: ArrayRef = Arc::new(FixedSizeListArray::new(item.clone(), 3, Arc::new(values), Some(nulls)));
        let sliced = list.slice(1, 4);
        let encoded = encode(&field, &sliced).unwrap();
        assert_eq!(encoded.len(), 4);
        assert!(encoded.is_null(0));
        assert_eq!(&decode(&field, &encoded, &t).unwrap().to_data(), &sliced.to_data());
        // Misaligned bytes (as an odd slice of a byte buffer would give) are copied.
        let bytes = Buffer::from_vec((0u8..=12).collect::<Vec<_>>()).slice(1);
        let odd: ArrayRef = Arc::new(FixedSizeBinaryArray::new(12, bytes, None));
        let decoded = decode(&field, &odd, &t).unwrap();
        assert_eq!(decoded.as_fixed_size_list().value_length(), 3);
    }

    #[test]
    fn null_elements_are_refused() {
        let (field, t) = vector_field(ArrowType::Float16);
        let ArrowType::FixedSizeList(item, _) = &t else {
            unreachable!()
        };
        let values = Float16Array::from(vec![Some(half::f16::ONE), None, Some(half::f16::ONE)]);
        let list: ArrayRef = Arc::new(FixedSizeListArray::new(item.clone(), 3, Arc::new(values), None));
        let err = encode(&field, &list).unwrap_err();
        assert!(err.to_string().contains("null element in row 0"), "{err}");
    }
}
