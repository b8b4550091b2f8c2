//! The client side of the command: a `client.admin` context read from the cluster's config,
//! its messenger, a [`MonClient`] following the maps and an [`Objecter`] for object I/O. What
//! `status`, `pool ...` and `put`/`get`/`stat`/`rm`/`ls` use.

use super::{live_pid, load_conf, parse_mon_host, pid_file_of};
use crate::asok::client::AdminSocketClient;
use crate::client::objecter::Objecter;
use crate::mon::client::MonClient;
use crate::msgr::addr::EntityAddr;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::types::osd_op::OsdOp;
use crate::types::osdmap::{fsid_to_string, OsdMap};
use crate::{Context, Error, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long to wait for the monitor's first map.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Object data moves in pieces of this size.
const CHUNK: usize = 4 << 20;

/// A connection to a running cluster.
pub struct ClusterClient {
    conf_path: PathBuf,
    ctx: Context,
    msgr: Messenger,
    monc: MonClient,
    objecter: Objecter,
    mon: EntityAddr,
}

impl ClusterClient {
    /// Reads `conf` as `client.admin`, connects to `mon_host` and waits for the first map.
    pub fn connect(conf: &Path) -> Result<ClusterClient> {
        let ctx = Context::new("client.admin", Some(conf))?;
        let mon = parse_mon_host(&ctx.conf().get_str("mon_host"))?;
        ctx.start()?;
        let msgr = Messenger::new(&ctx, "client.admin", None)?;
        msgr.set_default_policy(Policy::lossy_client());
        let t = ctx.conf().get_f64("rados_osd_op_timeout");
        let op_timeout = if t > 0.0 {
            Duration::from_secs_f64(t)
        } else {
            Duration::from_secs(30)
        };
        let objecter = Objecter::new(&msgr, "client.admin", op_timeout)?;
        let monc = MonClient::new(&msgr, mon)?;
        msgr.start()?;
        let o2 = objecter.clone();
        monc.set_map_callback(move |m| o2.set_osdmap(m.clone()));
        let c = ClusterClient {
            conf_path: conf.to_path_buf(),
            ctx,
            msgr,
            monc,
            objecter,
            mon,
        };
        // A refused connection can fail the first send itself: name the monitor either way.
        c.monc.subscribe_osdmap().map_err(|e| {
            Error::new(
                e.errno,
                format!(
                    "cannot reach the monitor at {mon}: {} (is the cluster running? osdkit vstart)",
                    e.msg
                ),
            )
        })?;
        let map = c.monc.wait_for_map(CONNECT_TIMEOUT, |m| m.epoch > 0).map_err(|_| {
            Error::new(
                libc::ETIMEDOUT,
                format!(
                    "no answer from the monitor at {mon} within {CONNECT_TIMEOUT:?}: is the cluster running? (osdkit vstart)"
                ),
            )
        })?;
        c.objecter.set_osdmap(map);
        Ok(c)
    }

    pub fn mon_addr(&self) -> EntityAddr {
        self.mon
    }
    pub fn osdmap(&self) -> OsdMap {
        self.monc.osdmap()
    }
    /// The objecter, for callers that submit ops themselves (`bench osd`).
    pub fn objecter(&self) -> &Objecter {
        &self.objecter
    }
    pub fn monc(&self) -> &MonClient {
        &self.monc
    }

    /// Runs a monitor command; a negative result becomes an error with the monitor's text.
    pub fn mon_command(&self, cmd: &Value) -> Result<(String, Bytes)> {
        let (r, rs, out) = self.monc.command(&cmd.to_string())?;
        if r < 0 {
            return Err(Error::new(-r, rs));
        }
        Ok((rs, out))
    }

    /// `ceph -s`: fsid, epoch, OSD counts, pools, and every OSD with its state, address and pid
    /// (read from its pid file under `run_dir`, when this host has it).
    pub fn status(&self) -> Value {
        let map = self.monc.osdmap();
        let osds: Vec<Value> = map
            .osds
            .iter()
            .map(|(id, o)| {
                let pid = load_conf(&format!("osd.{id}"), &self.conf_path)
                    .ok()
                    .and_then(|c| live_pid(&pid_file_of(&c)));
                json!({
                    "id": id,
                    "up": o.up,
                    "in": o.in_,
                    "state": format!("{},{}", if o.up { "up" } else { "down" }, if o.in_ { "in" } else { "out" }),
                    "weight": o.weight_f32(),
                    "addr": o.addrs.public.to_string(),
                    "pid": pid,
                })
            })
            .collect();
        let pools: Vec<Value> = map
            .pools
            .values()
            .map(|p| json!({"id": p.id, "name": p.name, "size": p.size, "min_size": p.min_size, "pg_num": p.pg_num}))
            .collect();
        let (up, inn, n) = (map.num_up(), map.num_in(), map.osds.len());
        let health = if n == 0 {
            "HEALTH_WARN: no OSDs"
        } else if up < n {
            "HEALTH_WARN: some OSDs are down"
        } else {
            "HEALTH_OK"
        };
        json!({
            "fsid": fsid_to_string(&map.fsid),
            "health": health,
            "mon": self.mon.to_string(),
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
        let (_, out) = self.mon_command(&json!({
            "prefix": "osd pool create", "pool": name, "pg_num": pg_num, "size": size
        }))?;
        let v: Value = serde_json::from_slice(&out).unwrap_or_else(|_| json!({"pool": name}));
        let epoch = v["epoch"].as_u64().unwrap_or(0) as u32;
        self.wait_for_epoch_everywhere(epoch, Duration::from_secs(10));
        Ok(v)
    }

    pub fn pool_ls(&self) -> Result<Vec<String>> {
        let (_, out) = self.mon_command(&json!({"prefix": "osd pool ls", "format": "json"}))?;
        serde_json::from_slice(&out).map_err(|e| Error::inval(format!("bad pool list from the monitor: {e}")))
    }

    pub fn pool_rm(&self, name: &str) -> Result<String> {
        let (rs, _) = self.mon_command(&json!({
            "prefix": "osd pool rm", "pool": name, "pool2": name,
            "yes_i_really_really_mean_it": true
        }))?;
        Ok(rs)
    }

    /// Waits until the objecter and every up OSD whose admin socket this host has hold map
    /// `epoch` (an OSD answers `-ENOENT` for a pool it has not seen yet). Gives up quietly after
    /// `timeout`: the OSDs may be on other hosts.
    pub fn wait_for_epoch_everywhere(&self, epoch: u32, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let _ = self.monc.wait_for_epoch(epoch, timeout);
        self.objecter.set_osdmap(self.monc.osdmap());
        let map = self.monc.osdmap();
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
        self.monc
            .osdmap()
            .pool_by_name(name)
            .map(|p| p.id)
            .ok_or_else(|| Error::noent(format!("pool '{name}' does not exist")))
    }

    fn op(&self, pool: i64, oid: &str, ops: Vec<OsdOp>) -> Result<crate::types::osd_op::MOsdOpReply> {
        self.objecter.op(pool, oid, ops).map_err(|e| {
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
        let d = &r.ops[0].outdata;
        if d.len() < 16 {
            return Err(Error::inval(format!(
                "object '{oid}': short stat reply ({} bytes)",
                d.len()
            )));
        }
        let size = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
        let secs = u32::from_le_bytes(d[8..12].try_into().expect("4 bytes"));
        let nanos = u32::from_le_bytes(d[12..16].try_into().expect("4 bytes"));
        let mtime = SystemTime::UNIX_EPOCH + Duration::new(u64::from(secs), nanos.min(999_999_999));
        Ok((size, mtime))
    }

    pub fn rm(&self, pool: i64, oid: &str) -> Result<()> {
        self.op(pool, oid, vec![OsdOp::delete()]).map(|_| ())
    }

    pub fn ls(&self, pool: i64) -> Result<Vec<String>> {
        self.objecter.list(pool)
    }

    /// Stops the objecter, the monitor session, the messenger and the context.
    pub fn shutdown(&self) {
        self.objecter.shutdown();
        self.monc.shutdown();
        self.msgr.shutdown();
        self.ctx.shutdown();
    }
}

impl Drop for ClusterClient {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn read_chunk(r: &mut dyn Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(max.min(1 << 20));
    r.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
