//! Ceph's `JSONFormatter` output: a small value tree written compact (`json`) or pretty
//! (`json-pretty`: 4-space indent, `"key": value`, one member a line, a final newline).
//!
//! serde_json cannot print Ceph's time values (unquoted, exactly nine decimals), so replies are
//! built as `FVal` and written here.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq)]
pub enum FVal {
    Obj(Vec<(String, FVal)>),
    Arr(Vec<FVal>),
    Str(String),
    U64(u64),
    I64(i64),
    F64(f64),
    Bool(bool),
    Null,
    /// Already-formatted JSON text (time values, or a reply a C/Python hook returned).
    Raw(String),
}

impl FVal {
    pub fn obj() -> Self {
        FVal::Obj(Vec::new())
    }
    /// Appends a member to an object (no-op on other kinds, which is a caller bug caught in tests).
    pub fn push(&mut self, key: impl Into<String>, v: FVal) -> &mut Self {
        if let FVal::Obj(m) = self {
            m.push((key.into(), v));
        }
        self
    }
    pub fn with(mut self, key: impl Into<String>, v: FVal) -> Self {
        self.push(key, v);
        self
    }
    pub fn str(s: impl Into<String>) -> Self {
        FVal::Str(s.into())
    }
    /// Nanoseconds as Ceph prints a utime/timespan: `12.345678901`.
    pub fn time_ns(ns: u64) -> Self {
        FVal::Raw(format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000))
    }
}

impl From<&serde_json::Value> for FVal {
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value as V;
        match v {
            V::Null => FVal::Null,
            V::Bool(b) => FVal::Bool(*b),
            V::Number(n) => {
                if let Some(u) = n.as_u64() {
                    FVal::U64(u)
                } else if let Some(i) = n.as_i64() {
                    FVal::I64(i)
                } else {
                    FVal::F64(n.as_f64().unwrap_or(0.0))
                }
            }
            V::String(s) => FVal::Str(s.clone()),
            V::Array(a) => FVal::Arr(a.iter().map(FVal::from).collect()),
            V::Object(o) => FVal::Obj(o.iter().map(|(k, v)| (k.clone(), FVal::from(v))).collect()),
        }
    }
}

/// Output formats a request can ask for. Unknown or missing → `JsonPretty`, as in Ceph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    JsonPretty,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Format {
        match s {
            Some("json") => Format::Json,
            _ => Format::JsonPretty,
        }
    }
}

pub fn write_escaped(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_val(out: &mut String, v: &FVal, pretty: bool, depth: usize) {
    let indent = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            for _ in 0..d {
                out.push_str("    ");
            }
        }
    };
    match v {
        FVal::Obj(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_escaped(out, k);
                out.push_str(if pretty { ": " } else { ":" });
                write_val(out, v, pretty, depth + 1);
            }
            if !m.is_empty() {
                indent(out, depth);
            }
            out.push('}');
        }
        FVal::Arr(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                indent(out, depth + 1);
                write_val(out, v, pretty, depth + 1);
            }
            if !a.is_empty() {
                indent(out, depth);
            }
            out.push(']');
        }
        FVal::Str(s) => write_escaped(out, s),
        FVal::U64(n) => {
            let _ = write!(out, "{n}");
        }
        FVal::I64(n) => {
            let _ = write!(out, "{n}");
        }
        FVal::F64(f) => {
            if f.is_finite() {
                let _ = write!(out, "{f}");
            } else {
                out.push_str("null");
            }
        }
        FVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        FVal::Null => out.push_str("null"),
        FVal::Raw(r) => out.push_str(r),
    }
}

/// Writes `v` the way Ceph's JSONFormatter would flush it.
pub fn render(v: &FVal, fmt: Format) -> String {
    let mut out = String::new();
    let pretty = fmt == Format::JsonPretty;
    write_val(&mut out, v, pretty, 0);
    if pretty {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn pretty_matches_ceph_shape() {
        let v = FVal::obj()
            .with("a", FVal::U64(1))
            .with("t", FVal::time_ns(1_234_000_000))
            .with("o", FVal::obj().with("s", FVal::str("x\"y")));
        assert_eq!(
            render(&v, Format::JsonPretty),
            "{\n    \"a\": 1,\n    \"t\": 1.234000000,\n    \"o\": {\n        \"s\": \"x\\\"y\"\n    }\n}\n"
        );
        assert_eq!(
            render(&v, Format::Json),
            "{\"a\":1,\"t\":1.234000000,\"o\":{\"s\":\"x\\\"y\"}}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&render(&v, Format::JsonPretty)).unwrap();
        assert_eq!(parsed["t"].as_f64().unwrap(), 1.234);
        assert_eq!(render(&FVal::obj(), Format::Json), "{}");
    }
}
