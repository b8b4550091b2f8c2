//! The `ceph.conf` reader: INI sections, `key = value` lines, comments, quoting and line
//! continuations, with errors that name the line.

use super::super::error::{Error, Result};
use super::super::options::normalize_key;

/// One `key = value` line of a config file.
pub(super) struct IniEntry {
    pub(super) section: String,
    pub(super) key: String,
    pub(super) value: String,
    pub(super) line: usize,
}

/// Whether `s` starts a comment: `#`/`;` at the start or after whitespace.
fn comment_start(s: &str) -> Option<usize> {
    let mut prev_ws = true;
    for (i, c) in s.char_indices() {
        if (c == '#' || c == ';') && prev_ws {
            return Some(i);
        }
        prev_ws = c.is_whitespace();
    }
    None
}

fn is_blank_or_comment(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.starts_with('#') || t.starts_with(';')
}

fn parse_ini_value(text: &str, line: usize) -> Result<String> {
    let t = text.trim();
    let Some(quoted) = t.strip_prefix('"') else {
        let end = comment_start(t).unwrap_or(t.len());
        return Ok(t[..end].trim_end().to_string());
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            '"' => {
                if !is_blank_or_comment(&quoted[i + 1..]) {
                    return Err(Error::inval(format!(
                        "line {line}: unexpected text after the closing quote"
                    )));
                }
                return Ok(out);
            }
            c => out.push(c),
        }
    }
    Err(Error::inval(format!("line {line}: quoted value has no closing '\"'")))
}

/// Syntax only: which sections matter is the caller's business.
pub(super) fn parse_ini(text: &str) -> Result<(Vec<IniEntry>, Vec<String>)> {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let mut section: Option<String> = None;
    let mut lines = text.lines().enumerate();
    while let Some((idx, first)) = lines.next() {
        let lineno = idx + 1;
        let mut logical = first.to_string();
        while logical.ends_with('\\') {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next),
                None => break,
            }
        }
        let t = logical.trim();
        if is_blank_or_comment(t) {
            continue;
        }
        if let Some(inner) = t.strip_prefix('[') {
            let close = inner
                .find(']')
                .ok_or_else(|| Error::inval(format!("line {lineno}: section header '{t}' has no closing ']'")))?;
            let name = inner[..close].trim();
            if name.is_empty() {
                return Err(Error::inval(format!("line {lineno}: empty section name")));
            }
            if !is_blank_or_comment(&inner[close + 1..]) {
                return Err(Error::inval(format!(
                    "line {lineno}: unexpected text after section header '[{name}]'"
                )));
            }
            section = Some(name.to_string());
            continue;
        }
        let (k, v) = t.split_once('=').ok_or_else(|| {
            Error::inval(format!(
                "line {lineno}: expected 'key = value' or '[section]', found '{t}'"
            ))
        })?;
        let key = normalize_key(k);
        if key.is_empty() {
            return Err(Error::inval(format!("line {lineno}: missing key before '='")));
        }
        let value = parse_ini_value(v, lineno)?;
        let section = match &section {
            Some(s) => s.clone(),
            None => {
                warnings.push(format!(
                    "line {lineno}: '{key}' is outside any section; treating it as [global]"
                ));
                "global".to_string()
            }
        };
        entries.push(IniEntry {
            section,
            key,
            value,
            line: lineno,
        });
    }
    Ok((entries, warnings))
}
