//! Row filters: a small, serialisable predicate language parsed from SQL expressions, evaluated
//! on Arrow batches and used to prune data files by their statistics.
//!
//! Engines with their own planner (DataFusion) evaluate their own expressions; this is what the
//! engine-neutral API, the CLI and scan tasks use.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, Scalar, StringArray};
use arrow_schema::DataType as ArrowType;
use serde::{Deserialize, Serialize};
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use vlake_format::{ColumnStats, Error, Result, StatValue};

use crate::assign::{common_type, operands, ValueExpr};

/// A literal value in a predicate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

impl CmpOp {
    /// The operator with its operands swapped (`a < b` is `b > a`).
    fn flip(self) -> Self {
        match self {
            Self::Lt => Self::Gt,
            Self::LtEq => Self::GtEq,
            Self::Gt => Self::Lt,
            Self::GtEq => Self::LtEq,
            other => other,
        }
    }
}

/// A boolean condition on the columns of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// `column <op> value`.
    Compare {
        /// Column name.
        column: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: Literal,
    },
    /// `column [NOT] IN (values)`.
    InList {
        /// Column name.
        column: String,
        /// Candidate values.
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `column IS [NOT] NULL`.
    IsNull {
        /// Column name.
        column: String,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `column [NOT] [I]LIKE pattern`.
    Like {
        /// Column name.
        column: String,
        /// SQL pattern with `%` and `_`.
        pattern: String,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// `left <op> right` over expressions of columns, literals and `+ - * / %`, such as
    /// `id % 7 = 1` or `a < b`. Evaluated on rows; it never prunes files.
    Expr {
        /// Left-hand side.
        left: ValueExpr,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        right: ValueExpr,
    },
    /// All of the conditions.
    And(Vec<Predicate>),
    /// Any of the conditions.
    Or(Vec<Predicate>),
    /// The negation.
    Not(Box<Predicate>),
    /// A constant.
    Const(bool),
}

impl Predicate {
    /// Parses an SQL boolean expression such as `pos = 'n' AND id > 10`.
    pub fn parse(sql: &str) -> Result<Self> {
        let bad = |e: String| Error::invalid(format!("bad filter '{sql}': {e}"));
        let mut parser = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .map_err(|e| bad(e.to_string()))?;
        let expr = parser.parse_expr().map_err(|e| bad(e.to_string()))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(bad(format!(
                "unexpected '{}' after the expression",
                parser.peek_token().token
            )));
        }
        Self::from_sql(&expr).map_err(bad)
    }

    fn from_sql(expr: &Expr) -> std::result::Result<Self, String> {
        Ok(match expr {
            Expr::Nested(e) => Self::from_sql(e)?,
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => Self::And(vec![Self::from_sql(left)?, Self::from_sql(right)?]),
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Or,
                right,
            } => Self::Or(vec![Self::from_sql(left)?, Self::from_sql(right)?]),
            Expr::BinaryOp { left, op, right } => {
                let op = match op {
                    BinaryOperator::Eq => CmpOp::Eq,
                    BinaryOperator::NotEq => CmpOp::NotEq,
                    BinaryOperator::Lt => CmpOp::Lt,
                    BinaryOperator::LtEq => CmpOp::LtEq,
                    BinaryOperator::Gt => CmpOp::Gt,
                    BinaryOperator::GtEq => CmpOp::GtEq,
                    other => return Err(format!("operator {other} is not supported")),
                };
                Self::compare(left, op, right)?
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => Self::Not(Box::new(Self::from_sql(expr)?)),
            Expr::IsNull(e) => Self::IsNull {
                column: column(e)?,
                negated: false,
            },
            Expr::IsNotNull(e) => Self::IsNull {
                column: column(e)?,
                negated: true,
            },
            Expr::InList { expr, list, negated } => {
                let values: std::result::Result<Vec<_>, _> = list.iter().map(literal).collect();
                let any = match (column_name(expr), values) {
                    (Some(column), Ok(values)) => Self::InList {
                        column,
                        values,
                        negated: false,
                    },
                    _ => Self::Or(
                        list.iter()
                            .map(|v| Self::compare(expr, CmpOp::Eq, v))
                            .collect::<std::result::Result<_, _>>()?,
                    ),
                };
                match (any, *negated) {
                    (Self::InList { column, values, .. }, true) => Self::InList {
                        column,
                        values,
                        negated: true,
                    },
                    (any, true) => Self::Not(Box::new(any)),
                    (any, false) => any,
                }
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let range = Self::And(vec![
                    Self::compare(expr, CmpOp::GtEq, low)?,
                    Self::compare(expr, CmpOp::LtEq, high)?,
                ]);
                if *negated {
                    Self::Not(Box::new(range))
                } else {
                    range
                }
            }
            Expr::Like {
                negated,
                expr,
                pattern,
                escape_char: None,
                ..
            } => Self::like(expr, pattern, *negated, false)?,
            Expr::ILike {
                negated,
                expr,
                pattern,
                escape_char: None,
                ..
            } => Self::like(expr, pattern, *negated, true)?,
            Expr::Value(v) => match &v.value {
                Value::Boolean(b) => Self::Const(*b),
                other => return Err(format!("'{other}' is not a condition")),
            },
            other => return Err(format!("'{other}' is not supported in filters")),
        })
    }

    /// `left <op> right`: a column against a literal when it is one (these prune files),
    /// otherwise a comparison of two expressions.
    fn compare(left: &Expr, op: CmpOp, right: &Expr) -> std::result::Result<Self, String> {
        match (column_name(left), column_name(right), literal(left), literal(right)) {
            (Some(column), _, _, Ok(value)) => Ok(Self::Compare { column, op, value }),
            (_, Some(column), Ok(value), _) => Ok(Self::Compare {
                column,
                op: op.flip(),
                value,
            }),
            _ => {
                let side = |e: &Expr| {
                    ValueExpr::from_sql(e).map_err(|why| {
                        format!("cannot compare '{left}' with '{right}': {why} (filters compare expressions of columns and literals with + - * / %)")
                    })
                };
                Ok(Self::Expr {
                    left: side(left)?,
                    op,
                    right: side(right)?,
                })
            }
        }
    }

    fn like(expr: &Expr, pattern: &Expr, negated: bool, case_insensitive: bool) -> std::result::Result<Self, String> {
        match literal(pattern)? {
            Literal::String(pattern) => Ok(Self::Like {
                column: column(expr)?,
                pattern,
                negated,
                case_insensitive,
            }),
            other => Err(format!("LIKE needs a string pattern, not {other:?}")),
        }
    }

    /// Names of the columns the predicate reads.
    pub fn columns(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.visit_columns(&mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    fn visit_columns<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Compare { column, .. }
            | Self::InList { column, .. }
            | Self::IsNull { column, .. }
            | Self::Like { column, .. } => out.push(column),
            Self::Expr { left, right, .. } => {
                out.extend(left.columns());
                out.extend(right.columns());
            }
            Self::And(ps) | Self::Or(ps) => ps.iter().for_each(|p| p.visit_columns(out)),
            Self::Not(p) => p.visit_columns(out),
            Self::Const(_) => {}
        }
    }

    /// Evaluates the predicate on `batch`: true, false or null (unknown) per row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::invalid(format!("filter column '{name}' does not exist")))
        };
        Ok(match self {
            Self::Compare { column, op, value } => {
                let array = col(column)?;
                let scalar = Scalar::new(literal_array(value, array.data_type(), column)?);
                let array = array.as_ref();
                match op {
                    CmpOp::Eq => arrow_ord::cmp::eq(&array, &scalar)?,
                    CmpOp::NotEq => arrow_ord::cmp::neq(&array, &scalar)?,
                    CmpOp::Lt => arrow_ord::cmp::lt(&array, &scalar)?,
                    CmpOp::LtEq => arrow_ord::cmp::lt_eq(&array, &scalar)?,
                    CmpOp::Gt => arrow_ord::cmp::gt(&array, &scalar)?,
                    CmpOp::GtEq => arrow_ord::cmp::gt_eq(&array, &scalar)?,
                }
            }
            Self::InList {
                column,
                values,
                negated,
            } => {
                let any = Self::Or(
                    values
                        .iter()
                        .map(|v| Self::Compare {
                            column: column.clone(),
                            op: CmpOp::Eq,
                            value: v.clone(),
                        })
                        .collect(),
                );
                let result = any.evaluate(batch)?;
                if *negated {
                    arrow_arith::boolean::not(&result)?
                } else {
                    result
                }
            }
            Self::IsNull { column, negated } => {
                let array = col(column)?;
                if *negated {
                    arrow_arith::boolean::is_not_null(array.as_ref())?
                } else {
                    arrow_arith::boolean::is_null(array.as_ref())?
                }
            }
            Self::Like {
                column,
                pattern,
                negated,
                case_insensitive,
            } => {
                let array = col(column)?;
                let pattern = Scalar::new(literal_array(
                    &Literal::String(pattern.clone()),
                    array.data_type(),
                    column,
                )?);
                let array = array.as_ref();
                match (negated, case_insensitive) {
                    (false, false) => arrow_string::like::like(&array, &pattern)?,
                    (true, false) => arrow_string::like::nlike(&array, &pattern)?,
                    (false, true) => arrow_string::like::ilike(&array, &pattern)?,
                    (true, true) => arrow_string::like::nilike(&array, &pattern)?,
                }
            }
            Self::Expr { left, op, right } => {
                let text = self.to_string();
                let hint = match (left, right) {
                    (ValueExpr::Literal(l), _) | (_, ValueExpr::Literal(l)) => natural_type(l),
                    _ => ArrowType::Int64,
                };
                let (l, r) = operands(left, right, batch, &hint, &text)?;
                let (l, r) =
                    comparable(l, r).map_err(|e| Error::invalid(format!("cannot evaluate filter '{text}': {e}")))?;
                let (l, r) = (l.as_ref(), r.as_ref());
                match op {
                    CmpOp::Eq => arrow_ord::cmp::eq(&l, &r)?,
                    CmpOp::NotEq => arrow_ord::cmp::neq(&l, &r)?,
                    CmpOp::Lt => arrow_ord::cmp::lt(&l, &r)?,
                    CmpOp::LtEq => arrow_ord::cmp::lt_eq(&l, &r)?,
                    CmpOp::Gt => arrow_ord::cmp::gt(&l, &r)?,
                    CmpOp::GtEq => arrow_ord::cmp::gt_eq(&l, &r)?,
                }
            }
            Self::And(ps) => fold(ps, batch, true, arrow_arith::boolean::and_kleene)?,
            Self::Or(ps) => fold(ps, batch, false, arrow_arith::boolean::or_kleene)?,
            Self::Not(p) => arrow_arith::boolean::not(&p.evaluate(batch)?)?,
            Self::Const(b) => BooleanArray::from(vec![*b; batch.num_rows()]),
        })
    }

    /// Whether a file with these statistics may hold a matching row (`false` only when it
    /// certainly cannot). `stats` looks up a column's statistics by name.
    pub fn may_match<'a>(&self, stats: &impl Fn(&str) -> Option<&'a ColumnStats>, num_rows: u64) -> bool {
        match self {
            Self::Compare { column, op, value } => match stats(column) {
                Some(s) if s.null_count >= num_rows => false,
                Some(ColumnStats {
                    min: Some(min),
                    max: Some(max),
                    ..
                }) => {
                    let (Some(lo), Some(hi)) = (compare(min, value), compare(max, value)) else {
                        return true;
                    };
                    use std::cmp::Ordering::*;
                    match op {
                        CmpOp::Eq => lo != Greater && hi != Less,
                        CmpOp::NotEq => !(lo == Equal && hi == Equal),
                        CmpOp::Lt => lo == Less,
                        CmpOp::LtEq => lo != Greater,
                        CmpOp::Gt => hi == Greater,
                        CmpOp::GtEq => hi != Less,
                    }
                }
                _ => true,
            },
            Self::InList {
                column,
                values,
                negated: false,
            } => values.iter().any(|v| {
                Self::Compare {
                    column: column.clone(),
                    op: CmpOp::Eq,
                    value: v.clone(),
                }
                .may_match(stats, num_rows)
            }),
            Self::IsNull { column, negated } => match stats(column) {
                Some(s) if *negated => s.null_count < num_rows,
                Some(s) => s.null_count > 0,
                None => true,
            },
            Self::And(ps) => ps.iter().all(|p| p.may_match(stats, num_rows)),
            Self::Or(ps) => ps.iter().any(|p| p.may_match(stats, num_rows)),
            Self::Const(b) => *b,
            Self::InList { negated: true, .. } | Self::Like { .. } | Self::Not(_) | Self::Expr { .. } => true,
        }
    }
}

