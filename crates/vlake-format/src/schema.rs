//! Table schemas with stable field ids (format-spec/schema.md).
//!
//! Every field, nested ones included, carries an `id` that never changes and is never reused.
//! Data files store the id of each column, so columns are matched by id, not by name or
//! position; renames and drops are metadata-only.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{DataType as ArrowType, Field as ArrowField, Fields, Schema as ArrowSchema, TimeUnit as ArrowUnit};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Column names vlake adds to results (row ids, distances, scores); tables cannot use them.
pub const RESERVED_COLUMN_NAMES: &[&str] = &["_rowid", "_distance", "_score", "_snippet"];

/// The Arrow field-metadata key under which Parquet stores a column's field id.
pub const PARQUET_FIELD_ID_KEY: &str = "PARQUET:field_id";

/// The field-metadata key that makes a `large_binary` column a BLOB column (value `"true"`;
/// format-spec/schema.md#blob-columns).
pub const BLOB_KEY: &str = "vlake:blob";

/// Names of the members of a BLOB descriptor, in order: the blob file (null for an empty
/// blob), the byte offset in it and the size in bytes.
pub const BLOB_DESCRIPTOR_MEMBERS: [&str; 3] = ["path", "offset", "size"];

/// The Arrow type of a BLOB column's descriptors, as data files store them and scans return
/// them: `Struct<path: Utf8, offset: UInt64, size: UInt64>`, every member nullable (all three
/// are null for a null value, `path` also for an empty one).
pub fn blob_descriptor_type() -> ArrowType {
    let [path, offset, size] = BLOB_DESCRIPTOR_MEMBERS;
    ArrowType::Struct(Fields::from(vec![
        ArrowField::new(path, ArrowType::Utf8, true),
        ArrowField::new(offset, ArrowType::UInt64, true),
        ArrowField::new(size, ArrowType::UInt64, true),
    ]))
}

/// A table schema: an ordered list of top-level fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    /// Top-level fields, in column order.
    pub fields: Vec<Field>,
}

/// One (possibly nested) field of a schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Stable id, unique within the table across all its versions.
    pub id: i32,
    /// Column name.
    pub name: String,
    /// Logical type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Whether the field may hold nulls.
    pub nullable: bool,
    /// User metadata carried from the Arrow field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The value of this field in rows of data files that lack it (files written before the
    /// column was added); `None` means null. Top-level primitive fields only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_default: Option<serde_json::Value>,
}

/// Units of a timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum TimeUnit {
    Second,
    Millisecond,
    Microsecond,
    Nanosecond,
}

/// The logical types a vlake column can have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum DataType {
    Boolean,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Float16,
    Float32,
    Float64,
    Utf8,
    LargeUtf8,
    Binary,
    LargeBinary,
    Date32,
    Timestamp {
        unit: TimeUnit,
        timezone: Option<String>,
    },
    Decimal128 {
        precision: u8,
        scale: i8,
    },
    /// A variable-length list.
    List {
        item: Box<Field>,
    },
    /// A fixed-size list; vectors are `FixedSizeList<Float16|Float32, dim>`.
    FixedSizeList {
        item: Box<Field>,
        size: i32,
    },
    Struct {
        fields: Vec<Field>,
    },
}

impl Schema {
    /// Converts an Arrow schema, assigning fresh field ids depth-first starting at `first_id`.
    pub fn from_arrow(schema: &ArrowSchema, first_id: i32) -> Result<Self> {
        if let Some(f) = schema
            .fields()
            .iter()
            .find(|f| RESERVED_COLUMN_NAMES.contains(&f.name().as_str()))
        {
            return Err(Error::invalid(format!(
                "column name '{}' is reserved for vlake's own result columns",
                f.name()
            )));
        }
        let mut next = first_id;
        let fields = schema
            .fields()
            .iter()
            .map(|f| Field::from_arrow(f, &mut next))
            .collect::<Result<Vec<_>>>()?;
        let out = Self { fields };
        out.validate()?;
        out.check_blobs()?;
        Ok(out)
    }

    /// The Arrow schema users see (no field-id metadata).
    pub fn to_arrow(&self) -> ArrowSchema {
        ArrowSchema::new(self.fields.iter().map(|f| f.to_arrow(false)).collect::<Vec<_>>())
    }

    /// The Arrow schema scans return: BLOB columns hold descriptors ([`Field::to_arrow_read`]).
    pub fn to_arrow_read(&self) -> ArrowSchema {
        ArrowSchema::new(self.fields.iter().map(Field::to_arrow_read).collect::<Vec<_>>())
    }

