//! The vlake DuckDB extension: `LOAD 'vlake.duckdb_extension'` and query vlake tables.
//!
//! Built on DuckDB's stable C extension API (C-API version `v1.5.6`, ABI `C_STRUCT`), so one
//! binary loads in DuckDB 1.5.6 and every later release that keeps that API (2.x included).
//! `scripts/build_duckdb_extension.sh` builds this cdylib and appends the metadata footer DuckDB
//! checks before loading.
//!
//! Table functions (each parameter after the first ones is named, `name := value`):
//!
//! ```sql
//! SELECT * FROM vlake_scan('/data/t' [, version := 3 | tag := 'v1' | as_of := TIMESTAMPTZ '...']
//!                                     [, filter := 'x > 1'] [, columns := ['id', 'gloss']]
//!                                     [, with_row_id := true]);
//! SELECT id, _distance FROM vlake_search('/data/t', 'vector', [0.1, 0.2, ...], 10
//!                                        [, filter := ..., ef := 64, nprobes := 20,
//!                                           refine := 10, exact := false, metric := 'cosine',
//!                                           version := 3 | tag := 'v1']);
//! SELECT id, _score FROM vlake_fts('/data/t', 'gloss', '"domestic dog" OR cat*', 10
//!                                  [, filter := ..., version := 3 | tag := 'v1']);
//! SELECT id, _score FROM vlake_hybrid('/data/t', 'vector', [0.1, ...], 'gloss', 'small dog', 10
//!                                     [, filter := ..., fusion := 'rrf' | 'weighted',
//!                                        rrf_k := 60, vector_weight := 0.5, version | tag]);
//! ```
//!
//! A table name that is a path or URI ending in `.vlake` is read with `vlake_scan`:
//! `SELECT * FROM 'data/words.vlake'`.
//!
//! Vectors come out as `FLOAT[n]` (f16 widened), so DuckDB's `array_cosine_distance`,
//! `array_distance` and `array_inner_product` apply to them. Errors (a missing table, a bad
//! filter) are DuckDB errors carrying vlake's message; a panic anywhere in the extension is
//! caught at the FFI boundary and reported the same way.

// This crate is the FFI boundary with DuckDB: every unsafe block calls DuckDB's C API and says
// why the call is sound.
#![allow(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod chunk;
mod copy;
mod ffi;
mod replace;
mod scan;
mod search;
mod vector;

use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Arc, Mutex, OnceLock};

use libduckdb_sys as sys;
use vlake_table::{Session, Table, VersionRef};

use crate::ffi::{c_string, guard, Value};

/// The C-API version the extension is built against: the oldest DuckDB it loads in.
const C_API_VERSION: &str = "v1.5.6";

/// State shared by every call of the extension's functions in one database: the runtime that
/// drives vlake's asynchronous I/O (DuckDB's threads block on it) and the vlake session whose
/// caches (footers, vectors, index segments, ...) the database's queries share.
pub(crate) struct Database {
    runtime: &'static tokio::runtime::Runtime,
    caches: Session,
    /// The handle last opened for each table URI: later queries check it out at the version
    /// they name (for the latest, a listing of the versions after it), which reuses its store
    /// and, when the version is the same, its manifest (bind then costs 0.7 ms instead of
    /// 1.3). A table deleted and written anew at the same URI with as many versions reads as
    /// the old one until then: its files are gone, so reads fail with `not found`.
    tables: Mutex<HashMap<String, Table>>,
}

impl Database {
    fn new() -> Result<Self, String> {
        Ok(Self {
            runtime: runtime()?,
            caches: Session::default(),
            tables: Mutex::new(HashMap::new()),
        })
    }

    /// The vlake session of this database.
    pub(crate) fn caches(&self) -> &Session {
        &self.caches
    }

    /// Runs `f` to completion on the session's runtime, from one of DuckDB's threads.
    pub(crate) fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(f)
    }

    /// Runs `f` on the session's runtime in the background.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime.spawn(f)
    }

    /// The newest version of the table at `uri`, or `None` when there is no table there.
    pub(crate) fn open_if_exists(&self, uri: &str) -> Result<Option<Table>, String> {
        match self.block_on(self.checkout(uri, VersionRef::Latest)) {
            Ok(table) => Ok(Some(table)),
            Err(vlake_table::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(message(e)),
        }
    }

    /// Opens the table at `uri`, at version `at`.
    pub(crate) fn open(&self, uri: &str, at: VersionRef) -> Result<Table, String> {
        self.block_on(self.checkout(uri, at)).map_err(message)
    }

    /// The table at `uri` at version `at`, from the handle last opened there when there is one.
    async fn checkout(&self, uri: &str, at: VersionRef) -> vlake_table::Result<Table> {
        let known = self.tables.lock().ok().and_then(|t| t.get(uri).cloned());
        let table = match known {
            Some(table) => table.checkout(at).await?,
            None => {
                Table::builder(uri)
                    .version(at)
                    .session(self.caches.clone())
                    .open()
                    .await?
            }
        };
        if let Ok(mut tables) = self.tables.lock() {
            // Keep the newer handle: a query at an old version does not displace the latest.
            let newer = tables.get(uri).is_none_or(|t| t.version() <= table.version());
            if newer {
                tables.insert(uri.to_string(), table.clone());
            }
        }
        Ok(table)
    }
}

