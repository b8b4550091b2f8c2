//! What the `osdkit` subcommands of this layer print, and their exit codes: 0 on success, the
//! errno of a failed request (the message names what failed and the errno text, on stderr;
//! with `-f json` an `{"error": ..., "errno": ...}` object goes to stdout as well).

use super::client::ClusterClient;
use super::conventions::print_json;
use super::vstart::{self, VstartOpts};
use crate::common::log::format_stamp;
use crate::Error;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Prints the failure of `cmd` and returns its exit code (the errno).
pub fn fail(cmd: &str, e: &Error, as_json: bool) -> i32 {
    eprintln!("osdkit {cmd}: {}: {}", e.msg, e.strerror());
    if as_json {
        print_json(&json!({"error": e.msg, "errno": -e.errno.abs(), "strerror": e.strerror()}));
    }
    e.exit_code()
}

fn connect(cmd: &str, conf: &Path, as_json: bool) -> Result<ClusterClient, i32> {
    if !conf.exists() {
        let e = Error::noent(format!(
            "config file {} not found (give -c DIR/osdkit.conf of a cluster started with osdkit vstart)",
            conf.display()
        ));
        return Err(fail(cmd, &e, as_json));
    }
    ClusterClient::connect(conf).map_err(|e| fail(cmd, &e, as_json))
}

/// `osdkit vstart`.
pub fn vstart(o: &VstartOpts, as_json: bool) -> i32 {
    let mut progress = |s: &str| eprintln!("{s}");
    match vstart::vstart(o, &mut progress) {
        Ok(v) => {
            if as_json {
                print_json(&v);
            } else {
                println!();
                println!(
                    "cluster {} running in {}",
                    v["fsid"].as_str().unwrap_or("?"),
                    v["dir"].as_str().unwrap_or("?")
                );
                println!(
                    "  mon.a  {}  pid {}",
                    v["mon"].as_str().unwrap_or("?"),
                    v["mon_pid"].as_i64().map_or("?".into(), |p| p.to_string())
                );
                for osd in v["osds"].as_array().into_iter().flatten() {
                    println!(
                        "  osd.{}  {}  {}  pid {}",
                        osd["id"],
                        osd["state"].as_str().unwrap_or("?"),
                        osd["addr"].as_str().unwrap_or("?"),
                        osd["pid"].as_i64().map_or("?".into(), |p| p.to_string())
                    );
                }
                let p = &v["pool"];
                println!(
                    "  pool '{}' (id {}): size {}, {} PGs",
                    p["name"].as_str().unwrap_or("data"),
                    p["id"],
                    p["size"],
                    p["pg_num"]
                );
                let conf = v["conf"].as_str().unwrap_or("?");
                println!("\nconfig: {conf}");
                println!("  osdkit status -c {conf}");
                println!("  osdkit put -c {conf} -p data OBJ FILE");
                println!("  osdkit stop --dir {}", v["dir"].as_str().unwrap_or("?"));
            }
            0
        }
        Err(e) => fail("vstart", &e, as_json),
    }
}

/// `osdkit stop`.
pub fn stop(dir: &Path, as_json: bool) -> i32 {
    let mut progress = |s: &str| eprintln!("{s}");
    match vstart::stop(dir, &mut progress) {
        Ok(v) => {
            let n = v["stopped"].as_array().map_or(0, Vec::len);
            if as_json {
                print_json(&v);
            } else if n == 0 {
                println!("no daemons running in {}", dir.display());
            } else {
                println!("stopped {n} daemon(s)");
            }
            0
        }
        Err(e) => fail("stop", &e, as_json),
    }
}

