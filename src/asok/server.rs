//! The `admin_socket` thread: a non-blocking Unix-socket server on one `mio::Poll`.
//!
//! Ceph serves one connection at a time, so a client that connects and sends nothing stalls
//! everyone for its timeout. Here every connection is read and written without blocking;
//! only running a hook is serial (hooks are expected to be quick, as in Ceph). Idle
//! connections are closed after `READ_TIMEOUT`, and past `MAX_CONNS` the oldest is dropped.

use super::AdminSocket;
use crate::common::error::{Error, Result};
use mio::net::{UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Requests longer than this without a terminator get an `ERROR:` reply. Ceph's limit is 1024
/// bytes; ours leaves room for long `config set` values and JSON arguments.
pub const MAX_REQUEST: usize = 64 * 1024;
pub const MAX_CONNS: usize = 256;
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// `sizeof(sun_path) - 1` on Linux.
pub const MAX_PATH: usize = 107;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);

pub struct Server {
    path: PathBuf,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Conn {
    stream: UnixStream,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    deadline: Instant,
    accepted: Instant,
}

/// Binds `path`, replacing a stale socket file only when nothing answers on it.
fn bind(path: &Path, mode: u32) -> Result<std::os::unix::net::UnixListener> {
    if path.as_os_str().len() > MAX_PATH {
        return Err(Error::new(
            libc::ENAMETOOLONG,
            format!("admin socket path {} is longer than {MAX_PATH} bytes", path.display()),
        ));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(e, format!("creating {}", dir.display())))?;
    }
    let l = match std::os::unix::net::UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            let md = std::fs::symlink_metadata(path).map_err(|e| Error::io(e, path.display()))?;
            if !md.file_type().is_socket() {
                return Err(Error::exists(format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                )));
            }
            if super::client::AdminSocketClient::new(path)
                .with_timeout(Duration::from_secs(1))
                .ping()
                .is_ok()
            {
                return Err(Error::exists(format!(
                    "admin socket {} is in use by a running daemon; not taking it over",
                    path.display()
                )));
            }
            log::info!(target: "asok", "removing stale admin socket {}", path.display());
            std::fs::remove_file(path).map_err(|e| Error::io(e, path.display()))?;
            std::os::unix::net::UnixListener::bind(path)
                .map_err(|e| Error::io(e, format!("bind {}", path.display())))?
        }
        Err(e) => return Err(Error::io(e, format!("bind {}", path.display()))),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(e, format!("chmod {}", path.display())))?;
    Ok(l)
}

