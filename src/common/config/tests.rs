//! Tests of the layered config, its value parsing and the INI reader.

use super::*;
use crate::common::entity::EntityType;
use crate::common::formatter::{render, Format};
use std::sync::atomic::AtomicUsize;

fn osd3() -> Config {
    Config::new(EntityName::new(EntityType::Osd, "3"), "ceph")
}

fn errno<T: fmt::Debug>(r: Result<T>) -> i32 {
    r.unwrap_err().errno
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Records every call an observer gets.
fn recorder(cfg: &Config, keys: &[&str]) -> (u64, Arc<Mutex<Vec<Vec<String>>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c = calls.clone();
    let id = cfg.add_observer(keys, Arc::new(move |k: &[String]| c.lock().push(k.to_vec())));
    (id, calls)
}

fn obj_get<'a>(v: &'a FVal, key: &str) -> Option<&'a FVal> {
    match v {
        FVal::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

fn json(v: &FVal) -> serde_json::Value {
    serde_json::from_str(&render(v, Format::Json)).unwrap()
}

#[test]
fn config_is_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<Config>();
}

#[test]
fn every_default_parses() {
    for (i, d) in options::all().iter().enumerate() {
        assert_eq!(parse_value(d, &d.default).as_ref(), Ok(&DEFAULTS[i]), "{}", d.name);
    }
}

#[test]
fn defaults_print_like_ceph() {
    let c = osd3();
    assert_eq!(c.get_val_str("ms_async_op_threads").unwrap(), "3");
    assert_eq!(c.get_val_str("log_to_stderr").unwrap(), "false");
    assert_eq!(c.get_val_str("err_to_stderr").unwrap(), "true");
    assert_eq!(c.get_val_str("mds_beacon_interval").unwrap(), "4.000000");
    assert_eq!(c.get_val_str("ms_initial_backoff").unwrap(), "0.200000");
    assert_eq!(c.get_val_str("ms_dispatch_throttle_bytes").unwrap(), "104857600");
    assert_eq!(c.get_val_str("debug_ms").unwrap(), "0/0");
    assert_eq!(c.get_val_str("debug osd").unwrap(), "1/5");
    assert_eq!(c.get_val("osd_heartbeat_grace").unwrap(), OptValue::Int(20));
    assert_eq!(c.get_val("osd_client_message_cap").unwrap(), OptValue::Uint(256));
    assert_eq!(c.get_val("mds_beacon_interval").unwrap(), OptValue::Float(4.0));
    assert_eq!(c.get_val("daemonize").unwrap(), OptValue::Bool(true));
    assert_eq!(c.get_u64("osd_client_message_size_cap"), 500 << 20);
    assert_eq!(c.get_i64("osd_op_num_shards"), 8);
    assert_eq!(c.get_i64("osd_op_num_threads_per_shard"), 2);
    assert_eq!(c.name().to_string(), "osd.3");
    assert_eq!(c.cluster(), "ceph");
}

#[test]
fn metavariables_expand() {
    let c = osd3();
    assert_eq!(c.get_str("admin_socket"), "/var/run/ceph/ceph-osd.3.asok");
    assert_eq!(c.get_str("log_file"), "/var/log/ceph/ceph-osd.3.log");
    assert_eq!(c.get_str("osd_data"), "/var/lib/ceph/osd/ceph-3");
    assert_eq!(
        c.get_val("admin_socket").unwrap(),
        OptValue::Str("/var/run/ceph/ceph-osd.3.asok".into())
    );

    let t = Config::new(EntityName::new(EntityType::Mds, "a"), "test");
    t.set_val("run_dir", "/tmp/run", ConfLevel::Cmdline).unwrap();
    assert_eq!(t.get_str("admin_socket"), "/tmp/run/test-mds.a.asok");
    assert_eq!(t.expand_meta("${type}:${id}:$type.$id"), "mds:a:mds.a");
    assert_eq!(t.expand_meta("${cluster}x"), "testx");
    assert_eq!(t.expand_meta("$num/$pid"), format!("a/{}", std::process::id()));
    // An option, one level deep through its own expansion.
    assert_eq!(t.expand_meta("$log_file.old"), "/var/log/ceph/test-mds.a.log.old");
    // Longest known prefix, as Ceph matches variables by prefix.
    assert_eq!(t.expand_meta("$id_journal"), "a_journal");
    // Unknown variables, lone dollars and an unclosed brace stay as written.
    assert_eq!(t.expand_meta("$nosuch ${nosuch} $ ${id"), "$nosuch ${nosuch} $ ${id");
    assert_eq!(t.expand_meta("cost: 5$"), "cost: 5$");
}

