//! What the `osdkit` subcommands of this layer print, and their exit codes: 0 on success, 1
//! on failure (the message names what failed and the errno text, on stderr; with `--json` an
//! `{"error": ..., "errno": ...}` object goes to stdout as well).

use super::client::{format_time, ClusterClient};
use super::vstart::{self, VstartOpts};
use crate::Error;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// Prints the failure of `cmd` and returns exit code 1.
pub fn fail(cmd: &str, e: &Error, as_json: bool) -> i32 {
    eprintln!("osdkit {cmd}: {}: {}", e.msg, e.strerror());
    if as_json {
        println!(
            "{}",
            json!({"error": e.msg, "errno": -e.errno, "strerror": e.strerror()})
        );
    }
    1
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
    let mut progress = |s: &str| {
        if !as_json {
            println!("{s}");
        }
    };
    match vstart::vstart(o, &mut progress) {
        Ok(v) => {
            if as_json {
                println!("{v}");
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
    let mut progress = |s: &str| {
        if as_json {
            eprintln!("{s}");
        } else {
            println!("{s}");
        }
    };
    match vstart::stop(dir, &mut progress) {
        Ok(v) => {
            let n = v["stopped"].as_array().map_or(0, Vec::len);
            if as_json {
                println!("{v}");
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
        println!("{v}");
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
        println!(
            "    osd.{}  {:8}  {}  pid {}",
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
                println!("{v}");
            } else {
                println!("pool '{name}' created");
            }
        }),
        PoolCmd::Ls => c.pool_ls().map(|names| {
            if as_json {
                println!("{}", json!({ "pools": names }));
            } else {
                for n in names {
                    println!("{n}");
                }
            }
        }),
        PoolCmd::Rm { name } => c.pool_rm(&name).map(|rs| {
            if as_json {
                println!("{}", json!({"pool": name, "removed": true}));
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
            println!("{v}");
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
            let t = format_time(mtime);
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
