//! Schema evolution by field id (format-spec/schema.md#schema-evolution).
//!
//! Adding a column with nulls or a constant default, dropping, renaming, widening a type and
//! making a column nullable change only the manifest: data files are matched to fields by id,
//! a file that lacks a field reads its initial default (or nulls), and narrower stored types are
//! cast on read. Adding a column computed from other columns rewrites the data files, keeping
//! every row id, so indexes stay valid.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use vlake_format::schema::RESERVED_COLUMN_NAMES;
use vlake_format::{DataType, Error, Field, Result, Schema};

use crate::scan::default_array;
use crate::txn::{remove_files, Action, CompactedGroup};
use crate::{Literal, Table, ValueExpr};

/// The values a new column gets in existing rows.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnValue {
    /// Nulls (the column must be nullable).
    Null,
    /// A constant, stored once in the schema as the field's initial default.
    Default(Literal),
    /// An expression over existing columns, computed for every row (rewrites the data files).
    Expr(ValueExpr),
}

/// One change of a table schema.
#[derive(Clone, Debug, PartialEq)]
pub enum SchemaChange {
    /// Adds a top-level column at the end.
    AddColumn {
        /// Name, type and nullability.
        field: ArrowField,
        /// Its value in existing rows.
        value: ColumnValue,
    },
    /// Drops a column (its field id is never reused).
    DropColumn(String),
    /// Renames a column.
    RenameColumn {
        /// The current name.
        from: String,
        /// The new name.
        to: String,
    },
    /// Widens a column's type, e.g. `int32` to `int64` or `float32` to `float64`.
    WidenColumn {
        /// The column.
        column: String,
        /// The wider type.
        to: ArrowType,
    },
    /// Lets a column hold nulls (vector columns included).
    MakeNullable(String),
}

impl SchemaChange {
    fn describe(&self) -> String {
        match self {
            Self::AddColumn { field, .. } => format!("add column {}", field.name()),
            Self::DropColumn(c) => format!("drop column {c}"),
            Self::RenameColumn { from, to } => format!("rename column {from} to {to}"),
            Self::WidenColumn { column, to } => format!("widen column {column} to {to}"),
            Self::MakeNullable(c) => format!("make column {c} nullable"),
        }
    }
}

impl Table {
    /// Applies `changes`, in order, as one commit and returns the new version.
    pub async fn alter_schema(&self, changes: &[SchemaChange]) -> Result<Table> {
        self.manifest().check_writable()?;
        if changes.is_empty() {
            return Err(Error::invalid("a schema change needs at least one change"));
        }
        let mut schema = self.table_schema().clone();
        let mut next_id = self.manifest().max_field_id + 1;
        let mut computed: Vec<(Field, ValueExpr)> = Vec::new();
        for change in changes {
            self.apply_change(&mut schema, &mut next_id, change, &mut computed)?;
        }
        schema.validate()?;
        let descriptions = changes.iter().map(SchemaChange::describe).collect();
        let mut groups = Vec::new();
        let mut written = Vec::new();
        if !computed.is_empty() {
            if let Err(e) = self.backfill(&schema, &computed, &mut groups, &mut written).await {
                remove_files(self.location(), written.iter().map(String::as_str)).await;
                return Err(e);
            }
        }
        self.commit_action(Action::AlterSchema {
            schema,
            changes: descriptions,
            groups,
            written,
        })
        .await
    }

