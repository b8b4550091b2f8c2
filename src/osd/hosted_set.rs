//! One set of OSD messengers for every OSD hosted in a process (`osd_manager_shared_messengers`):
//! public, cluster (the public one unless `cluster_addr` is set), `hb_front` and `hb_back`, each
//! bound once and run by one set of threads, each OSD a hosted identity of each
//! (`Messenger::host`): its own name, nonce, sessions and dispatchers, the set's sockets.
//!
//! The OSDs of a set share IP and ports and differ by nonce in the map, as two processes on one
//! port cannot but one process can: a peer's CLIENT_IDENT names the address it wants, nonce
//! included, so each session reaches the one OSD it was opened for, and a peer naming an OSD
//! the process does not host (any more) is refused and logged.

use crate::common::entity::{EntityName, EntityType};
use crate::common::error::Result;
use crate::msgr::messenger::Messenger;
use crate::msgr::policy::Policy;
use crate::Context;
use std::net::SocketAddr;
use std::sync::Arc;

/// The messengers an OSD talks through, its own or a hosted identity of a shared set's.
pub struct OsdMessengers {
    pub public: Messenger,
    pub cluster: Messenger,
    pub hb_front: Messenger,
    pub hb_back: Messenger,
}

/// The public (and cluster) messenger's policies, as each OSD's own has them.
pub(super) fn public_policies(m: &Messenger) {
    m.set_default_policy(Policy::stateless_server());
    m.set_policy(EntityType::Osd, Policy::lossless_peer());
}

/// A heartbeat messenger's: one worker, lossy to other OSDs (Ceph's heartbeat messengers).
pub(super) fn hb_policies(m: &Messenger) {
    m.set_num_workers(1);
    m.set_default_policy(Policy::stateless_server());
    m.set_policy(EntityType::Osd, Policy::lossy_client());
}

/// A set of OSD messengers shared by the OSDs hosted in one process.
pub struct HostedSet {
    set: OsdMessengers,
    separate_cluster: bool,
    /// The `tp_osd_tp` workers every hosted OSD's client ops run on.
    ops: Arc<super::op_queue::OpPool>,
    /// The one `osd_srv_heartbt` thread of every hosted OSD.
    hb: Arc<super::heartbeat::HbTimer>,
}

impl std::fmt::Debug for HostedSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedSet")
            .field("public", &self.set.public.my_addrs())
            .field("hosted", &self.set.public.hosted())
            .finish()
    }
}

impl HostedSet {
    /// Binds and starts the set for `ctx` (whose counters, admin socket and log they use), named
    /// `name` (an `osd.` name: peers check the type in the handshake), the public and front
    /// messengers on `public` (port 0: any), the back ones on `cluster` (the public address's
    /// IP when `cluster_addr` is not set).
    pub fn start(ctx: &Context, name: &str, public: SocketAddr, cluster: Option<std::net::IpAddr>) -> Result<Self> {
        let n: EntityName = name.parse()?;
        if n.ty != EntityType::Osd {
            return Err(crate::Error::inval(format!(
                "{name}: a shared OSD messenger needs an osd. name"
            )));
        }
        let started: std::cell::RefCell<Vec<Messenger>> = Default::default();
        let make = |policies: fn(&Messenger), bind: SocketAddr| -> Result<Messenger> {
            let m = Messenger::new(ctx, name, None)?;
            policies(&m);
            m.bind(bind)?;
            m.start()?;
            started.borrow_mut().push(m.clone());
            Ok(m)
        };
        let back_ip = cluster.unwrap_or(public.ip());
        let r = (|| {
            let pub_m = make(public_policies, public)?;
            let cluster_m = match cluster {
                Some(ip) => make(public_policies, SocketAddr::new(ip, 0))?,
                None => pub_m.clone(),
            };
            let hb_front = make(hb_policies, SocketAddr::new(public.ip(), 0))?;
            let hb_back = make(hb_policies, SocketAddr::new(back_ip, 0))?;
            Ok(HostedSet {
                set: OsdMessengers {
                    public: pub_m,
                    cluster: cluster_m,
                    hb_front,
                    hb_back,
                },
                separate_cluster: cluster.is_some(),
                ops: Arc::new(super::op_queue::new_pool(ctx.conf())?),
                hb: {
                    let conf = ctx.conf().clone();
                    super::heartbeat::HbTimer::start(move || conf.get_i64("osd_heartbeat_interval").max(1) as u64)?
                },
            })
        })();
        if r.is_err() {
            for m in started.borrow().iter() {
                m.shutdown();
            }
        }
        r
    }

    /// `osd.<whoami>`'s identities on each messenger of the set; fails with EEXIST when this
    /// set already hosts it.
    pub fn host(&self, whoami: i32) -> Result<OsdMessengers> {
        let name = format!("osd.{whoami}");
        let public = self.set.public.host(&name)?;
        let undo = |ms: &[&Messenger]| ms.iter().for_each(|m| m.shutdown());
        let cluster = if self.separate_cluster {
            self.set.cluster.host(&name).inspect_err(|_| undo(&[&public]))?
        } else {
            public.clone()
        };
        let hb_front = self
            .set
            .hb_front
            .host(&name)
            .inspect_err(|_| undo(&[&public, &cluster]))?;
        let hb_back = self
            .set
            .hb_back
            .host(&name)
            .inspect_err(|_| undo(&[&public, &cluster, &hb_front]))?;
        Ok(OsdMessengers {
            public,
            cluster,
            hb_front,
            hb_back,
        })
    }

    /// The op pool of the hosted OSDs.
    pub(super) fn op_pool(&self) -> &Arc<super::op_queue::OpPool> {
        &self.ops
    }

    /// The heartbeat thread of the hosted OSDs.
    pub(super) fn hb_timer(&self) -> &Arc<super::heartbeat::HbTimer> {
        &self.hb
    }

    /// The set has a cluster messenger of its own (`cluster_addr` was set).
    pub fn separate_cluster(&self) -> bool {
        self.separate_cluster
    }

    /// The OSDs the set serves now.
    pub fn hosted(&self) -> Vec<EntityName> {
        self.set.public.hosted()
    }

    /// The messengers themselves (`messenger dump`, tests).
    pub fn messengers(&self) -> &OsdMessengers {
        &self.set
    }

    /// Stops every messenger of the set and the op pool (after the OSDs on it stopped).
    pub fn shutdown(&self) {
        self.ops.shutdown();
        self.hb.shutdown();
        for m in [
            &self.set.public,
            &self.set.cluster,
            &self.set.hb_front,
            &self.set.hb_back,
        ] {
            m.shutdown();
        }
    }
}