#[test]
fn host_uses_option_then_hostname() {
    let c = osd3();
    let h = c.expand_meta("$host");
    assert!(!h.is_empty() && !h.contains('.') && h != "$host", "{h}");
    c.set_val("host", "node1", ConfLevel::File).unwrap();
    assert_eq!(c.expand_meta("${host}/$name"), "node1/osd.3");
}

#[test]
fn expansion_loops_terminate() {
    let c = osd3();
    c.set_val("run_dir", "/x/$admin_socket", ConfLevel::Override).unwrap();
    assert_eq!(c.get_str("admin_socket"), "/x/$admin_socket/ceph-osd.3.asok");
    assert_eq!(c.get_str("run_dir"), "/x/$run_dir/ceph-osd.3.asok");
    c.set_val("host", "$host", ConfLevel::Override).unwrap();
    assert!(!c.expand_meta("$host").is_empty());
    // A long acyclic chain stops at the depth limit instead of recursing without bound.
    let chain = [
        "pid_file",
        "chdir",
        "mon_host",
        "public_addr",
        "cluster_addr",
        "heartbeat_file",
        "mds_join_fs",
        "osd_data",
        "ms_inject_delay_type",
        "log_file",
    ];
    for w in chain.windows(2) {
        c.set_val(w[0], &format!("${}", w[1]), ConfLevel::Override).unwrap();
    }
    c.set_val("log_file", "end", ConfLevel::Override).unwrap();
    assert_eq!(c.get_str("osd_data"), "end");
    assert!(c.get_str("pid_file").starts_with('$'));
}

#[test]
fn levels_take_precedence_and_unset_falls_back() {
    let c = osd3();
    let k = "osd_heartbeat_grace";
    c.set_val(k, "30", ConfLevel::File).unwrap();
    assert_eq!(c.get_i64(k), 30);
    c.set_val(k, "25", ConfLevel::Mon).unwrap();
    assert_eq!(c.get_i64(k), 30, "mon is below file");
    c.set_val(k, "40", ConfLevel::Override).unwrap();
    c.set_val(k, "35", ConfLevel::Cmdline).unwrap();
    assert_eq!(c.get_i64(k), 40);
    assert!(c.rm_val(k, ConfLevel::Override).unwrap());
    assert!(!c.rm_val(k, ConfLevel::Override).unwrap());
    assert_eq!(c.get_i64(k), 35);
    c.rm_val(k, ConfLevel::Cmdline).unwrap();
    c.rm_val(k, ConfLevel::File).unwrap();
    assert_eq!(c.get_i64(k), 25);
    c.rm_val(k, ConfLevel::Mon).unwrap();
    assert_eq!(c.get_i64(k), 20);
    assert!(c.changed_keys_since_default().is_empty());

    // An instance default replaces the compiled-in one but is not a difference from it.
    let (_, calls) = recorder(&c, &["admin_socket"]);
    c.set_val("admin_socket", "", ConfLevel::Default).unwrap();
    assert_eq!(c.get_str("admin_socket"), "");
    assert_eq!(calls.lock().len(), 1);
    assert!(c.changed_keys_since_default().is_empty());
    assert_eq!(json(&c.diff()), serde_json::json!({"diff": {}}));
    c.set_val("admin_socket", "/s.asok", ConfLevel::File).unwrap();
    assert_eq!(
        json(&c.diff())["diff"]["admin_socket"],
        serde_json::json!({"default": "", "file": "/s.asok", "final": "/s.asok"})
    );
    c.rm_val("admin_socket", ConfLevel::File).unwrap();
    assert_eq!(c.get_str("admin_socket"), "");
    assert!(c.rm_val("admin_socket", ConfLevel::Default).unwrap());
    assert_eq!(c.get_str("admin_socket"), "/var/run/ceph/ceph-osd.3.asok");
    assert_eq!(calls.lock().len(), 4);
}

