//! Searches in SQL: the `vector_search`, `full_text_search` and `hybrid_search` table
//! functions, and the provider the KNN rewrite puts in place of a table scan.

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::SortOptions;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatchOptions;
use datafusion::catalog::{CatalogProviderList, Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{plan_datafusion_err, plan_err, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use vlake_table::{
    Fusion, HybridSearch, Metric, Table, TextSearch, VectorSearch, VersionRef, DISTANCE, SCORE, SNIPPET,
};

use crate::convert::{block_on, df_err, eval_const, vector_from_scalar};
use crate::provider::VlakeTable;

/// A search a table function or the KNN rewrite runs.
#[derive(Clone, Debug)]
pub enum TableSearch {
    /// Nearest vectors, with `_distance`.
    Vector(VectorSearch),
    /// Full-text search, with `_score` and `_snippet`.
    Text(TextSearch),
    /// Vector and full-text search fused, with `_score`.
    Hybrid(Box<HybridSearch>),
}

impl From<VectorSearch> for TableSearch {
    fn from(s: VectorSearch) -> Self {
        Self::Vector(s)
    }
}

impl TableSearch {
    /// The columns the search adds after the table's.
    fn added_fields(&self) -> Vec<Field> {
        match self {
            Self::Vector(_) => vec![Field::new(DISTANCE, DataType::Float32, false)],
            Self::Text(_) => vec![
                Field::new(SCORE, DataType::Float32, false),
                Field::new(SNIPPET, DataType::Utf8, true),
            ],
            Self::Hybrid(_) => vec![Field::new(SCORE, DataType::Float32, false)],
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Vector(_) => "VectorSearchExec",
            Self::Text(_) => "FullTextSearchExec",
            Self::Hybrid(_) => "HybridSearchExec",
        }
    }

    fn describe(&self) -> vlake_table::Result<String> {
        match self {
            Self::Vector(s) => s.describe(),
            Self::Text(s) => s.describe(),
            Self::Hybrid(s) => s.describe(),
        }
    }

    /// The search returning `columns` of the table (and a snippet when `snippet`).
    fn project(&self, columns: &[String], snippet: bool) -> Self {
        match self {
            Self::Vector(s) => Self::Vector(s.clone().columns(columns)),
            Self::Text(s) => Self::Text(s.clone().columns(columns).snippet(snippet)),
            Self::Hybrid(s) => Self::Hybrid(Box::new(s.as_ref().clone().columns(columns))),
        }
    }

    async fn execute(&self) -> vlake_table::Result<RecordBatch> {
        match self {
            Self::Vector(s) => s.execute().await,
            Self::Text(s) => s.execute().await,
            Self::Hybrid(s) => s.execute().await,
        }
    }
}

/// A search as a table: the searched table's columns (only the projected ones are read), and,
/// when `with_added`, the columns the search adds (`_distance`, or `_score` and `_snippet`) last.
#[derive(Debug)]
pub struct SearchTable {
    search: TableSearch,
    schema: SchemaRef,
    added: Vec<String>,
    source: Arc<RwLock<Table>>,
}

impl SearchTable {
    /// A table over the results of `search` on `table`.
    pub fn new(table: &VlakeTable, search: impl Into<TableSearch>, with_added: bool) -> Self {
        let search = search.into();
        let mut fields: Vec<Field> = table.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        let added = if with_added { search.added_fields() } else { vec![] };
        let names = added.iter().map(|f| f.name().clone()).collect();
        fields.extend(added);
        Self {
            search,
            schema: Arc::new(Schema::new(fields)),
            added: names,
            source: table.shared_table(),
        }
    }
}

#[async_trait]
impl TableProvider for SearchTable {
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
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let columns: Vec<String> = names.iter().filter(|n| !self.added.contains(n)).cloned().collect();
        let snippet = names.iter().any(|n| n == SNIPPET) && self.added.iter().any(|n| n == SNIPPET);
        let search = self.search.project(&columns, snippet);
        Ok(Arc::new(
            SearchExec::try_new(search, schema, self.source.clone()).await?,
        ))
    }
}

/// The rows of one search, best first. The search runs when the plan is made (a search is
/// small and its table version fixed), so the plan knows its exact row count.
#[derive(Debug)]
pub struct SearchExec {
    name: &'static str,
    description: String,
    batch: RecordBatch,
    properties: Arc<PlanProperties>,
    search: TableSearch,
    /// The provider's table, which moves on when the provider commits.
    source: Arc<RwLock<Table>>,
}

impl SearchExec {
    /// Runs `search` and keeps the columns of `schema` (a projection of the search's columns
    /// and the columns it adds); `source` is the searched provider's table.
    pub(crate) async fn try_new(search: TableSearch, schema: SchemaRef, source: Arc<RwLock<Table>>) -> Result<Self> {
        let description = search.describe().map_err(df_err)?;
        let found = search.execute().await.map_err(df_err)?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let column = found
                    .column_by_name(f.name())
                    .ok_or_else(|| DataFusionError::Internal(format!("search lost column {}", f.name())))?;
                // The table's plain strings as the provider's view types.
                Ok(datafusion::arrow::compute::cast(column, f.data_type())?)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(found.num_rows()));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options)?;
        // Vector searches return their rows nearest first: a sort on `_distance` above has
        // nothing to do, and the planner drops it.
        let ordering = match (&search, schema.index_of(DISTANCE)) {
            (TableSearch::Vector(_), Ok(i)) => vec![PhysicalSortExpr::new(
                Arc::new(Column::new(DISTANCE, i)),
                SortOptions {
                    descending: false,
                    nulls_first: false,
                },
            )],
            _ => vec![],
        };
        let properties = Arc::new(
            PlanProperties::new(
                EquivalenceProperties::new_with_orderings(schema, [ordering].into_iter().filter(|o| !o.is_empty())),
                Partitioning::UnknownPartitioning(1),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )
            .with_scheduling_type(SchedulingType::Cooperative),
        );
        Ok(Self {
            name: search.name(),
            description,
            batch,
            properties,
            search,
            source,
        })
    }

    /// The vector search this plan ran, if it is one.
    pub(crate) fn vector_search(&self) -> Option<&VectorSearch> {
        match &self.search {
            TableSearch::Vector(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is a vector search of the table version the provider still reads.
    pub(crate) fn is_current(&self) -> bool {
        let now = self.source.read().unwrap_or_else(|e| e.into_inner()).version();
        self.vector_search().is_some_and(|s| s.table_version() == now)
    }

    /// This plan for another query vector (vector searches only): the search runs again.
    pub(crate) async fn with_query(&self, query: &[f32]) -> Result<Option<Self>> {
        let Some(search) = self.vector_search() else {
            return Ok(None);
        };
        let search = TableSearch::Vector(search.clone().with_query(query));
        Self::try_new(search, self.batch.schema(), self.source.clone())
            .await
            .map(Some)
    }
}

impl DisplayAs for SearchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.description)
    }
}

