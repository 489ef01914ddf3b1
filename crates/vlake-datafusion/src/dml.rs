//! `DELETE` and `UPDATE` on vlake tables: each statement is one vlake commit, made when its plan
//! executes (so `EXPLAIN` changes nothing), and moves the provider to the new version.

use std::fmt;
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::{plan_err, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use vlake_table::{ArithOp, Assignment, Predicate, Table, ValueExpr, WriteOptions};

use crate::convert::{df_err, literal_or_null, to_predicate};

/// What a DML statement does.
#[derive(Debug, Clone)]
pub(crate) enum Dml {
    /// Deletes the matching rows.
    Delete(Predicate),
    /// Sets columns of the matching rows.
    Update {
        assignments: Vec<Assignment>,
        filter: Option<Predicate>,
    },
}

impl Dml {
    /// A `DELETE` with these `WHERE` conjuncts (none: every row).
    pub fn delete(filters: &[Expr]) -> Result<Self> {
        Ok(Self::Delete(conjunction(filters)?.unwrap_or(Predicate::Const(true))))
    }

    /// An `UPDATE` with these `SET` assignments and `WHERE` conjuncts.
    pub fn update(assignments: &[(String, Expr)], filters: &[Expr]) -> Result<Self> {
        let assignments = assignments
            .iter()
            .map(|(column, expr)| match to_value_expr(expr) {
                Some(value) => Ok(Assignment {
                    column: column.clone(),
                    value,
                }),
                None => plan_err!("cannot SET {column} = {expr} on a vlake table: use literals, columns and + - * / %"),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::Update {
            assignments,
            filter: conjunction(filters)?,
        })
    }

    async fn run(&self, table: &Table) -> vlake_table::Result<(Table, u64)> {
        let next = match self {
            Self::Delete(filter) => table.delete(filter).await?,
            Self::Update { assignments, filter } => {
                table
                    .update(assignments, filter.as_ref(), &WriteOptions::default())
                    .await?
            }
        };
        let rows = next.mutated_rows(table);
        Ok((next, rows))
    }
}

/// The vlake predicate of all `filters`, refusing any vlake cannot evaluate.
fn conjunction(filters: &[Expr]) -> Result<Option<Predicate>> {
    let mut preds = Vec::with_capacity(filters.len());
    for f in filters {
        match to_predicate(f) {
            Some(p) => preds.push(p),
            None => {
                return plan_err!(
                    "the condition {f} cannot be evaluated by vlake: use comparisons, IN, IS NULL, LIKE, AND, OR and NOT over columns and literals"
                )
            }
        }
    }
    Ok(match preds.len() {
        0 => None,
        1 => preds.pop(),
        _ => Some(Predicate::And(preds)),
    })
}

/// The vlake expression equivalent to `expr` (casts DataFusion inserted are left to vlake, which
/// converts the result to the column's type).
fn to_value_expr(expr: &Expr) -> Option<ValueExpr> {
    Some(match expr {
        Expr::Literal(v, _) => ValueExpr::Literal(literal_or_null(v)?),
        Expr::Column(c) => ValueExpr::Column(c.name.clone()),
        Expr::Alias(a) => to_value_expr(&a.expr)?,
        Expr::Cast(c) => to_value_expr(&c.expr)?,
        Expr::TryCast(c) => to_value_expr(&c.expr)?,
        Expr::Negative(e) => ValueExpr::Negate(Box::new(to_value_expr(e)?)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => ValueExpr::Arith {
            left: Box::new(to_value_expr(left)?),
            op: match op {
                Operator::Plus => ArithOp::Add,
                Operator::Minus => ArithOp::Sub,
                Operator::Multiply => ArithOp::Mul,
                Operator::Divide => ArithOp::Div,
                Operator::Modulo => ArithOp::Rem,
                _ => return None,
            },
            right: Box::new(to_value_expr(right)?),
        },
        _ => return None,
    })
}

/// Runs a [`Dml`] statement against the provider's table and returns `count`, the rows changed.
#[derive(Debug)]
pub struct VlakeDmlExec {
    table: Arc<RwLock<Table>>,
    dml: Dml,
    properties: Arc<PlanProperties>,
}

impl VlakeDmlExec {
    pub(crate) fn new(table: Arc<RwLock<Table>>, dml: Dml) -> Self {
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        ));
        Self { table, dml, properties }
    }
}

fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("count", DataType::UInt64, false)]))
}

impl DisplayAs for VlakeDmlExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.dml {
            Dml::Delete(p) => write!(f, "VlakeDmlExec: DELETE WHERE {p:?}"),
            Dml::Update { assignments, filter } => {
                write!(f, "VlakeDmlExec: UPDATE SET {assignments:?} WHERE {filter:?}")
            }
        }
    }
}

impl ExecutionPlan for VlakeDmlExec {
    fn name(&self) -> &str {
        "VlakeDmlExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, _partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let (table, dml) = (self.table.clone(), self.dml.clone());
        let run = async move {
            let current = table.read().unwrap_or_else(|e| e.into_inner()).clone();
            let (next, rows) = dml.run(&current).await.map_err(df_err)?;
            *table.write().unwrap_or_else(|e| e.into_inner()) = next;
            Ok(RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?)
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            futures::stream::once(run),
        )))
    }
}
