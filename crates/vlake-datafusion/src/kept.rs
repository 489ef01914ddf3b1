//! Physical plans of KNN statements, kept for reuse.
//!
//! DataFusion's analysis, optimisation and physical planning of a KNN statement take longer
//! than the index search it becomes. Two kinds of statements therefore keep their physical plan
//! once DataFusion made it, when it holds exactly one vector search, for the statement's query
//! vector, and that vector appears nowhere else in the optimized plan:
//!
//! - `EXECUTE name(vector)` of a prepared statement whose one parameter, `$1`, is only an
//!   argument of the distance functions (`PREPARE knn AS SELECT id FROM t ORDER BY
//!   cosine_distance(vector, $1) LIMIT 10`), kept under the statement's name;
//! - a query whose vector literals in distance calls (`[0.1, ...]` or `'[0.1, ...]'`) all write
//!   the same vector and that holds no parameter (`SELECT id FROM t ORDER BY
//!   cosine_distance(vector, [0.1, ...]) LIMIT 10`), kept under its text with the vector taken
//!   out: the next query that differs only in its vector reuses the plan.
//!
//! A statement that calls a function that is not immutable (`now()`, which the optimizer folds
//! into the plan) keeps nothing. A query whose text kept a plan is not parsed again: its
//! vector is read from the text ([`crate::parse`]).
//!
//! A later statement of the same shape runs the search for its own vector under the kept plan;
//! the nodes above are made anew with `reset_state`. A kept plan is planned again when its
//! table's provider moved to a new version (a commit through it), when a `vlake.*` setting
//! changed, when the vector comes as another kind of literal, when the vector fails (a wrong
//! dimension, NaN: DataFusion's plan then fails with its own error), and after `DEALLOCATE`. A
//! query's plan is also planned again when one of its table names resolves to another table,
//! and all are dropped by any statement that is not a query. Only statements run through
//! [`crate::sql`] keep plans, in sessions made by [`crate::session`].

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::dataframe::DataFrame;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, LogicalPlan, Statement as PlanStatement, Volatility};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, visit_relations, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    Statement, UnaryOperator, Value,
};

use crate::convert::vector_from_scalar;
use crate::functions::{DistanceKind, DistanceUdf};
use crate::rule::VlakeOptions;
use crate::search::SearchExec;
use crate::text::{parse_text, Inner, ParsedStatement, TextShape};

/// Query shapes kept at most; a session that runs more drops them all and starts again.
const MAX_QUERIES: usize = 256;

/// The kept plans of one session (a session config extension that [`crate::session`]
/// installs).
#[derive(Debug, Default)]
pub struct KeptPlans {
    /// Prepared statements by name; `None` for one that may keep a plan but has none yet.
    prepared: Mutex<HashMap<String, Option<Kept>>>,
    /// Queries by their statement with the vector taken out.
    queries: Mutex<HashMap<String, Kept>>,
    /// Query texts with their vectors taken out ([`TextShape`]) and the statements they parse
    /// to, keys of `queries`.
    texts: Mutex<HashMap<String, String>>,
    /// Statements that ran a kept plan, and those of them run from their text, unparsed.
    reruns: AtomicU64,
    unparsed: AtomicU64,
}

impl KeptPlans {
    /// How many statements ran a kept plan instead of being planned.
    pub fn reruns(&self) -> u64 {
        self.reruns.load(Ordering::Relaxed)
    }

    /// How many of those ran from their text, never parsed ([`crate::parse`]).
    pub fn unparsed(&self) -> u64 {
        self.unparsed.load(Ordering::Relaxed)
    }

    /// Whether a query text of this shape kept a plan.
    pub(crate) fn knows_text(&self, key: &str) -> bool {
        entries(&self.texts).contains_key(key)
    }

    /// Drops the kept plans of queries.
    fn forget_queries(&self) {
        entries(&self.queries).clear();
        entries(&self.texts).clear();
    }
}

