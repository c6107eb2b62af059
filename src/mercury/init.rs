//! Initialising Mercury's class: `HG_Init`, or `HG_Init_opt` with the settings of
//! [`TransportOptions`] (and Margo's default authorisation key on Slingshot), and the clean-up
//! of shared-memory files a killed process left behind.

use super::options::TransportOptions;
use crate::error::{Error, Result};
use mercury_sys as hg;
use std::ffi::CString;
use std::time::Duration;

/// Mercury's shared-memory plugin names its files after the process id
/// (`/dev/shm/na_sm-<pid>-<n>`, and a directory `/tmp/na_sm-<pid>-<n>` holding its socket) and
/// fails to start when they exist. A process killed before it finalised Mercury leaves them
/// behind, and a later process that gets the same id then cannot use `na+sm`. When starting
/// `na+sm` fails, the files named after this process's id are removed if they are older than
/// the process and nothing listens on their socket any more (a live process in another PID
/// namespace sharing these directories keeps its files), and Mercury is tried once more.
/// Returns whether anything was removed.
pub(super) fn remove_stale_sm_files() -> bool {
    match process_start_time() {
        Some(started) => remove_stale_sm_files_in(
            std::path::Path::new("/dev/shm"),
            std::path::Path::new("/tmp"),
            std::process::id(),
            started,
        ),
        None => false,
    }
}

/// This process's start time, from `/proc` (`None` where there is no `/proc`).
fn process_start_time() -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (start time, in clock ticks since boot), counted after the command name,
    // which ends at the last ')'.
    let after = &me[me.rfind(')')? + 2..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // Linux reports these ticks at USER_HZ, 100 per second.
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 10))
}

/// The work of [`remove_stale_sm_files`], on given directories (for tests).
fn remove_stale_sm_files_in(
    shm_dir: &std::path::Path,
    tmp_dir: &std::path::Path,
    pid: u32,
    started: std::time::SystemTime,
) -> bool {
    let prefix = format!("na_sm-{pid}-");
    let older = |path: &std::path::Path| {
        path.symlink_metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m < started)
    };
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return false;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let sock = dir.join("sock");
        // Stale only if its socket is left with no listener.
        let refused = matches!(
            std::os::unix::net::UnixStream::connect(&sock),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        );
        if !refused || !older(&dir) || !older(&sock) {
            continue;
        }
        removed |= std::fs::remove_dir_all(&dir).is_ok();
        let shm = shm_dir.join(name);
        if older(&shm) {
            removed |= std::fs::remove_file(&shm).is_ok();
        }
    }
    removed
}

/// The authorisation key Margo picks on Slingshot (`cxi`) when none is given: with several
/// VNIs in `SLINGSHOT_VNIS` (a comma-separated list), the second one, which the resource
/// manager allocates to the job (`"0:0:1"`: service and VNI from the environment, index 1);
/// otherwise none, and libfabric chooses.
pub(super) fn cxi_default_auth_key(info: &str, slingshot_vnis: Option<&str>) -> Option<String> {
    let several = slingshot_vnis.is_some_and(|v| v.contains(','));
    (info.contains("cxi") && several).then(|| "0:0:1".to_string())
}

