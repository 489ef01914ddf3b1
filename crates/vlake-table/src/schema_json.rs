//! Schema changes in a JSON form, as bindings hand them over: a list of `{"op": "add",
//! "field": i, "default": v}` (or `"expression": sql`), `{"op": "drop", "column": c}`,
//! `{"op": "rename", "from": a, "to": b}`, `{"op": "widen", "column": c, "field": i}` and
//! `{"op": "nullable", "column": c}`, where `field` is a position in an Arrow schema given with
//! the list (Arrow types have no JSON form of their own here).

use arrow_schema::Schema;

use crate::{ColumnValue, Error, Literal, Result, SchemaChange, ValueExpr};

impl SchemaChange {
    /// The changes of `json`, whose `field`s index `fields`.
    pub fn list_from_json(json: &str, fields: &Schema) -> Result<Vec<SchemaChange>> {
        let changes: Vec<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| Error::invalid(format!("bad schema changes: {e}")))?;
        let text = |c: &serde_json::Value, key: &str| -> Result<String> {
            c.get(key)
                .and_then(|v| v.as_str())
                .map(String::from)
                .ok_or_else(|| Error::invalid(format!("schema change {c} lacks '{key}'")))
        };
        let field = |c: &serde_json::Value| -> Result<arrow_schema::Field> {
            c.get("field")
                .and_then(|v| v.as_u64())
                .and_then(|i| fields.fields().get(i as usize))
                .map(|f| f.as_ref().clone())
                .ok_or_else(|| Error::invalid(format!("schema change {c} names no field")))
        };
        changes
            .iter()
            .map(|c| {
                Ok(match text(c, "op")?.as_str() {
                    "add" => {
                        let value = match (c.get("default"), c.get("expression").and_then(|e| e.as_str())) {
                            (_, Some(sql)) => ColumnValue::Expr(ValueExpr::parse(sql)?),
                            (None | Some(serde_json::Value::Null), None) => ColumnValue::Null,
                            (Some(v), None) => ColumnValue::Default(match v {
                                serde_json::Value::Bool(b) => Literal::Bool(*b),
                                serde_json::Value::String(s) => Literal::String(s.clone()),
                                serde_json::Value::Number(n) => match n.as_i64() {
                                    Some(i) => Literal::Int(i),
                                    None => Literal::Float(n.as_f64().unwrap_or(f64::NAN)),
                                },
                                other => return Err(Error::invalid(format!("default {other} is not a scalar"))),
                            }),
                        };
                        SchemaChange::AddColumn {
                            field: field(c)?,
                            value,
                        }
                    }
                    "drop" => SchemaChange::DropColumn(text(c, "column")?),
                    "rename" => SchemaChange::RenameColumn {
                        from: text(c, "from")?,
                        to: text(c, "to")?,
                    },
                    "widen" => SchemaChange::WidenColumn {
                        column: text(c, "column")?,
                        to: field(c)?.data_type().clone(),
                    },
                    "nullable" => SchemaChange::MakeNullable(text(c, "column")?),
                    other => return Err(Error::invalid(format!("unknown schema change '{other}'"))),
                })
            })
            .collect()
    }
}