#[test]
fn values_are_type_checked() {
    let c = osd3();
    let bad = |k: &str, v: &str| {
        let e = c.set_val(k, v, ConfLevel::Override).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL, "{k}={v}");
        e.msg
    };
    assert!(bad("log_to_stderr", "maybe").contains("boolean"));
    assert!(bad("osd_heartbeat_grace", "abc").contains("integer"));
    assert!(bad("ms_async_op_threads", "-1").contains("non-negative"));
    assert!(bad("osd_heartbeat_interval", "0").contains("below the minimum 1"));
    let m = bad("osd_heartbeat_interval", "61");
    assert!(
        m.contains("osd_heartbeat_interval") && m.contains("above the maximum 60"),
        "{m}"
    );
    assert!(bad("osd_objectstore", "bluestore").contains("mem, kv"));
    assert!(bad("debug_ms", "loud").contains("debug level"));
    assert!(bad("ms_dispatch_throttle_bytes", "1.5G").contains("size"));
    assert!(bad("ms_dispatch_throttle_bytes", "12X").contains("size"));
    assert!(bad("mds_beacon_interval", "nan").contains("finite"));
    assert!(bad("mds_beacon_interval", "soon").contains("number"));
    assert!(bad("admin_socket_mode", "4777").contains("octal"));
    assert!(bad("fsid", "abc").contains("uuid"));
    assert!(bad("ms_inject_delay_probability", "1.5").contains("maximum"));
    // Nothing was stored by the failures.
    assert!(c.changed_keys_since_default().is_empty());

    for (v, want) in [("yes", true), ("0", false), ("TRUE", true), ("off", false)] {
        c.set_val("log_to_stderr", v, ConfLevel::Override).unwrap();
        assert_eq!(c.get_bool("log_to_stderr"), want, "{v}");
    }
    for (v, want) in [
        ("1G", 1u64 << 30),
        ("4KiB", 4096),
        ("100M", 100 << 20),
        ("10k", 10240),
        ("7", 7),
    ] {
        c.set_val("ms_dispatch_throttle_bytes", v, ConfLevel::Override).unwrap();
        assert_eq!(c.get_u64("ms_dispatch_throttle_bytes"), want, "{v}");
    }
    c.set_val("ms_pq_min_cost", "2K", ConfLevel::Override).unwrap();
    assert_eq!(c.get_u64("ms_pq_min_cost"), 2000);
    c.set_val("osd_heartbeat_grace", " -3 ", ConfLevel::Override).unwrap();
    assert_eq!(c.get_i64("osd_heartbeat_grace"), -3);
    c.set_val("debug_ms", "20", ConfLevel::Override).unwrap();
    assert_eq!(c.get_str("debug_ms"), "20/20");
    c.set_val("mds_beacon_interval", "1.5", ConfLevel::Override).unwrap();
    assert_eq!(c.get_str("mds_beacon_interval"), "1.500000");
}

