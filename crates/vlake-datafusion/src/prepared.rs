//! Plans of prepared KNN statements, kept for reuse.
//!
//! `EXECUTE name(vector)` of a statement whose one parameter is the query vector of its
//! distance calls (`PREPARE knn AS SELECT id FROM t ORDER BY cosine_distance(vector, $1)
//! LIMIT 10`) is planned by DataFusion the first time. When that plan became a vector search
//! (the KNN rewrite fired) and the vector appears nowhere else in it, its physical plan is
//! kept: later executions run the search for their own vector under the same plan, without
//! DataFusion's analysis, optimisation and physical planning, which take longer than an index
//! search. A kept plan is planned again when its table's provider moved to a new version (a
//! commit through it), when a `vlake.*` setting changed, when the parameter comes as another
//! kind of literal, and after `DEALLOCATE`. Only statements run through [`crate::sql`] keep
//! plans, in sessions made by [`crate::session`].

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, Statement as PlanStatement, TableType};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::{displayable, DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Statement, UnaryOperator, Value};

use crate::convert::vector_from_scalar;
use crate::functions::DistanceUdf;
use crate::rule::VlakeOptions;
use crate::search::SearchExec;

/// The prepared statements of one session and the plans kept for them (a session config
/// extension that [`crate::session`] installs).
#[derive(Debug, Default)]
pub struct PreparedPlans {
    statements: Mutex<HashMap<String, Option<Kept>>>,
}

/// A kept physical plan and what it was planned under.
#[derive(Debug)]
struct Kept {
    plan: Arc<dyn ExecutionPlan>,
    settings: Settings,
    literal: LiteralKind,
}

/// The `vlake.*` settings the KNN rewrite reads.
type Settings = (bool, usize, usize, usize);

/// How an `EXECUTE` wrote its vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiteralKind {
    /// `'[0.1, 0.2]'`.
    Text,
    /// `[0.1, 0.2]`.
    Array,
}

impl PreparedPlans {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Option<Kept>>> {
        self.statements.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `PREPARE`, `EXECUTE` and `DEALLOCATE` (and, when the session keeps no plans, any
/// statement) as DataFusion does, keeping and reusing plans of prepared KNN statements.
pub(crate) async fn run(ctx: &SessionContext, statement: DfStatement) -> Result<DataFrame> {
    // Not from a copy of the session state: copying it costs about as much as a search.
    let plans = ctx.state_ref().read().config().get_extension::<PreparedPlans>();
    let Some(plans) = plans else {
        let plan = ctx.state().statement_to_plan(statement).await?;
        return ctx.execute_logical_plan(plan).await;
    };
    if let Some((name, vector, literal)) = execute_arguments(&statement) {
        if let Some(df) = rerun(ctx, &plans, &name, &vector, literal).await? {
            return Ok(df);
        }
        let plan = ctx.state().statement_to_plan(statement).await?;
        return first_run(ctx, &plans, &name, vector, literal, plan).await;
    }
    let plan = ctx.state().statement_to_plan(statement).await?;
    match &plan {
        LogicalPlan::Statement(PlanStatement::Prepare(p)) => {
            let name = p.name.clone();
            let keepable = vector_parameter_only(&p.input)?;
            let df = ctx.execute_logical_plan(plan).await?;
            if keepable {
                plans.entries().insert(name, None);
            }
            Ok(df)
        }
        LogicalPlan::Statement(PlanStatement::Deallocate(d)) => {
            let name = d.name.clone();
            let df = ctx.execute_logical_plan(plan).await?;
            plans.entries().remove(&name);
            Ok(df)
        }
        _ => ctx.execute_logical_plan(plan).await,
    }
}

/// The name, vector and literal kind of `EXECUTE name('[..]')` or `EXECUTE name([..])`.
fn execute_arguments(statement: &DfStatement) -> Option<(String, Vec<f32>, LiteralKind)> {
    let DfStatement::Statement(s) = statement else {
        return None;
    };
    let Statement::Execute {
        name: Some(name),
        parameters,
        immediate: false,
        into,
        using,
        output: false,
        default: false,
        ..
    } = s.as_ref()
    else {
        return None;
    };
    let ([parameter], true, true) = (parameters.as_slice(), into.is_empty(), using.is_empty()) else {
        return None;
    };
    let name = name.to_string();
    match parameter {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => {
                let vector = crate::convert::parse_vector("the query vector", s).ok()?;
                Some((name, vector, LiteralKind::Text))
            }
            _ => None,
        },
        SqlExpr::Array(array) if !array.named => {
            let vector = array.elem.iter().map(number).collect::<Option<Vec<f32>>>()?;
            Some((name, vector, LiteralKind::Array))
        }
        _ => None,
    }
}

/// A numeric literal, possibly negated.
fn number(e: &SqlExpr) -> Option<f32> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        SqlExpr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => number(expr).map(|x| -x),
        SqlExpr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => number(expr),
        _ => None,
    }
}