/// Locks a map, whatever a panicking holder left in it (entries are replaced whole).
fn entries<T>(map: &Mutex<T>) -> MutexGuard<'_, T> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kept physical plan and what it was planned under (cheap to clone: shared pointers).
#[derive(Clone, Debug)]
struct Kept {
    plan: Arc<dyn ExecutionPlan>,
    settings: Settings,
    literal: LiteralKind,
    /// A query's table names and the tables they resolved to (none for prepared statements,
    /// which, as in DataFusion, keep the tables they were prepared over).
    tables: Vec<(TableReference, Option<Arc<dyn TableProvider>>)>,
}

/// The `vlake.*` settings the KNN rewrite reads.
type Settings = (bool, usize, usize, usize);

/// How a statement wrote its vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LiteralKind {
    /// `'[0.1, 0.2]'`.
    Text,
    /// `[0.1, 0.2]`.
    Array,
}

/// A statement [`crate::sql`] planned.
pub enum Planned {
    /// A frame DataFusion planned: collecting it runs it.
    Frame(Box<DataFrame>),
    /// A physical plan made already (a KNN statement's plan, see [`KeptPlans`]) and the task
    /// context it runs in.
    Plan(Arc<dyn ExecutionPlan>, Arc<TaskContext>),
}

impl Planned {
    /// The schema of the rows the statement returns.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Self::Frame(df) => df.schema().inner().clone(),
            Self::Plan(plan, _) => plan.schema(),
        }
    }

    /// Runs the statement and returns its rows.
    pub async fn collect(self) -> Result<Vec<RecordBatch>> {
        match self {
            Self::Frame(df) => (*df).collect().await,
            Self::Plan(plan, task) => datafusion::physical_plan::collect(plan, task).await,
        }
    }

    /// The physical plan the statement runs.
    pub async fn physical_plan(&self) -> Result<Arc<dyn ExecutionPlan>> {
        match self {
            Self::Frame(df) => (**df).clone().create_physical_plan().await,
            Self::Plan(plan, _) => Ok(plan.clone()),
        }
    }
}

/// Plans one statement as DataFusion does, keeping and reusing the plans of KNN statements
/// (and handling `PREPARE` and `DEALLOCATE` for them).
pub(crate) async fn run(ctx: &SessionContext, statement: ParsedStatement) -> Result<Planned> {
    // Not from a copy of the session state: copying it costs about as much as a search.
    let plans = ctx.state_ref().read().config().get_extension::<KeptPlans>();
    let (statement, text) = match statement.0 {
        Inner::Parsed(statement, text) => (statement, text),
        Inner::Text(text, shape) => {
            if let Some(plans) = &plans {
                let key = entries(&plans.texts).get(&shape.key).cloned();
                let found = match key {
                    Some(key) => rerun_query(ctx, plans, &key, &shape.vector, LiteralKind::Array).await?,
                    None => None,
                };
                if let Some(planned) = found {
                    plans.unparsed.fetch_add(1, Ordering::Relaxed);
                    return Ok(planned);
                }
            }
            match parse_text(ctx, &text)?.pop() {
                Some(ParsedStatement(Inner::Parsed(statement, _))) => (statement, Some(text)),
                _ => return Err(DataFusionError::Plan(format!("not one statement: {text}"))),
            }
        }
    };
    let Some(plans) = plans else {
        return frame(ctx, statement).await;
    };
    if let Some((name, vector, literal)) = execute_arguments(&statement) {
        let kept = entries(&plans.prepared).get(&name).cloned().flatten();
        if let Some(kept) = kept {
            if let Some(planned) = rerun(ctx, &plans, &kept, &vector, literal).await? {
                return Ok(planned);
            }
        }
        let keep = entries(&plans.prepared).contains_key(&name);
        let plan = ctx.state().statement_to_plan(statement).await?;
        let (planned, kept) = first_run(ctx, plan, &vector, literal, keep).await?;
        if let Some(entry) = entries(&plans.prepared).get_mut(&name) {
            *entry = kept;
        }
        return Ok(planned);
    }
    if is_query(&statement) {
        return query(ctx, &plans, statement, text).await;
    }
    plans.forget_queries();
    let plan = ctx.state().statement_to_plan(statement).await?;
    match &plan {
        LogicalPlan::Statement(PlanStatement::Prepare(p)) => {
            let name = p.name.clone();
            let keepable = vector_parameter_only(&p.input)?;
            let df = ctx.execute_logical_plan(plan).await?;
            if keepable {
                entries(&plans.prepared).insert(name, None);
            }
            Ok(Planned::Frame(Box::new(df)))
        }
        LogicalPlan::Statement(PlanStatement::Deallocate(d)) => {
            let name = d.name.clone();
            let df = ctx.execute_logical_plan(plan).await?;
            entries(&plans.prepared).remove(&name);
            Ok(Planned::Frame(Box::new(df)))
        }
        _ => Ok(Planned::Frame(Box::new(ctx.execute_logical_plan(plan).await?))),
    }
}

