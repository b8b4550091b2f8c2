//! `Rados`: the object client, shaped after librados. One connect sequence (a context, a
//! messenger, a `MonClient` following the maps and an `Objecter`), from a config file
//! (`connect_with_conf`, like `rados_conf_read_file` + `rados_connect`) or a monitor address
//! (`connect`, for hosted clusters); blocking calls by pool name, several ops as one atomic
//! request (`operate`), an async form (`submit_async`), pools and monitor commands. The
//! command (`cli`), the hosted cluster, the C face and the Python face all use this type.
//! Errors carry Ceph's errnos (`ENOENT` for a missing object or pool, `EEXIST`, `ECANCELED`,
//! `ETIMEDOUT`, ...).

use super::objecter::{ListCursor, Objecter};
use crate::common::error::{Error, Result};
use crate::mon::client::MonClient;
use crate::msgr::addr::EntityAddr;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::types::osd_op::{decode_omap_vals, MOsdOpReply, ObjectStat, OsdOp};
use crate::types::osdmap::OsdMap;
use crate::Context;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// How long to wait for the monitor's first map.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client context named `name` (`client.<id>`) with no config file read yet
/// (`rados_create`): set options or read a file on it, then [`Rados::connect_context`].
pub fn client_context(name: &str) -> Result<Context> {
    client_ctx(name, None)
}

/// A client context named `name` (`client.<id>`), reading `conf` if given.
fn client_ctx(name: &str, conf: Option<&Path>) -> Result<Context> {
    let entity: crate::EntityName = name.parse()?;
    if entity.ty != crate::common::entity::EntityType::Client {
        return Err(Error::inval(format!("'{name}' is not a client name (client.<id>)")));
    }
    Context::new(name, conf)
}

/// The first address of `mon_host` (`v2:127.0.0.1:3300`, `[v2:127.0.0.1:3300/0]`, lists
/// separated by commas, semicolons or spaces).
pub fn parse_mon_host(s: &str) -> Result<EntityAddr> {
    let first = s
        .split([',', ';', ' ', '\t'])
        .map(str::trim)
        .find(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::inval("mon_host is not set: name the monitor's address, e.g. mon_host = v2:127.0.0.1:3300")
        })?;
    let t = if first.starts_with("[v") || first.starts_with("[any") {
        first.trim_start_matches('[').trim_end_matches(']')
    } else {
        first
    };
    let a: EntityAddr = t
        .parse()
        .map_err(|e: Error| Error::inval(format!("mon_host '{s}': {}", e.msg)))?;
    if a.addr.is_none() {
        return Err(Error::inval(format!("mon_host '{s}' has no IP and port")));
    }
    Ok(a)
}
/// A completion for [`Rados::submit_async`].
pub type Completion = Box<dyn FnOnce(Result<MOsdOpReply>) + Send>;

/// A connection to a cluster (librados' `rados_t`): a messenger (lossy client policy), a
/// `MonClient` following the monitor's maps and an `Objecter` sending ops to the primaries.
/// Blocking calls may be made from any thread, concurrently.
pub struct Rados {
    ctx: Context,
    msgr: Messenger,
    monc: MonClient,
    objecter: Objecter,
    mon: EntityAddr,
    stopped: std::sync::atomic::AtomicBool,
}

fn check_reply(oid: &str, r: MOsdOpReply) -> Result<MOsdOpReply> {
    if r.result < 0 {
        return Err(Error::new(
            -r.result,
            format!("{oid}: {}", crate::common::error::strerror(-r.result)),
        ));
    }
    Ok(r)
}

impl Rados {
    /// Connects as `name` (e.g. `client.admin`) to the monitor at `mon_addr` and waits for its
    /// first map: for a cluster hosted in this process, with no config file.
    pub fn connect(mon_addr: &str, name: &str) -> Result<Rados> {
        let mon: EntityAddr = mon_addr.parse()?;
        let ctx = client_ctx(name, None)?;
        ctx.set_option("admin_socket", "")?;
        ctx.set_option("log_file", "")?;
        ctx.start()?;
        Rados::connect_ctx(ctx, mon)
    }

    /// Reads `conf` as `name` (as `rados_conf_read_file` does: `[global]`, `[client]`,
    /// `[client.admin]`), connects to its `mon_host` and waits for the first map.
    pub fn connect_with_conf(name: &str, conf: &Path) -> Result<Rados> {
        let ctx = client_ctx(name, Some(conf))?;
        let mon = parse_mon_host(&ctx.conf().get_str("mon_host"))?;
        ctx.start()?;
        Rados::connect_ctx(ctx, mon)
    }

