//! Writing vlake tables from DuckDB: the `vlake` COPY format.
//!
//! ```sql
//! COPY (SELECT id, vector, gloss FROM words) TO '/data/t'
//!     (FORMAT vlake [, MODE 'create' | 'append' | 'overwrite'] [, COLUMNS 'id, vector, gloss']
//!      [, PRIMARY_KEY 'id']);
//! ```
//!
//! One statement is one commit: the rows stream into data files while DuckDB produces them and
//! the version is committed when the statement finishes; a statement that fails (a bad value,
//! a conflicting schema, an interrupted query) commits nothing and its files are removed.
//!
//! DuckDB's stable C API does not tell a COPY function the names of the query's columns, only
//! their types. The columns are therefore matched by position: to the names given in `COLUMNS`,
//! or else to the existing table's columns (an append or overwrite whose query has as many
//! columns as the table). Creating a table needs `COLUMNS`. Appended values are cast to the
//! table's column types (a `DOUBLE` into a `REAL` column, `FLOAT[n]` into an f16 vector column).
//!
//! Contract with DuckDB: **bind** reads the options and maps the column types; **global init**
//! (which learns the path) opens the table when it exists, fixes the output schema and starts
//! the write on vlake's runtime; **sink** (called by one thread at a time) converts each chunk
//! and hands it to the write; **finalize** ends the input and waits for the commit. When DuckDB
//! drops the state without finalizing, the write is aborted.

use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_cast::CastOptions;
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef};
use futures::channel::mpsc;
use futures::SinkExt;
use libduckdb_sys as sys;
use vlake_table::{BatchStream, Error, Table, WriteMode, WriteOptions};

use crate::chunk::{arrow_type, batch};
use crate::ffi::{c_string, drop_box, guard, into_raw, LogicalType, Value};
use crate::Database;

/// Registers the `vlake` COPY format on `con`.
pub(crate) fn register(con: sys::duckdb_connection, db: &Arc<Database>) -> Result<(), String> {
    let name = c_string("vlake");
    // SAFETY: `con` is a live connection; the function handle is created, configured and
    // destroyed here (DuckDB copies it on registration); the name is a live C string.
    unsafe {
        let mut f = sys::duckdb_create_copy_function();
        sys::duckdb_copy_function_set_name(f, name.as_ptr());
        sys::duckdb_copy_function_set_extra_info(f, into_raw(Arc::clone(db)), Some(drop_box::<Arc<Database>>));
        sys::duckdb_copy_function_set_bind(f, Some(bind));
        sys::duckdb_copy_function_set_global_init(f, Some(global_init));
        sys::duckdb_copy_function_set_sink(f, Some(sink));
        sys::duckdb_copy_function_set_finalize(f, Some(finalize));
        let state = sys::duckdb_register_copy_function(con, f);
        sys::duckdb_destroy_copy_function(&mut f);
        if state != sys::DuckDBSuccess {
            return Err("vlake: cannot register the vlake COPY format".to_string());
        }
    }
    Ok(())
}

/// What bind found: the options and the query's column types.
struct Bound {
    db: Arc<Database>,
    mode: WriteMode,
    names: Option<Vec<String>>,
    primary_key: Vec<String>,
    /// The query's columns, as the Arrow types they are read as.
    types: Vec<ArrowType>,
}

