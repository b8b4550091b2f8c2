//! The admin socket: Ceph's command table and its Unix-socket server, byte-compatible with
//! `ceph --admin-daemon` (reference §1).
//!
//! Commands are registered with Ceph descriptors; a request is one JSON object; the reply is
//! whatever the hook produced, or `ERROR: (errno) text\n<why>\n`. The table is usable without
//! the socket (`execute`), which is how in-process callers and tests reach it.

pub mod client;
pub mod cmddesc;
pub mod server;

use crate::common::error::{strerror, Error, Result};
use crate::common::formatter::{render, FVal, Format};
use cmddesc::CmdDesc;
use parking_lot::{Condvar, Mutex};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// `CEPH_ADMIN_SOCK_VERSION`: what command `0` answers.
pub const ADMIN_SOCK_VERSION: &str = "2";

/// A parsed request as a hook sees it.
pub struct Request<'a> {
    pub prefix: &'a str,
    /// The named arguments (everything but `prefix` and `format`).
    pub args: &'a Map<String, Value>,
    pub format: Format,
}

impl Request<'_> {
    /// A string argument, or a list of strings joined with spaces (`n=N` arguments).
    pub fn arg_str(&self, name: &str) -> Option<String> {
        match self.args.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            v => Some(v.to_string()),
        }
    }
    /// Renders a reply in the format the request asked for.
    pub fn render(&self, v: &FVal) -> String {
        render(v, self.format)
    }
}