    /// Connects with a context made by [`client_context`] and configured since (options set,
    /// a conf file read: `rados_create` → `rados_conf_*` → `rados_connect`): to its
    /// `mon_host`, waiting for the first map.
    pub fn connect_context(ctx: Context) -> Result<Rados> {
        let mon = parse_mon_host(&ctx.conf().get_str("mon_host"))?;
        if !ctx.is_started() {
            ctx.start()?;
        }
        Rados::connect_ctx(ctx, mon)
    }

    /// The one connect sequence: messenger, objecter (op timeout `rados_osd_op_timeout`, 0 =
    /// none, as in Ceph), monitor session, the first map.
    fn connect_ctx(ctx: Context, mon: EntityAddr) -> Result<Rados> {
        let name = ctx.name().to_string();
        let msgr = Messenger::new(&ctx, &name, None)?;
        msgr.set_default_policy(Policy::lossy_client());
        let t = ctx.conf().get_f64("rados_osd_op_timeout");
        let op_timeout = if t.is_finite() && t > 0.0 {
            Duration::from_secs_f64(t)
        } else {
            Duration::ZERO
        };
        let objecter = Objecter::new(&msgr, &name, op_timeout)?;
        let monc = MonClient::new(&msgr, mon)?;
        let c = Rados {
            ctx,
            msgr,
            monc,
            objecter,
            mon,
            stopped: std::sync::atomic::AtomicBool::new(false),
        };
        c.msgr.start()?;
        let o2 = c.objecter.clone();
        c.monc.set_map_callback(move |m| o2.set_osdmap(m.clone()));
        // A refused connection can fail the first send itself: name the monitor either way.
        c.monc.subscribe_osdmap().map_err(|e| {
            Error::new(
                e.errno,
                format!("cannot reach the monitor at {mon}: {} (is the cluster running?)", e.msg),
            )
        })?;
        let map = c.monc.wait_for_map(CONNECT_TIMEOUT, |m| m.epoch > 0).map_err(|_| {
            Error::new(
                libc::ETIMEDOUT,
                format!("no answer from the monitor at {mon} within {CONNECT_TIMEOUT:?}: is the cluster running?"),
            )
        })?;
        c.objecter.set_osdmap(map);
        Ok(c)
    }

    /// The monitor this client talks to.
    pub fn mon_addr(&self) -> EntityAddr {
        self.mon
    }

    /// The newest OSD map this client has.
    pub fn osdmap(&self) -> OsdMap {
        self.monc.osdmap()
    }

    /// Runs a monitor command (JSON, as `rados_mon_command`); a negative result becomes an
    /// error with the monitor's text. The status string and the output.
    pub fn mon_command(&self, cmd: &serde_json::Value) -> Result<(String, Bytes)> {
        let (r, rs, out) = self.monc.command(&cmd.to_string())?;
        if r < 0 {
            return Err(Error::new(-r, rs));
        }
        Ok((rs, out))
    }

    /// Creates a pool (`rados_pool_create`, with Ceph's `osd pool create` arguments; 0 for
    /// `pg_num` or `size` leaves it to the monitor's default) and waits until this client's
    /// map has it, so an ioctx can be opened at once; the monitor's reply (`pool`, `pool_id`,
    /// `epoch`).
    pub fn pool_create(&self, name: &str, pg_num: u32, size: u32) -> Result<serde_json::Value> {
        let mut cmd = serde_json::json!({"prefix": "osd pool create", "pool": name});
        if pg_num > 0 {
            cmd["pg_num"] = pg_num.into();
        }
        if size > 0 {
            cmd["size"] = size.into();
        }
        let (_, out) = self.mon_command(&cmd)?;
        self.wait_for_pool(name, true)?;
        Ok(serde_json::from_slice(&out).unwrap_or_else(|_| serde_json::json!({"pool": name})))
    }

    /// Waits until this client's map has (or no longer has) pool `name`, and hands that map
    /// to the objecter.
    fn wait_for_pool(&self, name: &str, present: bool) -> Result<()> {
        let map = self
            .monc
            .wait_for_map(CONNECT_TIMEOUT, |m| m.pool_by_name(name).is_some() == present)?;
        self.objecter.set_osdmap(map);
        Ok(())
    }