    /// Whether any column is a BLOB column.
    pub fn has_blobs(&self) -> bool {
        self.fields.iter().any(Field::is_blob)
    }

    /// The Arrow schema written to data files: every field carries [`PARQUET_FIELD_ID_KEY`].
    pub fn to_arrow_with_field_ids(&self) -> ArrowSchema {
        ArrowSchema::new(self.fields.iter().map(|f| f.to_arrow(true)).collect::<Vec<_>>())
    }

    /// The largest field id in use, nested fields included (0 for an empty schema).
    pub fn max_field_id(&self) -> i32 {
        self.fields.iter().map(Field::max_id).max().unwrap_or(0)
    }

    /// The top-level field called `name`.
    pub fn field(&self, name: &str) -> Result<&Field> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| Error::not_found(format!("column '{name}' (columns: {})", self.column_names().join(", "))))
    }

    /// The top-level field with id `id`, if any.
    pub fn field_by_id(&self, id: i32) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }

    /// Names of the top-level fields, in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }

    /// The schema restricted to the named top-level columns, in the given order.
    pub fn project(&self, names: &[impl AsRef<str>]) -> Result<Self> {
        let fields = names
            .iter()
            .map(|n| self.field(n.as_ref()).cloned())
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { fields })
    }

    /// Whether a field has an initial default (feature `column_defaults`).
    pub fn has_defaults(&self) -> bool {
        self.fields.iter().any(|f| f.initial_default.is_some())
    }

    /// BLOB columns are top-level `large_binary` columns.
    fn check_blobs(&self) -> Result<()> {
        let mut stack: Vec<(&Field, bool)> = self.fields.iter().map(|f| (f, true)).collect();
        while let Some((f, top)) = stack.pop() {
            if f.metadata.contains_key(BLOB_KEY) && !(top && f.is_blob()) {
                return Err(Error::invalid(format!(
                    "column '{}' has metadata '{BLOB_KEY}' but is not a top-level large_binary column with value \"true\"",
                    f.name
                )));
            }
            stack.extend(f.children().into_iter().map(|c| (c, false)));
        }
        Ok(())
    }

    /// Checks the invariants of the spec: unique non-negative ids, unique top-level names.
    pub fn validate(&self) -> Result<()> {
        let mut ids = std::collections::BTreeSet::new();
        let mut stack: Vec<&Field> = self.fields.iter().collect();
        while let Some(f) = stack.pop() {
            if f.id < 0 || !ids.insert(f.id) {
                return Err(Error::invalid(format!(
                    "field id {} of '{}' is negative or used twice",
                    f.id, f.name
                )));
            }
            stack.extend(f.children());
        }
        let mut names = std::collections::BTreeSet::new();
        for f in &self.fields {
            if f.name.is_empty() || !names.insert(f.name.as_str()) {
                return Err(Error::invalid(format!(
                    "column name '{}' is empty or used twice",
                    f.name
                )));
            }
        }
        Ok(())
    }
}

