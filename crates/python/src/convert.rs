//! JSON values to Python objects and back.
//!
//! dict, list/tuple, str, int, float, bool and None map to JSON objects, arrays, strings,
//! numbers, booleans and null. Metadata given as a `str` is JSON text (as in the reference): it
//! is checked and stored as written, which is also the fastest way to push metadata.

use bytes::Bytes;
use diaspora_stream::Metadata;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Nesting limit of Python values turned into JSON (the parser's own limit is 128).
const MAX_DEPTH: usize = 128;

extern "C" {
    // Part of the stable ABI only from Python 3.10, but exported by every CPython since 3.3
    // with the same signature; PyO3's abi3-py39 build leaves it out (its `to_cow` then goes
    // through a new bytes object and a String: two allocations and two copies per string).
    fn PyUnicode_AsUTF8AndSize(
        obj: *mut pyo3::ffi::PyObject,
        size: *mut pyo3::ffi::Py_ssize_t,
    ) -> *const std::ffi::c_char;
}

/// The UTF-8 text of a `str`, without a copy: CPython keeps it with the object (for ASCII
/// strings it is the object's own storage), so it lives as long as `s`. A string that is not
/// valid Unicode (a lone surrogate) raises UnicodeEncodeError, as `str.encode()` does.
pub fn utf8<'a>(s: &'a Bound<'_, PyString>) -> PyResult<&'a str> {
    let mut size: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `s` is a str and the GIL is held; the returned buffer belongs to `s`, which the
    // borrow keeps alive, and holds `size` bytes of valid UTF-8.
    unsafe {
        let data = PyUnicode_AsUTF8AndSize(s.as_ptr(), &mut size);
        if data.is_null() {
            return Err(PyErr::fetch(s.py()));
        }
        Ok(std::str::from_utf8_unchecked(std::slice::from_raw_parts(
            data.cast::<u8>(),
            size as usize,
        )))
    }
}

/// A Python value as JSON.
pub fn to_json(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_json_at(obj, 0)
}

fn to_json_at(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    if depth > MAX_DEPTH {
        return Err(crate::error::invalid_argument(format!(
            "value nested more than {MAX_DEPTH} levels deep"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(utf8(s)?.to_owned()));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::Number(u.into()));
        }
        return Err(crate::error::invalid_argument(format!(
            "integer {obj} does not fit in 64 bits"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Number::from_f64(v).map(Value::Number).ok_or_else(|| {
            crate::error::invalid_argument(format!("{v} cannot be stored in JSON"))
        });
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let key = match k.cast::<PyString>() {
                Ok(s) => utf8(s)?.to_owned(),
                Err(_) => utf8(&k.str()?)?.to_owned(),
            };
            map.insert(key, to_json_at(&v, depth + 1)?);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
        for item in obj.try_iter()? {
            out.push(to_json_at(&item?, depth + 1)?);
        }
        return Ok(Value::Array(out));
    }
    // Other mappings and sequences (numpy scalars have no JSON form of their own).
    if let Ok(items) = obj.call_method0("items") {
        let d = PyDict::new(obj.py());
        for kv in items.try_iter()? {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = kv?.extract()?;
            d.set_item(k, v)?;
        }
        return to_json_at(d.as_any(), depth);
    }
    if let Ok(item) = obj.call_method0("item") {
        if !item.is(obj) {
            return to_json_at(&item, depth + 1);
        }
    }
    Err(crate::error::invalid_argument(format!(
        "a {} cannot be converted to JSON",
        obj.get_type().name()?
    )))
}

/// JSON as a Python value.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(a) => {
            let list = PyList::empty(py);
            for item in a {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, item) in m {
                d.set_item(k, to_py(py, item)?)?;
            }
            d.into_any()
        }
    })
}

/// Event metadata given as the JSON text of a `str`, checked and kept as written.
pub fn text_metadata(text: Bytes) -> PyResult<Metadata> {
    json_text(text, "text")
}

/// Metadata of JSON text given as `what` (a str's text, bytes), checked and kept as written.
fn json_text(text: Bytes, what: &str) -> PyResult<Metadata> {
    Metadata::parse_shared(text).map_err(|e| {
        crate::error::invalid_argument(format!("metadata given as {what} is not JSON: {e}"))
    })
}

/// Options given as a dict (or None for none) as a JSON object.
pub fn options(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Value> {
    match obj {
        None => Ok(Value::Object(Map::new())),
        Some(o) if o.is_none() => Ok(Value::Object(Map::new())),
        Some(o) => to_json(o),
    }
}

/// Event metadata: a `str` is JSON text, kept as written once checked; anything else is
/// converted.
pub fn metadata(obj: &Bound<'_, PyAny>) -> PyResult<Metadata> {
    if let Ok(s) = obj.cast::<PyString>() {
        return text_metadata(Bytes::copy_from_slice(utf8(s)?.as_bytes()));
    }
    if let Ok(b) = obj.cast::<pyo3::types::PyBytes>() {
        return json_text(Bytes::copy_from_slice(b.as_bytes()), "bytes");
    }
    Ok(Metadata::new(to_json(obj)?))
}