    /// Every pool's name (`rados_pool_list`).
    pub fn pool_list(&self) -> Result<Vec<String>> {
        let (_, out) = self.mon_command(&serde_json::json!({"prefix": "osd pool ls", "format": "json"}))?;
        serde_json::from_slice(&out).map_err(|e| Error::inval(format!("bad pool list from the monitor: {e}")))
    }

    /// Removes a pool and its objects (`rados_pool_delete`); the monitor's status text.
    pub fn pool_delete(&self, name: &str) -> Result<String> {
        let (rs, _) = self.mon_command(&serde_json::json!({
            "prefix": "osd pool rm", "pool": name, "pool2": name,
            "yes_i_really_really_mean_it": true
        }))?;
        self.wait_for_pool(name, false)?;
        Ok(rs)
    }

    /// The client's context: its name, config and log.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    pub fn objecter(&self) -> &Objecter {
        &self.objecter
    }

    pub fn monc(&self) -> &MonClient {
        &self.monc
    }

    /// The id of pool `pool` (`rados_pool_lookup`); `-ENOENT` if no map seen so far has it.
    pub fn pool_id(&self, pool: &str) -> Result<i64> {
        if let Some(p) = self.objecter.osdmap().pool_by_name(pool) {
            return Ok(p.id);
        }
        // The callback may not have delivered the newest map yet.
        let map = self.monc.osdmap();
        let id = map.pool_by_name(pool).map(|p| p.id);
        if id.is_some() {
            self.objecter.set_osdmap(map);
        }
        id.ok_or_else(|| Error::noent(format!("no pool '{pool}'")))
    }

    /// Several ops on one object as one request: they apply atomically or not at all. The
    /// reply (each op's `rval` and `outdata`), or the first failed op's errno as the error.
    pub fn operate(&self, pool: &str, oid: &str, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        if ops.is_empty() {
            return Err(Error::inval("no ops"));
        }
        let id = self.pool_id(pool)?;
        self.objecter.op(id, oid, ops)
    }

    /// As `operate`, without waiting: `done` gets the reply or the error (a failed op's errno,
    /// `ENOENT` for a missing pool, `ETIMEDOUT`, `ESHUTDOWN`). It runs on the messenger worker
    /// thread that received the reply (`msgr-worker-N`), or on the objecter's timer thread, or,
    /// for an error found before sending, on the calling thread before this returns; it must
    /// not block.
    pub fn submit_async(&self, pool: &str, oid: &str, ops: Vec<OsdOp>, done: Completion) {
        if ops.is_empty() {
            return done(Err(Error::inval("no ops")));
        }
        let id = match self.pool_id(pool) {
            Ok(id) => id,
            Err(e) => return done(Err(e)),
        };
        let name = oid.to_string();
        self.objecter.submit(
            id,
            oid,
            "",
            ops,
            Box::new(move |r| done(r.and_then(|r| check_reply(&name, r)))),
        );
    }

    /// Writes the whole object (creating it, replacing its data).
    pub fn put(&self, pool: &str, oid: &str, data: &[u8]) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::writefull(Bytes::copy_from_slice(data))])
            .map(drop)
    }

    /// The whole object's data.
    pub fn get(&self, pool: &str, oid: &str) -> Result<Bytes> {
        let mut r = self.operate(pool, oid, vec![OsdOp::read(0, 0)])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Size and modification time.
    pub fn stat(&self, pool: &str, oid: &str) -> Result<ObjectStat> {
        let r = self.operate(pool, oid, vec![OsdOp::stat()])?;
        ObjectStat::decode(&r.ops[0].outdata)
    }

    pub fn remove(&self, pool: &str, oid: &str) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::delete()]).map(drop)
    }

    /// Every object name in `pool`, sorted.
    pub fn list(&self, pool: &str) -> Result<Vec<String>> {
        let id = self.pool_id(pool)?;
        self.objecter.list(id)
    }

    pub fn setxattr(&self, pool: &str, oid: &str, name: &str, value: &[u8]) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::setxattr(name, Bytes::copy_from_slice(value))])
            .map(drop)
    }

    /// `-ENODATA` if the object has no such xattr.
    pub fn getxattr(&self, pool: &str, oid: &str, name: &str) -> Result<Bytes> {
        let mut r = self.operate(pool, oid, vec![OsdOp::getxattr(name)])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Sets omap keys (creating the object if needed).
    pub fn omap_set(&self, pool: &str, oid: &str, vals: &BTreeMap<String, Bytes>) -> Result<()> {
        self.operate(pool, oid, vec![OsdOp::omap_set_vals(vals)]).map(drop)
    }

    /// The values of `keys` that exist; with `keys` `None`, every key and value.
    pub fn omap_get(&self, pool: &str, oid: &str, keys: Option<&[String]>) -> Result<BTreeMap<String, Bytes>> {
        const PAGE: u64 = 1024;
        let bad = bad_reply("omap");
        if let Some(keys) = keys {
            let r = self.operate(pool, oid, vec![OsdOp::omap_get_vals_by_keys(keys.to_vec())])?;
            return decode_omap_vals(&r.ops[0].outdata).map_err(bad);
        }
        let mut all = BTreeMap::new();
        let mut after = String::new();
        loop {
            let r = self.operate(pool, oid, vec![OsdOp::omap_get_vals(after.clone(), PAGE)])?;
            let page = decode_omap_vals(&r.ops[0].outdata).map_err(bad)?;
            let n = page.len() as u64;
            if let Some(k) = page.keys().next_back() {
                after = k.clone();
            }
            all.extend(page);
            if n < PAGE {
                return Ok(all);
            }
        }
    }

    /// Fails ops in flight with `-ESHUTDOWN` and stops the client's threads. Idempotent; also
    /// done on drop.
    pub fn shutdown(&self) {
        if self.stopped.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        self.objecter.shutdown();
        self.monc.shutdown();
        self.msgr.shutdown();
        self.ctx.shutdown();
    }
}