#[test]
fn secs_values() {
    let mut d = options::find("mds_beacon_interval").unwrap().clone();
    d.ty = OptType::Secs;
    d.min = None;
    for (s, want) in [
        ("30", 30.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("2 h", 7200.0),
        ("1d", 86400.0),
    ] {
        assert_eq!(parse_value(&d, s).unwrap(), OptValue::Float(want), "{s}");
    }
    assert!(parse_value(&d, "-1").is_err());
    assert!(parse_value(&d, "5 fortnights").is_err());
    assert_eq!(format_value(OptType::Secs, &OptValue::Float(300.0)), "300");
    assert_eq!(format_value(OptType::Secs, &OptValue::Float(1.5)), "1.5");
}

#[test]
fn unknown_keys_are_enoent() {
    let c = osd3();
    assert_eq!(
        errno(c.set_val("no_such_option", "1", ConfLevel::Override)),
        libc::ENOENT
    );
    assert_eq!(errno(c.get_val("no_such_option")), libc::ENOENT);
    assert_eq!(errno(c.get_val_str("no_such_option")), libc::ENOENT);
    assert_eq!(errno(c.rm_val("no_such_option", ConfLevel::Override)), libc::ENOENT);
    assert_eq!(errno(c.help(Some("no_such_option"))), libc::ENOENT);
    assert_eq!(errno(c.set_from_admin("no_such_option", &args(&["1"]))), libc::ENOENT);
    assert!(c
        .get_val_str("no_such_option")
        .unwrap_err()
        .msg
        .contains("no_such_option"));
    assert_eq!(c.get_str("no_such_option"), "");
    assert!(!c.get_bool("no_such_option"));
    assert_eq!(c.get_u64("no_such_option"), 0);
    assert_eq!(c.get_i64("no_such_option"), 0);
    assert_eq!(c.get_f64("no_such_option"), 0.0);
}

#[test]
fn getters_convert_between_numeric_types() {
    let c = osd3();
    assert_eq!(c.get_f64("osd_heartbeat_grace"), 20.0);
    assert_eq!(c.get_u64("osd_heartbeat_grace"), 20);
    assert_eq!(c.get_i64("mds_beacon_interval"), 4);
    assert_eq!(c.get_u64("log_flush_on_exit"), 1);
    assert!(c.get_bool("ms_async_op_threads"));
    c.set_val("osd_heartbeat_grace", "-5", ConfLevel::Override).unwrap();
    assert_eq!(c.get_u64("osd_heartbeat_grace"), 0);
    assert_eq!(c.get_u64("ms_bind_port_min"), 6800);
}

#[test]
fn observers_told_once_and_only_on_change() {
    let c = osd3();
    let (id, calls) = recorder(&c, &["debug ms", "osd_heartbeat_grace"]);
    c.set_val("debug_ms", "1/5", ConfLevel::Override).unwrap();
    assert_eq!(*calls.lock(), vec![vec!["debug_ms".to_string()]]);
    // Same final value again, a lower level under an override, an unwatched key: no calls.
    c.set_val("debug-ms", "1/5", ConfLevel::Override).unwrap();
    c.set_val("debug_ms", "5/5", ConfLevel::File).unwrap();
    c.set_val("debug_osd", "20", ConfLevel::Override).unwrap();
    assert_eq!(calls.lock().len(), 1);
    // Several keys at once: one call listing every watched key that changed.
    c.set_vals(
        &[("debug_ms", "2/2"), ("osd_heartbeat_grace", "30"), ("debug_osd", "1")],
        ConfLevel::Override,
    )
    .unwrap();
    assert_eq!(
        calls.lock()[1],
        vec!["debug_ms".to_string(), "osd_heartbeat_grace".to_string()]
    );
    // Unset falls back to the file value: a change.
    assert!(c.rm_val("debug_ms", ConfLevel::Override).unwrap());
    assert_eq!(calls.lock()[2], vec!["debug_ms".to_string()]);
    assert_eq!(c.get_str("debug_ms"), "5/5");
    assert!(c.is_observed("debug_ms") && c.is_observed("osd heartbeat grace"));
    assert!(!c.is_observed("debug_osd"));
    c.remove_observer(id);
    assert!(!c.is_observed("debug_ms"));
    c.set_val("debug_ms", "9", ConfLevel::Override).unwrap();
    assert_eq!(calls.lock().len(), 3);
}

#[test]
fn observers_run_without_locks_held() {
    let c = Arc::new(osd3());
    let seen = Arc::new(Mutex::new(String::new()));
    let (c2, s2) = (c.clone(), seen.clone());
    c.add_observer(
        &["log_file"],
        Arc::new(move |_: &[String]| {
            *s2.lock() = c2.get_str("log_file");
            // Re-entrant set of another key must not deadlock either.
            c2.set_val("log_to_file", "false", ConfLevel::Override).unwrap();
        }),
    );
    c.set_val("log_file", "/tmp/$name.log", ConfLevel::Override).unwrap();
    assert_eq!(*seen.lock(), "/tmp/osd.3.log");
    assert!(!c.get_bool("log_to_file"));
}

#[test]
fn failed_batch_applies_nothing() {
    let c = osd3();
    let (_, calls) = recorder(&c, &["debug_ms"]);
    assert!(c
        .set_vals(
            &[("debug_ms", "3"), ("osd_heartbeat_interval", "0")],
            ConfLevel::Override
        )
        .is_err());
    assert_eq!(c.get_str("debug_ms"), "0/0");
    assert!(calls.lock().is_empty());
}

#[test]
fn admin_set_reports_like_ceph() {
    let c = osd3();
    let r = c.set_from_admin("osd_recovery_op_priority", &args(&["3"])).unwrap();
    assert_eq!(
        r,
        "osd_recovery_op_priority = '3' (not observed, change may require restart) "
    );
    let (_, calls) = recorder(&c, &["debug_osd"]);
    assert_eq!(
        c.set_from_admin("debug osd", &args(&["20"])).unwrap(),
        "debug_osd = '20/20' "
    );
    assert_eq!(calls.lock().len(), 1);
    let r = c
        .set_from_admin("ms_inject_delay_type", &args(&["osd", "mon"]))
        .unwrap();
    assert!(r.starts_with("ms_inject_delay_type = 'osd mon' "), "{r}");
    assert_eq!(c.get_str("ms_inject_delay_type"), "osd mon");
    assert_eq!(
        errno(c.set_from_admin("osd_heartbeat_interval", &args(&["100"]))),
        libc::EINVAL
    );
    // Override beats everything and unset removes only the override.
    c.set_val("debug_osd", "5", ConfLevel::Cmdline).unwrap();
    assert_eq!(c.get_str("debug_osd"), "20/20");
    c.rm_val("debug_osd", ConfLevel::Override).unwrap();
    assert_eq!(c.get_str("debug_osd"), "5/5");
}

#[test]
fn diff_lists_only_set_options() {
    let c = osd3();
    assert_eq!(json(&c.diff()), serde_json::json!({"diff": {}}));
    c.set_val("osd_heartbeat_grace", "30", ConfLevel::File).unwrap();
    c.set_val("osd_heartbeat_grace", "40", ConfLevel::Override).unwrap();
    c.set_val("run_dir", "/run/x", ConfLevel::Cmdline).unwrap();
    assert_eq!(
        json(&c.diff()),
        serde_json::json!({"diff": {
            "osd_heartbeat_grace": {"default": "20", "file": "30", "override": "40", "final": "40"},
            "run_dir": {"default": "/var/run/ceph", "cmdline": "/run/x", "final": "/run/x"},
        }})
    );
    assert_eq!(c.changed_keys_since_default(), vec!["osd_heartbeat_grace", "run_dir"]);
    c.rm_val("run_dir", ConfLevel::Cmdline).unwrap();
    let d = json(&c.diff());
    assert!(d["diff"].get("run_dir").is_none());
    assert_eq!(c.get_str("run_dir"), "/var/run/ceph");
    // Diff keys follow the level order.
    let FVal::Obj(members) = obj_get(obj_get(&c.diff(), "diff").unwrap(), "osd_heartbeat_grace")
        .unwrap()
        .clone()
    else {
        panic!("not an object")
    };
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["default", "file", "override", "final"]);
}

