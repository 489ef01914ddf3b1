//! The KNN rewrite: `SELECT ... FROM t [WHERE filter] ORDER BY <distance>(vec, [..]) LIMIT k`
//! over a vlake table becomes a vector search with the filter as a prefilter, through the
//! column's index when it has one.
//!
//! The rule replaces the table scan under the sort by the search, and the distance call in the
//! node right above the scan by the distance the search computed (`_distance`, turned into the
//! function's units), so the vector column is not read back for the found rows; the sort, the
//! limit and the projections above stay, and the answer has the exact plan's shape. It fires
//! only when that is sound: every filter was pushed into the scan, the vector function
//! compares one column of the table with a constant, the ordering puts the nearest rows first,
//! and rows with NULL vectors (which a search never returns) would sort last. `EXPLAIN` shows
//! the `VectorSearchExec` it chose.

use std::sync::Arc;

use datafusion::catalog::default_table_source::{provider_as_source, source_as_provider};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{extensions_options, Column, Result};
use datafusion::config::ConfigExtension;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan, Projection, Sort, SortExpr, TableScan};
use datafusion::optimizer::{OptimizerConfig, OptimizerRule};
use vlake_table::DISTANCE;

use crate::convert::{df_err, eval_const, to_predicate, vector_from_scalar};
use crate::functions::{DistanceKind, DistanceUdf};
use crate::provider::{pushed_predicate, VlakeTable};
use crate::search::SearchTable;

extensions_options! {
    /// Session settings of vlake (`SET vlake.knn_rewrite = false`, ...).
    pub struct VlakeOptions {
        /// Run `ORDER BY <distance> LIMIT k` queries as vector searches.
        pub knn_rewrite: bool, default = true
        /// IVF partitions probed by rewritten searches.
        pub nprobes: usize, default = 20
        /// HNSW candidate list size of rewritten searches.
        pub ef: usize, default = 64
        /// IVF-PQ refine factor of rewritten searches.
        pub refine: usize, default = 10
    }
}

impl ConfigExtension for VlakeOptions {
    const PREFIX: &'static str = "vlake";
}

/// The logical optimizer rule that turns top-k distance queries into vector searches.
#[derive(Debug, Default)]
pub struct KnnRewrite;

impl OptimizerRule for KnnRewrite {
    fn name(&self) -> &str {
        "vlake_knn_rewrite"
    }

    fn rewrite(&self, plan: LogicalPlan, config: &dyn OptimizerConfig) -> Result<Transformed<LogicalPlan>> {
        let options = config.options();
        let settings = options.extensions.get::<VlakeOptions>().cloned().unwrap_or_default();
        if !settings.knn_rewrite {
            return Ok(Transformed::no(plan));
        }
        plan.transform_down(|node| match &node {
            LogicalPlan::Sort(sort) => match rewrite_sort(sort, &settings)? {
                Some(plan) => Ok(Transformed::yes(plan)),
                None => Ok(Transformed::no(node)),
            },
            _ => Ok(Transformed::no(node)),
        })
    }
}

/// A rewritten scan: the search, the distance call it serves (in the scan's columns) and the
/// expression that replaces that call above the search.
struct Rewritten {
    scan: TableScan,
    call: Expr,
    distance: Expr,
}

impl Rewritten {
    /// `expr` with the distance call replaced by the search's distance.
    fn substitute(&self, expr: Expr) -> Result<Expr> {
        Ok(expr
            .transform_down(|e| {
                if e == self.call {
                    Ok(Transformed::yes(self.distance.clone()))
                } else {
                    Ok(Transformed::no(e))
                }
            })?
            .data)
    }
}