    fn apply_change(
        &self,
        schema: &mut Schema,
        next_id: &mut i32,
        change: &SchemaChange,
        computed: &mut Vec<(Field, ValueExpr)>,
    ) -> Result<()> {
        let key = &self.manifest().primary_key;
        let position = |schema: &Schema, name: &str| -> Result<usize> {
            let field = schema.field(name)?;
            Ok(schema.fields.iter().position(|f| f.id == field.id).unwrap_or_default())
        };
        match change {
            SchemaChange::AddColumn { field, value } => {
                check_new_name(schema, field.name())?;
                let mut added = Schema::from_arrow(&ArrowSchema::new(vec![field.clone()]), *next_id)?
                    .fields
                    .remove(0);
                *next_id = Schema {
                    fields: vec![added.clone()],
                }
                .max_field_id()
                    + 1;
                match value {
                    ColumnValue::Null if !field.is_nullable() => {
                        return Err(Error::invalid(format!(
                            "column '{}' is not nullable: give it a default or an expression",
                            field.name()
                        )))
                    }
                    ColumnValue::Null => {}
                    ColumnValue::Default(literal) => added.initial_default = Some(default_json(&added, literal)?),
                    ColumnValue::Expr(expr) => {
                        for c in expr.columns() {
                            if !self.table_schema().fields.iter().any(|f| f.name == c) {
                                return Err(Error::invalid(format!(
                                    "the expression of column '{}' reads '{c}', which is not a column of the table",
                                    field.name()
                                )));
                            }
                        }
                        computed.push((added.clone(), expr.clone()));
                    }
                }
                schema.fields.push(added);
            }
            SchemaChange::DropColumn(name) => {
                let at = position(schema, name)?;
                if key.contains(&schema.fields[at].id) {
                    return Err(Error::invalid(format!("column '{name}' is part of the primary key")));
                }
                if schema.fields.len() == 1 {
                    return Err(Error::invalid(format!("column '{name}' is the table's only column")));
                }
                if computed.iter().any(|(_, e)| e.columns().contains(&name.as_str())) {
                    return Err(Error::invalid(format!("a new column is computed from '{name}'")));
                }
                schema.fields.remove(at);
            }
            SchemaChange::RenameColumn { from, to } => {
                let at = position(schema, from)?;
                check_new_name(schema, to)?;
                if computed.iter().any(|(_, e)| e.columns().contains(&from.as_str())) {
                    return Err(Error::invalid(format!("a new column is computed from '{from}'")));
                }
                schema.fields[at].name = to.clone();
            }
            SchemaChange::WidenColumn { column, to } => {
                let at = position(schema, column)?;
                let field = &mut schema.fields[at];
                let from = field.to_arrow(false).data_type().clone();
                if !is_widening(&from, to) {
                    return Err(Error::invalid(format!(
                        "column '{column}' cannot change from {from} to {to}: only widening casts are allowed (int8 to int16 to int32 to int64, uint8 to uint16 to uint32 to uint64, unsigned to a wider signed type, float16 to float32 to float64, integers up to 32 bits to float64, utf8 to large_utf8, binary to large_binary)"
                    )));
                }
                let widened = Schema::from_arrow(
                    &ArrowSchema::new(vec![ArrowField::new(&field.name, to.clone(), field.nullable)]),
                    field.id,
                )?
                .fields
                .remove(0);
                field.data_type = widened.data_type;
            }
            SchemaChange::MakeNullable(column) => {
                let at = position(schema, column)?;
                if key.contains(&schema.fields[at].id) {
                    return Err(Error::invalid(format!(
                        "column '{column}' is part of the primary key, which cannot be null"
                    )));
                }
                schema.fields[at].nullable = true;
            }
        }
        Ok(())
    }