#[test]
fn show_has_every_option_as_string() {
    let c = osd3();
    c.set_val("log_to_stderr", "true", ConfLevel::Override).unwrap();
    let v = c.show();
    let FVal::Obj(m) = &v else { panic!("not an object") };
    assert_eq!(m.len(), options::all().len() + 2);
    assert_eq!(m[0], ("name".to_string(), FVal::str("osd.3")));
    assert_eq!(m[1], ("cluster".to_string(), FVal::str("ceph")));
    assert!(m.iter().all(|(_, v)| matches!(v, FVal::Str(_))));
    let j = json(&v);
    assert_eq!(j["admin_socket"], "/var/run/ceph/ceph-osd.3.asok");
    assert_eq!(j["log_to_stderr"], "true");
    assert_eq!(j["mds_beacon_interval"], "4.000000");
    assert_eq!(j["debug_ms"], "0/0");
}

#[test]
fn help_schema() {
    let c = osd3();
    let j = json(&c.help(Some("osd heartbeat interval")).unwrap());
    assert_eq!(
        j,
        serde_json::json!({
            "name": "osd_heartbeat_interval", "type": "int", "level": "dev",
            "desc": "Interval (in seconds) between peer pings", "long_desc": "",
            "default": 6, "daemon_default": "", "tags": [], "services": ["osd"], "see_also": [],
            "enum_values": [], "min": 1, "max": 60, "can_update_at_runtime": true, "flags": ["runtime"],
        })
    );
    let j = json(&c.help(Some("osd_objectstore")).unwrap());
    assert_eq!(j["enum_values"], serde_json::json!(["mem", "kv"]));
    assert_eq!(j["min"], "");
    assert_eq!(j["default"], "mem");
    assert_eq!(j["can_update_at_runtime"], false);
    assert_eq!(j["flags"], serde_json::json!([]));
    assert_eq!(
        json(&c.help(Some("mds_beacon_interval")).unwrap())["default"].as_f64(),
        Some(4.0)
    );
    assert_eq!(json(&c.help(Some("log_to_stderr")).unwrap())["default"], false);
    assert_eq!(
        json(&c.help(Some("ms_dispatch_throttle_bytes")).unwrap())["type"],
        "size"
    );
    let all = json(&c.help(None).unwrap());
    let opts = all["options"].as_array().unwrap();
    assert_eq!(opts.len(), options::all().len());
    assert!(opts.iter().any(|o| o["name"] == "debug_ms"));
}