/// One multi-threaded runtime for the process, started on first use.
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("vlake-duckdb")
            .build()
            .map_err(|e| format!("vlake: cannot start the I/O runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A vlake error as the text of a DuckDB error.
pub(crate) fn message(e: vlake_table::Error) -> String {
    format!("vlake: {e}")
}

/// The parameters of a table-function call, read once at bind time.
pub(crate) struct Params(sys::duckdb_bind_info);

impl Params {
    /// The positional parameter `i`.
    pub(crate) fn get(&self, i: u64) -> Value {
        // SAFETY: the bind info is live during bind; DuckDB returns a new value (or null).
        Value(unsafe { sys::duckdb_bind_get_parameter(self.0, i) })
    }

    /// The named parameter `name`.
    pub(crate) fn named(&self, name: &str) -> Value {
        let name = c_string(name);
        // SAFETY: as above; `name` is a NUL-terminated string live for the call.
        Value(unsafe { sys::duckdb_bind_get_named_parameter(self.0, name.as_ptr()) })
    }

    /// The table version `version :=`, `tag :=` or `as_of :=` names: the newest when none is.
    pub(crate) fn version(&self) -> Result<VersionRef, String> {
        let version = self.named("version").int();
        let tag = self.named("tag").text();
        let as_of = self.named("as_of");
        // SAFETY: the value is live and of the declared type, TIMESTAMP WITH TIME ZONE.
        let as_of = (!as_of.is_null()).then(|| unsafe { sys::duckdb_get_timestamp_tz(as_of.0) }.micros);
        match (version, tag, as_of) {
            (None, None, None) => Ok(VersionRef::Latest),
            (Some(v), None, None) => u64::try_from(v)
                .map(VersionRef::Version)
                .map_err(|_| format!("vlake: invalid input: version {v}")),
            (None, Some(t), None) => Ok(VersionRef::Tag(t)),
            (None, None, Some(micros)) => Ok(VersionRef::Timestamp(micros.div_euclid(1000))),
            _ => Err("vlake: give one of version, tag and as_of".to_string()),
        }
    }

    /// The session the function was registered with.
    pub(crate) fn session(&self) -> &Arc<Database> {
        // SAFETY: every table function is registered with an `Arc<Database>` as extra info,
        // which DuckDB keeps alive as long as the function.
        unsafe { &*sys::duckdb_bind_get_extra_info(self.0).cast::<Arc<Database>>() }
    }
}

/// Declares the result columns of a table function from their Arrow types (`who` prefixes the
/// error of a column that has no DuckDB type).
pub(crate) fn declare_columns(
    info: sys::duckdb_bind_info,
    who: &str,
    columns: &[(String, arrow_schema::DataType)],
) -> Result<(), String> {
    for (name, ty) in columns {
        let duck = vector::logical_type(ty).map_err(|e| format!("{who}: column '{name}': {e}"))?;
        let name = c_string(name);
        // SAFETY: the bind info is live; DuckDB copies the name and type.
        unsafe { sys::duckdb_bind_add_result_column(info, name.as_ptr(), duck.0) };
    }
    Ok(())
}

/// The indexes of the declared columns DuckDB asks a query's init for (projection pushdown),
/// in output order; an index past the declared ones is DuckDB's own row-id column.
pub(crate) fn requested_columns(info: sys::duckdb_init_info) -> Vec<usize> {
    // SAFETY: the init info is live.
    let count = unsafe { sys::duckdb_init_get_column_count(info) };
    // SAFETY: `i` is below the column count.
    (0..count)
        .map(|i| unsafe { sys::duckdb_init_get_column_index(info, i) } as usize)
        .collect()
}

/// The named parameters that pick a table version (read by [`Params::version`]), which every
/// table function takes.
pub(crate) fn version_params() -> [(&'static str, ffi::LogicalType); 3] {
    [
        ("version", ffi::LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT)),
        ("tag", ffi::LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)),
        (
            "as_of",
            ffi::LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_TIMESTAMP_TZ),
        ),
    ]
}

