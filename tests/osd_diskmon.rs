//! The OSD's disk monitor on a real small filesystem (a 32 MiB tmpfs mounted here; the test
//! fails, not skips, where it cannot mount): a full disk refuses writes with ENOSPC and keeps
//! serving reads and deletes, and takes writes again once space returns; a disk whose probes are
//! slow (injected delay) makes its hosted OSD mark itself down and stop, "slow disk", while the
//! cluster goes on.

mod common;
use common::free_port;
use osdkit::client::Rados;
use osdkit::hosting::instance::{HostedDaemon, InstanceArgs, InstanceCallbacks, InstanceState};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Mount(PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2 on a NUL-terminated path we mounted.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    let st = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            dir.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "cannot mount a tmpfs at {} (this test needs root)",
        dir.display()
    );
    Mount(dir.to_path_buf())
}

fn wait_for(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `osdkit status -c CONF --json`.
fn osdkit_status(conf: &std::path::Path) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_osdkit"))
        .args(["status", "-c", conf.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn full_disk_refuses_writes_and_a_slow_disk_takes_its_osd_down() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let disk = d.join("disk");
    let _m = mount_tmpfs(&disk, "32m");
    let conf = d.join("osdkit.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\nmon_host = v2:127.0.0.1:{}\nrun_dir = {p}/run\nlog_file = {p}/$name.log\n\
             osd_heartbeat_interval = 1\n[mon]\nmon_data = {p}/mon\n[osd]\nosd_objectstore = kv\n\
             osd_diskmon_interval = 0.05\nmon_osd_full_ratio = 0.9\nosd_diskmon_slow_ms = 50\n\
             osd_diskmon_slow_count = 2\n[osd.0]\nosd_data = {p}/disk/osd.0\n[osd.1]\nosd_data = {p}/osd.1\n",
            free_port(),
            p = d.display()
        ),
    )
    .unwrap();
    let args = |id: &str| InstanceArgs::new(id, &conf);
    let t = Duration::from_secs(30);
    let mon = HostedDaemon::mon(args("a"), InstanceCallbacks::default()).unwrap();
    mon.start().unwrap();
    mon.wait_active(t).unwrap();
    common::hosted_osd_create(&mon, 0..2);
    let own = Arc::new(AtomicUsize::new(0));
    let o2 = own.clone();
    let cbs = InstanceCallbacks {
        on_active: None,
        on_shutdown: Some(Arc::new(move || {
            o2.fetch_add(1, Ordering::SeqCst);
        })),
    };
    let osd0 = HostedDaemon::osd(args("0"), cbs.clone()).unwrap();
    let osd1 = HostedDaemon::osd(args("1"), cbs).unwrap();
    for o in [&osd0, &osd1] {
        o.start().unwrap();
    }
    for o in [&osd0, &osd1] {
        o.wait_active(t).unwrap();
    }
    let rados = Rados::connect_with_conf("client.admin", &conf).unwrap();
    rados.pool_create("p", 16, 2).unwrap();
    let io = rados.ioctx("p").unwrap();
    let pool = io.pool_id();
    let primary = |oid: &str| rados.osdmap().object_placement(pool, oid, "").unwrap().primary();
    let on0: Vec<String> = (0..60)
        .map(|i| format!("o{i}"))
        .filter(|o| primary(o) == Some(0))
        .collect();
    assert!(on0.len() >= 3, "{on0:?}");
    for o in &on0 {
        io.write_full(o, b"before").unwrap();
    }

    // Fill the filesystem past mon_osd_full_ratio with a file that is not the OSD's.
    let used = osdkit::osd::diskmon::used_ratio(&disk).unwrap();
    assert!(used < 0.9, "{used}");
    let filler = disk.join("filler");
    let size = ((0.95 - used) * 32.0 * 1024.0 * 1024.0) as usize;
    std::fs::write(&filler, vec![7u8; size]).unwrap();
    let full = || osd0.with_osd(|o| o.is_full()).unwrap();
    wait_for("osd.0 to see its disk full", full);
    let e = io.write_full(&on0[0], b"after").unwrap_err();
    assert_eq!(e.errno, libc::ENOSPC, "{e}");
    let e = io
        .omap_set(&on0[0], &[("k".to_string(), bytes::Bytes::from_static(b"v"))].into())
        .unwrap_err();
    assert_eq!(e.errno, libc::ENOSPC, "{e}");
    assert_eq!(&io.read(&on0[0], 0, 0).unwrap()[..], b"before", "reads still served");
    io.remove(&on0[1]).unwrap(); // deletes still served
    let status = osdkit::asok::client::AdminSocketClient::new(osd0.asok_path().unwrap())
        .request(&serde_json::json!({"prefix": "status"}))
        .unwrap();
    assert!(status.contains("\"full\": true"), "{status}");
    // The monitor learns it (MOSDFull): the map, and so `osdkit status`, shows osd.0 full.
    wait_for("the map to show osd.0 full", || {
        rados.osdmap().osd(0).is_some_and(|o| o.full)
    });
    let st = osdkit_status(&conf);
    assert!(
        st["health"].as_str().unwrap().starts_with("HEALTH_ERR: 1 full osd"),
        "{st}"
    );
    assert_eq!(st["osds"][0]["state"], "up,in,full", "{st}");
    // Space back: writes again.
    std::fs::remove_file(&filler).unwrap();
    wait_for("osd.0 to see space again", || !full());
    wait_for("the map to show osd.0 no longer full", || {
        rados.osdmap().osd(0).is_some_and(|o| !o.full)
    });
    io.write_full(&on0[0], b"after").unwrap();
    assert_eq!(&io.read(&on0[0], 0, 0).unwrap()[..], b"after");

    // A slow disk: osd.1's probes get a delay; after two slow probes it marks itself down and
    // stops on its own; the cluster goes on with osd.0.
    assert_eq!(own.load(Ordering::SeqCst), 0);
    osd1.context()
        .unwrap()
        .set_option("osd_diskmon_inject_slow_ms", "1000")
        .unwrap();
    match osd1.join(Some(t)).unwrap() {
        InstanceState::Failed(why) => assert!(why.starts_with("slow disk"), "{why}"),
        s => panic!("expected failed, got {s:?}"),
    }
    assert_eq!(own.load(Ordering::SeqCst), 1);
    wait_for("the map to show osd.1 down", || !rados.osdmap().is_up(1));
    for i in 0..20 {
        io.write_full(&format!("later{i}"), b"still writing").unwrap();
    }
    rados.shutdown();
    drop(osd1);
    drop(osd0);
    drop(mon);
}