/// A statement planned by DataFusion.
async fn frame(ctx: &SessionContext, statement: DfStatement) -> Result<Planned> {
    let plan = ctx.state().statement_to_plan(statement).await?;
    Ok(Planned::Frame(Box::new(ctx.execute_logical_plan(plan).await?)))
}

fn is_query(statement: &DfStatement) -> bool {
    matches!(statement, DfStatement::Statement(s) if matches!(s.as_ref(), Statement::Query(_)))
}

/// A query, through the plan kept for its shape when there is one. `text`, the statement's
/// text when it came as text, is remembered for [`crate::parse`] when the plan is kept.
async fn query(
    ctx: &SessionContext,
    plans: &KeptPlans,
    mut statement: DfStatement,
    text: Option<String>,
) -> Result<Planned> {
    let Some((vector, literal, originals)) = take_vector(&mut statement) else {
        return frame(ctx, statement).await;
    };
    let key = statement.to_string();
    if let Some(planned) = rerun_query(ctx, plans, &key, &vector, literal).await? {
        return Ok(planned);
    }
    // The text stands for the statement when its literals are the ones taken out.
    let shape = text
        .and_then(|t| TextShape::of(&t))
        .filter(|s| literal == LiteralKind::Array && s.vector == vector && s.literals == originals.len());
    let tables = resolve_tables(ctx, &statement).await;
    put_vector_back(&mut statement, originals);
    let plan = ctx.state().statement_to_plan(statement).await?;
    let (planned, kept) = first_run(ctx, plan, &vector, literal, true).await?;
    let Some(kept) = kept else {
        entries(&plans.queries).remove(&key);
        return Ok(planned);
    };
    if entries(&plans.queries).len() >= MAX_QUERIES {
        plans.forget_queries();
    }
    if let Some(shape) = shape {
        entries(&plans.texts).insert(shape.key, key.clone());
    }
    entries(&plans.queries).insert(key, Kept { tables, ..kept });
    Ok(planned)
}

/// The plan kept for the query `key` run for `vector`, when it still holds and its table
/// names resolve to the tables they did.
async fn rerun_query(
    ctx: &SessionContext,
    plans: &KeptPlans,
    key: &str,
    vector: &[f32],
    literal: LiteralKind,
) -> Result<Option<Planned>> {
    let kept = entries(&plans.queries).get(key).cloned();
    let Some(kept) = kept else {
        return Ok(None);
    };
    if !same_tables(ctx, &kept.tables).await {
        return Ok(None);
    }
    rerun(ctx, plans, &kept, vector, literal).await
}

