//! Finding the service: the members of its Flock group file, the address this client listens
//! on, and the master database (the Yokan provider tagged `mofka:master`) that a Jx9 query to
//! a member's Bedrock names.

use super::mofka_err;
use crate::drivers::mofka::rpc::Caller;
use crate::drivers::mofka::wire::{QueryConfigRequest, QueryConfigResponse, Rpc};
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Jx9 script run by Bedrock to find the master database: the ids of the Yokan providers that
/// carry the `mofka:master` tag.
pub(super) const MASTER_QUERY: &str = r#"
$ids = [];
foreach ($__config__.providers as $provider) {
    if ($provider.type == "yokan" && in_array("mofka:master", $provider.tags)) {
        array_push($ids, $provider.provider_id);
    }
}
return $ids;
"#;

/// Jx9 script run by Bedrock to learn the partition types of its Mofka providers: a list of
/// `[provider_id, type]` pairs (a Mofka provider's configuration carries its partition `type`).
pub(super) const PARTITION_TYPES_QUERY: &str = r#"
$types = [];
foreach ($__config__.providers as $provider) {
    if ($provider.type == "mofka") {
        array_push($types, [$provider.provider_id, $provider.config.type]);
    }
}
return $types;
"#;

/// Runs Jx9 `script` on the Bedrock of `server` (`bedrock_query_config`).
fn query_config(caller: &Caller, server: &str, script: &str) -> Result<QueryConfigResponse> {
    caller.call(
        server,
        Rpc::QueryConfig.name(),
        0,
        &QueryConfigRequest {
            script: script.to_string(),
        },
    )
}

/// The partition types of the Mofka providers on `server`, by provider id, from its Bedrock.
pub(super) fn partition_types(
    caller: &Caller,
    server: &str,
) -> Result<std::collections::HashMap<u16, String>> {
    let r = query_config(caller, server, PARTITION_TYPES_QUERY)?;
    if !r.success {
        return Err(mofka_err(format!(
            "Bedrock at {server} refused the partition type query: {}",
            r.content
        )));
    }
    let v: Value = serde_json::from_str(&r.content).map_err(|e| {
        mofka_err(format!(
            "Bedrock at {server} answered the partition type query with {:?}: {e}",
            r.content
        ))
    })?;
    let mut out = std::collections::HashMap::new();
    for pair in v.as_array().into_iter().flatten() {
        let id = pair.get(0).and_then(Value::as_u64);
        let kind = pair.get(1).and_then(Value::as_str);
        if let (Some(id), Some(kind)) = (id, kind) {
            if let Ok(id) = u16::try_from(id) {
                out.insert(id, kind.to_string());
            }
        }
    }
    Ok(out)
}

/// The members' addresses from a Flock group file, without duplicates.
pub(super) fn read_group_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::corrupt(path, 0, format!("not a JSON group file: {e}")))?;
    let members = v
        .get("members")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::corrupt(path, 0, "no \"members\" array"))?;
    let mut out: Vec<String> = Vec::new();
    for m in members {
        if let Some(a) = m.get("address").and_then(Value::as_str) {
            if !out.iter().any(|x| x == a) {
                out.push(a.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(Error::corrupt(path, 0, "the group has no member address"));
    }
    Ok(out)
}

/// What this client listens on, derived from a member's address: the same protocol, and for
/// TCP the same host (so that a service on 127.0.0.1 gets a client on 127.0.0.1).
pub(super) fn listen_info(member: &str) -> String {
    let (protocol, rest) = member.split_once("://").unwrap_or((member, ""));
    let protocol = protocol.split(';').next().unwrap_or(protocol);
    if protocol.starts_with("ofi+") || protocol.starts_with("ucx+") {
        let host = rest.rsplit_once(':').map(|(h, _)| h).unwrap_or(rest);
        if !host.is_empty() {
            return format!("{protocol}://{host}");
        }
    }
    protocol.to_string()
}

/// The master database's server and provider id: the first of `members` (in order) whose
/// Bedrock names a Yokan provider tagged `mofka:master`. The error lists what each member
/// answered; `group_file` names the group in it.
pub(super) fn find_master(
    caller: &Caller,
    members: &[String],
    group_file: &Path,
) -> Result<(String, u16)> {
    let mut errors = Vec::new();
    for member in members {
        match query_config(caller, member, MASTER_QUERY) {
            Ok(r) if r.success => {
                let ids: Value = serde_json::from_str(&r.content).unwrap_or(Value::Null);
                let first = match &ids {
                    Value::Array(a) => a.first().and_then(Value::as_u64),
                    Value::Number(n) => n.as_u64(),
                    _ => None,
                };
                if let Some(id) = first {
                    return Ok((member.clone(), id as u16));
                }
                errors.push(format!(
                    "{member}: no mofka:master database ({})",
                    r.content
                ));
            }
            Ok(r) => errors.push(format!("{member}: query failed: {}", r.content)),
            Err(e) => errors.push(format!("{member}: {e}")),
        }
    }
    Err(mofka_err(format!(
        "no member of {} has a Yokan database tagged mofka:master: {}",
        group_file.display(),
        errors.join("; ")
    )))
}