impl Field {
    fn from_arrow(f: &ArrowField, next: &mut i32) -> Result<Self> {
        let id = *next;
        *next += 1;
        let child = |f: &ArrowField, next: &mut i32| Field::from_arrow(f, next).map(Box::new);
        let data_type = match f.data_type() {
            ArrowType::Boolean => DataType::Boolean,
            ArrowType::Int8 => DataType::Int8,
            ArrowType::Int16 => DataType::Int16,
            ArrowType::Int32 => DataType::Int32,
            ArrowType::Int64 => DataType::Int64,
            ArrowType::UInt8 => DataType::Uint8,
            ArrowType::UInt16 => DataType::Uint16,
            ArrowType::UInt32 => DataType::Uint32,
            ArrowType::UInt64 => DataType::Uint64,
            ArrowType::Float16 => DataType::Float16,
            ArrowType::Float32 => DataType::Float32,
            ArrowType::Float64 => DataType::Float64,
            ArrowType::Utf8 => DataType::Utf8,
            ArrowType::LargeUtf8 => DataType::LargeUtf8,
            ArrowType::Binary => DataType::Binary,
            ArrowType::LargeBinary => DataType::LargeBinary,
            ArrowType::Date32 => DataType::Date32,
            ArrowType::Timestamp(unit, tz) => DataType::Timestamp {
                unit: match unit {
                    ArrowUnit::Second => TimeUnit::Second,
                    ArrowUnit::Millisecond => TimeUnit::Millisecond,
                    ArrowUnit::Microsecond => TimeUnit::Microsecond,
                    ArrowUnit::Nanosecond => TimeUnit::Nanosecond,
                },
                timezone: tz.as_ref().map(|t| t.to_string()),
            },
            ArrowType::Decimal128(p, s) => DataType::Decimal128 {
                precision: *p,
                scale: *s,
            },
            ArrowType::List(item) => DataType::List {
                item: child(item, next)?,
            },
            ArrowType::FixedSizeList(item, size) => DataType::FixedSizeList {
                item: child(item, next)?,
                size: *size,
            },
            ArrowType::Struct(fields) => DataType::Struct {
                fields: fields
                    .iter()
                    .map(|c| Field::from_arrow(c, next))
                    .collect::<Result<_>>()?,
            },
            // Dictionary encoding is a representation, not a type: the values are stored.
            ArrowType::Dictionary(_, value) => {
                *next = id;
                return Field::from_arrow(&f.clone().with_data_type(value.as_ref().clone()), next);
            }
            other => {
                return Err(Error::unsupported(format!(
                    "column '{}' has Arrow type {other}, which vlake format v1 cannot store",
                    f.name()
                )))
            }
        };
        let metadata = f
            .metadata()
            .iter()
            .filter(|(k, _)| k.as_str() != PARQUET_FIELD_ID_KEY)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Self {
            id,
            name: f.name().clone(),
            data_type,
            nullable: f.is_nullable(),
            metadata,
            initial_default: None,
        })
    }

    /// The Arrow field, with the field id in its metadata when `with_ids`.
    pub fn to_arrow(&self, with_ids: bool) -> ArrowField {
        let child = |f: &Field| Arc::new(f.to_arrow(with_ids));
        let dt = match &self.data_type {
            DataType::Boolean => ArrowType::Boolean,
            DataType::Int8 => ArrowType::Int8,
            DataType::Int16 => ArrowType::Int16,
            DataType::Int32 => ArrowType::Int32,
            DataType::Int64 => ArrowType::Int64,
            DataType::Uint8 => ArrowType::UInt8,
            DataType::Uint16 => ArrowType::UInt16,
            DataType::Uint32 => ArrowType::UInt32,
            DataType::Uint64 => ArrowType::UInt64,
            DataType::Float16 => ArrowType::Float16,
            DataType::Float32 => ArrowType::Float32,
            DataType::Float64 => ArrowType::Float64,
            DataType::Utf8 => ArrowType::Utf8,
            DataType::LargeUtf8 => ArrowType::LargeUtf8,
            DataType::Binary => ArrowType::Binary,
            DataType::LargeBinary => ArrowType::LargeBinary,
            DataType::Date32 => ArrowType::Date32,
            DataType::Timestamp { unit, timezone } => ArrowType::Timestamp(
                match unit {
                    TimeUnit::Second => ArrowUnit::Second,
                    TimeUnit::Millisecond => ArrowUnit::Millisecond,
                    TimeUnit::Microsecond => ArrowUnit::Microsecond,
                    TimeUnit::Nanosecond => ArrowUnit::Nanosecond,
                },
                timezone.as_deref().map(Into::into),
            ),
            DataType::Decimal128 { precision, scale } => ArrowType::Decimal128(*precision, *scale),
            DataType::List { item } => ArrowType::List(child(item)),
            DataType::FixedSizeList { item, size } => ArrowType::FixedSizeList(child(item), *size),
            DataType::Struct { fields } => ArrowType::Struct(Fields::from(
                fields.iter().map(|f| f.to_arrow(with_ids)).collect::<Vec<_>>(),
            )),
        };
        let mut metadata: std::collections::HashMap<String, String> =
            self.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if with_ids {
            metadata.insert(PARQUET_FIELD_ID_KEY.to_string(), self.id.to_string());
        }
        ArrowField::new(&self.name, dt, self.nullable).with_metadata(metadata)
    }

    /// Whether this is a BLOB column: `large_binary` with metadata `vlake:blob` = `"true"`.
    pub fn is_blob(&self) -> bool {
        self.data_type == DataType::LargeBinary && self.metadata.get(BLOB_KEY).is_some_and(|v| v == "true")
    }

    /// The Arrow field scans return: BLOB columns as descriptors ([`blob_descriptor_type`]),
    /// keeping their metadata; other columns as [`Field::to_arrow`] without ids.
    pub fn to_arrow_read(&self) -> ArrowField {
        let arrow = self.to_arrow(false);
        if self.is_blob() {
            arrow.with_data_type(blob_descriptor_type())
        } else {
            arrow
        }
    }

    /// Nested child fields (list items, struct members).
    pub fn children(&self) -> Vec<&Field> {
        match &self.data_type {
            DataType::List { item } | DataType::FixedSizeList { item, .. } => vec![item.as_ref()],
            DataType::Struct { fields } => fields.iter().collect(),
            _ => vec![],
        }
    }

    fn max_id(&self) -> i32 {
        self.children().into_iter().map(Field::max_id).fold(self.id, i32::max)
    }

    /// `Some((dim, element type))` when this is a vector column:
    /// `FixedSizeList<Float16|Float32, dim>`.
    pub fn vector_dim(&self) -> Option<(i32, &DataType)> {
        match &self.data_type {
            DataType::FixedSizeList { item, size }
                if matches!(item.data_type, DataType::Float16 | DataType::Float32) =>
            {
                Some((*size, &item.data_type))
            }
            _ => None,
        }
    }
}

