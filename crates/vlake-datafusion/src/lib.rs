//! vlake tables in DataFusion SQL.
//!
//! - [`VlakeTable`]: a `TableProvider` with projection, filter and limit pushdown, statistics,
//!   time travel and `INSERT INTO`; [`VlakeTableFactory`] serves
//!   `CREATE EXTERNAL TABLE t STORED AS VLAKE LOCATION '...' [OPTIONS ('version' '3')]`.
//! - `l2_distance`, `cosine_distance` and `inner_product` scalar functions ([`distance_udfs`]).
//! - The `vector_search(table, column, query, k [, filter [, options]])`,
//!   `full_text_search(table, column, query, k [, filter [, options]])` and
//!   `hybrid_search(table, vector_column, query_vector, text_column, query_text, k [, ...])`
//!   table functions ([`SearchKind`]).
//! - [`KnnRewrite`]: `ORDER BY <distance>(vec, [..]) LIMIT k` runs as an index search.
//! - [`parse`] and [`sql`]: SQL text statement by statement, with `MERGE INTO` on vlake
//!   tables, and KNN statements (prepared or not) whose plans are kept for reuse
//!   ([`KeptPlans`]; the text of a query that kept its plan is not even parsed again).
//!
//! ```no_run
//! # async fn demo() -> datafusion::common::Result<()> {
//! let ctx = vlake_datafusion::session();
//! ctx.sql("CREATE EXTERNAL TABLE words STORED AS VLAKE LOCATION '/data/words'").await?;
//! let df = ctx
//!     .sql("SELECT word FROM words WHERE pos = 'n' ORDER BY cosine_distance(vector, [0.1, 0.2]) LIMIT 10")
//!     .await?;
//! df.show().await?;
//! # Ok(()) }
//! ```

mod convert;
mod dml;
mod functions;
mod kept;
mod literal;
mod merge;
mod provider;
mod rule;
mod scan;
mod search;
mod text;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

pub use convert::{from_df, to_predicate};
pub use dml::VlakeDmlExec;
pub use functions::{distance_udfs, DistanceKind, DistanceUdf};
pub use kept::{KeptPlans, Planned};
pub use literal::VectorLiteralPlanner;
pub use provider::{vlake_session, VlakeTable, VlakeTableFactory};
pub use rule::{KnnRewrite, VlakeOptions};
pub use scan::VlakeScanExec;
pub use search::{SearchExec, SearchFunction, SearchKind, SearchTable, TableSearch};
pub use text::{parse, ParsedStatement};

/// The file type name of vlake tables in `CREATE EXTERNAL TABLE ... STORED AS VLAKE`.
pub const FILE_TYPE: &str = "VLAKE";

/// A new DataFusion session with everything vlake registered (see [`register`]).
pub fn session() -> SessionContext {
    session_with_config(SessionConfig::new())
}

/// A new session from `config`, with everything vlake registered, numeric array literals
/// planned as single values ([`VectorLiteralPlanner`]), and tables read through the
/// `vlake_table::Session` among `config`'s extensions (a new one with the default budgets when
/// there is none; see [`vlake_session`]).
pub fn session_with_config(config: SessionConfig) -> SessionContext {
    let session = config
        .get_extension::<vlake_table::Session>()
        .map(|s| s.as_ref().clone())
        .unwrap_or_default();
    let config = config
        .with_option_extension(VlakeOptions::default())
        .with_extension(Arc::new(session))
        .with_extension(Arc::new(KeptPlans::default()));
    let mut builder = SessionStateBuilder::new().with_config(config).with_default_features();
    // Ahead of DataFusion's own array planner, which makes one expression per element.
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(VectorLiteralPlanner));
    let mut state = builder.build();
    state
        .table_factories_mut()
        .insert(FILE_TYPE.to_string(), Arc::new(VlakeTableFactory));
    let ctx = SessionContext::new_with_state(state);
    register(&ctx);
    ctx
}

/// Registers the vlake functions, table function and KNN rewrite in a session. (Sessions not
/// made by [`session`] also need [`VlakeTableFactory`] under [`FILE_TYPE`] for
/// `CREATE EXTERNAL TABLE`, and [`VlakeOptions`] as a config extension for `SET vlake.*`.)
pub fn register(ctx: &SessionContext) {
    for udf in distance_udfs() {
        ctx.register_udf(udf);
    }
    let state = ctx.state();
    let catalogs = state.catalog_list().clone();
    let session = vlake_session(&state);
    for kind in [SearchKind::Vector, SearchKind::FullText, SearchKind::Hybrid] {
        ctx.register_udtf(
            kind.name(),
            Arc::new(SearchFunction::new(catalogs.clone(), session.clone(), kind)),
        );
    }
    ctx.add_optimizer_rule(Arc::new(KnnRewrite));
}

/// Plans one statement (from [`parse`], or any parsed DataFusion statement): runs `MERGE INTO`
/// on a vlake table, which DataFusion does not plan, and reuses the kept plans of KNN
/// statements (see [`KeptPlans`]); collect the result to run the rest.
pub async fn sql(ctx: &SessionContext, statement: impl Into<ParsedStatement>) -> datafusion::common::Result<Planned> {
    let statement = statement.into();
    if let text::Inner::Parsed(Statement::Statement(s), _) = &statement.0 {
        if let SqlStatement::Merge(merge) = s.as_ref() {
            return merge::run_merge(ctx, merge)
                .await
                .map(|df| Planned::Frame(Box::new(df)));
        }
    }
    kept::run(ctx, statement).await
}

/// Registers the vlake table at `uri` (latest version) as `name`.
pub async fn register_table(ctx: &SessionContext, name: &str, uri: &str) -> datafusion::common::Result<()> {
    let table = VlakeTable::open_for(&ctx.state(), uri, vlake_table::VersionRef::Latest).await?;
    ctx.register_table(name, Arc::new(table))?;
    Ok(())
}