/// The distance call's vector literals replaced by `$1`, when they all write one vector and
/// the statement holds no parameter: the vector, how it was written, and the literals taken
/// out, in the order [`put_vector_back`] puts them back.
fn take_vector(statement: &mut DfStatement) -> Option<(Vec<f32>, LiteralKind, Vec<SqlExpr>)> {
    let DfStatement::Statement(s) = statement else {
        return None;
    };
    let mut found: Option<(Vec<f32>, LiteralKind)> = None;
    let mut originals = vec![];
    let outcome = visit_expressions_mut(s.as_mut(), |e| {
        if matches!(e, SqlExpr::Value(v) if matches!(v.value, Value::Placeholder(_))) {
            return ControlFlow::Break(());
        }
        for arg in distance_args(e) {
            let Some((vector, kind)) = vector_literal(arg) else {
                continue;
            };
            match &found {
                Some(f) if *f != (vector.clone(), kind) => return ControlFlow::Break(()),
                Some(_) => {}
                None => found = Some((vector, kind)),
            }
            originals.push(std::mem::replace(arg, placeholder()));
        }
        ControlFlow::Continue(())
    });
    let (vector, kind) = found?;
    if outcome.is_break() {
        put_vector_back(statement, originals);
        return None;
    }
    Some((vector, kind, originals))
}