fn fold(
    ps: &[Predicate],
    batch: &RecordBatch,
    identity: bool,
    op: fn(&BooleanArray, &BooleanArray) -> std::result::Result<BooleanArray, arrow_schema::ArrowError>,
) -> Result<BooleanArray> {
    let mut acc = BooleanArray::from(vec![identity; batch.num_rows()]);
    for p in ps {
        acc = op(&acc, &p.evaluate(batch)?)?;
    }
    Ok(acc)
}

/// The Arrow type a literal has on its own (when nothing gives it another).
fn natural_type(literal: &Literal) -> ArrowType {
    match literal {
        Literal::Null => ArrowType::Null,
        Literal::Bool(_) => ArrowType::Boolean,
        Literal::Int(_) => ArrowType::Int64,
        Literal::Float(_) => ArrowType::Float64,
        Literal::String(_) => ArrowType::Utf8,
    }
}

/// Brings two operands of a comparison to one type: numbers to a common numeric type, anything
/// else to the left operand's type.
fn comparable(l: ArrayRef, r: ArrayRef) -> Result<(ArrayRef, ArrayRef)> {
    if l.data_type() == r.data_type() {
        return Ok((l, r));
    }
    if l.data_type().is_numeric() && r.data_type().is_numeric() {
        return common_type(l, r);
    }
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let r = arrow_cast::cast_with_options(&r, l.data_type(), &options)
        .map_err(|e| Error::invalid(format!("cannot compare {} with {}: {e}", l.data_type(), r.data_type())))?;
    Ok((l, r))
}

