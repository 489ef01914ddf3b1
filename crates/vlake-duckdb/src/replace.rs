//! The replacement scan: a table name that is a path or URI ending in `.vlake` reads the table
//! through `vlake_scan`, so `SELECT * FROM 'data/words.vlake'` and
//! `FROM 's3://bucket/words.vlake'` need no function call.

use std::ffi::{c_char, c_void, CStr};

use libduckdb_sys as sys;

use crate::ffi::{c_string, guard};

/// Whether DuckDB's table name `name` names a vlake table: it ends in `.vlake` (a trailing
/// slash allowed).
fn is_vlake_table(name: &str) -> bool {
    name.trim_end_matches('/').ends_with(".vlake")
}

/// Registers the replacement scan on `db`.
///
/// # Safety
/// `db` is the live database the extension is being loaded into.
pub(crate) unsafe fn register(db: sys::duckdb_database) {
    // SAFETY: `db` is live (the caller's contract); the callback keeps no data.
    unsafe { sys::duckdb_add_replacement_scan(db, Some(replace), std::ptr::null_mut(), None) };
}

/// DuckDB's callback for a table name it does not know.
unsafe extern "C" fn replace(info: sys::duckdb_replacement_scan_info, table_name: *const c_char, _data: *mut c_void) {
    let outcome = guard(|| {
        if table_name.is_null() {
            return Ok(());
        }
        // SAFETY: DuckDB passes a NUL-terminated name that lives for the call.
        let name = unsafe { CStr::from_ptr(table_name) }.to_string_lossy();
        if !is_vlake_table(&name) {
            return Ok(());
        }
        let function = c_string("vlake_scan");
        let uri = c_string(&name);
        // SAFETY: `info` is live for the call; the function name and URI are live C strings;
        // DuckDB copies the parameter value, which is destroyed here once.
        unsafe {
            sys::duckdb_replacement_scan_set_function_name(info, function.as_ptr());
            let mut value = sys::duckdb_create_varchar(uri.as_ptr());
            sys::duckdb_replacement_scan_add_parameter(info, value);
            sys::duckdb_destroy_value(&mut value);
        }
        Ok(())
    });
    if let Err(message) = outcome {
        // SAFETY: `info` is live for the call; `message` is a live C string.
        unsafe { sys::duckdb_replacement_scan_set_error(info, message.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::is_vlake_table;

    #[test]
    fn only_vlake_names_are_replaced() {
        assert!(is_vlake_table("data/words.vlake"));
        assert!(is_vlake_table("s3://bucket/words.vlake/"));
        assert!(!is_vlake_table("data/words.parquet"));
        assert!(!is_vlake_table("words"));
    }
}
