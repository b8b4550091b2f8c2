//! PG-level questions a client asks the OSDs directly (`osdkit pg ...`): the state of every PG
//! and scrubs.
//!
//! Ceph's monitor (its manager, since Luminous) keeps a PG map fed by the OSDs' reports. Here
//! the client asks each up OSD for the PGs it leads (`pg dump` through `MCommand`), so the
//! answer is as fresh as the OSDs' own view; a PG whose primary in the client's map did not
//! answer for it shows as `unknown`, and one with no OSD up as `down`.

use super::objecter::Objecter;
use crate::common::error::{Error, Result};
use crate::types::placement::PgId;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One line per PG of every pool, in PG order.
pub fn pg_dump(o: &Objecter, timeout: Duration) -> Result<Vec<Value>> {
    let map = o.osdmap();
    let mut reported: BTreeMap<String, Value> = BTreeMap::new();
    for (&osd, info) in &map.osds {
        if !info.up {
            continue;
        }
        let out = match o.osd_command(osd, r#"{"prefix":"pg dump"}"#, timeout) {
            Ok(out) => out,
            Err(e) => {
                log::info!(target: "objecter", "pg dump: osd.{osd}: {e}");
                continue;
            }
        };
        let v: Value =
            serde_json::from_slice(&out).map_err(|e| Error::inval(format!("osd.{osd}: bad pg dump: {e}")))?;
        for pg in v["pg_stats"].as_array().into_iter().flatten() {
            if pg["role"] == "primary" {
                if let Some(id) = pg["pgid"].as_str() {
                    reported.insert(id.to_string(), pg.clone());
                }
            }
        }
    }
    let mut out = Vec::new();
    for pool in map.pools.values() {
        for seed in 0..pool.pg_num {
            let pgid = PgId::new(pool.id, seed);
            let acting = map.pg_to_up_osds(pgid);
            let id = pgid.to_string();
            // Only the primary of the client's map speaks for the PG: another OSD's report is
            // from an older interval.
            let current = reported
                .remove(&id)
                .filter(|r| r["acting_primary"].as_i64() == acting.first().map(|&p| i64::from(p)));
            out.push(current.unwrap_or_else(|| {
                json!({
                    "pgid": id,
                    "state": if acting.is_empty() { "down" } else { "unknown" },
                    "acting": acting,
                    "acting_primary": acting.first(),
                })
            }));
        }
    }
    Ok(out)
}

/// What `ceph pg stat` says about a dump: PGs by state, objects and bytes (primaries' counts).
pub fn pg_stat(dump: &[Value]) -> Value {
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut objects, mut bytes) = (0u64, 0u64);
    for pg in dump {
        *by_state.entry(pg["state"].as_str().unwrap_or("unknown")).or_default() += 1;
        objects += pg["num_objects"].as_u64().unwrap_or(0);
        bytes += pg["num_bytes"].as_u64().unwrap_or(0);
    }
    json!({
        "num_pgs": dump.len(),
        "num_pg_by_state": by_state.iter().map(|(s, n)| json!({"name": s, "num": n})).collect::<Vec<_>>(),
        "num_objects": objects,
        "num_bytes": bytes,
    })
}

/// One line, as `ceph pg stat` prints it.
pub fn pg_stat_line(stat: &Value) -> String {
    let states: Vec<String> = stat["num_pg_by_state"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{} {}", s["num"], s["name"].as_str().unwrap_or("?")))
        .collect();
    format!(
        "{} pgs: {}; {} objects, {} bytes",
        stat["num_pgs"],
        states.join(", "),
        stat["num_objects"],
        stat["num_bytes"]
    )
}

/// Scrubs `pgid` on its primary (deep: data and omap digests too) and returns the report
/// (`objects`, `errors`, `inconsistents`). A primary that is moving or peering is asked again
/// until `timeout`.
pub fn scrub(o: &Objecter, pgid: PgId, deep: bool, timeout: Duration) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let prefix = if deep { "pg deep-scrub" } else { "pg scrub" };
    let cmd = json!({"prefix": prefix, "pgid": pgid.to_string()}).to_string();
    loop {
        let map = o.osdmap();
        let pool = map
            .pool(pgid.pool)
            .ok_or_else(|| Error::noent(format!("pg {pgid}: no pool {}", pgid.pool)))?;
        if pgid.seed >= pool.pg_num {
            return Err(Error::noent(format!(
                "pg {pgid} does not exist (pg_num {})",
                pool.pg_num
            )));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let r = match map.pg_primary(pgid) {
            Some(p) => o.osd_command(p, &cmd, left.max(Duration::from_millis(1))),
            None => Err(Error::new(libc::EAGAIN, format!("pg {pgid} has no OSD up"))),
        };
        match r {
            Ok(out) => return serde_json::from_slice(&out).map_err(|e| Error::inval(format!("bad scrub report: {e}"))),
            Err(e) if matches!(e.errno, libc::EAGAIN | libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) if matches!(e.errno, libc::EAGAIN | libc::ENXIO) => {
                return Err(Error::new(libc::ETIMEDOUT, format!("scrub of pg {pgid}: {}", e.msg)))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every PG of `pool` (all pools: `None`).
pub fn pgs_of(o: &Objecter, pool: Option<i64>) -> Result<Vec<PgId>> {
    let map = o.osdmap();
    if let Some(p) = pool {
        if map.pool(p).is_none() {
            return Err(Error::noent(format!("no pool {p}")));
        }
    }
    Ok(map
        .pools
        .values()
        .filter(|p| pool.is_none_or(|id| id == p.id))
        .flat_map(|p| (0..p.pg_num).map(move |s| PgId::new(p.id, s)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_stat_counts_states_objects_and_bytes() {
        let dump = vec![
            json!({"pgid": "1.0", "state": "active+clean", "num_objects": 2, "num_bytes": 10}),
            json!({"pgid": "1.1", "state": "active+clean", "num_objects": 1, "num_bytes": 5}),
            json!({"pgid": "1.2", "state": "unknown"}),
        ];
        let s = pg_stat(&dump);
        assert_eq!(s["num_pgs"], 3);
        assert_eq!(s["num_objects"], 3);
        assert_eq!(s["num_bytes"], 15);
        assert_eq!(
            pg_stat_line(&s),
            "3 pgs: 2 active+clean, 1 unknown; 3 objects, 15 bytes"
        );
    }
}