/// Orders a statistics value against a literal, when the two are comparable.
fn compare(stat: &StatValue, lit: &Literal) -> Option<std::cmp::Ordering> {
    match (stat, lit) {
        (StatValue::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (StatValue::Uint(a), Literal::Int(b)) => Some(if *b < 0 {
            std::cmp::Ordering::Greater
        } else {
            a.cmp(&(*b as u64))
        }),
        (StatValue::Int(a), Literal::Float(b)) => (*a as f64).partial_cmp(b),
        (StatValue::Float(a), Literal::Float(b)) => a.partial_cmp(b),
        (StatValue::Float(a), Literal::Int(b)) => a.partial_cmp(&(*b as f64)),
        (StatValue::String(a), Literal::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (StatValue::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

/// A one-element array holding `value` as `target`'s type, or a clear error.
pub(crate) fn literal_array(value: &Literal, target: &ArrowType, column: &str) -> Result<ArrayRef> {
    let raw: ArrayRef = match value {
        Literal::Null => return Ok(arrow_array::new_null_array(target, 1)),
        Literal::Bool(b) => Arc::new(BooleanArray::from(vec![*b])),
        Literal::Int(i) => Arc::new(Int64Array::from(vec![*i])),
        Literal::Float(f) => Arc::new(Float64Array::from(vec![*f])),
        Literal::String(s) => Arc::new(StringArray::from(vec![s.as_str()])),
    };
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = arrow_cast::cast_with_options(&raw, target, &options).map_err(|e| {
        Error::invalid(format!(
            "cannot compare column '{column}' of type {target} with {value:?}: {e}"
        ))
    })?;
    if cast.null_count() > 0 {
        return Err(Error::invalid(format!(
            "cannot compare column '{column}' of type {target} with {value:?}"
        )));
    }
    Ok(cast)
}

pub(crate) fn column_name(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Identifier(id) => Some(id.value.clone()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|i| i.value.clone()),
        Expr::Nested(e) => column_name(e),
        _ => None,
    }
}

fn column(expr: &Expr) -> std::result::Result<String, String> {
    column_name(expr).ok_or_else(|| format!("expected a column name, found '{expr}'"))
}

pub(crate) fn literal(expr: &Expr) -> std::result::Result<Literal, String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse::<i64>()
                .map(Literal::Int)
                .or_else(|_| n.parse::<f64>().map(Literal::Float))
                .map_err(|_| format!("bad number '{n}'")),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(Literal::String(s.clone())),
            Value::Boolean(b) => Ok(Literal::Bool(*b)),
            Value::Null => Ok(Literal::Null),
            other => Err(format!("unsupported literal '{other}'")),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match literal(expr)? {
            Literal::Int(i) => Ok(Literal::Int(-i)),
            Literal::Float(f) => Ok(Literal::Float(-f)),
            other => Err(format!("cannot negate {other:?}")),
        },
        Expr::Nested(e) => literal(e),
        other => Err(format!("expected a literal, found '{other}'")),
    }
}

impl std::fmt::Display for Literal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Null => f.write_str("NULL"),
            Self::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Self::Int(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x:?}"),
            Self::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
        }
    }
}

