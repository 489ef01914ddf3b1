//! Small owned wrappers over DuckDB's C API handles, and the one place that turns panics and
//! errors into DuckDB errors.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use libduckdb_sys as ffi;

/// A DuckDB logical type, destroyed on drop.
pub(crate) struct LogicalType(pub(crate) ffi::duckdb_logical_type);

impl LogicalType {
    /// A type without parameters (`BIGINT`, `VARCHAR`, ...).
    pub(crate) fn new(id: ffi::DUCKDB_TYPE) -> Self {
        // SAFETY: creating a type from a type id has no preconditions.
        Self(unsafe { ffi::duckdb_create_logical_type(id) })
    }

    /// `LIST(child)`.
    pub(crate) fn list(child: &LogicalType) -> Self {
        // SAFETY: `child` is a live type; DuckDB copies it.
        Self(unsafe { ffi::duckdb_create_list_type(child.0) })
    }

    /// `child[size]`.
    pub(crate) fn array(child: &LogicalType, size: u64) -> Self {
        // SAFETY: `child` is a live type; DuckDB copies it.
        Self(unsafe { ffi::duckdb_create_array_type(child.0, size) })
    }

    /// `DECIMAL(width, scale)`.
    pub(crate) fn decimal(width: u8, scale: u8) -> Self {
        // SAFETY: DuckDB validates the width and scale.
        Self(unsafe { ffi::duckdb_create_decimal_type(width, scale) })
    }

    /// `STRUCT(name type, ...)`.
    pub(crate) fn structure(members: &[(CString, LogicalType)]) -> Self {
        let mut types: Vec<ffi::duckdb_logical_type> = members.iter().map(|(_, t)| t.0).collect();
        let mut names: Vec<*const c_char> = members.iter().map(|(n, _)| n.as_ptr()).collect();
        // SAFETY: both arrays hold `members.len()` live entries for the duration of the call;
        // DuckDB copies them.
        Self(unsafe { ffi::duckdb_create_struct_type(types.as_mut_ptr(), names.as_mut_ptr(), members.len() as u64) })
    }
}

impl Drop for LogicalType {
    fn drop(&mut self) {
        // SAFETY: the handle was created by DuckDB and is destroyed once.
        unsafe { ffi::duckdb_destroy_logical_type(&mut self.0) }
    }
}

/// A DuckDB value, destroyed on drop; null handles read as SQL NULL.
pub(crate) struct Value(pub(crate) ffi::duckdb_value);

impl Value {
    /// Whether the handle is missing or holds SQL NULL.
    pub(crate) fn is_null(&self) -> bool {
        // SAFETY: checked for a null handle first; the handle is live.
        self.0.is_null() || unsafe { ffi::duckdb_is_null_value(self.0) }
    }

    /// The value as text, if it is not NULL.
    pub(crate) fn text(&self) -> Option<String> {
        if self.is_null() {
            return None;
        }
        // SAFETY: the handle is live; DuckDB returns a malloc'ed C string (or null) that
        // `owned_c_string` frees.
        let p = unsafe { ffi::duckdb_get_varchar(self.0) };
        // SAFETY: as above.
        (!p.is_null()).then(|| unsafe { owned_c_string(p) })
    }

    /// The value as an integer, if it is not NULL.
    pub(crate) fn int(&self) -> Option<i64> {
        // SAFETY: the handle is live (checked by `is_null`).
        (!self.is_null()).then(|| unsafe { ffi::duckdb_get_int64(self.0) })
    }

    /// The value as a double, if it is not NULL.
    pub(crate) fn double(&self) -> Option<f64> {
        // SAFETY: the handle is live (checked by `is_null`).
        (!self.is_null()).then(|| unsafe { ffi::duckdb_get_double(self.0) })
    }

    /// The value as a boolean, if it is not NULL.
    pub(crate) fn bool(&self) -> Option<bool> {
        // SAFETY: the handle is live (checked by `is_null`).
        (!self.is_null()).then(|| unsafe { ffi::duckdb_get_bool(self.0) })
    }

    /// The value as a list of floats (a `DOUBLE[]` parameter, narrowed), if it is not NULL.
    pub(crate) fn floats(&self) -> Option<Vec<f32>> {
        if self.is_null() {
            return None;
        }
        // SAFETY: the handle is a live LIST value (the parameter's declared type); each child is
        // a new value that `Value` destroys.
        unsafe {
            let n = ffi::duckdb_get_list_size(self.0);
            let mut out = Vec::with_capacity(n as usize);
            for i in 0..n {
                let child = Value(ffi::duckdb_get_list_child(self.0, i));
                out.push(if child.is_null() {
                    f32::NAN
                } else {
                    ffi::duckdb_get_double(child.0) as f32
                });
            }
            Some(out)
        }
    }