impl ExecutionPlan for SearchExec {
    fn name(&self) -> &str {
        self.name
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

    fn partition_statistics(&self, _partition: Option<usize>) -> Result<Arc<Statistics>> {
        let mut stats = Statistics::new_unknown(&self.batch.schema());
        stats.num_rows = Precision::Exact(self.batch.num_rows());
        Ok(Arc::new(stats))
    }
}

/// Which search a [`SearchFunction`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchKind {
    /// `vector_search(table, column, query, k [, filter [, options]])`: the `k` rows whose
    /// `column` is nearest `query`, with `_distance`; options such as
    /// `'metric=cosine, nprobes=20, ef=64, refine=10, exact=false, prefilter=true, index=NAME'`.
    Vector,
    /// `full_text_search(table, column, query, k [, filter [, options]])`: the `k` rows whose
    /// string `column` best matches `query` (format-spec/fts.md#query-syntax) by BM25, with
    /// `_score` and `_snippet`; options `'k1=1.2, b=0.75, max_expansions=50, index=NAME'`.
    FullText,
    /// `hybrid_search(table, vector_column, query_vector, text_column, query_text, k [, filter
    /// [, options]])`: both searches fused, with `_score`; options `fusion=rrf|weighted`,
    /// `rrf_k=60`, `vector_weight=0.5`, `candidates=N`, the vector options, the text options,
    /// `vector_index=NAME` and `text_index=NAME`.
    Hybrid,
}

impl SearchKind {
    /// The SQL name of the function.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vector => "vector_search",
            Self::FullText => "full_text_search",
            Self::Hybrid => "hybrid_search",
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Self::Vector => "(table, column, query, k [, filter [, options]])",
            Self::FullText => "(table, column, query, k [, filter [, options]])",
            Self::Hybrid => "(table, vector_column, query_vector, text_column, query_text, k [, filter [, options]])",
        }
    }
}

