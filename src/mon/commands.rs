//! The monitor's commands (`MMonCommand`, as `ceph` sends them): `osd pool create|ls|rm`,
//! `osd dump`, `osd create|rm`, `osd down|out|in` and `status`, each one JSON object with a
//! `prefix` and Ceph's argument names, answered with a status text and an output buffer.

use super::{Core, Inner};
use crate::types::osdmap::{fsid_to_string, OsdId, OsdMap, Pool, MAX_OSD_LIMIT};
use crate::{Error, Result};
use bytes::Bytes;
use serde_json::{json, Map, Value};

pub(super) fn status_json(map: &OsdMap) -> Value {
    let pools: Vec<Value> = map.pools.values().map(|p| p.to_json()).collect();
    json!({
        "fsid": fsid_to_string(&map.fsid),
        "epoch": map.epoch,
        "num_osds": map.osds.len(),
        "num_up_osds": map.num_up(),
        "num_in_osds": map.num_in(),
        "num_pools": map.pools.len(),
        "pools": pools,
    })
}

fn arg_str(args: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(Error::inval(format!("argument '{name}' must be a string, not {v}"))),
    }
}

fn arg_u32(args: &Map<String, Value>, name: &str) -> Result<Option<u32>> {
    let bad = |v: &Value| Error::inval(format!("argument '{name}' must be a non-negative integer, not {v}"));
    match args.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| bad(v)),
        Some(v @ Value::String(s)) => s.trim().parse::<u32>().map(Some).map_err(|_| bad(v)),
        Some(v) => Err(bad(v)),
    }
}

/// OSD ids from `ids` (a list or a scalar) or `id`: numbers, `"3"` or `"osd.3"`.
fn arg_osd_ids(args: &Map<String, Value>) -> Result<Vec<OsdId>> {
    let raw: Vec<&Value> = match args.get("ids").or_else(|| args.get("id")) {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v) => vec![v],
        None => Vec::new(),
    };
    if raw.is_empty() {
        return Err(Error::inval("no OSD ids given ('ids')"));
    }
    raw.into_iter()
        .map(|v| {
            let parsed = match v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.strip_prefix("osd.").unwrap_or(s).parse::<i64>().ok(),
                _ => None,
            };
            parsed
                .filter(|id| (0..i64::from(MAX_OSD_LIMIT)).contains(id))
                .map(|id| id as OsdId)
                .ok_or_else(|| Error::inval(format!("invalid OSD id {v}")))
        })
        .collect()
}

fn wants_json(args: &Map<String, Value>) -> bool {
    matches!(args.get("format").and_then(Value::as_str), Some("json" | "json-pretty"))
}

/// A command's success: status text and output.
pub(super) type CmdOut = (String, Bytes);