/// `osdkit status`.
pub fn status(conf: &Path, as_json: bool) -> i32 {
    let c = match connect("status", conf, as_json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let v = c.status();
    c.shutdown();
    if as_json {
        print_json(&v);
        return 0;
    }
    println!("  cluster:");
    println!("    id:     {}", v["fsid"].as_str().unwrap_or("?"));
    println!("    health: {}", v["health"].as_str().unwrap_or("?"));
    println!();
    println!("  services:");
    println!("    mon: 1 daemon at {}", v["mon"].as_str().unwrap_or("?"));
    println!(
        "    osd: {} osds: {} up, {} in; osdmap epoch {}",
        v["num_osds"], v["num_up_osds"], v["num_in_osds"], v["epoch"]
    );
    println!();
    println!("  data:");
    let pools = v["pools"].as_array().cloned().unwrap_or_default();
    let pgs: u64 = pools.iter().filter_map(|p| p["pg_num"].as_u64()).sum();
    println!("    pools: {} pools, {pgs} pgs", pools.len());
    for p in &pools {
        println!(
            "      {} (id {}): size {}, min_size {}, {} pgs",
            p["name"].as_str().unwrap_or("?"),
            p["id"],
            p["size"],
            p["min_size"],
            p["pg_num"]
        );
    }
    println!();
    println!("  osds:");
    for o in v["osds"].as_array().into_iter().flatten() {
        let host = match o["host"].as_str() {
            Some(h) if h.starts_with("client.manager-") => format!(" (in {h})"),
            _ => String::new(),
        };
        println!(
            "    osd.{}  {:8}  {}  pid {}{host}",
            o["id"],
            o["state"].as_str().unwrap_or("?"),
            o["addr"].as_str().unwrap_or("?"),
            o["pid"].as_i64().map_or("-".into(), |p| p.to_string())
        );
    }
    0
}

/// `osdkit pool create|ls|rm`.
pub enum PoolCmd {
    Create { name: String, pg_num: u32, size: u32 },
    Ls,
    Rm { name: String },
}

pub fn pool(conf: &Path, cmd: PoolCmd, as_json: bool) -> i32 {
    let what = match &cmd {
        PoolCmd::Create { .. } => "pool create",
        PoolCmd::Ls => "pool ls",
        PoolCmd::Rm { .. } => "pool rm",
    };
    let c = match connect(what, conf, as_json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = match cmd {
        PoolCmd::Create { name, pg_num, size } => c.pool_create(&name, pg_num, size).map(|v| {
            if as_json {
                print_json(&v);
            } else {
                println!("pool '{name}' created");
            }
        }),
        PoolCmd::Ls => c.pool_ls().map(|names| {
            if as_json {
                print_json(&json!({ "pools": names }));
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }),
        PoolCmd::Rm { name } => c.pool_rm(&name).map(|rs| {
            if as_json {
                print_json(&json!({"pool": name, "removed": true}));
            } else {
                println!("{rs}");
            }
        }),
    };
    c.shutdown();
    match r {
        Ok(()) => 0,
        Err(e) => fail(what, &e, as_json),
    }
}

/// `osdkit put|get|stat|rm|ls`.
pub enum ObjCmd {
    Put { obj: String, file: String },
    Get { obj: String, file: String },
    Stat { obj: String },
    Rm { obj: String },
    Ls,
}

pub fn object(conf: &Path, pool: &str, cmd: ObjCmd, as_json: bool) -> i32 {
    let what = match &cmd {
        ObjCmd::Put { .. } => "put",
        ObjCmd::Get { .. } => "get",
        ObjCmd::Stat { .. } => "stat",
        ObjCmd::Rm { .. } => "rm",
        ObjCmd::Ls => "ls",
    };
    if let ObjCmd::Get { file, .. } = &cmd {
        if file == "-" && as_json {
            return fail(
                what,
                &Error::inval("--json cannot be used when the object goes to stdout"),
                false,
            );
        }
    }
    let c = match connect(what, conf, as_json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = run_object(&c, pool, cmd, as_json);
    c.shutdown();
    match r {
        Ok(()) => 0,
        Err(e) => fail(what, &e, as_json),
    }
}

fn in_pool(e: Error, pool: &str) -> Error {
    Error::new(e.errno, format!("{} in pool '{pool}'", e.msg))
}

fn run_object(c: &ClusterClient, pool: &str, cmd: ObjCmd, as_json: bool) -> crate::Result<()> {
    let id = c.pool_id(pool)?;
    let out = |v: Value| {
        if as_json {
            print_json(&v);
        }
    };
    match cmd {
        ObjCmd::Put { obj, file } => {
            let size = if file == "-" {
                c.put(id, &obj, &mut std::io::stdin().lock())
            } else {
                let mut f = std::fs::File::open(&file).map_err(|e| Error::io(e, format!("cannot open {file}")))?;
                c.put(id, &obj, &mut f)
            }
            .map_err(|e| in_pool(e, pool))?;
            out(json!({"pool": pool, "object": obj, "size": size}));
        }
        ObjCmd::Get { obj, file } => {
            let size = if file == "-" {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                c.get(id, &obj, &mut lock)
            } else {
                // Written beside the target and renamed, so a failed read leaves no partial file.
                let tmp = format!("{file}.osdkit-get.{}", std::process::id());
                let r = std::fs::File::create(&tmp)
                    .map_err(|e| Error::io(e, format!("cannot create {tmp}")))
                    .and_then(|mut f| {
                        let n = c.get(id, &obj, &mut f)?;
                        f.flush().map_err(|e| Error::io(e, format!("writing {file}")))?;
                        Ok(n)
                    })
                    .and_then(|n| {
                        std::fs::rename(&tmp, &file).map_err(|e| Error::io(e, format!("renaming to {file}")))?;
                        Ok(n)
                    });
                if r.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                r
            }
            .map_err(|e| in_pool(e, pool))?;
            out(json!({"pool": pool, "object": obj, "size": size, "file": file}));
        }
        ObjCmd::Stat { obj } => {
            let (size, mtime) = c.stat(id, &obj).map_err(|e| in_pool(e, pool))?;
            let t = format_stamp(mtime);
            if as_json {
                let secs = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0);
                out(json!({"pool": pool, "object": obj, "size": size, "mtime": t, "mtime_secs": secs}));
            } else {
                println!("{pool}/{obj} mtime {t}, size {size}");
            }
        }
        ObjCmd::Rm { obj } => {
            c.rm(id, &obj).map_err(|e| in_pool(e, pool))?;
            out(json!({"pool": pool, "object": obj, "removed": true}));
        }
        ObjCmd::Ls => {
            let names = c.ls(id).map_err(|e| in_pool(e, pool))?;
            if as_json {
                out(json!({"pool": pool, "objects": names}));
            } else {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::new(stdout.lock());
                for n in names {
                    let _ = writeln!(w, "{n}");
                }
            }
        }
    }
    Ok(())
}

/// `osdkit osd create [ID]` and `osd rm|down|out|in ID...`: the monitor changes the map (`ceph osd create|rm|down|out|in`).
pub fn osd_mark(conf: &Path, what: &str, ids: &[String], as_json: bool) -> i32 {
    let cmd = format!("osd {what}");
    let c = match connect(&cmd, conf, as_json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let req = match (what, ids.first()) {
        ("create", Some(id)) => json!({"prefix": cmd, "id": id}),
        ("create", None) => json!({"prefix": cmd}),
        _ => json!({"prefix": cmd, "ids": ids}),
    };
    let r = c.mon_command(&req);
    c.shutdown();
    match r {
        // `osd create` prints the id, as Ceph's does.
        Ok((_, out)) if what == "create" => {
            let id = String::from_utf8_lossy(&out).to_string();
            if as_json {
                print_json(&json!({"id": id.parse::<i64>().unwrap_or(-1)}));
            } else {
                println!("{id}");
            }
            0
        }
        Ok((rs, _)) => {
            if as_json {
                print_json(&json!({"result": rs, "ids": ids}));
            } else {
                println!("{rs}");
            }
            0
        }
        Err(e) => fail(&cmd, &e, as_json),
    }
}

/// `osdkit pg ...`.
pub enum PgCmd {
    Stat,
    Dump,
    /// PGs (`1.a`), pools (by name) or nothing (every PG).
    Scrub {
        targets: Vec<String>,
        deep: bool,
    },
}

/// How long a PG command waits for an OSD.
const PG_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

pub fn pg(conf: &Path, cmd: PgCmd, as_json: bool) -> i32 {
    let what = match &cmd {
        PgCmd::Stat => "pg stat",
        PgCmd::Dump => "pg dump",
        PgCmd::Scrub { deep: false, .. } => "pg scrub",
        PgCmd::Scrub { deep: true, .. } => "pg deep-scrub",
    };
    let c = match connect(what, conf, as_json) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let r = run_pg(&c, cmd, as_json);
    c.shutdown();
    match r {
        Ok(code) => code,
        Err(e) => fail(what, &e, as_json),
    }
}

fn run_pg(c: &ClusterClient, cmd: PgCmd, as_json: bool) -> crate::Result<i32> {
    use crate::client::pg as pgs;
    let o = c.objecter();
    match cmd {
        PgCmd::Stat => {
            let stat = pgs::pg_stat(&pgs::pg_dump(o, PG_TIMEOUT)?);
            if as_json {
                println!("{stat}");
            } else {
                println!("{}", pgs::pg_stat_line(&stat));
            }
        }
        PgCmd::Dump => {
            let dump = pgs::pg_dump(o, PG_TIMEOUT)?;
            if as_json {
                print_json(&json!({"pg_stats": dump, "epoch": o.osdmap().epoch}));
            } else {
                println!("PG_STAT\tSTATE\tOBJECTS\tBYTES\tLAST_UPDATE\tACTING\tLAST_SCRUB\tLAST_DEEP_SCRUB");
                for p in &dump {
                    let s = |k: &str| p[k].as_str().map_or_else(|| p[k].to_string(), str::to_string);
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        s("pgid"),
                        s("state"),
                        s("num_objects"),
                        s("num_bytes"),
                        s("last_update"),
                        p["acting"],
                        s("last_scrub_stamp"),
                        s("last_deep_scrub_stamp")
                    );
                }
            }
        }
        PgCmd::Scrub { targets, deep } => {
            let mut ids = Vec::new();
            if targets.is_empty() {
                ids = pgs::pgs_of(o, None)?;
            }
            for t in &targets {
                match t.parse::<crate::types::placement::PgId>() {
                    Ok(id) => ids.push(id),
                    Err(_) => ids.extend(pgs::pgs_of(o, Some(c.pool_id(t)?))?),
                }
            }
            let mut reports = Vec::new();
            let (mut objects, mut errors) = (0u64, 0u64);
            for id in ids {
                let r = pgs::scrub(o, id, deep, PG_TIMEOUT)?;
                objects += r["objects"].as_u64().unwrap_or(0);
                let e = r["errors"].as_u64().unwrap_or(0);
                errors += e;
                if !as_json {
                    println!(
                        "pg {id}: {}scrub ok on osds {}: {} objects, {e} errors",
                        if deep { "deep-" } else { "" },
                        r["osds"],
                        r["objects"]
                    );
                    for i in r["inconsistents"].as_array().into_iter().flatten() {
                        println!("  inconsistent: {i}");
                    }
                }
                reports.push(r);
            }
            if as_json {
                print_json(
                    &json!({"deep": deep, "pgs": reports.len(), "objects": objects, "errors": errors, "reports": reports}),
                );
            } else {
                println!("{} pgs scrubbed: {objects} objects, {errors} errors", reports.len());
            }
            // Like a failed check: inconsistencies make the command fail, with EIO as the
            // damaged objects would give a reader.
            return Ok(if errors > 0 { libc::EIO } else { 0 });
        }
    }
    Ok(0)
}