impl Rados {
    /// A handle on pool `pool` (`rados_ioctx_create`); `-ENOENT` when it does not exist.
    pub fn ioctx(&self, pool: &str) -> Result<IoCtx<'_>> {
        Ok(self.ioctx_at(self.pool_id(pool)?, pool.into()))
    }

    /// A handle on pool id `pool` named `name`, looked up before (a face keeping the id).
    pub fn ioctx_at(&self, pool: i64, name: std::sync::Arc<str>) -> IoCtx<'_> {
        IoCtx {
            rados: self,
            pool,
            name,
        }
    }
}

/// One pool of a [`Rados`] (librados' `rados_ioctx_t` / python-rados' `Ioctx`): object
/// operations by librados' names. Each is one request to the object's primary; `operate`
/// sends several as one atomic request.
pub struct IoCtx<'a> {
    rados: &'a Rados,
    pool: i64,
    name: std::sync::Arc<str>,
}

impl IoCtx<'_> {
    pub fn pool_id(&self) -> i64 {
        self.pool
    }
    pub fn pool_name(&self) -> &str {
        &self.name
    }

    /// Several ops on `oid` as one request, applied atomically; the first failed op's errno.
    pub fn operate(&self, oid: &str, ops: Vec<OsdOp>) -> Result<MOsdOpReply> {
        if ops.is_empty() {
            return Err(Error::inval("no ops"));
        }
        self.rados.objecter.op(self.pool, oid, ops)
    }

    /// As `operate`, completed through `done` (`rados_aio_operate`; see `Rados::submit_async`
    /// for the thread it runs on).
    pub fn aio_operate(&self, oid: &str, ops: Vec<OsdOp>, done: Completion) {
        if ops.is_empty() {
            return done(Err(Error::inval("no ops")));
        }
        let name = oid.to_string();
        self.rados.objecter.submit(
            self.pool,
            oid,
            "",
            ops,
            Box::new(move |r| done(r.and_then(|r| check_reply(&name, r)))),
        );
    }

    fn one(&self, oid: &str, op: OsdOp) -> Result<Bytes> {
        let mut r = self.operate(oid, vec![op])?;
        Ok(std::mem::take(&mut r.ops[0].outdata))
    }

    /// Writes `data` at `offset` (`rados_write`).
    pub fn write(&self, oid: &str, data: &[u8], offset: u64) -> Result<()> {
        self.one(oid, OsdOp::write(offset, Bytes::copy_from_slice(data)))
            .map(drop)
    }
    /// Replaces the object's data (`rados_write_full`).
    pub fn write_full(&self, oid: &str, data: &[u8]) -> Result<()> {
        self.one(oid, OsdOp::writefull(Bytes::copy_from_slice(data))).map(drop)
    }
    /// Appends `data` (`rados_append`).
    pub fn append(&self, oid: &str, data: &[u8]) -> Result<()> {
        self.one(oid, OsdOp::append(Bytes::copy_from_slice(data))).map(drop)
    }
    /// Up to `len` bytes from `offset` (`rados_read`; `len` 0: to the end).
    pub fn read(&self, oid: &str, len: u64, offset: u64) -> Result<Bytes> {
        self.one(oid, OsdOp::read(offset, len))
    }
    /// Size and modification time (`rados_stat`).
    pub fn stat(&self, oid: &str) -> Result<ObjectStat> {
        ObjectStat::decode(&self.one(oid, OsdOp::stat())?)
    }
    /// `rados_remove`.
    pub fn remove(&self, oid: &str) -> Result<()> {
        self.one(oid, OsdOp::delete()).map(drop)
    }
    /// Sets the object's size (`rados_trunc`).
    pub fn trunc(&self, oid: &str, size: u64) -> Result<()> {
        self.one(oid, OsdOp::truncate(size)).map(drop)
    }
    /// `rados_getxattr`; `-ENODATA` when the object has no such xattr.
    pub fn getxattr(&self, oid: &str, name: &str) -> Result<Bytes> {
        self.one(oid, OsdOp::getxattr(name))
    }
    /// `rados_setxattr`.
    pub fn setxattr(&self, oid: &str, name: &str, value: &[u8]) -> Result<()> {
        self.one(oid, OsdOp::setxattr(name, Bytes::copy_from_slice(value)))
            .map(drop)
    }
    /// `rados_rmxattr`.
    pub fn rmxattr(&self, oid: &str, name: &str) -> Result<()> {
        self.one(oid, OsdOp::rmxattr(name)).map(drop)
    }
    /// Every xattr (`rados_getxattrs`).
    pub fn getxattrs(&self, oid: &str) -> Result<BTreeMap<String, Bytes>> {
        decode_omap_vals(&self.one(oid, OsdOp::getxattrs())?).map_err(bad_reply("xattrs"))
    }
    /// Up to `max` omap entries after `start_after` (`rados_read_op_omap_get_vals2`).
    pub fn omap_get_vals(&self, oid: &str, start_after: &str, max: u64) -> Result<BTreeMap<String, Bytes>> {
        decode_omap_vals(&self.one(oid, OsdOp::omap_get_vals(start_after, max))?).map_err(bad_reply("omap"))
    }
    /// The values of `keys` that exist (`rados_read_op_omap_get_vals_by_keys`).
    pub fn omap_get_vals_by_keys(&self, oid: &str, keys: &[String]) -> Result<BTreeMap<String, Bytes>> {
        decode_omap_vals(&self.one(oid, OsdOp::omap_get_vals_by_keys(keys.to_vec()))?).map_err(bad_reply("omap"))
    }
    /// Sets omap entries, creating the object (`rados_write_op_omap_set`).
    pub fn omap_set(&self, oid: &str, vals: &BTreeMap<String, Bytes>) -> Result<()> {
        self.one(oid, OsdOp::omap_set_vals(vals)).map(drop)
    }
    /// Removes omap keys (`rados_write_op_omap_rm_keys`).
    pub fn omap_rm_keys(&self, oid: &str, keys: &[String]) -> Result<()> {
        self.one(oid, OsdOp::omap_rm_keys(keys.to_vec())).map(drop)
    }
    /// Every object name in the pool, sorted (`rados_nobjects_list_open` and `_next`).
    pub fn list_objects(&self) -> Result<Vec<String>> {
        self.rados.objecter.list(self.pool)
    }
    /// One page of the listing from `cursor`: up to `max` names with their PG's seed, PG by
    /// PG and sorted within a PG, and the cursor after them (`None` at the end).
    #[allow(clippy::type_complexity)]
    pub fn list_page(&self, cursor: &ListCursor, max: u64) -> Result<(Vec<(u32, String)>, Option<ListCursor>)> {
        self.rados.objecter.list_page(self.pool, cursor, max)
    }
}

fn bad_reply(what: &'static str) -> impl Fn(crate::types::encoding::DecodeError) -> Error + Copy {
    move |e| Error::new(libc::EIO, format!("bad {what} reply: {e:?}"))
}

impl Drop for Rados {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_host_forms() {
        let a = parse_mon_host("v2:127.0.0.1:3300").unwrap();
        assert_eq!(a.addr.unwrap().port(), 3300);
        let b = parse_mon_host(" [v2:127.0.0.1:6789/0], v2:127.0.0.2:1").unwrap();
        assert_eq!(b.addr.unwrap().port(), 6789);
        assert_eq!(parse_mon_host("").unwrap_err().errno, libc::EINVAL);
        assert!(parse_mon_host("v1:1.2.3.4:6789").is_err());
    }
}
