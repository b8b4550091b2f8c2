//! The command's side of the object client: a `client.admin` [`Rados`] made from the
//! cluster's config, and what only the command needs on top: status as JSON, pool creation
//! that waits for the OSDs, objects streamed in pieces. What `status`, `pool ...` and
//! `put`/`get`/`stat`/`rm`/`ls` use.

use super::{live_pid, load_conf, pid_file_of};
use crate::asok::client::AdminSocketClient;
use crate::client::objecter::Objecter;
use crate::client::Rados;
use crate::mon::client::MonClient;
use crate::msgr::addr::EntityAddr;
use crate::types::osd_op::{ObjectStat, OsdOp};
use crate::types::osdmap::{fsid_to_string, OsdMap};
use crate::{Error, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Object data moves in pieces of this size.
const CHUNK: usize = 4 << 20;

/// A connection to a running cluster: the object client (`Rados`) and the config file it was
/// made from (the command finds daemons' pid files and admin sockets through it).
pub struct ClusterClient {
    conf_path: PathBuf,
    rados: Rados,
}

impl ClusterClient {
    /// Reads `conf` as `client.admin`, connects to `mon_host` and waits for the first map.
    pub fn connect(conf: &Path) -> Result<ClusterClient> {
        let rados = Rados::connect_with_conf("client.admin", conf)
            .map_err(|e| Error::new(e.errno, format!("{} (osdkit vstart starts one)", e.msg)))?;
        Ok(ClusterClient {
            conf_path: conf.to_path_buf(),
            rados,
        })
    }

    pub fn mon_addr(&self) -> EntityAddr {
        self.rados.mon_addr()
    }
    pub fn osdmap(&self) -> OsdMap {
        self.rados.osdmap()
    }
    /// The objecter, for callers that submit ops themselves (`bench osd`).
    pub fn objecter(&self) -> &Objecter {
        self.rados.objecter()
    }
    pub fn monc(&self) -> &MonClient {
        self.rados.monc()
    }

    /// Runs a monitor command; a negative result becomes an error with the monitor's text.
    pub fn mon_command(&self, cmd: &Value) -> Result<(String, Bytes)> {
        self.rados.mon_command(cmd)
    }

    /// `ceph -s`: fsid, epoch, OSD counts, pools, and every OSD with its state, address and pid
    /// (read from its pid file under `run_dir`, when this host has it).
    pub fn status(&self) -> Value {
        let map = self.rados.osdmap();
        let osds: Vec<Value> = map
            .osds
            .iter()
            .map(|(id, o)| {
                let pidfile = load_conf(&format!("osd.{id}"), &self.conf_path)
                    .ok()
                    .map(|c| pid_file_of(&c));
                let pid = pidfile.as_deref().and_then(live_pid);
                // The process is the OSD's own, or a manager's hosting it (its pid file is beside).
                let host = pid.map(|p| {
                    pidfile
                        .as_deref()
                        .and_then(|f| f.parent())
                        .and_then(|dir| manager_with_pid(dir, p))
                        .unwrap_or_else(|| format!("osd.{id}"))
                });
                json!({
                    "id": id,
                    "up": o.up,
                    "in": o.in_,
                    "state": format!(
                        "{},{}{}",
                        if o.up { "up" } else { "down" },
                        if o.in_ { "in" } else { "out" },
                        if o.full { ",full" } else { "" }
                    ),
                    "full": o.full,
                    "weight": o.weight_f32(),
                    "addr": o.addrs.public.to_string(),
                    "pid": pid,
                    "host": host,
                })
            })
            .collect();
        let pools: Vec<Value> = map
            .pools
            .values()
            .map(|p| json!({"id": p.id, "name": p.name, "size": p.size, "min_size": p.min_size, "pg_num": p.pg_num}))
            .collect();
        let (up, inn, n) = (map.num_up(), map.num_in(), map.osds.len());
        let full = map.osds.values().filter(|o| o.full).count();
        let health = if full > 0 {
            // Ceph: HEALTH_ERR, OSD_FULL "1 full osd(s)".
            format!("HEALTH_ERR: {full} full osd(s)")
        } else if n == 0 {
            "HEALTH_WARN: no OSDs".into()
        } else if up < n {
            "HEALTH_WARN: some OSDs are down".into()
        } else {
            "HEALTH_OK".into()
        };
        json!({
            "fsid": fsid_to_string(&map.fsid),
            "health": health,
            "mon": self.rados.mon_addr().to_string(),
            "epoch": map.epoch,
            "num_osds": n,
            "num_up_osds": up,
            "num_in_osds": inn,
            "osds": osds,
            "pools": pools,
        })
    }

    /// Creates a pool and waits (bounded) until the OSDs on this host have the new map, so the
    /// next command can use it. Returns the monitor's reply as JSON (`pool`, `pool_id`, `epoch`).
    pub fn pool_create(&self, name: &str, pg_num: u32, size: u32) -> Result<Value> {
        let v = self.rados.pool_create(name, pg_num, size)?;
        let epoch = v["epoch"].as_u64().unwrap_or(0) as u32;
        self.wait_for_epoch_everywhere(epoch, Duration::from_secs(10));
        Ok(v)
    }

    pub fn pool_ls(&self) -> Result<Vec<String>> {
        self.rados.pool_list()
    }

    pub fn pool_rm(&self, name: &str) -> Result<String> {
        self.rados.pool_delete(name)
    }

    /// Waits until the objecter and every up OSD whose admin socket this host has hold map
    /// `epoch` (an OSD answers `-ENOENT` for a pool it has not seen yet). Gives up quietly after
    /// `timeout`: the OSDs may be on other hosts.
    pub fn wait_for_epoch_everywhere(&self, epoch: u32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let _ = self.monc().wait_for_epoch(epoch, timeout);
        self.objecter().set_osdmap(self.osdmap());
        let map = self.osdmap();
        for (id, _) in map.osds.iter().filter(|(_, o)| o.up) {
            let Ok(c) = load_conf(&format!("osd.{id}"), &self.conf_path) else {
                continue;
            };
            let asok = c.get_str("admin_socket");
            if asok.is_empty() || !Path::new(&asok).exists() {
                continue;
            }
            let client = AdminSocketClient::new(&asok);
            while Instant::now() < deadline {
                let e = client
                    .request(&json!({"prefix": "status"}))
                    .ok()
                    .and_then(|s| serde_json::from_str::<Value>(&s).ok())
                    .and_then(|v| v["osdmap_epoch"].as_u64());
                match e {
                    Some(e) if e >= u64::from(epoch) => break,
                    None => break,
                    _ => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }
    }

    /// The id of pool `name`.
    pub fn pool_id(&self, name: &str) -> Result<i64> {
        self.rados.pool_id(name)
    }

    fn op(&self, pool: i64, oid: &str, ops: Vec<OsdOp>) -> Result<crate::types::osd_op::MOsdOpReply> {
        self.objecter().op(pool, oid, ops).map_err(|e| {
            let rest = e.msg.strip_prefix(&format!("{oid}: ")).unwrap_or(&e.msg);
            if rest == e.strerror() {
                Error::new(e.errno, format!("object '{oid}'"))
            } else {
                Error::new(e.errno, format!("object '{oid}': {rest}"))
            }
        })
    }

    /// Writes all of `input` as object `oid` (replacing it), in pieces. Returns the size.
    pub fn put(&self, pool: i64, oid: &str, input: &mut dyn Read) -> Result<u64> {
        let mut total = 0u64;
        let mut first = true;
        loop {
            let buf = read_chunk(input, CHUNK).map_err(|e| Error::io(e, "reading the input"))?;
            let n = buf.len();
            if first {
                self.op(pool, oid, vec![OsdOp::writefull(Bytes::from(buf))])?;
                first = false;
            } else if n > 0 {
                self.op(pool, oid, vec![OsdOp::write(total, Bytes::from(buf))])?;
            }
            total += n as u64;
            if n < CHUNK {
                return Ok(total);
            }
        }
    }

    /// Reads object `oid` into `out`, in pieces. Returns the size.
    pub fn get(&self, pool: i64, oid: &str, out: &mut dyn Write) -> Result<u64> {
        let (size, _) = self.stat(pool, oid)?;
        let mut off = 0u64;
        while off < size {
            let len = (size - off).min(CHUNK as u64);
            let r = self.op(pool, oid, vec![OsdOp::read(off, len)])?;
            let data = &r.ops[0].outdata;
            if data.is_empty() {
                break;
            }
            out.write_all(data).map_err(|e| Error::io(e, "writing the output"))?;
            off += data.len() as u64;
        }
        out.flush().map_err(|e| Error::io(e, "writing the output"))?;
        Ok(off)
    }

    /// Size and modification time of `oid`.
    pub fn stat(&self, pool: i64, oid: &str) -> Result<(u64, SystemTime)> {
        let r = self.op(pool, oid, vec![OsdOp::stat()])?;
        let st = ObjectStat::decode(&r.ops[0].outdata)
            .map_err(|e| Error::new(e.errno, format!("object '{oid}': {}", e.msg)))?;
        Ok((st.size, st.mtime))
    }

    pub fn rm(&self, pool: i64, oid: &str) -> Result<()> {
        self.op(pool, oid, vec![OsdOp::delete()]).map(|_| ())
    }

    pub fn ls(&self, pool: i64) -> Result<Vec<String>> {
        self.objecter().list(pool)
    }

    /// Stops the client's threads (also done on drop).
    pub fn shutdown(&self) {
        self.rados.shutdown();
    }
}

fn read_chunk(r: &mut dyn Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(max.min(1 << 20));
    r.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// The name of the `osdkit manager` whose pid file in `dir` holds `pid`, if any.
fn manager_with_pid(dir: &std::path::Path, pid: i32) -> Option<String> {
    std::fs::read_dir(dir).ok()?.filter_map(|e| e.ok()).find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let n = name.strip_suffix(".pid")?;
        (n.starts_with("client.manager-") && live_pid(&e.path()) == Some(pid)).then(|| n.to_string())
    })
}
