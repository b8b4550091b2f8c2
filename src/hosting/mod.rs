//! Daemons hosted inside a process: today the in-process cluster ([`cluster::MiniCluster`], a
//! monitor and N OSDs on loopback, and its simple client), which the C and Python faces export
//! as `osdkit_cluster_*` / `osdkit.Cluster`.

pub mod cluster;