/// `HG_Init`, or `HG_Init_opt` when settings are given (its 2.2 layout of `hg_init_info` is
/// the prefix of the current one, and every field set here belongs to it).
pub(super) fn init_class(
    info: &CString,
    listen: bool,
    transport: &TransportOptions,
) -> Result<(*mut hg::hg_class_t, Vec<CString>)> {
    if *transport == TransportOptions::default() {
        // SAFETY: plain initialisation with a valid C string.
        return Ok((
            unsafe { hg::HG_Init(info.as_ptr(), u8::from(listen)) },
            Vec::new(),
        ));
    }
    let cstring = |what: &str, s: &Option<String>| -> Result<Option<CString>> {
        s.as_deref()
            .map(|s| {
                CString::new(s)
                    .map_err(|_| Error::InvalidArgument(format!("{what} {s:?} contains NUL")))
            })
            .transpose()
    };
    let auth_key = cstring("auth_key", &transport.auth_key)?;
    let ip_subnet = cstring("ip_subnet", &transport.ip_subnet)?;
    let sm_info = cstring("sm_info_string", &transport.sm_info_string)?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: plain C data; zero fields select Mercury's defaults (Margo starts from zeros
    // too; a zero `max_contexts` is taken as one).
    let mut init: hg::hg_init_info = unsafe { std::mem::zeroed() };
    init.na_init_info.auth_key = ptr(&auth_key);
    init.na_init_info.ip_subnet = ptr(&ip_subnet);
    init.sm_info_string = ptr(&sm_info);
    if transport.na_no_block {
        init.na_init_info.progress_mode |= hg::NA_NO_BLOCK as u8;
    }
    if transport.na_no_retry {
        init.na_init_info.progress_mode |= hg::NA_NO_RETRY as u8;
    }
    init.na_init_info.max_contexts = transport.max_contexts.unwrap_or(0);
    init.na_init_info.max_unexpected_size = transport.max_unexpected_size.unwrap_or(0);
    init.na_init_info.max_expected_size = transport.max_expected_size.unwrap_or(0);
    init.request_post_init = transport.request_post_init.unwrap_or(0);
    // `hg_uint32_t` before Mercury 2.4, `int32_t` since (-1: never grow).
    init.request_post_incr = transport.request_post_incr.unwrap_or(0) as _;
    init.na_init_info.request_mem_device = transport.na_request_mem_device;
    init.checksum_level = match transport.checksum_level.as_deref() {
        Some("rpc_headers") => hg::HG_CHECKSUM_RPC_HEADERS,
        Some("rpc_payload") => hg::HG_CHECKSUM_RPC_PAYLOAD,
        _ => hg::HG_CHECKSUM_NONE,
    };
    init.na_init_info.addr_format = match transport.na_addr_format.as_deref() {
        Some("ipv4") => hg::NA_ADDR_IPV4,
        Some("ipv6") => hg::NA_ADDR_IPV6,
        Some("native") => hg::NA_ADDR_NATIVE,
        _ => hg::NA_ADDR_UNSPEC,
    };
    init.auto_sm = u8::from(transport.auto_sm);
    init.no_bulk_eager = u8::from(transport.no_bulk_eager);
    init.no_loopback = u8::from(transport.no_loopback);
    init.stats = u8::from(transport.stats);
    // SAFETY: `init` outlives the call, and the strings it points to live as long as the
    // engine (the caller keeps them), whether or not Mercury copies them.
    let class = unsafe { hg::HG_Init_opt(info.as_ptr(), u8::from(listen), &init) };
    Ok((
        class,
        [auth_key, ip_subnet, sm_info]
            .into_iter()
            .flatten()
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cxi_auth_key_follows_margo() {
        assert_eq!(
            cxi_default_auth_key("ofi+cxi", Some("16369,16324")).as_deref(),
            Some("0:0:1")
        );
        assert_eq!(
            cxi_default_auth_key("cxi://cxi0", Some("16369,1,2")).as_deref(),
            Some("0:0:1")
        );
        assert_eq!(cxi_default_auth_key("ofi+cxi", Some("16369")), None);
        assert_eq!(cxi_default_auth_key("ofi+cxi", None), None);
        assert_eq!(cxi_default_auth_key("ofi+tcp", Some("1,2")), None);
    }

    #[test]
    fn stale_sm_files_of_this_pid_are_removed_and_others_kept() {
        use std::os::unix::net::UnixListener;
        let shm = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let (s, t) = (shm.path(), tmp.path());
        let plant = |name: &str, listening: bool| {
            std::fs::write(s.join(name), b"queues").unwrap();
            std::fs::create_dir(t.join(name)).unwrap();
            let l = UnixListener::bind(t.join(name).join("sock")).unwrap();
            listening.then_some(l)
        };
        plant("na_sm-4242-0", false); // dead: removed
        let _live = plant("na_sm-4242-1", true); // someone listens: kept
        plant("na_sm-42420-0", false); // another id: kept
        std::fs::write(s.join("na_sm-4242-2"), b"no socket dir").unwrap(); // kept
        let listing = |d: &std::path::Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        // Files newer than the process are its own: nothing goes.
        let earlier = std::time::SystemTime::now() - Duration::from_secs(60);
        assert!(!remove_stale_sm_files_in(s, t, 4242, earlier));
        assert_eq!(listing(t).len(), 3);
        // For a process started after them, the dead instance's files go.
        let later = std::time::SystemTime::now() + Duration::from_secs(2);
        assert!(remove_stale_sm_files_in(s, t, 4242, later));
        assert_eq!(listing(t), ["na_sm-4242-1", "na_sm-42420-0"]);
        assert_eq!(
            listing(s),
            ["na_sm-4242-1", "na_sm-4242-2", "na_sm-42420-0"]
        );
        assert!(process_start_time().unwrap() <= std::time::SystemTime::now());
    }
}