    /// Rewrites every data file with the computed columns, keeping the row ids.
    async fn backfill(
        &self,
        schema: &Schema,
        computed: &[(Field, ValueExpr)],
        groups: &mut Vec<CompactedGroup>,
        written: &mut Vec<String>,
    ) -> Result<()> {
        let target = Arc::new(schema.to_arrow_read());
        let current = self.table_schema().clone();
        let computed: Arc<Vec<(Field, ValueExpr)>> = Arc::new(computed.to_vec());
        for file in &self.manifest().data_files {
            let (target, current, computed, fields) =
                (target.clone(), current.clone(), computed.clone(), schema.fields.clone());
            let transform = move |batch: RecordBatch| -> Result<RecordBatch> {
                let columns = fields
                    .iter()
                    .zip(target.fields())
                    .map(|(field, arrow)| -> Result<ArrayRef> {
                        if let Some((_, expr)) = computed.iter().find(|(f, _)| f.id == field.id) {
                            return expr.evaluate(&batch, arrow.data_type(), arrow.name());
                        }
                        // A column added by the same change without an expression.
                        let Some(i) = current.fields.iter().position(|f| f.id == field.id) else {
                            return match &field.initial_default {
                                Some(value) => default_array(field, value, batch.num_rows()),
                                None => Ok(arrow_array::new_null_array(arrow.data_type(), batch.num_rows())),
                            };
                        };
                        let column = batch.column(i);
                        match column.data_type() == arrow.data_type() {
                            true => Ok(column.clone()),
                            false => Ok(arrow_cast::cast(column, arrow.data_type())?),
                        }
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(RecordBatch::try_new(target.clone(), columns)?)
            };
            let sources = vec![file.clone()];
            let max_rows = usize::try_from(file.num_rows).unwrap_or(usize::MAX);
            let outputs = self
                .rewrite(&sources, max_rows, schema, transform, BTreeSet::new(), written)
                .await?;
            groups.push(CompactedGroup { sources, outputs });
        }
        Ok(())
    }
}

fn check_new_name(schema: &Schema, name: &str) -> Result<()> {
    if RESERVED_COLUMN_NAMES.contains(&name) {
        return Err(Error::invalid(format!(
            "column name '{name}' is reserved for vlake's own result columns"
        )));
    }
    if schema.fields.iter().any(|f| f.name == name) {
        return Err(Error::AlreadyExists {
            what: format!("column '{name}'"),
        });
    }
    Ok(())
}

/// Whether values of type `from` convert to `to` without loss.
fn is_widening(from: &ArrowType, to: &ArrowType) -> bool {
    use ArrowType::*;
    let rank = |t: &ArrowType| match t {
        Int8 => Some((true, 1)),
        Int16 => Some((true, 2)),
        Int32 => Some((true, 4)),
        Int64 => Some((true, 8)),
        UInt8 => Some((false, 1)),
        UInt16 => Some((false, 2)),
        UInt32 => Some((false, 4)),
        UInt64 => Some((false, 8)),
        _ => None,
    };
    match (from, to) {
        (Float16, Float32 | Float64) | (Float32, Float64) | (Utf8, LargeUtf8) | (Binary, LargeBinary) => true,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Float64) => true,
        _ => match (rank(from), rank(to)) {
            (Some((fs, fw)), Some((ts, tw))) => (fs == ts && tw > fw) || (!fs && ts && tw > fw),
            _ => false,
        },
    }
}

/// Checks that `literal` converts to `field`'s type and returns the JSON stored as its initial
/// default.
fn default_json(field: &Field, literal: &Literal) -> Result<serde_json::Value> {
    let value = match literal {
        Literal::Null => {
            return Err(Error::invalid(format!(
                "the default of column '{}' is null: add the column with nulls instead",
                field.name
            )))
        }
        Literal::Bool(b) => serde_json::Value::Bool(*b),
        Literal::Int(i) => serde_json::Value::from(*i),
        Literal::Float(f) => serde_json::Number::from_f64(*f)
            .map(serde_json::Value::Number)
            .ok_or_else(|| Error::invalid(format!("the default of column '{}' is not finite", field.name)))?,
        Literal::String(s) => serde_json::Value::String(s.clone()),
    };
    let primitive = !matches!(
        field.data_type,
        DataType::List { .. } | DataType::FixedSizeList { .. } | DataType::Struct { .. }
    );
    if !primitive {
        return Err(Error::invalid(format!(
            "column '{}' has a nested type; only columns of primitive types take a default",
            field.name
        )));
    }
    default_array(field, &value, 1)?;
    Ok(value)
}