/// The search table functions; `table` is a registered table's name or a table URI and
/// `filter` an SQL condition applied before ranking (or NULL).
#[derive(Debug)]
pub struct SearchFunction {
    catalogs: Arc<dyn CatalogProviderList>,
    session: vlake_table::Session,
    kind: SearchKind,
}

impl SearchFunction {
    /// The function of `kind`, resolving table names in `catalogs` (the session's) and opening
    /// tables given by URI in `session`.
    pub fn new(catalogs: Arc<dyn CatalogProviderList>, session: vlake_table::Session, kind: SearchKind) -> Self {
        Self {
            catalogs,
            session,
            kind,
        }
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
            let session = self.session.clone();
            return Ok(Arc::new(block_on(async move {
                VlakeTable::open(&uri, VersionRef::Latest, session).await
            })??));
        }
        plan_err!(
            "{}: no table named '{name}' (register it, or give a table URI)",
            self.kind.name()
        )
    }
}

/// The arguments of one call.
struct Args<'a> {
    f: &'static str,
    args: &'a [Expr],
}

impl Args<'_> {
    /// Argument `i` as a string (a bare column name counts), `None` for NULL or absent.
    fn text(&self, i: usize, what: &str) -> Result<Option<String>> {
        let Some(arg) = self.args.get(i) else { return Ok(None) };
        match arg {
            Expr::Column(c) => Ok(Some(c.name.clone())),
            e => match eval_const(e)? {
                ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => Ok(s),
                ScalarValue::Null => Ok(None),
                other => plan_err!("{}: {what} must be a string, not {other}", self.f),
            },
        }
    }

    fn required(&self, i: usize, what: &str) -> Result<String> {
        self.text(i, what)?
            .ok_or_else(|| plan_datafusion_err!("{}: {what} is NULL", self.f))
    }

    fn vector(&self, i: usize) -> Result<Vec<f32>> {
        vector_from_scalar(&format!("{}'s query", self.f), &eval_const(&self.args[i])?)
    }

    fn k(&self, i: usize) -> Result<usize> {
        match eval_const(&self.args[i])?.cast_to(&DataType::Int64)? {
            ScalarValue::Int64(Some(k)) if k > 0 => Ok(k as usize),
            other => plan_err!("{}: k must be a positive integer, not {other}", self.f),
        }
    }

    /// The `key=value` pairs of the options argument `i`.
    fn options(&self, i: usize) -> Result<Vec<Opt>> {
        let Some(text) = self.text(i, "options")? else {
            return Ok(vec![]);
        };
        text.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| plan_datafusion_err!("{}: option '{pair}' is not key=value", self.f))?;
                Ok(Opt {
                    f: self.f,
                    key: key.trim().to_ascii_lowercase(),
                    value: value.trim().to_string(),
                })
            })
            .collect()
    }
}

/// One `key=value` option.
struct Opt {
    f: &'static str,
    key: String,
    value: String,
}

impl Opt {
    fn parse<T: std::str::FromStr>(&self, what: &str) -> Result<T> {
        self.value
            .parse::<T>()
            .map_err(|_| plan_datafusion_err!("{}: option {} must be {what}, not '{}'", self.f, self.key, self.value))
    }

    fn unknown<T>(&self, known: &str) -> Result<T> {
        plan_err!("{}: unknown option '{}' (known: {known})", self.f, self.key)
    }
}

const VECTOR_OPTIONS: &str = "metric, nprobes, ef, refine, exact, prefilter, index";
const TEXT_OPTIONS: &str = "k1, b, max_expansions, index";
const HYBRID_OPTIONS: &str = "fusion, rrf_k, vector_weight, candidates, metric, nprobes, ef, refine, exact, vector_index, k1, b, max_expansions, text_index";

/// Applies a vector search option; `None` when `o` is not one.
fn vector_option(s: &VectorSearch, o: &Opt) -> Result<Option<VectorSearch>> {
    let s = s.clone();
    Ok(Some(match o.key.as_str() {
        "metric" => s.metric(o.value.parse::<Metric>().map_err(df_err)?),
        "nprobes" => s.nprobes(o.parse("a number")?),
        "ef" => s.ef(o.parse("a number")?),
        "refine" => s.refine(o.parse("a number")?),
        "exact" => s.exact(o.parse("true or false")?),
        "prefilter" => s.prefilter(o.parse("true or false")?),
        "index" => s.index(&o.value),
        _ => return Ok(None),
    }))
}