#[test]
fn parses_ceph_conf() {
    let c = osd3();
    let text = "\
# cluster config
; another comment style
[global]
    fsid = 5f8a2b3c-0000-4000-8000-000000000001
    debug ms = 1/5
    osd heartbeat grace = 25
    log-file = \"/var/log/x # not a comment.log\"  # comment
    mon_host = 10.0.0.1;10.0.0.2   ; trailing comment
    ms_inject_delay_type = osd \\
        mon
    osd_pool_default_size = 2 # two copies

[osd]
osd_heartbeat_grace = 26
debug_osd = 10
[osd.3]
osd_heartbeat_grace = 27
[osd.4]
osd_heartbeat_grace = 99
[mon]
osd_pool_default_size = 9
[client.admin] # comment after a section
debug_ms = 20
";
    let warnings = c.parse_str(text).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.get_str("debug_ms"), "1/5");
    assert_eq!(c.get_str("debug_osd"), "10/10");
    assert_eq!(c.get_i64("osd_heartbeat_grace"), 27);
    assert_eq!(c.get_str("log_file"), "/var/log/x # not a comment.log");
    assert_eq!(c.get_str("mon_host"), "10.0.0.1;10.0.0.2");
    assert_eq!(c.get_str("ms_inject_delay_type"), "osd         mon");
    assert_eq!(c.get_u64("osd_pool_default_size"), 2);
    assert_eq!(c.get_str("fsid"), "5f8a2b3c-0000-4000-8000-000000000001");
    assert_eq!(json(&c.diff())["diff"]["osd_heartbeat_grace"]["file"], "27");

    // [osd] beats [global] when there is no [osd.3] entry, whatever the order in the file.
    let c = osd3();
    c.parse_str("[osd]\nosd_heartbeat_grace = 26\n[global]\nosd_heartbeat_grace = 25\n")
        .unwrap();
    assert_eq!(c.get_i64("osd_heartbeat_grace"), 26);
    // File values sit below the command line.
    c.set_val("osd_heartbeat_grace", "40", ConfLevel::Cmdline).unwrap();
    c.parse_str("[global]\nosd_heartbeat_grace = 41\n").unwrap();
    assert_eq!(c.get_i64("osd_heartbeat_grace"), 40);
}

