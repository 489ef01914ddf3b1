//! Vector search in SQL: the `vector_search(table, column, query, k [, filter [, options]])`
//! table function, and the provider the KNN rewrite puts in place of a table scan.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::catalog::{CatalogProviderList, Session, TableFunctionImpl, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use vlake_table::{Metric, VectorSearch, VersionRef, DISTANCE};

use crate::convert::{block_on, df_err, eval_const, vector_from_scalar};
use crate::provider::VlakeTable;

/// A search as a table: the searched table's columns (only the projected ones are read), and,
/// when `with_distance`, a `_distance` column last.
#[derive(Debug)]
pub struct SearchTable {
    search: VectorSearch,
    schema: SchemaRef,
    with_distance: bool,
}

impl SearchTable {
    /// A table over the results of `search` on `table`.
    pub fn new(table: &VlakeTable, search: VectorSearch, with_distance: bool) -> Self {
        let mut fields: Vec<Field> = table.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        if with_distance {
            fields.push(Field::new(DISTANCE, DataType::Float32, false));
        }
        Self {
            search,
            schema: Arc::new(Schema::new(fields)),
            with_distance,
        }
    }
}

#[async_trait]
impl TableProvider for SearchTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
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
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = projection.unwrap_or(&all);
        let schema = Arc::new(self.schema.project(projection)?);
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| !(self.with_distance && n == DISTANCE))
            .collect();
        Ok(Arc::new(
            VectorSearchExec::try_new(self.search.clone().columns(&columns), schema).await?,
        ))
    }
}

/// The rows of one vector search, closest first. The search runs when the plan is made (a
/// search is small and its table version fixed), so the plan knows its exact row count.
#[derive(Debug)]
pub struct VectorSearchExec {
    description: String,
    batch: RecordBatch,
    properties: Arc<PlanProperties>,
}

impl VectorSearchExec {
    /// Runs `search` and keeps the columns of `schema` (a projection of the search's columns
    /// and `_distance`).
    pub async fn try_new(search: VectorSearch, schema: SchemaRef) -> Result<Self> {
        let description = search.describe().map_err(df_err)?;
        let found = search.execute().await.map_err(df_err)?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                found
                    .column_by_name(f.name())
                    .cloned()
                    .ok_or_else(|| DataFusionError::Internal(format!("search lost column {}", f.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(found.num_rows()));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        let properties = Arc::new(
            PlanProperties::new(
                EquivalenceProperties::new(schema),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )
            .with_scheduling_type(SchedulingType::Cooperative),
        );
        Ok(Self {
            description,
            batch,
            properties,
        })
    }
}

impl DisplayAs for VectorSearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VectorSearchExec: {}", self.description)
    }
}

impl ExecutionPlan for VectorSearchExec {
    fn name(&self) -> &str {
        "VectorSearchExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
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
        let batch = self.batch.clone();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            batch.schema(),
            futures::stream::iter([Ok(batch)]),
        )))
    }

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Statistics> {
        let mut stats = Statistics::new_unknown(&self.batch.schema());
        stats.num_rows = Precision::Exact(self.batch.num_rows());
        Ok(stats)
    }
}

/// `vector_search(table, column, query, k [, filter [, options]])`: the `k` rows of `table`
/// whose `column` is nearest `query`, with `_distance`, through the column's index when it has
/// one. `table` is a registered table's name or a table URI; `filter` is an SQL condition
/// applied before ranking (or NULL); `options` is a list such as
/// `'metric=cosine, nprobes=20, ef=64, refine=10, exact=false, prefilter=true'`.
#[derive(Debug)]
pub struct VectorSearchFunction {
    catalogs: Arc<dyn CatalogProviderList>,
}

impl VectorSearchFunction {
    /// The function, resolving table names in `catalogs` (the session's).
    pub fn new(catalogs: Arc<dyn CatalogProviderList>) -> Self {
        Self { catalogs }
    }

    /// The registered vlake table `name`, or the table at the URI `name`.
    fn resolve(&self, name: &str) -> Result<Arc<dyn TableProvider>> {
        let registered = self
            .catalogs
            .catalog_names()
            .into_iter()
            .filter_map(|c| self.catalogs.catalog(&c))
            .flat_map(|c| c.schema_names().into_iter().filter_map(move |s| c.schema(&s)))
            .find_map(|s| futures::executor::block_on(s.table(name)).ok().flatten());
        if let Some(t) = registered {
            return Ok(t);
        }
        if name.contains('/') || name.contains("://") {
            let uri = name.to_string();
            return Ok(Arc::new(block_on(async move {
                VlakeTable::open(&uri, VersionRef::Latest).await
            })??));
        }
        plan_err!("vector_search: no table named '{name}' (register it, or give a table URI)")
    }
}

impl TableFunctionImpl for VectorSearchFunction {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        if !(4..=6).contains(&args.len()) {
            return plan_err!("vector_search takes (table, column, query, k [, filter [, options]])");
        }
        let text = |i: usize, what: &str| -> Result<Option<String>> {
            match &args[i] {
                Expr::Column(c) => Ok(Some(c.name.clone())),
                e => match eval_const(e)? {
                    ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => Ok(s),
                    ScalarValue::Null => Ok(None),
                    other => plan_err!("vector_search: {what} must be a string, not {other}"),
                },
            }
        };
        let name = text(0, "table")?.ok_or_else(|| plan_datafusion_err!("vector_search: table is NULL"))?;
        let column = text(1, "column")?.ok_or_else(|| plan_datafusion_err!("vector_search: column is NULL"))?;
        let query = vector_from_scalar("vector_search's query", &eval_const(&args[2])?)?;
        let k = match eval_const(&args[3])?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(k)) if k > 0 => k as usize,
            other => return plan_err!("vector_search: k must be a positive integer, not {other}"),
        };
        let provider = self.resolve(&name)?;
        let table = provider
            .as_any()
            .downcast_ref::<VlakeTable>()
            .ok_or_else(|| plan_datafusion_err!("vector_search: '{name}' is not a vlake table"))?;
        let mut search = table.table().search(&column, &query).limit(k);
        if args.len() > 4 {
            if let Some(filter) = text(4, "filter")? {
                search = search.filter_sql(&filter).map_err(df_err)?;
            }
        }
        if args.len() > 5 {
            if let Some(options) = text(5, "options")? {
                search = apply_options(search, &options)?;
            }
        }
        // Errors in the query (dimension, values, k) surface now, not at execution.
        search.describe().map_err(df_err)?;
        Ok(Arc::new(SearchTable::new(table, search, true)))
    }
}

/// Applies `key=value` options separated by commas.
fn apply_options(mut search: VectorSearch, options: &str) -> Result<VectorSearch> {
    for pair in options.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
            .ok_or_else(|| plan_datafusion_err!("vector_search: option '{pair}' is not key=value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| plan_datafusion_err!("vector_search: option {key} must be a number, not '{value}'"))
        };
        let flag = || {
            value
                .parse::<bool>()
                .map_err(|_| plan_datafusion_err!("vector_search: option {key} must be true or false, not '{value}'"))
        };
        search = match key.as_str() {
            "metric" => search.metric(value.parse::<Metric>().map_err(df_err)?),
            "nprobes" => search.nprobes(number()?),
            "ef" => search.ef(number()?),
            "refine" => search.refine(number()?),
            "exact" => search.exact(flag()?),
            "prefilter" => search.prefilter(flag()?),
            "index" => search.index(value),
            other => {
                return plan_err!(
                "vector_search: unknown option '{other}' (known: metric, nprobes, ef, refine, exact, prefilter, index)"
            )
            }
        };
    }
    Ok(search)
}