unsafe extern "C" fn bind(info: sys::duckdb_copy_function_bind_info) {
    let outcome = guard(|| {
        // SAFETY: the function was registered with an `Arc<Database>` as extra info, which
        // DuckDB keeps alive as long as the function.
        let db = Arc::clone(unsafe { &*sys::duckdb_copy_function_bind_get_extra_info(info).cast::<Arc<Database>>() });
        let mut mode = WriteMode::Create;
        let mut names = None;
        let mut primary_key = Vec::new();
        // SAFETY: the bind info is live; DuckDB returns a new value (a STRUCT, or null).
        let options = Value(unsafe { sys::duckdb_copy_function_bind_get_options(info) });
        for (option, value) in options.members() {
            let text = || value.text().ok_or(format!("vlake: COPY option {option} is NULL"));
            match option.as_str() {
                "MODE" => mode = text()?.parse::<WriteMode>().map_err(crate::message)?,
                "COLUMNS" => names = value.texts(),
                "PRIMARY_KEY" => primary_key = value.texts().unwrap_or_default(),
                other => {
                    return Err(format!(
                        "vlake: unknown COPY option {other} (options: MODE, COLUMNS, PRIMARY_KEY)"
                    ))
                }
            }
        }
        // SAFETY: the bind info is live; each type DuckDB returns is a new type `LogicalType`
        // destroys.
        let count = unsafe { sys::duckdb_copy_function_bind_get_column_count(info) };
        let types = (0..count)
            .map(|i| {
                // SAFETY: as above, `i` is below the column count.
                let ty = LogicalType(unsafe { sys::duckdb_copy_function_bind_get_column_type(info, i) });
                arrow_type(&ty).map_err(|e| format!("vlake: column {}: {e}", i + 1))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(names) = names.as_ref().filter(|n| n.len() != types.len()) {
            return Err(format!(
                "vlake: COLUMNS names {} columns but the query has {}",
                names.len(),
                types.len()
            ));
        }
        let bound = Bound {
            db,
            mode,
            names,
            primary_key,
            types,
        };
        // SAFETY: DuckDB owns the bind data from here and frees it with `drop_box::<Bound>`.
        unsafe { sys::duckdb_copy_function_bind_set_bind_data(info, into_raw(bound), Some(drop_box::<Bound>)) };
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the bind info is live; DuckDB copies the message.
        unsafe { sys::duckdb_copy_function_bind_set_error(info, e.as_ptr()) };
    }
}

/// The statement's write: the schema its rows are read and written with, and the running
/// write they are handed to.
struct Writer {
    db: Arc<Database>,
    /// The query's columns as read from DuckDB.
    input: SchemaRef,
    /// The columns as written (the table's types where it has the column).
    output: SchemaRef,
    rows: Mutex<Option<mpsc::Sender<vlake_table::Result<RecordBatch>>>>,
    write: Mutex<Option<tokio::task::JoinHandle<vlake_table::Result<Table>>>>,
}

impl Writer {
    /// Starts writing the table at `uri` as `bound` says.
    fn start(bound: &Bound, uri: &str) -> Result<Self, String> {
        let db = Arc::clone(&bound.db);
        let existing = db.open_if_exists(uri)?;
        if existing.is_some() && bound.mode == WriteMode::Create {
            return Err(format!(
                "vlake: table {uri} already exists (MODE 'append' adds to it, MODE 'overwrite' replaces it)"
            ));
        }
        let names = match (&bound.names, &existing) {
            (Some(names), _) => names.clone(),
            (None, Some(table)) if table.schema().fields().len() == bound.types.len() => {
                table.schema().fields().iter().map(|f| f.name().clone()).collect()
            }
            (None, Some(table)) => {
                return Err(format!(
                    "vlake: the query has {} columns and table {uri} has {}; name the query's columns with COLUMNS '...'",
                    bound.types.len(),
                    table.schema().fields().len()
                ))
            }
            (None, None) => {
                return Err(format!(
                    "vlake: creating table {uri} needs the columns' names: COPY (...) TO '{uri}' (FORMAT vlake, COLUMNS 'a, b, ...') \
                     (DuckDB does not pass a query's column names to COPY functions)"
                ))
            }
        };
        let input: Vec<Field> = names
            .iter()
            .zip(&bound.types)
            .map(|(name, ty)| Field::new(name, ty.clone(), true))
            .collect();
        let output = input
            .iter()
            .map(|field| {
                let target = existing
                    .as_ref()
                    .filter(|_| bound.mode == WriteMode::Append)
                    .and_then(|t| t.schema().field_with_name(field.name()).ok());
                match target {
                    // BLOB columns read as descriptors and take their bytes as binary.
                    Some(t) if !is_blob_input(field.data_type(), t.data_type()) => {
                        field.clone().with_data_type(t.data_type().clone())
                    }
                    _ => field.clone(),
                }
            })
            .collect::<Vec<_>>();
        let output = Arc::new(Schema::new(output));
        let (sender, receiver) = mpsc::channel(4);
        let opts = WriteOptions {
            primary_key: bound.primary_key.clone(),
            ..WriteOptions::default()
        };
        let builder = Table::builder(uri).session(db.caches().clone());
        let stream = BatchStream::new(Arc::clone(&output), receiver);
        let mode = bound.mode;
        let write = db.spawn(async move { builder.write(stream, mode, &opts).await });
        Ok(Self {
            db,
            input: Arc::new(Schema::new(input)),
            output,
            rows: Mutex::new(Some(sender)),
            write: Mutex::new(Some(write)),
        })
    }

    /// Converts `chunk` and hands it to the write.
    fn sink(&self, chunk: sys::duckdb_data_chunk) -> Result<(), String> {
        // SAFETY: DuckDB's flat input chunk, whose columns have the bound types.
        let read = unsafe { batch(chunk, &self.input)? };
        let columns = read
            .columns()
            .iter()
            .zip(self.output.fields())
            .map(|(column, field)| {
                if column.data_type() == field.data_type() || is_blob_input(column.data_type(), field.data_type()) {
                    Ok(Arc::clone(column))
                } else {
                    // Strict: a value that does not convert fails the statement, never a NULL.
                    let strict = CastOptions {
                        safe: false,
                        ..CastOptions::default()
                    };
                    arrow_cast::cast_with_options(column, field.data_type(), &strict).map_err(|e| {
                        format!(
                            "vlake: column '{}' ({}) cannot be written as {}: {e}",
                            field.name(),
                            column.data_type(),
                            field.data_type()
                        )
                    })
                }
            })
            .collect::<Result<Vec<ArrayRef>, String>>()?;
        let rows = RecordBatch::try_new(Arc::clone(&self.output), columns).map_err(|e| format!("vlake: {e}"))?;
        let mut guard = self.rows.lock().map_err(|_| "vlake: a COPY thread failed")?;
        let sender = guard.as_mut().ok_or("vlake: the COPY has already finished")?;
        if self.db.block_on(sender.send(Ok(rows))).is_ok() {
            return Ok(());
        }
        drop(guard);
        // The write stopped before its input ended, which only an error does: it says why.
        Err(self
            .finish()
            .err()
            .unwrap_or_else(|| "vlake: the write stopped before its input ended".to_string()))
    }

    /// Ends the input (after an error when `abort` is given) and waits for the write: the new
    /// table when it committed.
    fn end(&self, abort: Option<Error>) -> Result<Option<Table>, String> {
        let sender = self.rows.lock().map_err(|_| "vlake: a COPY thread failed")?.take();
        if let (Some(mut sender), Some(error)) = (sender, abort) {
            // The write fails on this error and commits nothing; if it has already stopped,
            // there is nothing to abort.
            let _ = self.db.block_on(sender.send(Err(error)));
        }
        let write = self.write.lock().map_err(|_| "vlake: a COPY thread failed")?.take();
        match write {
            None => Ok(None),
            Some(write) => match self.db.block_on(write) {
                Ok(Ok(table)) => Ok(Some(table)),
                Ok(Err(e)) => Err(crate::message(e)),
                Err(e) => Err(format!("vlake: internal error: the write failed: {e}")),
            },
        }
    }

    /// Ends the input and commits.
    fn finish(&self) -> Result<Option<Table>, String> {
        self.end(None)
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Not finalized: the statement failed, so nothing may be committed.
        let _ = self.end(Some(Error::invalid(
            "the COPY statement failed before it finished; nothing was committed",
        )));
    }
}

/// Whether binary input goes into a BLOB column (read back as a descriptor struct).
fn is_blob_input(input: &ArrowType, column: &ArrowType) -> bool {
    matches!(input, ArrowType::Binary) && matches!(column, ArrowType::Struct(_))
}

unsafe extern "C" fn global_init(info: sys::duckdb_copy_function_global_init_info) {
    let outcome = guard(|| {
        // SAFETY: bind stored a `Bound`, alive for the whole statement; the path is a C string
        // owned by DuckDB, live during the call.
        let (bound, uri) = unsafe {
            let bound = &*sys::duckdb_copy_function_global_init_get_bind_data(info).cast::<Bound>();
            let path = sys::duckdb_copy_function_global_init_get_file_path(info);
            if path.is_null() {
                return Err("vlake: COPY gave no table path".to_string());
            }
            (bound, std::ffi::CStr::from_ptr(path).to_string_lossy().into_owned())
        };
        let writer = Writer::start(bound, &uri)?;
        // SAFETY: DuckDB owns the state from here and frees it with `drop_box::<Writer>`.
        unsafe {
            sys::duckdb_copy_function_global_init_set_global_state(info, into_raw(writer), Some(drop_box::<Writer>))
        };
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the init info is live; DuckDB copies the message.
        unsafe { sys::duckdb_copy_function_global_init_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn sink(info: sys::duckdb_copy_function_sink_info, input: sys::duckdb_data_chunk) {
    let outcome = guard(|| {
        // SAFETY: global init stored a `Writer`; DuckDB keeps it alive during the call.
        let writer = unsafe { &*sys::duckdb_copy_function_sink_get_global_state(info).cast::<Writer>() };
        writer.sink(input)
    });
    if let Err(e) = outcome {
        // SAFETY: the sink info is live; DuckDB copies the message.
        unsafe { sys::duckdb_copy_function_sink_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn finalize(info: sys::duckdb_copy_function_finalize_info) {
    let outcome = guard(|| {
        // SAFETY: global init stored a `Writer`; DuckDB keeps it alive during the call.
        let writer = unsafe { &*sys::duckdb_copy_function_finalize_get_global_state(info).cast::<Writer>() };
        writer.finish().map(|_| ())
    });
    if let Err(e) = outcome {
        // SAFETY: the finalize info is live; DuckDB copies the message.
        unsafe { sys::duckdb_copy_function_finalize_set_error(info, e.as_ptr()) };
    }
}
