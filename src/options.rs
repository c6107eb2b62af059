//! Driver options as typed structs: one way to read them and to say what is wrong.
//!
//! Each driver describes its options as a `#[derive(Deserialize)]` struct with
//! `#[serde(deny_unknown_fields)]` and reads them with [`parse`]. A bad option becomes an
//! [`Error::InvalidConfig`] naming the option, what was expected and, for an unknown key (a typo
//! such as `root_pth`), the valid ones. String options accept what a command line made of its
//! text (`--driver.root_path 2024` arrives as the number 2024) through [`optional_text`].

use crate::error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Reads `options` into `T`; `kind` names the component in the error ("files driver").
pub fn parse<T: DeserializeOwned>(kind: &'static str, options: &Value) -> Result<T> {
    serde_path_to_error::deserialize(options).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || inner.to_string().starts_with("unknown field") {
            inner.to_string()
        } else {
            format!("option \"{path}\": {inner}")
        };
        Error::config(kind, message)
    })
}

/// An optional string option that also takes a number or a boolean, as their text.
pub fn optional_text<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        v @ (Value::Number(_) | Value::Bool(_)) => Ok(Some(v.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected a string, not {other}"
        ))),
    }
}

/// A required string option that also takes a number or a boolean, as their text.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    optional_text(d)?.ok_or_else(|| serde::de::Error::custom("expected a string, not null"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Example {
        #[serde(default, deserialize_with = "optional_text")]
        name: Option<String>,
        #[serde(default)]
        flag: bool,
    }

    #[test]
    fn errors_name_the_option_and_the_valid_keys() {
        let e = parse::<Example>("test", &json!({"nmae": "x"})).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("nmae") && m.contains("`name`") && m.contains("`flag`"),
            "{m}"
        );
        let m = parse::<Example>("test", &json!({"flag": "yes"}))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("option \"flag\"") && m.contains("boolean"),
            "{m}"
        );
        let name = |v| parse::<Example>("t", &json!({ "name": v })).unwrap().name;
        assert_eq!(name(json!(2024)).as_deref(), Some("2024"));
        assert_eq!(name(json!(true)).as_deref(), Some("true"));
        assert_eq!(name(json!(null)), None);
        assert!(parse::<Example>("t", &json!({"flag": true})).unwrap().flag);
        assert!(parse::<Example>("t", &json!({"name": [1]})).is_err());
    }
}