/// Undoes [`take_vector`].
fn put_vector_back(statement: &mut DfStatement, originals: Vec<SqlExpr>) {
    let DfStatement::Statement(s) = statement else {
        return;
    };
    let mut originals = originals.into_iter();
    let _ = visit_expressions_mut(s.as_mut(), |e| {
        for arg in distance_args(e) {
            if *arg == placeholder() {
                if let Some(original) = originals.next() {
                    *arg = original;
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

fn placeholder() -> SqlExpr {
    SqlExpr::value(Value::Placeholder("$1".into()))
}

/// The plain arguments of a call to one of the vlake distance functions.
fn distance_args(e: &mut SqlExpr) -> Vec<&mut SqlExpr> {
    let SqlExpr::Function(f) = e else {
        return vec![];
    };
    let is_distance = f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|name| {
        DistanceKind::ALL
            .iter()
            .any(|k| name.value.eq_ignore_ascii_case(k.name()))
    });
    match &mut f.args {
        FunctionArguments::List(list) if is_distance && f.over.is_none() && f.filter.is_none() => list
            .args
            .iter_mut()
            .filter_map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => vec![],
    }
}

/// The tables a statement's relation names resolve to now.
async fn resolve_tables(
    ctx: &SessionContext,
    statement: &DfStatement,
) -> Vec<(TableReference, Option<Arc<dyn TableProvider>>)> {
    let DfStatement::Statement(s) = statement else {
        return vec![];
    };
    let normalize = ctx
        .state_ref()
        .read()
        .config()
        .options()
        .sql_parser
        .enable_ident_normalization;
    let mut names = vec![];
    let _ = visit_relations(s.as_ref(), |name| {
        names.extend(object_name_to_table_reference(name.clone(), normalize).ok());
        ControlFlow::<()>::Continue(())
    });
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let table = ctx.table_provider(name.clone()).await.ok();
        tables.push((name, table));
    }
    tables
}

/// Whether each table name still resolves to the table it did.
async fn same_tables(ctx: &SessionContext, tables: &[(TableReference, Option<Arc<dyn TableProvider>>)]) -> bool {
    for (name, was) in tables {
        let now = ctx.table_provider(name.clone()).await.ok();
        let same = match (was, &now) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same {
            return false;
        }
    }
    true
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
    let (vector, literal) = vector_literal(parameter)?;
    Some((name, vector, literal))
}

/// The vector a literal writes out, as text (`'[0.1, 0.2]'`) or as an array (`[0.1, 0.2]`).
fn vector_literal(e: &SqlExpr) -> Option<(Vec<f32>, LiteralKind)> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => {
                let vector = crate::convert::parse_vector("the query vector", s).ok()?;
                Some((vector, LiteralKind::Text))
            }
            _ => None,
        },
        SqlExpr::Array(array) if !array.named && !array.elem.is_empty() => {
            let vector = array.elem.iter().map(number).collect::<Option<Vec<f32>>>()?;
            Some((vector, LiteralKind::Array))
        }
        _ => None,
    }
}

/// A numeric literal, possibly negated.
fn number(e: &SqlExpr) -> Option<f32> {
    match e {
        SqlExpr::Value(v) => match &v.value {
            // As DataFusion plans it: a double, then the vector's f32.
            Value::Number(n, _) => n.parse::<f64>().ok().map(|x| x as f32),
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
    any_expr(plan, |e| {
        match e {
            Expr::Placeholder(_) => all += 1,
            Expr::ScalarFunction(call) if call.func.inner().is::<DistanceUdf>() => {
                as_vector += call.args.iter().filter(|a| matches!(a, Expr::Placeholder(_))).count();
            }
            _ => {}
        }
        false
    })?;
    Ok(all > 0 && all == as_vector)
}

/// Whether `f` holds for an expression of `plan` or of its subqueries (the walk stops there).
fn any_expr(plan: &LogicalPlan, mut f: impl FnMut(&Expr) -> bool) -> Result<bool> {
    let mut found = false;
    plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                found = f(e);
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

/// A kept plan run for `vector`, when it still holds: the vector comes as the same kind of
/// literal, the settings are the same, and the table has not moved on.
async fn rerun(
    ctx: &SessionContext,
    plans: &KeptPlans,
    kept: &Kept,
    vector: &[f32],
    literal: LiteralKind,
) -> Result<Option<Planned>> {
    if kept.literal != literal || kept.settings != settings(ctx) {
        return Ok(None);
    }
    let plan = kept.plan.clone();
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
            if node.is::<SearchExec>() {
                Ok(Transformed::yes(fresh.clone()))
            } else {
                Ok(Transformed::yes(node.reset_state()?))
            }
        })?
        .data;
    plans.reruns.fetch_add(1, Ordering::Relaxed);
    Ok(Some(Planned::Plan(plan, task_context(ctx))))
}

/// The task context a plan runs in, as DataFusion makes it for a frame.
fn task_context(ctx: &SessionContext) -> Arc<TaskContext> {
    Arc::new(TaskContext::from(&*ctx.state_ref().read()))
}

/// Plans a statement as DataFusion does, and the plan to keep (when `keep`) if it can be rerun
/// for other vectors.
async fn first_run(
    ctx: &SessionContext,
    plan: LogicalPlan,
    vector: &[f32],
    literal: LiteralKind,
    keep: bool,
) -> Result<(Planned, Option<Kept>)> {
    let df = ctx.execute_logical_plan(plan).await?;
    if !keep {
        return Ok((Planned::Frame(Box::new(df)), None));
    }
    let settings = settings(ctx);
    let (state, plan) = df.into_parts();
    let stable = !calls_unstable(&plan)?;
    let optimized = state.optimize(&plan)?;
    let physical = state.query_planner().create_physical_plan(&optimized, &state).await?;
    let searches_vector = the_search(&physical)
        .and_then(SearchExec::vector_search)
        .is_some_and(|s| s.query_vector() == vector);
    let kept = (stable && searches_vector && !mentions(&optimized, vector)?).then(|| Kept {
        plan: physical.clone(),
        settings,
        literal,
        tables: vec![],
    });
    Ok((Planned::Plan(physical, Arc::new(TaskContext::from(&state))), kept))
}

/// The one search of a plan, if it has exactly one.
fn the_search(plan: &Arc<dyn ExecutionPlan>) -> Option<&SearchExec> {
    let mut found = vec![];
    let mut stack = vec![plan];
    while let Some(p) = stack.pop() {
        if let Some(s) = p.downcast_ref::<SearchExec>() {
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
    any_expr(
        plan,
        |e| matches!(e, Expr::Literal(value, _) if vector_from_scalar("", value).is_ok_and(|x| x == v)),
    )
}

/// Whether `plan` calls a function whose value may change from one run to the next: the
/// optimizer folds `now()` into the plan, which a kept plan would then keep.
fn calls_unstable(plan: &LogicalPlan) -> Result<bool> {
    any_expr(
        plan,
        |e| matches!(e, Expr::ScalarFunction(call) if call.func.signature().volatility != Volatility::Immutable),
    )
}
