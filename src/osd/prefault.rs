//! The prefault reserve of a mem-store OSD: memory faulted in before it boots, through the
//! allocator (`memstore_prefault_bytes`) and for large frames (`memstore_prefault_frame_bytes`).

use crate::common::error::{Error, Result};
use crate::common::perf::{PerfCounters, PerfCountersBuilder};
use crate::msgr::messenger::Messenger;
use crate::Context;
use std::sync::Arc;

/// What a mem-store OSD faulted in at start: `memstore_prefault_bytes` through the allocator
/// (logger `memstore_prefault`) and `memstore_prefault_frame_bytes` for large frames.
pub(super) struct Prefault {
    perf: Option<Arc<PerfCounters>>,
    frames: Option<Arc<crate::msgr::recv_pool::PrefaultReserve>>,
}

impl Prefault {
    /// Faults both in, for a mem store (whose data is what the memory goes to), and has the
    /// messengers' large frames cut from the frame reserve.
    pub(super) fn start(ctx: &Context, name: &str, store_kind: &str, msgrs: &[&Messenger]) -> Result<Prefault> {
        let conf = ctx.conf();
        let none = Prefault {
            perf: None,
            frames: None,
        };
        let bytes = conf.get_u64("memstore_prefault_bytes");
        let frame_bytes = conf.get_u64("memstore_prefault_frame_bytes");
        if store_kind != "mem" || bytes.saturating_add(frame_bytes) == 0 {
            return Ok(none);
        }
        let what = |e: Error| {
            Error::new(
                e.errno,
                format!(
                    "memstore_prefault_bytes = {bytes}, memstore_prefault_frame_bytes = {frame_bytes}: {}",
                    e.msg
                ),
            )
        };
        if let Some(avail) = crate::common::mem::mem_available() {
            if bytes.saturating_add(frame_bytes) > avail {
                return Err(what(Error::inval(format!(
                    "more than the system has available ({avail} bytes)"
                ))));
            }
        }
        let threads = conf.get_u64("ms_prefault_threads") as usize;
        let mut p = none;
        // The frames' reserve first: it is allocated too, and would otherwise take the memory
        // the allocator was asked to keep for everything else.
        if frame_bytes > 0 {
            let pools: Vec<_> = msgrs.iter().filter_map(|m| m.recv_pool()).collect();
            if pools.len() < msgrs.len() {
                return Err(what(Error::inval(
                    "memstore_prefault_frame_bytes needs ms_prefault_bytes > 0",
                )));
            }
            let r = crate::msgr::recv_pool::PrefaultReserve::fault_in(frame_bytes as usize, threads).map_err(what)?;
            for pool in pools {
                pool.set_reserve(r.clone());
            }
            let (n, _, took) = r.stats();
            log::info!(target: "osd", "{name}: faulted in {n} bytes for large frames in {took:?} ({threads} threads)");
            ctx.perf().add(r.perf());
            p.frames = Some(r);
        }
        if bytes > 0 {
            let took = match crate::common::mem::pretouch(bytes, threads) {
                Ok(t) => t,
                Err(e) => {
                    p.stop(ctx);
                    return Err(what(e));
                }
            };
            log::info!(target: "osd", "{name}: faulted in {bytes} bytes in {took:?} ({threads} threads); freed memory is kept");
            let mut b = PerfCountersBuilder::new("memstore_prefault");
            let idx = [
                b.add_u64(
                    "prefaulted_bytes",
                    "Bytes faulted in at startup (memstore_prefault_bytes)",
                ),
                b.add_time("prefault_time", "Time faulting them in took"),
            ];
            let perf = b.build();
            perf.set(idx[0], bytes);
            perf.tset(idx[1], took);
            ctx.perf().add(&perf);
            p.perf = Some(perf);
        }
        Ok(p)
    }

    pub(super) fn stop(&self, ctx: &Context) {
        if let Some(perf) = &self.perf {
            ctx.perf().remove(perf);
        }
        if let Some(r) = &self.frames {
            ctx.perf().remove(r.perf());
            r.release();
        }
    }
}
