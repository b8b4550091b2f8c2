//! Log subsystems and their `debug_<subsys>` defaults, in Ceph's `log/1`/`gather` form.
//!
//! The first number is the level written to the log; the second the level gathered into the
//! in-memory ring that `log dump` (or a crash) writes out.

use super::error::{Error, Result};

/// `(name, log level, gather level)`, Ceph Pacific's defaults where the subsystem exists there.
pub const SUBSYSTEMS: &[(&str, i32, i32)] = &[
    ("none", 0, 5),
    ("context", 0, 1),
    ("ms", 0, 0),
    ("asok", 1, 5),
    ("timer", 0, 1),
    ("finisher", 1, 1),
    ("throttle", 1, 1),
    ("perfcounter", 1, 5),
    ("auth", 1, 5),
    ("monc", 0, 10),
    ("mon", 1, 5),
    ("paxos", 1, 5),
    ("osd", 1, 5),
    ("optracker", 0, 5),
    ("objclass", 0, 5),
    ("filestore", 1, 3),
    ("bluestore", 1, 5),
    ("memstore", 1, 5),
    ("kvstore", 1, 5),
    ("objecter", 0, 1),
    ("client", 0, 5),
    ("mds", 1, 5),
    ("mds_locker", 1, 5),
    ("mds_log", 1, 5),
    ("mds_balancer", 1, 5),
    ("mds_migrator", 1, 5),
    ("journaler", 0, 5),
    ("heartbeatmap", 1, 5),
    ("crush", 1, 1),
    ("rados", 0, 5),
];

pub fn index_of(name: &str) -> Option<usize> {
    SUBSYSTEMS.iter().position(|(n, _, _)| *n == name)
}

/// Parses `5` or `1/5` (Ceph's `debug_ms` values) into `(log, gather)`.
pub fn parse_debug_level(s: &str) -> Result<(i32, i32)> {
    let bad = || Error::inval(format!("debug level '{s}' is not N or N/M (e.g. 1/5)"));
    let s = s.trim();
    let (a, b) = match s.split_once('/') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s, s),
    };
    let a: i32 = a.parse().map_err(|_| bad())?;
    let b: i32 = b.parse().map_err(|_| bad())?;
    if !(-1..=99).contains(&a) || !(-1..=99).contains(&b) {
        return Err(bad());
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses_ceph_forms() {
        assert_eq!(parse_debug_level("1/5").unwrap(), (1, 5));
        assert_eq!(parse_debug_level("20").unwrap(), (20, 20));
        assert!(parse_debug_level("x/5").is_err());
        assert!(parse_debug_level("").is_err());
        assert!(index_of("ms").is_some());
    }
}