/// The sort with its input's vlake table scan replaced by a search, when the sort is a KNN.
fn rewrite_sort(sort: &Sort, settings: &VlakeOptions) -> Result<Option<LogicalPlan>> {
    let (Some(k), false) = (sort.fetch, sort.expr.is_empty()) else {
        return Ok(None);
    };
    if k > vlake_table::MAX_K {
        return Ok(None);
    }
    let mut expr = reuse_projected(&sort.expr, &sort.input)?;
    let first = &expr[0];
    let found = replace_scan(&sort.input, first.expr.clone().unalias(), &|scan, expr| {
        search_scan(scan, expr, first.asc, first.nulls_first, k, settings)
    })?;
    let Some((input, rewritten)) = found else {
        return Ok(None);
    };
    if let Some(r) = &rewritten {
        expr = expr
            .into_iter()
            .map(|e| {
                Ok(SortExpr {
                    expr: r.substitute(e.expr.clone())?,
                    ..e
                })
            })
            .collect::<Result<_>>()?;
    }
    Ok(Some(LogicalPlan::Sort(Sort {
        expr,
        input: Arc::new(input),
        fetch: sort.fetch,
    })))
}

/// Sort keys that compute again what the projection below outputs under a name (`SELECT
/// cosine_distance(v, [..]) AS d ... ORDER BY cosine_distance(v, [..])`) as that output column,
/// so that a rewritten sort orders by the distance the search returned.
fn reuse_projected(keys: &[SortExpr], input: &LogicalPlan) -> Result<Vec<SortExpr>> {
    let LogicalPlan::Projection(p) = input else {
        return Ok(keys.to_vec());
    };
    keys.iter()
        .map(|key| {
            let resolved = resolve(p, key.expr.clone().unalias())?;
            let same = match resolved {
                Expr::Column(_) => None,
                _ => p
                    .expr
                    .iter()
                    .position(|e| matches!(e, Expr::Alias(a) if *a.expr == resolved)),
            };
            Ok(match same {
                Some(i) => SortExpr {
                    expr: Expr::Column(Column::from(p.schema.qualified_field(i))),
                    ..key.clone()
                },
                None => key.clone(),
            })
        })
        .collect()
}

/// `expr` over a projection's output in terms of the projection's input.
fn resolve(p: &Projection, expr: Expr) -> Result<Expr> {
    Ok(expr
        .transform(|e| match &e {
            Expr::Column(c) => match p.schema.maybe_index_of_column(c) {
                Some(i) => Ok(Transformed::yes(p.expr[i].clone().unalias())),
                None => Ok(Transformed::no(e)),
            },
            _ => Ok(Transformed::no(e)),
        })?
        .data)
}

type ScanRewrite<'a> = dyn Fn(&TableScan, &Expr) -> Result<Option<Rewritten>> + 'a;

/// Follows `expr` down through projections to the table scan; returns the plan with the scan
/// rewritten by `f` (given `expr` in terms of the scan's columns), when `f` rewrites it. The
/// node right above the new scan has the distance call substituted; the rewrite is handed up
/// (as `Some`) while that node is the caller's input and still needs substituting.
fn replace_scan(
    plan: &LogicalPlan,
    expr: Expr,
    f: &ScanRewrite<'_>,
) -> Result<Option<(LogicalPlan, Option<Rewritten>)>> {
    match plan {
        LogicalPlan::Projection(p) => {
            let Some((input, rewritten)) = replace_scan(&p.input, resolve(p, expr)?, f)? else {
                return Ok(None);
            };
            let exprs = match &rewritten {
                // The projection right above the search: substitute, keeping every output name.
                Some(r) => p
                    .expr
                    .iter()
                    .map(|e| {
                        let new = r.substitute(e.clone())?;
                        if new == *e {
                            return Ok(new);
                        }
                        let (qualifier, field) = e.to_field(p.input.schema())?;
                        Ok(new.unalias().alias_qualified(qualifier, field.name()))
                    })
                    .collect::<Result<Vec<_>>>()?,
                None => p.expr.clone(),
            };
            let projection = Projection::try_new(exprs, Arc::new(input))?;
            Ok(Some((LogicalPlan::Projection(projection), None)))
        }
        LogicalPlan::TableScan(scan) => Ok(f(scan, &expr)?.map(|r| {
            let scan = LogicalPlan::TableScan(r.scan.clone());
            (scan, Some(r))
        })),
        _ => Ok(None),
    }
}