/// Reads the field id stored in an Arrow field's metadata, if any.
pub fn arrow_field_id(field: &ArrowField) -> Option<i32> {
    field.metadata().get(PARQUET_FIELD_ID_KEY).and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ArrowSchema {
        ArrowSchema::new(vec![
            ArrowField::new("id", ArrowType::Int64, false),
            ArrowField::new("name", ArrowType::Utf8, true),
            ArrowField::new(
                "vector",
                ArrowType::FixedSizeList(Arc::new(ArrowField::new("item", ArrowType::Float32, true)), 4),
                true,
            ),
            ArrowField::new(
                "half",
                ArrowType::FixedSizeList(Arc::new(ArrowField::new("item", ArrowType::Float16, true)), 2),
                true,
            ),
            ArrowField::new(
                "meta",
                ArrowType::Struct(Fields::from(vec![
                    ArrowField::new("a", ArrowType::Int32, true),
                    ArrowField::new(
                        "ts",
                        ArrowType::Timestamp(ArrowUnit::Microsecond, Some("UTC".into())),
                        true,
                    ),
                ])),
                true,
            ),
        ])
    }

    #[test]
    fn arrow_round_trip_assigns_depth_first_ids() -> Result<()> {
        let s = Schema::from_arrow(&sample(), 1)?;
        assert_eq!(s.fields[0].id, 1);
        assert_eq!(s.fields[2].id, 3);
        assert_eq!(s.fields[2].children()[0].id, 4);
        assert_eq!(s.max_field_id(), 9);
        assert_eq!(s.to_arrow(), sample());
        assert_eq!(s.fields[2].vector_dim().map(|(d, _)| d), Some(4));
        assert!(s.fields[1].vector_dim().is_none());
        let json = serde_json::to_string(&s).map_err(|e| Error::invalid(e.to_string()))?;
        let back: Schema = serde_json::from_str(&json).map_err(|e| Error::invalid(e.to_string()))?;
        assert_eq!(back, s);
        let with_ids = s.to_arrow_with_field_ids();
        assert_eq!(arrow_field_id(with_ids.field(4)), Some(7));
        Ok(())
    }

    #[test]
    fn unsupported_types_are_named() {
        let s = ArrowSchema::new(vec![ArrowField::new("d", ArrowType::Duration(ArrowUnit::Second), true)]);
        let err = Schema::from_arrow(&s, 1).unwrap_err().to_string();
        assert!(err.contains("'d'"), "{err}");
        let s = ArrowSchema::new(vec![ArrowField::new("_rowid", ArrowType::Int64, true)]);
        assert!(matches!(Schema::from_arrow(&s, 1), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn duplicate_names_and_ids_are_rejected() {
        let f = |id, name: &str| Field {
            id,
            name: name.into(),
            data_type: DataType::Int32,
            nullable: true,
            metadata: BTreeMap::new(),
            initial_default: None,
        };
        assert!(Schema {
            fields: vec![f(1, "a"), f(1, "b")]
        }
        .validate()
        .is_err());
        assert!(Schema {
            fields: vec![f(1, "a"), f(2, "a")]
        }
        .validate()
        .is_err());
        assert!(Schema {
            fields: vec![f(1, "a"), f(2, "b")]
        }
        .validate()
        .is_ok());
    }
}
