//! Daemons hosted inside a process: one OSD or monitor at a time ([`instance::HostedDaemon`],
//! the `libosd` shape, exported as `osdkit_osd_*` / `osdkit_mon_*` and `osdkit.Osd` /
//! `osdkit.Monitor`), and the in-process cluster ([`cluster::MiniCluster`], a monitor and N
//! OSDs on loopback) exported as `osdkit_cluster_*` / `osdkit.Cluster`.

pub mod cluster;
pub mod instance;
pub mod manager;