#[test]
fn quoted_values_and_escapes() {
    let c = osd3();
    c.parse_str("[global]\nhost = \"a \\\"b\\\" c\"\nchdir = \"\"\npid_file=\"/x;y\";c\n")
        .unwrap();
    assert_eq!(c.get_str("host"), "a \"b\" c");
    assert_eq!(c.get_str("chdir"), "");
    assert_eq!(c.get_str("pid_file"), "/x;y");
}

#[test]
fn conf_warnings() {
    let c = osd3();
    let w = c
        .parse_str("debug_ms = 3\n[global]\nno_such_thing = 1\n[mon]\nother_unknown = 2\n")
        .unwrap();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("line 1") && w[0].contains("[global]"), "{w:?}");
    assert!(w[1].contains("line 3") && w[1].contains("no_such_thing"), "{w:?}");
    assert_eq!(c.get_str("debug_ms"), "3/3");
}

#[test]
fn conf_errors_name_the_line() {
    let c = osd3();
    let err = |text: &str| {
        let e = c.parse_str(text).unwrap_err();
        assert_eq!(e.errno, libc::EINVAL, "{text}");
        e.msg
    };
    let m = err("[global]\n# fine\nthis line has no equals\n");
    assert!(m.starts_with("line 3:"), "{m}");
    assert!(err("[global\ndebug_ms = 1\n").starts_with("line 1:"));
    assert!(err("[]\n").starts_with("line 1:"));
    assert!(err("[global] junk\n").starts_with("line 1:"));
    assert!(err("[global]\n = 5\n").starts_with("line 2:"));
    assert!(err("[global]\n\nhost = \"unterminated\n").starts_with("line 3:"));
    assert!(err("[global]\nhost = \"a\" b\n").starts_with("line 2:"));
    // A continuation keeps the number of the line it started on.
    let m = err("[global]\nhost = a \\\n b\n[osd]\nosd_heartbeat_interval = 0\n");
    assert!(m.starts_with("line 5:") && m.contains("minimum"), "{m}");
    // A bad value fails the whole file: nothing from it applies.
    assert_eq!(c.get_str("host"), "");
    let m = err("[osd.3]\ndebug_osd = 1\nlog_to_stderr = perhaps\n");
    assert!(m.starts_with("line 3:") && m.contains("log_to_stderr"), "{m}");
    assert_eq!(c.get_str("debug_osd"), "1/5");
}

