//! The physical scan of a vlake table: the scan plan's file tasks spread over partitions.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::{Result, Statistics};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::coop::make_cooperative;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType, SchedulingType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use futures::{StreamExt, TryStreamExt};
use vlake_table::{ScanPlan, ScanTask, Session, Table, TableLocation};

use crate::convert::df_err;

/// Reads the files of a [`ScanPlan`], a share of them in each partition.
#[derive(Debug)]
pub struct VlakeScanExec {
    location: TableLocation,
    session: Session,
    plan: ScanPlan,
    partitions: Vec<Vec<ScanTask>>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    statistics: Option<Statistics>,
}

impl VlakeScanExec {
    /// A scan of `plan`, made from `table`, over at most `max_partitions` partitions.
    /// `statistics`, when given, describe the whole output.
    pub fn new(
        table: &Table,
        plan: ScanPlan,
        schema: SchemaRef,
        max_partitions: usize,
        statistics: Option<Statistics>,
    ) -> Self {
        let n = plan.tasks.len().clamp(1, max_partitions.max(1));
        let mut partitions = vec![Vec::new(); n];
        for (i, task) in plan.tasks.iter().enumerate() {
            partitions[i % n].push(task.clone());
        }
        let properties = Arc::new(
            PlanProperties::new(
                EquivalenceProperties::new(schema.clone()),
                Partitioning::UnknownPartitioning(n),
                EmissionType::Incremental,
                Boundedness::Bounded,
            )
            .with_scheduling_type(SchedulingType::Cooperative),
        );
        Self {
            location: table.location().clone(),
            session: table.session().clone(),
            plan,
            partitions,
            schema,
            properties,
            statistics,
        }
    }
}

impl DisplayAs for VlakeScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<&str> = self.schema.fields().iter().map(|c| c.name().as_str()).collect();
        write!(
            f,
            "VlakeScanExec: table={}, version={}, files={}, pruned_files={}, columns=[{}]",
            self.plan.table_uri,
            self.plan.version,
            self.plan.tasks.len(),
            self.plan.pruned_files,
            columns.join(", ")
        )?;
        if let Some(filter) = self.plan.tasks.first().and_then(|t| t.filter.as_ref()) {
            write!(f, ", filter={filter}")?;
        }
        if let Some(limit) = self.plan.limit {
            write!(f, ", limit={limit}")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for VlakeScanExec {
    fn name(&self) -> &str {
        "VlakeScanExec"
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

    fn execute(&self, partition: usize, _context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let tasks = self.partitions.get(partition).cloned().unwrap_or_default();
        let (location, session) = (self.location.clone(), self.session.clone());
        let stream = futures::stream::iter(tasks)
            .then(move |task| {
                let (location, session) = (location.clone(), session.clone());
                async move { task.execute(&location, &session).await }
            })
            .try_flatten()
            .map_err(df_err);
        Ok(make_cooperative(Box::pin(RecordBatchStreamAdapter::new(
            self.schema.clone(),
            stream,
        ))))
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<Statistics>> {
        Ok(Arc::new(match (&self.statistics, partition) {
            (Some(s), None) => s.clone(),
            (Some(s), Some(_)) => s.clone().to_inexact(),
            (None, _) => Statistics::new_unknown(&self.schema),
        }))
    }
}