    /// The value as a list of lists of floats (a `DOUBLE[][]` parameter, narrowed), if it is
    /// not NULL; a NULL inner list is an error.
    pub(crate) fn float_lists(&self) -> Option<Result<Vec<Vec<f32>>, String>> {
        if self.is_null() {
            return None;
        }
        // SAFETY: the handle is a live LIST value; each child is a new value `Value` destroys.
        let n = unsafe { ffi::duckdb_get_list_size(self.0) };
        Some(
            (0..n)
                .map(|i| {
                    // SAFETY: as above, `i` is below the list's size.
                    let child = Value(unsafe { ffi::duckdb_get_list_child(self.0, i) });
                    child.floats().ok_or_else(|| format!("query {} is NULL", i + 1))
                })
                .collect(),
        )
    }

    /// The value as a list of texts: a LIST's items, or one text split at commas (`'a, b'`).
    pub(crate) fn texts(&self) -> Option<Vec<String>> {
        if self.is_null() {
            return None;
        }
        // SAFETY: the handle is live; the type DuckDB returns is owned by the value.
        let id = unsafe { ffi::duckdb_get_type_id(ffi::duckdb_get_value_type(self.0)) };
        if id != ffi::DUCKDB_TYPE_DUCKDB_TYPE_LIST {
            let text = self.text()?;
            return Some(
                text.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            );
        }
        // SAFETY: the handle is a live LIST value; each child is a new value `Value` destroys.
        let n = unsafe { ffi::duckdb_get_list_size(self.0) };
        Some(
            (0..n)
                // SAFETY: as above, `i` is below the list's size.
                .filter_map(|i| Value(unsafe { ffi::duckdb_get_list_child(self.0, i) }).text())
                .collect(),
        )
    }

    /// The members of a STRUCT value (COPY's options): name and value.
    pub(crate) fn members(&self) -> Vec<(String, Value)> {
        if self.is_null() {
            return Vec::new();
        }
        // SAFETY: the handle is a live STRUCT value; its type is owned by the value; member
        // names are malloc'ed strings `owned_c_string` frees, member values new values.
        unsafe {
            let ty = ffi::duckdb_get_value_type(self.0);
            let n = ffi::duckdb_struct_type_child_count(ty);
            (0..n)
                .map(|i| {
                    (
                        owned_c_string(ffi::duckdb_struct_type_child_name(ty, i)),
                        Value(ffi::duckdb_get_struct_child(self.0, i)),
                    )
                })
                .collect()
        }
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the handle was handed to us by DuckDB and is destroyed once.
            unsafe { ffi::duckdb_destroy_value(&mut self.0) }
        }
    }
}

/// A string DuckDB allocated, copied and freed (empty when null).
///
/// # Safety
/// `p` must be null or a NUL-terminated string allocated by DuckDB and not used afterwards.
pub(crate) unsafe fn owned_c_string(p: *mut c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller's contract; the string is freed once, here.
    unsafe {
        let s = CStr::from_ptr(p).to_string_lossy().into_owned();
        ffi::duckdb_free(p.cast::<c_void>());
        s
    }
}

/// `message` as a C string (interior NULs replaced).
pub(crate) fn c_string(message: &str) -> CString {
    CString::new(message.replace('\0', " ")).unwrap_or_default()
}

/// Runs `f`, turning an error or a panic into a message for DuckDB; a panic never unwinds
/// into the host.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), String>) -> Result<(), CString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(c_string(&message)),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(c_string(&format!("vlake: internal error: {what}")))
        }
    }
}

/// Frees a `Box<T>` that DuckDB held as bind, init or extra data.
pub(crate) unsafe extern "C" fn drop_box<T>(data: *mut c_void) {
    if !data.is_null() {
        // A panic in a destructor must not unwind into DuckDB either.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `data` came from `Box::into_raw` of a `Box<T>` and DuckDB frees it once.
            drop(unsafe { Box::from_raw(data.cast::<T>()) })
        }));
    }
}

/// Hands `value` to DuckDB as a raw pointer that [`drop_box`] frees.
pub(crate) fn into_raw<T>(value: T) -> *mut c_void {
    Box::into_raw(Box::new(value)).cast::<c_void>()
}
