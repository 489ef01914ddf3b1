//! `SET column = expression` assignments of updates: parsed from SQL, evaluated on Arrow
//! batches. Expressions are literals, column references, unary minus and `+ - * / %` over
//! numbers; anything else is refused with a clear error.

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType as ArrowType;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{AssignmentTarget, BinaryOperator, Expr, UnaryOperator};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use vlake_format::{Error, Result};

use crate::predicate::{column_name, literal, literal_array};
use crate::Literal;

/// Arithmetic operators of assignment expressions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// The value side of an assignment (and either side of a filter comparison).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueExpr {
    /// A constant.
    Literal(Literal),
    /// The row's current value of a column.
    Column(String),
    /// `-expr`.
    Negate(Box<ValueExpr>),
    /// `left <op> right`.
    Arith {
        /// Left operand.
        left: Box<ValueExpr>,
        /// Operator.
        op: ArithOp,
        /// Right operand.
        right: Box<ValueExpr>,
    },
}

/// One `column = expression` of an update.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    /// The column set.
    pub column: String,
    /// Its new value, computed from the row's current values.
    pub value: ValueExpr,
}

impl Assignment {
    /// Parses a comma-separated SQL assignment list such as `score = score * 2, name = 'x'`.
    pub fn parse_list(sql: &str) -> Result<Vec<Self>> {
        let bad = |e: String| Error::invalid(format!("bad assignment '{sql}': {e}"));
        let mut parser = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .map_err(|e| bad(e.to_string()))?;
        let parsed = parser
            .parse_comma_separated(Parser::parse_assignment)
            .map_err(|e| bad(e.to_string()))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(bad(format!("unexpected '{}'", parser.peek_token().token)));
        }
        parsed
            .iter()
            .map(|a| {
                let column = match &a.target {
                    AssignmentTarget::ColumnName(name) => name
                        .0
                        .last()
                        .and_then(|p| p.as_ident())
                        .map(|i| i.value.clone())
                        .ok_or_else(|| format!("bad column '{name}'")),
                    AssignmentTarget::Tuple(_) => Err("tuple assignments are not supported".to_string()),
                }
                .map_err(bad)?;
                Ok(Self {
                    column,
                    value: ValueExpr::from_sql(&a.value).map_err(bad)?,
                })
            })
            .collect()
    }
}

impl ValueExpr {
    /// Parses an SQL expression of literals, columns and `+ - * / %`, such as `price * 2`.
    pub fn parse(sql: &str) -> Result<Self> {
        let bad = |e: String| Error::invalid(format!("bad expression '{sql}': {e}"));
        let mut parser = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .map_err(|e| bad(e.to_string()))?;
        let expr = parser.parse_expr().map_err(|e| bad(e.to_string()))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(bad(format!("unexpected '{}'", parser.peek_token().token)));
        }
        Self::from_sql(&expr).map_err(bad)
    }

    pub(crate) fn from_sql(expr: &Expr) -> std::result::Result<Self, String> {
        Ok(match expr {
            Expr::Nested(e) => Self::from_sql(e)?,
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Plus => ArithOp::Add,
                    BinaryOperator::Minus => ArithOp::Sub,
                    BinaryOperator::Multiply => ArithOp::Mul,
                    BinaryOperator::Divide => ArithOp::Div,
                    BinaryOperator::Modulo => ArithOp::Rem,
                    other => return Err(format!("unsupported operator '{other}' (use + - * / %)")),
                };
                Self::Arith {
                    left: Box::new(Self::from_sql(left)?),
                    op,
                    right: Box::new(Self::from_sql(right)?),
                }
            }
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: inner,
            } => match literal(expr) {
                Ok(l) => Self::Literal(l),
                Err(_) => Self::Negate(Box::new(Self::from_sql(inner)?)),
            },
            other => {
                match column_name(other) {
                    Some(c) => Self::Column(c),
                    None => Self::Literal(literal(other).map_err(|_| {
                        format!("unsupported expression '{other}': use literals, columns and + - * / %")
                    })?),
                }
            }
        })
    }

    /// The columns the expression reads.
    pub fn columns(&self) -> Vec<&str> {
        match self {
            Self::Literal(_) => vec![],
            Self::Column(c) => vec![c],
            Self::Negate(e) => e.columns(),
            Self::Arith { left, right, .. } => {
                let mut out = left.columns();
                out.extend(right.columns());
                out
            }
        }
    }

    /// Evaluates the expression on `batch` as an array of type `target` (the assigned column's).
    pub fn evaluate(&self, batch: &RecordBatch, target: &ArrowType, column: &str) -> Result<ArrayRef> {
        let value = self.evaluate_raw(batch, target, column)?;
        cast_exact(&value, target, column)
    }

    /// Evaluates without the final cast; literals take the type of the other operand (or of
    /// `hint` when there is none).
    pub(crate) fn evaluate_raw(&self, batch: &RecordBatch, hint: &ArrowType, column: &str) -> Result<ArrayRef> {
        let rows = batch.num_rows();
        Ok(match self {
            Self::Literal(l) => {
                let one = literal_array(l, hint, column)?;
                arrow_select::concat::concat(&vec![one.as_ref(); rows])?
            }
            Self::Column(c) => batch
                .column_by_name(c)
                .cloned()
                .ok_or_else(|| Error::invalid(format!("column '{c}' does not exist")))?,
            Self::Negate(e) => arrow_arith::numeric::neg(&e.evaluate_raw(batch, hint, column)?)?,
            Self::Arith { left, op, right } => {
                let (l, r) = operands(left, right, batch, hint, column)?;
                let (l, r) = common_type(l, r)?;
                let f = match op {
                    ArithOp::Add => arrow_arith::numeric::add,
                    ArithOp::Sub => arrow_arith::numeric::sub,
                    ArithOp::Mul => arrow_arith::numeric::mul,
                    ArithOp::Div => arrow_arith::numeric::div,
                    ArithOp::Rem => arrow_arith::numeric::rem,
                };
                f(&l, &r).map_err(|e| Error::invalid(format!("cannot compute '{column}': {e}")))?
            }
        })
    }
}