impl Server {
    pub fn start(table: Weak<AdminSocket>, path: &Path, mode: u32) -> Result<Server> {
        let std_l = bind(path, mode)?;
        std_l.set_nonblocking(true)?;
        let mut listener = UnixListener::from_std(std_l);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let thread = crate::common::log::ThreadBuilder::new()
            .name("admin_socket".into())
            .spawn(move || serve(poll, listener, table, st))
            .map_err(|e| Error::io(e, "spawning admin_socket thread"))?;
        log::info!(target: "asok", "admin socket listening on {}", path.display());
        Ok(Server {
            path: path.to_path_buf(),
            waker,
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The legacy binary request: a 0 byte, then a big-endian u32 command code.
fn legacy_request(code: u32) -> &'static [u8] {
    match code {
        0 => br#"{"prefix":"0"}"#,
        1 => br#"{"prefix":"perfcounters_dump"}"#,
        2 => br#"{"prefix":"perfcounters_schema"}"#,
        _ => br#"{"prefix":"foo"}"#,
    }
}

enum Step {
    Keep,
    Reply(Vec<u8>),
    Close(&'static str),
}

/// Reads what is available; says whether a whole request arrived.
fn read_request(c: &mut Conn, table: &Weak<AdminSocket>) -> Step {
    let mut chunk = [0u8; 4096];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => return Step::Close("EOF before the request terminator"),
            Ok(n) => {
                let start = c.inbuf.len();
                c.inbuf.extend_from_slice(&chunk[..n]);
                let run = |req: &[u8]| match table.upgrade() {
                    Some(t) => Step::Reply(t.execute(req)),
                    None => Step::Close("admin socket is shutting down"),
                };
                if c.inbuf[0] == 0 {
                    if c.inbuf.len() >= 5 {
                        let code = u32::from_be_bytes([c.inbuf[1], c.inbuf[2], c.inbuf[3], c.inbuf[4]]);
                        return run(legacy_request(code));
                    }
                    continue;
                }
                if let Some(i) = c.inbuf[start..].iter().position(|b| *b == 0 || *b == b'\n') {
                    let req = c.inbuf[..start + i].to_vec();
                    return run(&req);
                }
                if c.inbuf.len() > MAX_REQUEST {
                    let e = Error::new(libc::EMSGSIZE, format!("request longer than {MAX_REQUEST} bytes"));
                    return Step::Reply(super::error_reply(&e).into_bytes());
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Keep,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Step::Close("read error"),
        }
    }
}

/// Writes what the socket takes; true when the whole reply is out.
fn write_some(c: &mut Conn) -> std::io::Result<bool> {
    while c.written < c.out.len() {
        match crate::common::net::send_vectored(
            std::os::fd::AsRawFd::as_raw_fd(&c.stream),
            &[std::io::IoSlice::new(&c.out[c.written..])],
        ) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn serve(mut poll: Poll, listener: UnixListener, table: Weak<AdminSocket>, stop: Arc<AtomicBool>) {
    let mut events = Events::with_capacity(256);
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut next_token = 2usize;
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(500))) {
            if e.kind() != ErrorKind::Interrupted {
                log::error!(target: "asok", "admin socket poll failed: {e}");
                return;
            }
        }
        for ev in events.iter() {
            match ev.token() {
                WAKER => {}
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            if conns.len() >= MAX_CONNS {
                                // Keep serving: drop the connection that has waited longest.
                                if let Some(&oldest) = conns.iter().min_by_key(|(_, c)| c.accepted).map(|(k, _)| k) {
                                    if let Some(mut c) = conns.remove(&oldest) {
                                        let _ = poll.registry().deregister(&mut c.stream);
                                    }
                                    log::warn!(target: "asok", "too many admin socket connections; dropped the oldest");
                                }
                            }
                            let tok = next_token;
                            next_token += 1;
                            if poll
                                .registry()
                                .register(&mut stream, Token(tok), Interest::READABLE)
                                .is_ok()
                            {
                                let now = Instant::now();
                                conns.insert(
                                    tok,
                                    Conn {
                                        stream,
                                        inbuf: Vec::new(),
                                        out: Vec::new(),
                                        written: 0,
                                        deadline: now + READ_TIMEOUT,
                                        accepted: now,
                                    },
                                );
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(e) => {
                            log::warn!(target: "asok", "admin socket accept failed: {e}");
                            break;
                        }
                    }
                },
                Token(t) => {
                    let Some(c) = conns.get_mut(&t) else { continue };
                    let mut close = false;
                    if c.out.is_empty() && (ev.is_readable() || ev.is_read_closed()) {
                        match read_request(c, &table) {
                            Step::Keep => {}
                            Step::Close(why) => {
                                log::debug!(target: "asok", "closing admin socket connection: {why}");
                                close = true;
                            }
                            Step::Reply(payload) => {
                                let mut out = Vec::with_capacity(4 + payload.len());
                                out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                                out.extend_from_slice(&payload);
                                c.out = out;
                                c.deadline = Instant::now() + WRITE_TIMEOUT;
                                let _ = poll.registry().reregister(&mut c.stream, Token(t), Interest::WRITABLE);
                            }
                        }
                    }
                    if !close && !c.out.is_empty() {
                        close = !matches!(write_some(c), Ok(false));
                    }
                    if close {
                        if let Some(mut c) = conns.remove(&t) {
                            let _ = poll.registry().deregister(&mut c.stream);
                        }
                    }
                }
            }
        }
        let now = Instant::now();
        conns.retain(|_, c| {
            let keep = c.deadline > now;
            if !keep {
                let _ = poll.registry().deregister(&mut c.stream);
            }
            keep
        });
    }
}