/// The search's `_distance` (smaller is closer) in the units of the SQL function `kind`.
fn function_distance(kind: DistanceKind, distance: Expr) -> Expr {
    match kind {
        // Searches rank by squared L2.
        DistanceKind::L2 => datafusion::functions::math::expr_fn::sqrt(distance),
        DistanceKind::Cosine => distance,
        // Searches rank by the negative dot product.
        DistanceKind::InnerProduct => Expr::Negative(Box::new(distance)),
    }
}

/// The search replacing `scan` when `expr` is a distance from a vector column of the vlake
/// table to a constant, ordered nearest first.
fn search_scan(
    scan: &TableScan,
    expr: &Expr,
    asc: bool,
    nulls_first: bool,
    k: usize,
    settings: &VlakeOptions,
) -> Result<Option<Rewritten>> {
    let Expr::ScalarFunction(call) = expr else {
        return Ok(None);
    };
    let Some(udf) = call.func.inner().downcast_ref::<DistanceUdf>() else {
        return Ok(None);
    };
    let (column, constant) = match call.args.as_slice() {
        [Expr::Column(c), q] | [q, Expr::Column(c)] if q.column_refs().is_empty() => (c, q),
        _ => return Ok(None),
    };
    let (metric, ascending) = udf.kind().metric();
    if asc != ascending || scan.fetch.is_some() {
        return Ok(None);
    }
    let Ok(provider) = source_as_provider(&scan.source) else {
        return Ok(None);
    };
    let Some(vlake) = provider.downcast_ref::<VlakeTable>() else {
        return Ok(None);
    };
    let Some(field) = vlake.schema().field_with_name(&column.name).ok().cloned() else {
        return Ok(None);
    };
    if field.is_nullable() && nulls_first {
        return Ok(None);
    }
    // Every filter must become the prefilter; one vlake cannot evaluate stays above the scan
    // (as a Filter node, which stops the match) or is not pushed at all.
    if !scan.filters.iter().all(|f| to_predicate(f).is_some()) {
        return Ok(None);
    }
    let predicate = pushed_predicate(&scan.filters);
    // A parameter not bound yet (`$1` of a prepared statement) waits for the plan with its
    // value; a constant that is no vector is left to the exact plan and its error.
    let Ok(query) = eval_const(constant).and_then(|v| vector_from_scalar("the query vector", &v)) else {
        return Ok(None);
    };
    let mut search = vlake
        .table()
        .search(&column.name, &query)
        .limit(k)
        .metric(metric)
        .nprobes(settings.nprobes)
        .ef(settings.ef)
        .refine(settings.refine);
    // Settings out of range are the user's to fix, not a reason to plan another way.
    search.check_tuning().map_err(df_err)?;
    if let Some(p) = predicate {
        search = search.filter(p);
    }
    // A search that cannot run (wrong dimension) is left to the exact plan and its error.
    if search.describe().is_err() {
        return Ok(None);
    }
    let searched = SearchTable::new(vlake, search, true);
    let distance_index = searched.schema().fields().len() - 1;
    let source = provider_as_source(Arc::new(searched));
    let mut projection = scan.projection.clone().unwrap_or_else(|| (0..distance_index).collect());
    projection.push(distance_index);
    let scan = TableScan::try_new(scan.table_name.clone(), source, Some(projection), vec![], None)?;
    let distance = Expr::Column(Column::new(Some(scan.table_name.clone()), DISTANCE));
    Ok(Some(Rewritten {
        scan,
        call: expr.clone(),
        distance: function_distance(udf.kind(), distance),
    }))
}