impl std::fmt::Display for CmpOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Eq => "=",
            Self::NotEq => "<>",
            Self::Lt => "<",
            Self::LtEq => "<=",
            Self::Gt => ">",
            Self::GtEq => ">=",
        })
    }
}

/// Renders the predicate as an SQL expression that [`Predicate::parse`] reads back.
impl std::fmt::Display for Predicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let not = |negated: &bool| if *negated { "NOT " } else { "" };
        let join = |f: &mut std::fmt::Formatter<'_>, parts: &[Predicate], sep: &str| {
            let parts: Vec<String> = parts.iter().map(|p| format!("({p})")).collect();
            f.write_str(&parts.join(sep))
        };
        match self {
            Self::Compare { column, op, value } => write!(f, "{column} {op} {value}"),
            Self::InList {
                column,
                values,
                negated,
            } => {
                let values: Vec<String> = values.iter().map(ToString::to_string).collect();
                write!(f, "{column} {}IN ({})", not(negated), values.join(", "))
            }
            Self::IsNull { column, negated } => write!(f, "{column} IS {}NULL", not(negated)),
            Self::Like {
                column,
                pattern,
                negated,
                case_insensitive,
            } => {
                let like = if *case_insensitive { "ILIKE" } else { "LIKE" };
                write!(
                    f,
                    "{column} {}{like} {}",
                    not(negated),
                    Literal::String(pattern.clone())
                )
            }
            Self::Expr { left, op, right } => write!(f, "({left}) {op} ({right})"),
            Self::And(parts) => join(f, parts, " AND "),
            Self::Or(parts) => join(f, parts, " OR "),
            Self::Not(p) => write!(f, "NOT ({p})"),
            Self::Const(b) => write!(f, "{}", Literal::Bool(*b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Int32Array;
    use arrow_schema::{Field, Schema};

    #[test]
    fn display_parses_back() {
        for sql in [
            "id >= 2 AND pos <> 'it''s'",
            "NOT (pos IN ('n', 'v')) OR id IS NULL",
            "pos NOT ILIKE 'no%' AND id IS NOT NULL",
            "id < 2.5 OR FALSE",
            "id % 7 = 1 AND -(id) * 2 < id - 3",
            "id + 1 IN (2, 3)",
        ] {
            let p = Predicate::parse(sql).unwrap_or_else(|e| unreachable!("{e}"));
            let again = Predicate::parse(&p.to_string()).unwrap_or_else(|e| unreachable!("{p}: {e}"));
            assert_eq!(again, p, "{sql} -> {p}");
        }
    }

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", ArrowType::Int32, true),
            Field::new("pos", ArrowType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2), Some(3), None])),
                Arc::new(StringArray::from(vec![Some("n"), Some("v"), Some("noun"), Some("v")])),
            ],
        )
        .unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn matches(sql: &str) -> Vec<bool> {
        let p = Predicate::parse(sql).unwrap_or_else(|e| unreachable!("{e}"));
        let r = p.evaluate(&batch()).unwrap_or_else(|e| unreachable!("{e}"));
        (0..r.len()).map(|i| r.is_valid(i) && r.value(i)).collect()
    }

    #[test]
    fn evaluates_sql_filters() {
        assert_eq!(matches("id > 1"), [false, true, true, false]);
        assert_eq!(matches("2 <= id"), [false, true, true, false]);
        assert_eq!(matches("pos = 'v' AND id IS NOT NULL"), [false, true, false, false]);
        assert_eq!(matches("pos = 'v' OR id = 1"), [true, true, false, true]);
        assert_eq!(matches("id IN (1, 3)"), [true, false, true, false]);
        assert_eq!(matches("id NOT IN (1, 3)"), [false, true, false, false]);
        assert_eq!(matches("id BETWEEN 2 AND 3"), [false, true, true, false]);
        assert_eq!(matches("pos LIKE 'n%'"), [true, false, true, false]);
        assert_eq!(matches("NOT (pos = 'v')"), [true, false, true, false]);
        assert_eq!(matches("id IS NULL"), [false, false, false, true]);
        assert_eq!(matches("id = -1"), [false, false, false, false]);
        // Expressions of columns and literals are evaluated on rows.
        assert_eq!(matches("id % 2 = 1"), [true, false, true, false]);
        assert_eq!(matches("id + 1 > 2 AND pos <> 'v'"), [false, false, true, false]);
        assert_eq!(matches("id * 2 IN (2, 6)"), [true, false, true, false]);
        assert_eq!(matches("id - 1 NOT IN (0)"), [false, true, true, false]);
        assert_eq!(matches("id % 3 BETWEEN 1 AND 2"), [true, true, false, false]);
        assert_eq!(matches("id = id"), [true, true, true, false]);
        assert_eq!(matches("1 = 1"), [true, true, true, true]);
    }

    #[test]
    fn bad_filters_are_clear_errors() {
        for bad in [
            "id >",
            "upper(pos) = 'N'",
            "id = 1 garbage",
            "pos LIKE 3",
            "id % 2 IS NULL",
        ] {
            let err = Predicate::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad}: {err}");
        }
        let err = Predicate::parse("id = 'abc'")
            .and_then(|p| p.evaluate(&batch()))
            .unwrap_err();
        assert!(err.to_string().contains("column 'id'"), "{err}");
        let err = Predicate::parse("nope = 1")
            .and_then(|p| p.evaluate(&batch()))
            .unwrap_err();
        assert!(err.to_string().contains("'nope'"), "{err}");
    }

    #[test]
    fn prunes_by_min_max() {
        let stats = ColumnStats {
            field_id: 1,
            null_count: 0,
            min: Some(StatValue::Int(10)),
            max: Some(StatValue::Int(20)),
        };
        let lookup = |name: &str| (name == "id").then_some(&stats);
        let may = |sql: &str| Predicate::parse(sql).map(|p| p.may_match(&lookup, 100)).unwrap_or(true);
        assert!(may("id = 15"));
        assert!(!may("id = 25"));
        assert!(!may("id < 10"));
        assert!(may("id <= 10"));
        assert!(!may("id > 20"));
        assert!(may("id IN (1, 12)"));
        assert!(!may("id IN (1, 2)"));
        assert!(!may("id IS NULL"));
        assert!(may("other = 1"));
        assert!(!may("id = 1 AND other = 2"));
        assert!(may("id = 1 OR other = 2"));
    }
}