/// What a command runs. The reply text is sent as-is; an error becomes Ceph's `ERROR:` header.
pub trait AdminSocketHook: Send + Sync {
    fn call(&self, req: &Request<'_>) -> Result<String>;
}

impl<F> AdminSocketHook for F
where
    F: Fn(&Request<'_>) -> Result<String> + Send + Sync,
{
    fn call(&self, req: &Request<'_>) -> Result<String> {
        self(req)
    }
}

struct Command {
    id: u64,
    desc: CmdDesc,
    raw_desc: String,
    help: String,
    hook: Arc<dyn AdminSocketHook>,
    busy: Arc<(Mutex<usize>, Condvar)>,
}

thread_local! {
    /// Commands whose hook runs on this thread, so unregistering from inside a hook does not
    /// wait for itself.
    static IN_HOOK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// The command table plus, once `init` ran, the socket server.
pub struct AdminSocket {
    cmds: Mutex<Vec<Command>>,
    next_id: AtomicU64,
    server: Mutex<Option<server::Server>>,
    version: FVal,
}

/// What `version` answers: Ceph's shape, our version.
pub fn version_fval() -> FVal {
    FVal::obj()
        .with("version", FVal::str(crate::VERSION))
        .with("release", FVal::str("osdkit"))
        .with(
            "release_type",
            FVal::str(if cfg!(debug_assertions) { "dev" } else { "stable" }),
        )
}

pub fn git_version() -> &'static str {
    option_env!("OSDKIT_GIT_VERSION").unwrap_or("unknown")
}

impl AdminSocket {
    /// A table holding the socket's own built-ins: `0`, `version`, `git_version`, `help`,
    /// `get_command_descriptions`.
    pub fn new() -> Arc<AdminSocket> {
        let a = Arc::new(AdminSocket {
            cmds: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            server: Mutex::new(None),
            version: version_fval(),
        });
        let reg = |desc: &str, help: &str, f: fn(&AdminSocket, &Request<'_>) -> Result<String>| {
            let w: Weak<AdminSocket> = Arc::downgrade(&a);
            let hook = move |r: &Request<'_>| match w.upgrade() {
                Some(a) => f(&a, r),
                None => Err(Error::new(libc::ESHUTDOWN, "admin socket is shutting down")),
            };
            a.register_command(desc, help, Arc::new(hook))
                .expect("built-in descriptors are valid");
        };
        reg("0", "", |_, _| Ok(ADMIN_SOCK_VERSION.into()));
        reg("version", "get ceph version", |a, r| Ok(r.render(&a.version)));
        reg("git_version", "get git sha1", |_, r| {
            Ok(r.render(&FVal::obj().with("git_version", FVal::str(git_version()))))
        });
        reg("help", "list available commands", |a, r| Ok(r.render(&a.help_fval())));
        reg("get_command_descriptions", "list available commands", |a, r| {
            Ok(r.render(&a.descriptions()))
        });
        a
    }

    /// Registers a command. `-EEXIST` if the same descriptor is already registered, `-EINVAL`
    /// for a malformed descriptor. Returns an id for `unregister_command`.
    pub fn register_command(&self, desc: &str, help: &str, hook: Arc<dyn AdminSocketHook>) -> Result<u64> {
        let parsed = CmdDesc::parse(desc)?;
        let mut cmds = self.cmds.lock();
        if cmds.iter().any(|c| c.desc == parsed) {
            return Err(Error::exists(format!("command '{desc}' is already registered")));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        cmds.push(Command {
            id,
            desc: parsed,
            raw_desc: desc.to_string(),
            help: help.to_string(),
            hook,
            busy: Arc::new((Mutex::new(0), Condvar::new())),
        });
        Ok(id)
    }

    /// Removes a command, waiting for a call of it in flight (unless called from that call).
    /// The hook is dropped once no call holds it.
    pub fn unregister_command(&self, id: u64) -> bool {
        let removed = {
            let mut cmds = self.cmds.lock();
            cmds.iter().position(|c| c.id == id).map(|i| cmds.remove(i))
        };
        let Some(cmd) = removed else { return false };
        if !IN_HOOK.with(|h| h.borrow().contains(&id)) {
            let (m, cv) = &*cmd.busy;
            let mut n = m.lock();
            while *n > 0 {
                cv.wait(&mut n);
            }
        }
        true
    }

    /// Removes the command registered with exactly this descriptor (see `unregister_command`).
    pub fn unregister_descriptor(&self, desc: &str) -> bool {
        let Ok(parsed) = CmdDesc::parse(desc) else { return false };
        let id = self.cmds.lock().iter().find(|c| c.desc == parsed).map(|c| c.id);
        id.is_some_and(|id| self.unregister_command(id))
    }

    /// Registered prefixes and help, as `help` answers (hidden when help is empty).
    fn help_fval(&self) -> FVal {
        let mut v: Vec<(String, String)> = self
            .cmds
            .lock()
            .iter()
            .filter(|c| !c.help.is_empty())
            .map(|c| (c.desc.prefix(), c.help.clone()))
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        FVal::Obj(v.into_iter().map(|(k, h)| (k, FVal::Str(h))).collect())
    }

    /// `get_command_descriptions`: `cmdNNN` entries in sorted-prefix order.
    pub fn descriptions(&self) -> FVal {
        let cmds = self.cmds.lock();
        let mut v: Vec<(String, &Command)> = cmds.iter().map(|c| (c.raw_desc.clone(), c)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        FVal::Obj(
            v.iter()
                .enumerate()
                .map(|(i, (_, c))| {
                    (
                        format!("cmd{i:03}"),
                        FVal::obj().with("sig", c.desc.sig()).with("help", FVal::str(&c.help)),
                    )
                })
                .collect(),
        )
    }

    /// Runs one raw request (the bytes before the terminator) and returns the reply payload.
    pub fn execute(&self, request: &[u8]) -> Vec<u8> {
        match self.execute_inner(request) {
            Ok(s) => s.into_bytes(),
            Err(e) => error_reply(&e).into_bytes(),
        }
    }

    /// Runs a request given as JSON; the error carries the errno and the reason.
    pub fn execute_json(&self, v: &Value) -> Result<String> {
        let obj = v.as_object().ok_or_else(|| Error::inval("invalid json"))?;
        self.dispatch(obj)
    }

    fn execute_inner(&self, request: &[u8]) -> Result<String> {
        let v: Value = serde_json::from_slice(request).map_err(|_| Error::inval("invalid json"))?;
        let obj = v.as_object().ok_or_else(|| Error::inval("invalid json"))?;
        self.dispatch(obj)
    }

    fn dispatch(&self, obj: &Map<String, Value>) -> Result<String> {
        if !obj.values().all(valid_cmdmap_value) {
            return Err(Error::inval("invalid json"));
        }
        let (Some(Value::String(prefix)), true) = (obj.get("prefix"), obj.get("format").is_none_or(|f| f.is_string()))
        else {
            return Err(Error::inval("invalid json, missing format and/or prefix"));
        };
        let format = Format::parse(obj.get("format").and_then(Value::as_str));
        let mut args = obj.clone();
        args.remove("prefix");
        args.remove("format");
        let (id, hook, busy) = {
            let cmds = self.cmds.lock();
            let mut candidates = cmds.iter().filter(|c| c.desc.prefix() == *prefix).peekable();
            if candidates.peek().is_none() {
                return Err(Error::inval(format!("unknown command prefix {prefix}")));
            }
            let Some(c) = candidates.find(|c| c.desc.validate(&args).is_ok()) else {
                return Err(Error::inval("invalid command json"));
            };
            *c.busy.0.lock() += 1;
            (c.id, c.hook.clone(), c.busy.clone())
        };
        IN_HOOK.with(|h| h.borrow_mut().push(id));
        let req = Request {
            prefix,
            args: &args,
            format,
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook.call(&req)))
            .unwrap_or_else(|_| Err(Error::new(libc::EFAULT, format!("command '{prefix}' panicked"))));
        IN_HOOK.with(|h| h.borrow_mut().retain(|x| *x != id));
        drop(hook);
        let (m, cv) = &*busy;
        *m.lock() -= 1;
        cv.notify_all();
        r
    }

    /// Binds the socket at `path` (mode `mode`) and starts the `admin_socket` thread.
    pub fn init(self: &Arc<Self>, path: &Path, mode: u32) -> Result<()> {
        let mut s = self.server.lock();
        if s.is_some() {
            return Err(Error::exists("admin socket already started"));
        }
        *s = Some(server::Server::start(Arc::downgrade(self), path, mode)?);
        Ok(())
    }

    pub fn path(&self) -> Option<PathBuf> {
        self.server.lock().as_ref().map(|s| s.path().to_path_buf())
    }

    /// Stops the server and removes the socket file. The command table stays.
    pub fn shutdown(&self) {
        let s = self.server.lock().take();
        if let Some(s) = s {
            s.stop();
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        if let Some(s) = self.server.get_mut().take() {
            s.stop();
        }
    }
}

/// Ceph's error payload: `ERROR: (22) Invalid argument\n<why>\n`.
pub fn error_reply(e: &Error) -> String {
    format!("ERROR: {}\n{}\n", strerror(e.errno), e.msg)
}

/// Ceph's `cmdmap_from_json` rule: scalars, or arrays of one scalar kind; no nested objects.
fn valid_cmdmap_value(v: &Value) -> bool {
    match v {
        Value::Object(_) | Value::Null => false,
        Value::Array(a) => {
            a.iter().all(|x| x.is_string())
                || a.iter().all(|x| x.is_i64() || x.is_u64())
                || a.iter().all(|x| x.is_number())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn echo() -> Arc<dyn AdminSocketHook> {
        Arc::new(|r: &Request<'_>| Ok(format!("{}:{}", r.prefix, r.arg_str("msg").unwrap_or_default())))
    }

    #[test]
    fn built_ins_and_errors_match_ceph() {
        let a = AdminSocket::new();
        assert_eq!(a.execute(br#"{"prefix":"0"}"#), b"2");
        let v: Value = serde_json::from_slice(&a.execute(br#"{"prefix":"version","format":"json"}"#)).unwrap();
        assert_eq!(v["version"], crate::VERSION);
        assert_eq!(a.execute(b"{nope"), b"ERROR: (22) Invalid argument\ninvalid json\n");
        assert_eq!(a.execute(b"[1]"), b"ERROR: (22) Invalid argument\ninvalid json\n");
        assert_eq!(
            a.execute(br#"{"prefix":{"a":1}}"#),
            b"ERROR: (22) Invalid argument\ninvalid json\n"
        );
        assert_eq!(
            a.execute(br#"{"prefix":5}"#),
            b"ERROR: (22) Invalid argument\ninvalid json, missing format and/or prefix\n"
        );
        assert_eq!(
            a.execute(br#"{"prefix":"nonexistent"}"#),
            b"ERROR: (22) Invalid argument\nunknown command prefix nonexistent\n"
        );
    }

    #[test]
    fn register_validate_describe_unregister() {
        let a = AdminSocket::new();
        let id = a
            .register_command("echo name=msg,type=CephString", "echo a message", echo())
            .unwrap();
        assert_eq!(
            a.register_command("echo name=msg,type=CephString", "again", echo())
                .unwrap_err()
                .errno,
            libc::EEXIST
        );
        assert_eq!(
            a.register_command("echo name=", "bad", echo()).unwrap_err().errno,
            libc::EINVAL
        );
        assert_eq!(
            a.execute_json(&json!({"prefix": "echo", "msg": "hi"})).unwrap(),
            "echo:hi"
        );
        assert_eq!(
            a.execute(br#"{"prefix":"echo"}"#),
            b"ERROR: (22) Invalid argument\ninvalid command json\n"
        );
        let d: Value = serde_json::from_str(&render(&a.descriptions(), Format::Json)).unwrap();
        let sigs: Vec<&Value> = d.as_object().unwrap().values().map(|c| &c["sig"]).collect();
        assert!(sigs.contains(&&json!(["echo", {"name": "msg", "type": "CephString"}])));
        assert!(d.get("cmd000").is_some());
        let help: Value = serde_json::from_slice(&a.execute(br#"{"prefix":"help","format":"json"}"#)).unwrap();
        assert_eq!(help["echo"], "echo a message");
        assert!(help.get("0").is_none(), "empty help hides a command");
        assert!(a.unregister_command(id));
        assert!(!a.unregister_command(id));
        assert!(String::from_utf8(a.execute(br#"{"prefix":"echo","msg":"x"}"#))
            .unwrap()
            .contains("unknown command"));
    }

    #[test]
    fn hook_errors_and_panics_become_error_replies() {
        let a = AdminSocket::new();
        a.register_command(
            "fail",
            "x",
            Arc::new(|_: &Request<'_>| Err(Error::noent("no such thing"))),
        )
        .unwrap();
        a.register_command(
            "boom",
            "x",
            Arc::new(|_: &Request<'_>| -> Result<String> { panic!("boom") }),
        )
        .unwrap();
        assert_eq!(
            a.execute(br#"{"prefix":"fail"}"#),
            b"ERROR: (2) No such file or directory\nno such thing\n"
        );
        assert!(String::from_utf8(a.execute(br#"{"prefix":"boom"}"#))
            .unwrap()
            .starts_with("ERROR: (14)"));
        assert_eq!(a.execute(br#"{"prefix":"0"}"#), b"2");
    }

    #[test]
    fn unregister_from_inside_the_hook_does_not_deadlock() {
        let a = AdminSocket::new();
        let slot = Arc::new(Mutex::new(0u64));
        let (w, s) = (Arc::downgrade(&a), slot.clone());
        let id = a
            .register_command(
                "selfdestruct",
                "x",
                Arc::new(move |_: &Request<'_>| {
                    let a = w.upgrade().unwrap();
                    Ok(a.unregister_command(*s.lock()).to_string())
                }),
            )
            .unwrap();
        *slot.lock() = id;
        assert_eq!(a.execute(br#"{"prefix":"selfdestruct"}"#), b"true");
    }
}