#[test]
fn parse_file_reads_and_reports_path() {
    let c = osd3();
    let dir = std::env::temp_dir().join(format!("osdkit-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = dir.join("missing.conf");
    let e = c.parse_file(&missing).unwrap_err();
    assert_eq!(e.errno, libc::ENOENT);
    assert!(e.msg.contains(&missing.display().to_string()), "{}", e.msg);

    let path = dir.join("ceph.conf");
    std::fs::write(&path, "[osd]\n\tdebug osd = 7/8\nbogus = 1\n").unwrap();
    let w = c.parse_file(&path).unwrap();
    assert_eq!(c.get_str("debug_osd"), "7/8");
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with(&path.display().to_string()) && w[0].contains("line 3"),
        "{w:?}"
    );
    std::fs::write(&path, "[osd]\nnope\n").unwrap();
    let e = c.parse_file(&path).unwrap_err();
    assert!(e.msg.contains("ceph.conf: line 2:"), "{}", e.msg);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn argv_options() {
    let c = osd3();
    let rest = c
        .parse_argv(&args(&[
            "-f",
            "--debug-ms",
            "1/5",
            "--osd_heartbeat_grace=30",
            "--log-to-stderr",
            "--no-daemonize",
            "--err_to_stderr",
            "false",
            "--ms_crc_data",
            "--unknown",
            "x",
            "--run_dir",
            "/r",
            "--",
            "--debug_osd",
            "9",
        ]))
        .unwrap();
    assert_eq!(rest, args(&["-f", "--unknown", "x", "--", "--debug_osd", "9"]));
    assert_eq!(c.get_str("debug_ms"), "1/5");
    assert_eq!(c.get_i64("osd_heartbeat_grace"), 30);
    assert!(c.get_bool("log_to_stderr"));
    assert!(!c.get_bool("daemonize"));
    assert!(!c.get_bool("err_to_stderr"));
    assert!(c.get_bool("ms_crc_data"));
    assert_eq!(c.get_str("admin_socket"), "/r/ceph-osd.3.asok");
    assert_eq!(c.get_str("debug_osd"), "1/5");
    assert_eq!(json(&c.diff())["diff"]["debug_ms"]["cmdline"], "1/5");

    assert_eq!(errno(c.parse_argv(&args(&["--osd_heartbeat_grace"]))), libc::EINVAL);
    assert_eq!(errno(c.parse_argv(&args(&["--no-daemonize=1"]))), libc::EINVAL);
    // A bad value anywhere applies nothing.
    assert_eq!(
        errno(c.parse_argv(&args(&["--debug_osd", "3", "--osd_heartbeat_interval", "0"]))),
        libc::EINVAL
    );
    assert_eq!(c.get_str("debug_osd"), "1/5");
    // injectargs-style override.
    c.parse_args_at(&args(&["--osd_heartbeat_grace", "50"]), ConfLevel::Override)
        .unwrap();
    assert_eq!(json(&c.diff())["diff"]["osd_heartbeat_grace"]["override"], "50");
}

#[test]
fn concurrent_readers_writers_and_observers() {
    let c = Arc::new(osd3());
    let hits = Arc::new(AtomicUsize::new(0));
    let (c2, h2) = (c.clone(), hits.clone());
    c.add_observer(
        &["osd_heartbeat_grace"],
        Arc::new(move |_: &[String]| {
            let _ = c2.get_i64("osd_heartbeat_grace");
            h2.fetch_add(1, Ordering::Relaxed);
        }),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for n in 0..200 {
                    if t % 2 == 0 {
                        c.set_val("osd_heartbeat_grace", &(n * 2 + t).to_string(), ConfLevel::Override)
                            .unwrap();
                        c.add_observer(&["debug_ms"], Arc::new(|_: &[String]| {}));
                    } else {
                        let _ = c.show();
                        let _ = c.get_str("admin_socket");
                        c.set_val("debug_ms", &(n % 20).to_string(), ConfLevel::Cmdline)
                            .unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(hits.load(Ordering::Relaxed) > 0);
    assert_eq!(c.get_str("admin_socket"), "/var/run/ceph/ceph-osd.3.asok");
}