/// A table function to register: its signature and callbacks.
pub(crate) struct TableFunction {
    pub(crate) name: &'static str,
    pub(crate) params: Vec<ffi::LogicalType>,
    pub(crate) named: Vec<(&'static str, ffi::LogicalType)>,
    pub(crate) bind: unsafe extern "C" fn(sys::duckdb_bind_info),
    pub(crate) init: unsafe extern "C" fn(sys::duckdb_init_info),
    pub(crate) local_init: Option<unsafe extern "C" fn(sys::duckdb_init_info)>,
    pub(crate) function: unsafe extern "C" fn(sys::duckdb_function_info, sys::duckdb_data_chunk),
}

impl TableFunction {
    /// Registers the function on `con`, sharing `session`.
    fn register(self, con: sys::duckdb_connection, session: &Arc<Database>) -> Result<(), String> {
        let name = c_string(self.name);
        // SAFETY: `con` is a live connection; the function handle is created, configured and
        // destroyed here (DuckDB copies it on registration); names are live C strings.
        unsafe {
            let mut f = sys::duckdb_create_table_function();
            sys::duckdb_table_function_set_name(f, name.as_ptr());
            for p in &self.params {
                sys::duckdb_table_function_add_parameter(f, p.0);
            }
            for (n, t) in &self.named {
                let n = c_string(n);
                sys::duckdb_table_function_add_named_parameter(f, n.as_ptr(), t.0);
            }
            sys::duckdb_table_function_set_extra_info(
                f,
                ffi::into_raw(Arc::clone(session)),
                Some(ffi::drop_box::<Arc<Database>>),
            );
            sys::duckdb_table_function_set_bind(f, Some(self.bind));
            sys::duckdb_table_function_set_init(f, Some(self.init));
            if let Some(local) = self.local_init {
                sys::duckdb_table_function_set_local_init(f, Some(local));
            }
            sys::duckdb_table_function_set_function(f, Some(self.function));
            sys::duckdb_table_function_supports_projection_pushdown(f, true);
            let state = sys::duckdb_register_table_function(con, f);
            sys::duckdb_destroy_table_function(&mut f);
            if state != sys::DuckDBSuccess {
                return Err(format!("vlake: cannot register {}", self.name));
            }
        }
        Ok(())
    }
}

/// Registers the extension's functions on the database DuckDB is loading it into.
///
/// # Safety
/// `info` and `access` are the arguments DuckDB passes to the entry point.
unsafe fn load(info: sys::duckdb_extension_info, access: *const sys::duckdb_extension_access) -> Result<bool, String> {
    // SAFETY: DuckDB passes a valid access struct; the API init stores DuckDB's function
    // pointers for the C-API version we were built against.
    let ok = unsafe { sys::duckdb_rs_extension_api_init(info, access, C_API_VERSION) }.map_err(str::to_string)?;
    if !ok {
        return Ok(false);
    }
    // SAFETY: `access` is valid (above); `get_database` returns the database being loaded into.
    let db = unsafe {
        let get_database = (*access).get_database.ok_or("vlake: DuckDB gave no database")?;
        get_database(info)
    };
    if db.is_null() {
        return Err("vlake: DuckDB gave no database".to_string());
    }
    let session = Arc::new(Database::new()?);
    let mut con: sys::duckdb_connection = std::ptr::null_mut();
    // SAFETY: `db` points at the live database; the connection is closed below.
    if unsafe { sys::duckdb_connect(*db, &mut con) } != sys::DuckDBSuccess {
        return Err("vlake: cannot connect to the database".to_string());
    }
    let registered = [
        scan::function(),
        search::vector(),
        search::vector_batch(),
        search::full_text(),
        search::hybrid(),
    ]
    .into_iter()
    .try_for_each(|f| f.register(con, &session))
    .and_then(|()| copy::register(con, &session));
    // SAFETY: `con` was opened above and is closed once.
    unsafe { sys::duckdb_disconnect(&mut con) };
    registered?;
    // SAFETY: `db` points at the live database (above).
    unsafe { replace::register(*db) };
    Ok(true)
}

/// The extension's entry point, called by `LOAD` (DuckDB looks up `<name>_init_c_api`).
///
/// # Safety
/// Called by DuckDB with the extension info and access struct of the load.
#[no_mangle]
pub unsafe extern "C" fn vlake_init_c_api(
    info: sys::duckdb_extension_info,
    access: *const sys::duckdb_extension_access,
) -> bool {
    let mut loaded = false;
    // SAFETY: DuckDB's arguments are passed through unchanged.
    let outcome = guard(|| unsafe { load(info, access) }.map(|ok| loaded = ok));
    if let Err(error) = outcome {
        report_load_error(info, access, error.as_ptr());
        return false;
    }
    loaded
}

/// Tells DuckDB why loading failed.
fn report_load_error(
    info: sys::duckdb_extension_info,
    access: *const sys::duckdb_extension_access,
    error: *const c_char,
) {
    if access.is_null() {
        return;
    }
    // SAFETY: `access` is DuckDB's valid access struct; `error` is a live C string.
    unsafe {
        if let Some(set_error) = (*access).set_error {
            set_error(info, error);
        }
    }
}