/// Evaluates the two operands of a binary operation; a literal operand takes the other
/// operand's type (or `hint` when both are literals).
pub(crate) fn operands(
    left: &ValueExpr,
    right: &ValueExpr,
    batch: &RecordBatch,
    hint: &ArrowType,
    column: &str,
) -> Result<(ArrayRef, ArrayRef)> {
    Ok(match (left, right) {
        (ValueExpr::Literal(_), other) => {
            let r = other.evaluate_raw(batch, hint, column)?;
            (left.evaluate_raw(batch, r.data_type(), column)?, r)
        }
        (other, _) => {
            let l = other.evaluate_raw(batch, hint, column)?;
            (l.clone(), right.evaluate_raw(batch, l.data_type(), column)?)
        }
    })
}

/// Renders the expression as SQL that [`ValueExpr::parse`] reads back.
impl std::fmt::Display for ValueExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Literal(l) => write!(f, "{l}"),
            Self::Column(c) => f.write_str(c),
            Self::Negate(e) => write!(f, "-({e})"),
            Self::Arith { left, op, right } => {
                let op = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                    ArithOp::Rem => "%",
                };
                write!(f, "({left}) {op} ({right})")
            }
        }
    }
}

/// Brings two numeric operands to one type: Float64 when either is a float, else Int64.
pub(crate) fn common_type(l: ArrayRef, r: ArrayRef) -> Result<(ArrayRef, ArrayRef)> {
    if l.data_type() == r.data_type() {
        return Ok((l, r));
    }
    let float = |t: &ArrowType| t.is_floating();
    let target = if float(l.data_type()) || float(r.data_type()) {
        ArrowType::Float64
    } else {
        ArrowType::Int64
    };
    Ok((arrow_cast::cast(&l, &target)?, arrow_cast::cast(&r, &target)?))
}

/// Casts `value` to `target`, failing (instead of writing nulls) when a value does not fit.
fn cast_exact(value: &ArrayRef, target: &ArrowType, column: &str) -> Result<ArrayRef> {
    if value.data_type() == target {
        return Ok(value.clone());
    }
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow_cast::cast_with_options(value, target, &options)
        .map_err(|e| Error::invalid(format!("the new values of column '{column}' do not fit {target}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int64, false),
            Field::new("score", ArrowType::Float64, true),
            Field::new("name", ArrowType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(Float64Array::from(vec![Some(0.5), None, Some(2.0)])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
            ],
        )
        .unwrap()
    }

    fn eval(sql: &str) -> Result<Vec<(String, ArrayRef)>> {
        let b = batch();
        Assignment::parse_list(sql)?
            .into_iter()
            .map(|a| {
                let target = b.schema().field_with_name(&a.column)?.data_type().clone();
                Ok((a.column.clone(), a.value.evaluate(&b, &target, &a.column)?))
            })
            .collect()
    }

    #[test]
    fn evaluates_literals_columns_and_arithmetic() {
        let out = eval("score = score * 2 + id, id = -id % 2, name = 'z'").unwrap();
        assert_eq!(out[0].0, "score");
        let score = out[0].1.as_primitive::<Float64Type>();
        assert_eq!((score.value(0), score.is_null(1), score.value(2)), (2.0, true, 7.0));
        assert_eq!(out[1].1.as_primitive::<Int64Type>().values(), &[-1, 0, -1]);
        assert_eq!(out[2].1.as_string::<i32>().value(1), "z");
        let nulls = eval("score = NULL").unwrap();
        assert_eq!(nulls[0].1.null_count(), 3);
    }

    #[test]
    fn bad_assignments_are_clear_errors() {
        for (sql, says) in [
            ("score", "bad assignment"),
            ("score = upper(name)", "unsupported expression"),
            ("score = score || 'x'", "unsupported operator"),
            ("id = 'abc'", "id"),
            ("id = id + 9223372036854775807", "cannot compute"),
        ] {
            let err = eval(sql).unwrap_err();
            assert!(err.to_string().contains(says), "{sql}: {err}");
        }
    }
}