impl Core {
    /// Runs one JSON command: `Ok((status, output))` or the error to report.
    pub(super) fn run_command(&self, cmd: &str) -> Result<CmdOut> {
        let v: Value =
            serde_json::from_str(cmd).map_err(|e| Error::inval(format!("command is not valid JSON: {e}")))?;
        let args = v
            .as_object()
            .ok_or_else(|| Error::inval("command must be a JSON object"))?;
        let prefix = args
            .get("prefix")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::inval("command has no string \"prefix\""))?;
        let mut g = self.inner.lock();
        match prefix {
            "osd pool create" => self.pool_create(&mut g, args),
            "osd pool ls" => {
                let names: Vec<&str> = g.state.map.pools.values().map(|p| p.name.as_str()).collect();
                let out = if wants_json(args) {
                    serde_json::to_string(&names).unwrap_or_default()
                } else {
                    names.iter().map(|n| format!("{n}\n")).collect()
                };
                Ok((String::new(), Bytes::from(out)))
            }
            "osd pool rm" | "osd pool delete" => self.pool_rm(&mut g, args),
            "osd dump" => Ok((
                format!("dumped osdmap epoch {}", g.state.map.epoch),
                Bytes::from(g.state.map.to_json().to_string()),
            )),
            "osd down" | "osd out" | "osd in" => self.osd_flags(&mut g, &prefix[4..], args),
            "osd create" => self.osd_create(&mut g, args),
            "osd rm" => self.osd_rm(&mut g, args),
            "status" => Ok((String::new(), Bytes::from(status_json(&g.state.map).to_string()))),
            _ => Err(Error::inval(format!("unknown command prefix '{prefix}'"))),
        }
    }

    fn pool_create(&self, g: &mut Inner, args: &Map<String, Value>) -> Result<CmdOut> {
        let name = arg_str(args, "pool")?.ok_or_else(|| Error::inval("osd pool create: missing 'pool'"))?;
        if name.is_empty() || name.len() > 256 || name.chars().any(|c| c.is_control()) {
            return Err(Error::inval(format!("invalid pool name '{name}'")));
        }
        let pg_num = arg_u32(args, "pg_num")?.unwrap_or(32);
        if pg_num == 0 || pg_num > 1 << 24 {
            return Err(Error::inval(format!("pg_num {pg_num} out of range 1..=16777216")));
        }
        let size = arg_u32(args, "size")?.unwrap_or(3);
        if size == 0 || size > 32 {
            return Err(Error::inval(format!("size {size} out of range 1..=32")));
        }
        let min_size = arg_u32(args, "min_size")?.unwrap_or(size - size / 2);
        if min_size == 0 || min_size > size {
            return Err(Error::inval(format!("min_size {min_size} out of range 1..={size}")));
        }
        let map = &g.state.map;
        if map.pool_by_name(&name).is_some() {
            return Err(Error::exists(format!("pool '{name}' already exists")));
        }
        let id = map.pool_max + 1;
        let mut inc = map.next_incremental();
        inc.new_pools
            .insert(id, Pool::new(id, name.clone(), size, min_size, pg_num));
        inc.new_pool_max = Some(id);
        let e = self.propose(g, inc)?;
        let out = json!({"pool": name, "pool_id": id, "epoch": e}).to_string();
        Ok((format!("pool '{name}' created"), Bytes::from(out)))
    }

    fn pool_rm(&self, g: &mut Inner, args: &Map<String, Value>) -> Result<CmdOut> {
        let name = arg_str(args, "pool")?.ok_or_else(|| Error::inval("osd pool rm: missing 'pool'"))?;
        if let Some(p2) = arg_str(args, "pool2")? {
            if p2 != name {
                return Err(Error::inval(format!(
                    "pool2 '{p2}' does not match pool '{name}': give the name twice to remove a pool"
                )));
            }
        }
        let map = &g.state.map;
        let id = map
            .pool_by_name(&name)
            .map(|p| p.id)
            .ok_or_else(|| Error::noent(format!("pool '{name}' does not exist")))?;
        let mut inc = map.next_incremental();
        inc.removed_pools.insert(id);
        self.propose(g, inc)?;
        Ok((format!("pool '{name}' removed"), Bytes::new()))
    }

    /// `osd down|out|in`: one new epoch for whatever changes; unknown OSDs fail the command.
    fn osd_flags(&self, g: &mut Inner, what: &str, args: &Map<String, Value>) -> Result<CmdOut> {
        let ids = arg_osd_ids(args)?;
        let map = &g.state.map;
        if let Some(id) = ids.iter().find(|id| !map.exists(**id)) {
            return Err(Error::noent(format!("osd.{id} does not exist")));
        }
        let mut inc = map.next_incremental();
        let mut rs = String::new();
        for &id in &ids {
            let (change, already) = match what {
                "down" => (map.is_up(id), "already down"),
                "out" => (map.is_in(id), "already out"),
                _ => (!map.is_in(id), "already in"),
            };
            if !change {
                rs.push_str(&format!("osd.{id} is {already}. "));
                continue;
            }
            if what != "down" {
                // The operator's choice now; a boot no longer undoes it.
                g.failures.auto_out.remove(&id);
            }
            match what {
                "down" => inc.new_down.insert(id),
                "out" => inc.new_out.insert(id),
                _ => inc.new_in.insert(id),
            };
            rs.push_str(&format!("marked {what} osd.{id}. "));
        }
        let changed = !(inc.new_down.is_empty() && inc.new_out.is_empty() && inc.new_in.is_empty());
        if changed {
            self.propose(g, inc)?;
        }
        Ok((rs.trim_end().to_string(), Bytes::new()))
    }

    /// `osd create [id]`, as Ceph's: makes an OSD exist (down, out) so that it may boot, and
    /// prints its id. Without an id, the lowest free one; an id that exists already is no
    /// change (the same reply), so a harness can create what it is about to start.
    fn osd_create(&self, g: &mut Inner, args: &Map<String, Value>) -> Result<CmdOut> {
        let map = &g.state.map;
        let id = match args.get("id") {
            None | Some(Value::Null) => (0..MAX_OSD_LIMIT)
                .find(|id| !map.exists(*id))
                .ok_or_else(|| Error::new(libc::ENOSPC, "no free OSD id"))?,
            Some(_) => arg_osd_ids(args)?[0],
        };
        if !map.exists(id) {
            let mut inc = map.next_incremental();
            if id >= map.max_osd {
                inc.new_max_osd = Some(id + 1);
            }
            inc.new_osds.insert(id);
            self.propose(g, inc)?;
        }
        Ok((String::new(), Bytes::from(id.to_string())))
    }

    /// `osd rm <ids>`: forgets OSDs that are down (an up one is EBUSY, as in Ceph); one that
    /// does not exist is said so, not an error.
    fn osd_rm(&self, g: &mut Inner, args: &Map<String, Value>) -> Result<CmdOut> {
        let ids = arg_osd_ids(args)?;
        let map = &g.state.map;
        if let Some(id) = ids.iter().find(|id| map.is_up(**id)) {
            return Err(Error::new(
                libc::EBUSY,
                format!("osd.{id} is still up; must be down before removal."),
            ));
        }
        let mut inc = map.next_incremental();
        let mut rs = String::new();
        for id in ids {
            if map.exists(id) {
                inc.removed_osds.insert(id);
                g.failures.auto_out.remove(&id);
                rs.push_str(&format!("removed osd.{id}. "));
            } else {
                rs.push_str(&format!("osd.{id} does not exist. "));
            }
        }
        if !inc.removed_osds.is_empty() {
            self.propose(g, inc)?;
        }
        Ok((rs.trim_end().to_string(), Bytes::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_arguments_parse_leniently_and_fail_clearly() {
        let a: Map<String, Value> =
            serde_json::from_str(r#"{"pg_num":"16","size":2,"bad":-1,"ids":["osd.3",4,"5"],"s":7}"#).unwrap();
        assert_eq!(arg_u32(&a, "pg_num").unwrap(), Some(16));
        assert_eq!(arg_u32(&a, "size").unwrap(), Some(2));
        assert_eq!(arg_u32(&a, "nope").unwrap(), None);
        assert_eq!(arg_u32(&a, "bad").unwrap_err().errno, libc::EINVAL);
        assert_eq!(arg_str(&a, "s").unwrap_err().errno, libc::EINVAL);
        assert_eq!(arg_osd_ids(&a).unwrap(), vec![3, 4, 5]);
        let b: Map<String, Value> = serde_json::from_str(r#"{"ids":["osd.x"]}"#).unwrap();
        assert_eq!(arg_osd_ids(&b).unwrap_err().errno, libc::EINVAL);
        assert_eq!(arg_osd_ids(&Map::new()).unwrap_err().errno, libc::EINVAL);
    }
}
