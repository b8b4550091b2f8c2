//! Admin socket client: what `ceph daemon` does, for `osdkit daemon`, tests and the
//! stale-socket check.

use super::cmddesc::{request_from_words, CmdDesc};
use crate::common::error::{Error, Result};
use serde_json::Value;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct AdminSocketClient {
    path: PathBuf,
    timeout: Duration,
}

impl AdminSocketClient {
    /// A client with Ceph's C++ client timeouts (5 s each way).
    pub fn new(path: impl AsRef<Path>) -> Self {
        AdminSocketClient {
            path: path.as_ref().to_path_buf(),
            timeout: Duration::from_secs(5),
        }
    }

    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sends `request` plus the NUL terminator, returns the reply payload.
    pub fn request_raw(&self, request: &[u8]) -> Result<Vec<u8>> {
        let ctx = |e: std::io::Error| Error::io(e, format!("admin socket {}", self.path.display()));
        let mut s = UnixStream::connect(&self.path).map_err(ctx)?;
        s.set_read_timeout(Some(self.timeout)).map_err(ctx)?;
        s.set_write_timeout(Some(self.timeout)).map_err(ctx)?;
        let mut msg = request.to_vec();
        msg.push(0);
        crate::common::net::send_all(std::os::fd::AsRawFd::as_raw_fd(&s), &msg).map_err(ctx)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)
            .map_err(|e| Error::io(e, "no data returned from admin socket"))?;
        let len = u32::from_be_bytes(len) as usize;
        let mut out = vec![0u8; len];
        s.read_exact(&mut out).map_err(ctx)?;
        Ok(out)
    }

    /// Sends a JSON request, returns the reply text (which may be an `ERROR:` payload).
    pub fn request(&self, v: &Value) -> Result<String> {
        let raw = self.request_raw(v.to_string().as_bytes())?;
        String::from_utf8(raw).map_err(|_| Error::inval("admin socket reply is not UTF-8"))
    }

    /// Ceph's liveness check: `0` answers `2`.
    pub fn ping(&self) -> Result<()> {
        match self.request_raw(br#"{"prefix":"0"}"#)?.as_slice() {
            b"2" => Ok(()),
            other => Err(Error::inval(format!(
                "unexpected ping reply {:?}",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// The daemon's command signatures.
    pub fn command_descriptions(&self) -> Result<Vec<CmdDesc>> {
        let v: Value = serde_json::from_str(&self.request(&serde_json::json!({"prefix": "get_command_descriptions"}))?)
            .map_err(|e| Error::inval(format!("bad get_command_descriptions reply: {e}")))?;
        let o = v
            .as_object()
            .ok_or_else(|| Error::inval("get_command_descriptions did not return an object"))?;
        Ok(o.values().filter_map(|c| CmdDesc::from_sig(&c["sig"])).collect())
    }

    /// What `ceph daemon PATH WORDS...` does: match the words against the daemon's signatures,
    /// send the request, return the reply.
    pub fn run_words(&self, words: &[String], format: Option<&str>) -> Result<String> {
        let sigs = self.command_descriptions()?;
        let mut req = request_from_words(&sigs, words).ok_or_else(|| {
            Error::inval(format!(
                "invalid command: '{}' matches no command of this daemon",
                words.join(" ")
            ))
        })?;
        if let Some(f) = format {
            req.insert("format".into(), Value::String(f.into()));
        }
        self.request(&Value::Object(req))
    }
}

/// The error an admin socket's reply reports, if it is Ceph's `ERROR: (errno) strerror\ntext`
/// (errno `EIO` when it names none): the errno and the daemon's text.
pub fn reply_error(reply: &str) -> Option<Error> {
    let rest = reply.strip_prefix("ERROR:")?.trim_start();
    let (errno, text) = match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
        Some((n, t)) => (n.parse::<i32>().ok().map_or(libc::EIO, |n| n.abs().max(1)), t),
        None => (libc::EIO, rest),
    };
    Some(Error::new(errno, text.trim().to_string()))
}

#[cfg(test)]
mod reply_tests {
    use super::reply_error;

    #[test]
    fn error_replies_give_their_errno_and_text() {
        let e = reply_error("ERROR: (2) No such file or directory\nosd.9 is not hosted here\n").unwrap();
        assert_eq!(e.errno, libc::ENOENT);
        assert!(e.msg.ends_with("osd.9 is not hosted here"), "{}", e.msg);
        assert_eq!(reply_error("ERROR: something").unwrap().errno, libc::EIO);
        assert!(reply_error("{\"osds\": []}").is_none());
    }
}