/// Whether the statement's only parameter is `$1` and it appears only as an argument of the
/// vlake distance functions.
fn vector_parameter_only(plan: &LogicalPlan) -> Result<bool> {
    if plan.get_parameter_names()?.into_iter().collect::<Vec<_>>() != ["$1"] {
        return Ok(false);
    }
    let (mut all, mut as_vector) = (0, 0);
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                match e {
                    Expr::Placeholder(_) => all += 1,
                    Expr::ScalarFunction(call) if call.func.inner().as_any().is::<DistanceUdf>() => {
                        as_vector += call.args.iter().filter(|a| matches!(a, Expr::Placeholder(_))).count();
                    }
                    _ => {}
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    })?;
    Ok(all > 0 && all == as_vector)
}

/// The `vlake.*` settings of the session now.
fn settings(ctx: &SessionContext) -> Settings {
    let state = ctx.state_ref();
    let state = state.read();
    let o = state
        .config()
        .options()
        .extensions
        .get::<VlakeOptions>()
        .cloned()
        .unwrap_or_default();
    (o.knn_rewrite, o.nprobes, o.ef, o.refine)
}

/// The kept plan of `name` run for `vector`, when there is one that still holds.
async fn rerun(
    ctx: &SessionContext,
    plans: &PreparedPlans,
    name: &str,
    vector: &[f32],
    literal: LiteralKind,
) -> Result<Option<DataFrame>> {
    let Some(plan) = plans
        .entries()
        .get(name)
        .and_then(Option::as_ref)
        .filter(|k| k.literal == literal && k.settings == settings(ctx))
        .map(|k| k.plan.clone())
    else {
        return Ok(None);
    };
    let Some(search) = the_search(&plan).filter(|s| s.is_current()) else {
        return Ok(None);
    };
    // A search that fails (a wrong dimension, NaN) is planned again, to fail as DataFusion's
    // plan fails.
    let Ok(Some(fresh)) = search.with_query(vector).await else {
        return Ok(None);
    };
    let fresh: Arc<dyn ExecutionPlan> = Arc::new(fresh);
    // The nodes above are made anew, with no state left from earlier runs.
    let plan = plan
        .transform_up(|node| {
            if node.as_any().is::<SearchExec>() {
                Ok(Transformed::yes(fresh.clone()))
            } else {
                Ok(Transformed::yes(node.reset_state()?))
            }
        })?
        .data;
    Ok(Some(ctx.read_table(Arc::new(PlannedTable::new(plan)))?))
}

