//! `MERGE INTO` on vlake tables, which DataFusion does not plan: the statement is mapped onto
//! [`Table::merge_insert`] (one commit, keyed by the table's primary key or by the `ON`
//! columns).

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr as SqlExpr, Merge, MergeAction, MergeClauseKind, MergeInsertKind,
    TableFactor,
};
use futures::StreamExt;
use vlake_table::{
    BatchStream, MergeInsert, Predicate, WhenMatched, WhenNotMatched, WhenNotMatchedBySource, WriteOptions,
};

use crate::convert::df_err;
use crate::provider::VlakeTable;

/// The last identifier of a possibly qualified column reference.
fn column(expr: &SqlExpr) -> Option<(Option<String>, String)> {
    match expr {
        SqlExpr::Identifier(i) => Some((None, i.value.clone())),
        SqlExpr::CompoundIdentifier(parts) if parts.len() >= 2 => Some((
            Some(parts[parts.len() - 2].value.clone()),
            parts[parts.len() - 1].value.clone(),
        )),
        _ => None,
    }
}

/// The key columns of `ON t.a = s.a AND t.b = s.b`.
fn key_columns(on: &SqlExpr, out: &mut Vec<String>) -> Result<()> {
    match on {
        SqlExpr::Nested(e) => key_columns(e, out),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            key_columns(left, out)?;
            key_columns(right, out)
        }
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => match (column(left), column(right)) {
            (Some((_, a)), Some((_, b))) if a == b => {
                out.push(a);
                Ok(())
            }
            _ => plan_err!("MERGE ... ON must equate columns of the same name, such as t.id = s.id, not {on}"),
        },
        other => plan_err!("MERGE ... ON must be equalities of key columns joined by AND, not {other}"),
    }
}

/// The merge a statement's `WHEN` clauses ask for.
fn clauses(merge: &Merge, key: Vec<String>) -> Result<MergeInsert> {
    let mut out = MergeInsert {
        on: key,
        when_matched: WhenMatched::DoNothing,
        when_not_matched: WhenNotMatched::DoNothing,
        ..MergeInsert::upsert()
    };
    for clause in &merge.clauses {
        if clause.predicate.is_some() && clause.clause_kind != MergeClauseKind::NotMatchedBySource {
            return plan_err!("vlake's MERGE takes no AND condition on WHEN {}", clause.clause_kind);
        }
        match (&clause.clause_kind, &clause.action) {
            (MergeClauseKind::Matched, MergeAction::Update(update)) => {
                for a in &update.assignments {
                    let target = match &a.target {
                        AssignmentTarget::ColumnName(n) => {
                            n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.clone())
                        }
                        AssignmentTarget::Tuple(_) => None,
                    };
                    match (target, column(&a.value)) {
                        (Some(t), Some((_, s))) if t == s => {}
                        _ => {
                            return plan_err!(
                                "vlake's MERGE replaces whole rows: assign each column its source value (SET c = s.c), not {a}"
                            )
                        }
                    }
                }
                out.when_matched = WhenMatched::UpdateAll;
            }
            (MergeClauseKind::NotMatched | MergeClauseKind::NotMatchedByTarget, MergeAction::Insert(insert)) => {
                if let MergeInsertKind::Values(values) = &insert.kind {
                    let same = values.rows.iter().all(|row| {
                        row.len() == insert.columns.len()
                            && row.iter().zip(&insert.columns).all(|(v, c)| {
                                column(v).is_some_and(|(_, v)| {
                                    Some(v.as_str()) == c.0.last().and_then(|p| p.as_ident()).map(|i| i.value.as_str())
                                })
                            })
                    });
                    if !same {
                        return plan_err!(
                            "vlake's MERGE inserts source rows as they are: INSERT (a, b) VALUES (s.a, s.b)"
                        );
                    }
                }
                out.when_not_matched = WhenNotMatched::InsertAll;
            }
            (MergeClauseKind::NotMatchedBySource, MergeAction::Delete { .. }) => {
                out.when_not_matched_by_source = match &clause.predicate {
                    None => WhenNotMatchedBySource::Delete,
                    Some(p) => WhenNotMatchedBySource::DeleteIf(Predicate::parse(&p.to_string()).map_err(df_err)?),
                };
            }
            (kind, action) => return plan_err!("vlake's MERGE does not support WHEN {kind} THEN {action}"),
        }
    }
    Ok(out)
}

pub(crate) async fn run_merge(ctx: &SessionContext, merge: &Merge) -> Result<DataFrame> {
    let TableFactor::Table { name, .. } = &merge.table else {
        return plan_err!("MERGE INTO needs a table name");
    };
    let provider = ctx.table_provider(name.to_string()).await?;
    let target = provider
        .downcast_ref::<VlakeTable>()
        .ok_or_else(|| plan_datafusion_err!("MERGE INTO {name}: only vlake tables can be merged into"))?;
    target.writable("merge into")?;
    let source_sql = match &merge.source {
        TableFactor::Table { name, .. } => format!("SELECT * FROM {name}"),
        TableFactor::Derived { subquery, .. } => subquery.to_string(),
        other => return plan_err!("MERGE ... USING needs a table or a subquery, not {other}"),
    };
    let mut key = Vec::new();
    key_columns(&merge.on, &mut key)?;
    let table = target.table();
    let plan = clauses(merge, key)?;
    // Source rows, cast to the table's column types by name (DataFusion reads strings as views).
    let schema = table.schema().clone();
    let rows = ctx.sql(&source_sql).await?.execute_stream().await?;
    let source_schema = rows.schema();
    let conform_schema = schema.clone();
    let stream = rows.map(move |batch| -> vlake_table::Result<RecordBatch> {
        let batch = batch.map_err(crate::from_df)?;
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (i, f) in batch.schema().fields().iter().enumerate() {
            let Ok(want) = conform_schema.field_with_name(f.name()) else {
                return Err(vlake_table::Error::invalid(format!(
                    "the MERGE source has column '{}', which the table does not have",
                    f.name()
                )));
            };
            columns.push(cast(batch.column(i), want.data_type())?);
            fields.push(want.clone());
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    });
    let fields: Vec<Field> = source_schema
        .fields()
        .iter()
        .filter_map(|f| schema.field_with_name(f.name()).ok().cloned())
        .collect();
    let data = BatchStream::new(Arc::new(Schema::new(fields)), stream);
    let (next, report) = table
        .merge_insert(data, &plan, &WriteOptions::default())
        .await
        .map_err(df_err)?;
    target.replace(next);
    let counts = Schema::new(
        ["inserted", "updated", "deleted"]
            .map(|n| Field::new(n, DataType::UInt64, false))
            .to_vec(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(counts),
        [report.inserted, report.updated, report.deleted]
            .map(|n| Arc::new(UInt64Array::from(vec![n])) as _)
            .to_vec(),
    )
    .map_err(|e| DataFusionError::ArrowError(Box::new(e), None))?;
    ctx.read_batch(batch)
}