/// Applies a full-text search option; `None` when `o` is not one.
fn text_option(s: &TextSearch, o: &Opt, bm25: &mut (f64, f64)) -> Result<Option<TextSearch>> {
    let s = s.clone();
    Ok(Some(match o.key.as_str() {
        "k1" => {
            bm25.0 = o.parse("a number")?;
            s.bm25(bm25.0, bm25.1)
        }
        "b" => {
            bm25.1 = o.parse("a number")?;
            s.bm25(bm25.0, bm25.1)
        }
        "max_expansions" => s.max_expansions(o.parse("a number")?),
        "index" => s.index(&o.value),
        _ => return Ok(None),
    }))
}

impl TableFunctionImpl for SearchFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let args = args.exprs();
        let (f, kind) = (self.kind.name(), self.kind);
        let required = if kind == SearchKind::Hybrid { 6 } else { 4 };
        if !(required..=required + 2).contains(&args.len()) {
            return plan_err!("{f} takes {}", kind.signature());
        }
        let a = Args { f, args };
        let name = a.required(0, "table")?;
        let provider = self.resolve(&name)?;
        let table = provider
            .downcast_ref::<VlakeTable>()
            .ok_or_else(|| plan_datafusion_err!("{f}: '{name}' is not a vlake table"))?;
        let filter = a.text(required, "filter")?;
        let options = a.options(required + 1)?;
        let mut bm25 = (1.2, 0.75);
        let search: TableSearch = match kind {
            SearchKind::Vector => {
                let mut s = table
                    .table()
                    .search(&a.required(1, "column")?, &a.vector(2)?)
                    .limit(a.k(3)?);
                if let Some(filter) = &filter {
                    s = s.filter_sql(filter).map_err(df_err)?;
                }
                for o in &options {
                    s = match vector_option(&s, o)? {
                        Some(s) => s,
                        None => return o.unknown(VECTOR_OPTIONS),
                    };
                }
                s.into()
            }
            SearchKind::FullText => {
                let mut s = table
                    .table()
                    .full_text_search(&a.required(1, "column")?, &a.required(2, "query")?)
                    .limit(a.k(3)?);
                if let Some(filter) = &filter {
                    s = s.filter_sql(filter).map_err(df_err)?;
                }
                for o in &options {
                    s = match text_option(&s, o, &mut bm25)? {
                        Some(s) => s,
                        None => return o.unknown(TEXT_OPTIONS),
                    };
                }
                TableSearch::Text(s)
            }
            SearchKind::Hybrid => {
                let t = table.table();
                let mut vector = t.search(&a.required(1, "vector_column")?, &a.vector(2)?);
                let mut text = t.full_text_search(&a.required(3, "text_column")?, &a.required(4, "query_text")?);
                let mut fusion = Fusion::default();
                let mut candidates = None;
                for o in &options {
                    match o.key.as_str() {
                        "fusion" => {
                            fusion = match o.value.to_ascii_lowercase().as_str() {
                                "rrf" => Fusion::default(),
                                "weighted" => Fusion::Weighted { vector_weight: 0.5 },
                                _ => return plan_err!("{f}: fusion must be rrf or weighted, not '{}'", o.value),
                            }
                        }
                        "rrf_k" => {
                            fusion = Fusion::Rrf {
                                k: o.parse("a number")?,
                            }
                        }
                        "vector_weight" => {
                            fusion = Fusion::Weighted {
                                vector_weight: o.parse("a number")?,
                            }
                        }
                        "candidates" => candidates = Some(o.parse::<usize>("a number")?),
                        "vector_index" => vector = vector.index(&o.value),
                        "text_index" => text = text.index(&o.value),
                        "index" | "prefilter" => return o.unknown(HYBRID_OPTIONS),
                        _ => {
                            if let Some(v) = vector_option(&vector, o)? {
                                vector = v;
                            } else if let Some(t) = text_option(&text, o, &mut bm25)? {
                                text = t;
                            } else {
                                return o.unknown(HYBRID_OPTIONS);
                            }
                        }
                    }
                }
                let mut s = HybridSearch::new(vector, text).limit(a.k(5)?).fusion(fusion);
                if let Some(n) = candidates {
                    s = s.candidates(n);
                }
                if let Some(filter) = &filter {
                    s = s.filter_sql(filter).map_err(df_err)?;
                }
                TableSearch::Hybrid(Box::new(s))
            }
        };
        // Errors in the query (dimension, values, k, syntax) surface now, not at execution.
        search.describe().map_err(df_err)?;
        Ok(Arc::new(SearchTable::new(table, search, true)))
    }
}