/// Plans an `EXECUTE` of `name` as DataFusion does and keeps the plan when it can be rerun
/// for other vectors.
async fn first_run(
    ctx: &SessionContext,
    plans: &PreparedPlans,
    name: &str,
    vector: Vec<f32>,
    literal: LiteralKind,
    plan: LogicalPlan,
) -> Result<DataFrame> {
    let keepable = plans.entries().contains_key(name);
    let df = ctx.execute_logical_plan(plan).await?;
    if !keepable {
        return Ok(df);
    }
    let settings = settings(ctx);
    let (state, plan) = df.into_parts();
    let optimized = state.optimize(&plan)?;
    let physical = state.query_planner().create_physical_plan(&optimized, &state).await?;
    let searches_vector = the_search(&physical)
        .and_then(SearchExec::vector_search)
        .is_some_and(|s| s.query_vector() == vector.as_slice());
    // Output names a table cannot hold (the same name twice): DataFusion plans it again.
    let Some(table) = PlannedTable::try_new(physical.clone()) else {
        return Ok(DataFrame::new(state, plan));
    };
    let kept = (searches_vector && !mentions(&optimized, &vector)?).then(|| Kept {
        plan: physical,
        settings,
        literal,
    });
    if let Some(entry) = plans.entries().get_mut(name) {
        *entry = kept;
    }
    ctx.read_table(Arc::new(table))
}

/// The one search of a plan, if it has exactly one.
fn the_search(plan: &Arc<dyn ExecutionPlan>) -> Option<&SearchExec> {
    let mut found = vec![];
    let mut stack = vec![plan];
    while let Some(p) = stack.pop() {
        if let Some(s) = p.as_any().downcast_ref::<SearchExec>() {
            found.push(s);
        }
        stack.extend(p.children());
    }
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Whether a literal of `plan` is the vector `v` (then a kept plan would keep computing with
/// the first vector).
fn mentions(plan: &LogicalPlan, v: &[f32]) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::Literal(value, _) = e {
                    found |= vector_from_scalar("", value).is_ok_and(|x| x == v);
                }
                Ok(if found {
                    TreeNodeRecursion::Stop
                } else {
                    TreeNodeRecursion::Continue
                })
            })
        })
    })?;
    Ok(found)
}

/// A physical plan made already, as a table.
#[derive(Debug)]
struct PlannedTable {
    plan: Arc<dyn ExecutionPlan>,
}

impl PlannedTable {
    /// The table of `plan`, unless its output repeats a column name.
    fn try_new(plan: Arc<dyn ExecutionPlan>) -> Option<Self> {
        let schema = plan.schema();
        let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
        names.sort();
        names.dedup();
        (names.len() == schema.fields().len()).then_some(Self { plan })
    }

    /// The table of a plan known to repeat no column name (one [`PlannedTable::try_new`] took).
    fn new(plan: Arc<dyn ExecutionPlan>) -> Self {
        Self { plan }
    }
}

#[async_trait]
impl TableProvider for PlannedTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let width = self.plan.schema().fields().len();
        match projection {
            Some(p) if !p.iter().copied().eq(0..width) => {
                let exprs = p
                    .iter()
                    .map(|&i| {
                        let field = self.plan.schema().field(i).clone();
                        let column = datafusion::physical_expr::expressions::col(field.name(), &self.plan.schema())?;
                        Ok((column, field.name().clone()))
                    })
                    .collect::<Result<Vec<_>, DataFusionError>>()?;
                let projected: Arc<dyn ExecutionPlan> = Arc::new(ProjectionExec::try_new(exprs, self.plan.clone())?);
                Ok(Arc::new(KeptExec::new(projected)))
            }
            _ => Ok(Arc::new(KeptExec::new(self.plan.clone()))),
        }
    }
}

/// A physical plan made already, as one node: the physical optimizer, which runs again over
/// every plan a frame runs, finds nothing in it to visit.
#[derive(Debug)]
struct KeptExec {
    plan: Arc<dyn ExecutionPlan>,
}

impl KeptExec {
    fn new(plan: Arc<dyn ExecutionPlan>) -> Self {
        Self { plan }
    }
}

impl DisplayAs for KeptExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every node of the kept plan on one line, top down.
        let mut nodes = vec![];
        let mut stack = vec![&self.plan];
        while let Some(p) = stack.pop() {
            nodes.push(displayable(p.as_ref()).one_line().to_string());
            stack.extend(p.children().into_iter().rev());
        }
        write!(f, "KeptPlanExec: {}", nodes.join(" <- "))
    }
}

impl ExecutionPlan for KeptExec {
    fn name(&self) -> &str {
        "KeptPlanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.plan.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        self.plan.execute(partition, context)
    }
}
