//! One error type for the crate: an errno (as Ceph's functions return) plus a message.
//!
//! Ceph reports failures as negative errno values with a text beside them; keeping that shape
//! lets the admin socket print `ERROR: (22) Invalid argument` and the C ABI return `-EINVAL`
//! without a mapping table.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Positive errno value (`libc::EINVAL`, ...).
    pub errno: i32,
    pub msg: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The exit status of a command that failed with this error: its errno (1..=255), as
    /// Ceph's tools exit.
    pub fn exit_code(&self) -> i32 {
        self.errno.abs().clamp(1, 255)
    }

    pub fn new(errno: i32, msg: impl Into<String>) -> Self {
        Error {
            errno: errno.abs(),
            msg: msg.into(),
        }
    }
    pub fn inval(msg: impl Into<String>) -> Self {
        Self::new(libc::EINVAL, msg)
    }
    pub fn noent(msg: impl Into<String>) -> Self {
        Self::new(libc::ENOENT, msg)
    }
    pub fn exists(msg: impl Into<String>) -> Self {
        Self::new(libc::EEXIST, msg)
    }
    pub fn io(e: std::io::Error, what: impl fmt::Display) -> Self {
        Self::new(e.raw_os_error().unwrap_or(libc::EIO), format!("{what}: {e}"))
    }
    /// Ceph's `cpp_strerror`: `(22) Invalid argument`.
    pub fn strerror(&self) -> String {
        strerror(self.errno)
    }
}

/// `(errno) text`, as Ceph's `cpp_strerror` prints it.
pub fn strerror(errno: i32) -> String {
    let e = errno.abs();
    let text = std::io::Error::from_raw_os_error(e).to_string();
    // std appends " (os error N)"; Ceph prints only the C library's text.
    let text = match text.rfind(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    format!("({e}) {text}")
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.strerror(), self.msg)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(e.raw_os_error().unwrap_or(libc::EIO), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn strerror_matches_ceph() {
        assert_eq!(strerror(22), "(22) Invalid argument");
        assert_eq!(strerror(-2), "(2) No such file or directory");
    }
}
