//! Array literals of numbers (`[0.1, -0.2, 3]`, a query vector written out) planned as one
//! constant list value instead of a `make_array` call over one expression per number, so a
//! 384-number vector is a single expression to type-check, simplify and name.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult};
use datafusion::logical_expr::Expr;

/// Plans an array literal whose elements are all integer or float literals as the list value
/// `make_array` would compute (`List(Int64)` for integers, else `List(Float64)`); other array
/// literals go to DataFusion's planner unchanged.
#[derive(Debug, Default)]
pub struct VectorLiteralPlanner;

impl ExprPlanner for VectorLiteralPlanner {
    fn plan_array_literal(&self, exprs: Vec<Expr>, _schema: &DFSchema) -> Result<PlannerResult<Vec<Expr>>> {
        let numbers: Option<Vec<&ScalarValue>> = exprs
            .iter()
            .map(|e| match e {
                Expr::Literal(v @ (ScalarValue::Int64(Some(_)) | ScalarValue::Float64(Some(_))), None) => Some(v),
                _ => None,
            })
            .collect();
        let Some(numbers) = numbers.filter(|n| !n.is_empty()) else {
            return Ok(PlannerResult::Original(exprs));
        };
        let element = match numbers.iter().all(|v| matches!(v, ScalarValue::Int64(_))) {
            true => DataType::Int64,
            false => DataType::Float64,
        };
        let values = numbers
            .iter()
            .map(|v| v.cast_to(&element))
            .collect::<Result<Vec<_>>>()?;
        let list = ScalarValue::new_list_nullable(&values, &element);
        Ok(PlannerResult::Planned(Expr::Literal(ScalarValue::List(list), None)))
    }
}
