//! The command's conventions, Ceph's: `-f/--format plain|json|json-pretty` on every command
//! that reports, the config file found from `-c`, `OSDKIT_CONF` or a search path (as `ceph`
//! does with `CEPH_CONF`), a daemon's admin socket found by its name, and one exit-code rule.

use super::load_conf;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a reporting command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutFormat {
    #[default]
    Plain,
    Json,
    JsonPretty,
}

impl std::str::FromStr for OutFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<OutFormat, String> {
        match s {
            "plain" => Ok(OutFormat::Plain),
            "json" => Ok(OutFormat::Json),
            "json-pretty" => Ok(OutFormat::JsonPretty),
            _ => Err(format!("unknown format '{s}' (plain, json or json-pretty)")),
        }
    }
}

impl OutFormat {
    pub fn is_json(self) -> bool {
        self != OutFormat::Plain
    }
}

/// One process runs one command: its JSON is pretty or not throughout.
static PRETTY: AtomicBool = AtomicBool::new(false);

/// Makes `print_json` pretty-print (`-f json-pretty`).
pub fn set_format(f: OutFormat) {
    PRETTY.store(f == OutFormat::JsonPretty, Ordering::Relaxed);
}

/// A result as JSON on stdout, as `-f` asked.
pub fn print_json(v: &serde_json::Value) {
    if PRETTY.load(Ordering::Relaxed) {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string()));
    } else {
        println!("{v}");
    }
}

/// The environment variable naming the config file, like Ceph's `CEPH_CONF`.
pub const CONF_ENV: &str = "OSDKIT_CONF";

/// Where the config file is looked for when neither `-c` nor `OSDKIT_CONF` names one, in
/// order: the current directory, the default `osdkit vstart` directory, the user's, the
/// system's (`$HOME` expanded).
pub const CONF_SEARCH_PATH: [&str; 4] = [
    "osdkit.conf",
    "osdkit-cluster/osdkit.conf",
    "$HOME/.osdkit/osdkit.conf",
    "/etc/osdkit/osdkit.conf",
];

/// The config file to use: `given` (`-c`), else `$OSDKIT_CONF`, else the first of
/// `CONF_SEARCH_PATH` that exists. `-ENOENT` naming what was tried when none does.
pub fn find_conf(given: Option<&Path>) -> Result<PathBuf> {
    find_conf_in(
        given,
        std::env::var_os(CONF_ENV).map(PathBuf::from),
        std::env::var_os("HOME"),
    )
}

fn find_conf_in(given: Option<&Path>, env: Option<PathBuf>, home: Option<std::ffi::OsString>) -> Result<PathBuf> {
    let named = given
        .map(Path::to_path_buf)
        .or(env.filter(|p| !p.as_os_str().is_empty()));
    if let Some(p) = named {
        if p.exists() {
            return Ok(p);
        }
        return Err(Error::noent(format!(
            "config file {} not found (give -c DIR/osdkit.conf of a cluster started with osdkit vstart)",
            p.display()
        )));
    }
    let home = home.map(|h| h.to_string_lossy().into_owned());
    let tried: Vec<PathBuf> = CONF_SEARCH_PATH
        .iter()
        .filter_map(|p| match (p.strip_prefix("$HOME/"), &home) {
            (Some(rest), Some(h)) => Some(Path::new(h).join(rest)),
            (Some(_), None) => None,
            (None, _) => Some(PathBuf::from(p)),
        })
        .collect();
    tried.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        Error::noent(format!(
            "no config file: give -c FILE or set {CONF_ENV}; looked for {}",
            tried
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// The admin socket of daemon `name` (`osd.0`, `mon.a`) as its config gives it
/// (`admin_socket`, default `$run_dir/$cluster-$name.asok`), like `ceph daemon osd.0 ...`.
pub fn asok_path_of(name: &str, conf: &Path) -> Result<PathBuf> {
    let c = load_conf(name, conf)?;
    let p = c.expand_meta(&c.get_str("admin_socket"));
    if p.is_empty() {
        return Err(Error::inval(format!(
            "{name} has no admin_socket in {}",
            conf.display()
        )));
    }
    Ok(PathBuf::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_as_ceph_names_them() {
        assert_eq!("json-pretty".parse::<OutFormat>(), Ok(OutFormat::JsonPretty));
        assert_eq!("plain".parse::<OutFormat>(), Ok(OutFormat::Plain));
        assert!("xml".parse::<OutFormat>().is_err());
        assert!(OutFormat::Json.is_json() && !OutFormat::Plain.is_json());
    }

    #[test]
    fn the_conf_comes_from_c_then_the_environment_then_the_search_path() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.conf");
        let b = d.path().join("b.conf");
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        assert_eq!(find_conf_in(Some(&a), Some(b.clone()), None).unwrap(), a);
        assert_eq!(find_conf_in(None, Some(b.clone()), None).unwrap(), b);
        let gone = d.path().join("gone.conf");
        assert_eq!(find_conf_in(Some(&gone), None, None).unwrap_err().errno, libc::ENOENT);
        // The user's file, found through $HOME, when nothing else names one.
        std::fs::create_dir_all(d.path().join(".osdkit")).unwrap();
        let user = d.path().join(".osdkit/osdkit.conf");
        std::fs::write(&user, "").unwrap();
        let home = Some(d.path().as_os_str().to_owned());
        if !Path::new("osdkit.conf").exists() && !Path::new("osdkit-cluster/osdkit.conf").exists() {
            assert_eq!(find_conf_in(None, None, home).unwrap(), user);
            let e = find_conf_in(None, None, Some(d.path().join("nohome").into_os_string())).unwrap_err();
            assert!(e.msg.contains(CONF_ENV) && e.msg.contains("osdkit.conf"), "{}", e.msg);
        }
    }

    #[test]
    fn a_daemon_socket_is_found_by_its_name() {
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("c.conf");
        std::fs::write(
            &conf,
            "[global]\nrun_dir = /tmp/r\n[osd.3]\nadmin_socket = /tmp/x/$name.sock\n",
        )
        .unwrap();
        assert_eq!(
            asok_path_of("osd.0", &conf).unwrap(),
            PathBuf::from("/tmp/r/ceph-osd.0.asok")
        );
        assert_eq!(
            asok_path_of("osd.3", &conf).unwrap(),
            PathBuf::from("/tmp/x/osd.3.sock")
        );
        assert_eq!(asok_path_of("nonsense", &conf).unwrap_err().errno, libc::EINVAL);
    }

    #[test]
    fn a_failed_request_exits_with_its_errno() {
        assert_eq!(Error::noent("x").exit_code(), 2);
        assert_eq!(Error::new(-libc::ETIMEDOUT, "x").exit_code(), libc::ETIMEDOUT);
        assert_eq!(Error::new(0, "x").exit_code(), 1);
        assert_eq!(Error::new(4000, "x").exit_code(), 255);
    }
}
