//! Configuration values: Ceph's layered config (default < mon < file < env < cmdline < override),
//! `ceph.conf` parsing, metavariable expansion and runtime observers.
//!
//! Each option keeps one value per level it was set at; the final value is the highest level's.
//! Keeping the layers (rather than overwriting) is what lets `config unset` fall back to the file's
//! value and `config diff` show where a value came from.

use super::entity::EntityName;
use super::error::{Error, Result};
use super::formatter::FVal;
use super::options::{self, normalize_key, OptDef, OptType};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// Where a value came from; later variants win.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfLevel {
    Default,
    Mon,
    File,
    Env,
    Cmdline,
    Override,
}

impl ConfLevel {
    pub const ALL: [ConfLevel; 6] = [
        ConfLevel::Default,
        ConfLevel::Mon,
        ConfLevel::File,
        ConfLevel::Env,
        ConfLevel::Cmdline,
        ConfLevel::Override,
    ];

    /// The names `config diff` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            ConfLevel::Default => "default",
            ConfLevel::Mon => "mon",
            ConfLevel::File => "file",
            ConfLevel::Env => "env",
            ConfLevel::Cmdline => "cmdline",
            ConfLevel::Override => "override",
        }
    }
}

/// A parsed value. `Size` options hold `Uint` (bytes), `Secs` options hold `Float` (seconds).
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// Told the keys (that it watches) whose final value changed.
pub type ObserverFn = Arc<dyn Fn(&[String]) + Send + Sync>;

/// `$var` chains longer than this are left unexpanded: a misconfiguration, not worth a stack overflow.
const MAX_EXPAND_DEPTH: usize = 8;

/// Variables that are not options (Ceph's `CONF_METAVARIABLES`, minus the ones we have no use for).
const METAVARIABLES: &[&str] = &["cluster", "type", "name", "host", "num", "id", "pid", "home"];

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Splits `123K` into the number and its suffix; the sign belongs to the number.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0)))
        .map_or(s.len(), |(i, _)| i);
    (&s[..end], s[end..].trim())
}

/// Integers with Ceph's optional SI suffix (`strict_si_cast`: K = 1000).
fn parse_si_int(s: &str) -> Option<i128> {
    let (num, suffix) = split_number(s.trim());
    let n: i128 = num.parse().ok()?;
    let exp = match suffix.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return None,
    };
    n.checked_mul(1000i128.pow(exp))
}

/// Byte counts with Ceph's IEC suffixes (`strict_iec_cast`): `4K`, `4KiB`, `4KB` all mean 4096.
fn parse_size(s: &str) -> Option<u64> {
    let (num, suffix) = split_number(s.trim());
    if num.starts_with('-') || num.contains('.') {
        return None;
    }
    let n: u128 = num.trim_start_matches('+').parse().ok()?;
    let mut unit = suffix.to_ascii_uppercase();
    if unit.len() > 1 && unit.ends_with('B') {
        unit.pop();
    }
    if unit.len() > 1 && unit.ends_with('I') {
        unit.pop();
    }
    let exp = match unit.as_str() {
        "" | "B" => 0,
        "K" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        "P" => 5,
        "E" => 6,
        _ => return None,
    };
    u64::try_from(n.checked_mul(1024u128.pow(exp))?).ok()
}

/// Seconds, optionally with a unit: `30`, `1.5`, `30s`, `5m`, `2h`, `1d`.
fn parse_secs(s: &str) -> Option<f64> {
    let (num, unit) = split_number(s.trim());
    let n: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return None,
    };
    let v = n * mult;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Parses and checks a value for `def`: type, range, allowed values and the option's own validator.
pub fn parse_value(def: &OptDef, raw: &str) -> Result<OptValue> {
    let name = &def.name;
    let s = raw.trim();
    let bad = |what: &str| Error::inval(format!("{name}: '{raw}' is not {what}"));
    let v = match def.ty {
        OptType::Str => {
            let v = match def.validator {
                Some(check) => check(raw).map_err(|e| Error::inval(format!("{name}: {}", e.msg)))?,
                None => raw.to_string(),
            };
            if !def.enum_values.is_empty() && !def.enum_values.contains(&v.as_str()) {
                return Err(Error::inval(format!(
                    "{name}: '{raw}' is not one of the allowed values: {}",
                    def.enum_values.join(", ")
                )));
            }
            OptValue::Str(v)
        }
        OptType::Bool => OptValue::Bool(parse_bool(s).ok_or_else(|| bad("a boolean (true/false/yes/no/1/0)"))?),
        OptType::Int => {
            let n = parse_si_int(s).ok_or_else(|| bad("an integer"))?;
            OptValue::Int(i64::try_from(n).map_err(|_| bad("an integer in the 64-bit range"))?)
        }
        OptType::Uint => {
            let n = parse_si_int(s).ok_or_else(|| bad("a non-negative integer"))?;
            OptValue::Uint(u64::try_from(n).map_err(|_| bad("a non-negative integer in the 64-bit range"))?)
        }
        OptType::Size => {
            OptValue::Uint(parse_size(s).ok_or_else(|| bad("a size in bytes (e.g. 4096, 64K, 100M, 1G)"))?)
        }
        OptType::Float => {
            let f: f64 = s.parse().map_err(|_| bad("a number"))?;
            if !f.is_finite() {
                return Err(bad("a finite number"));
            }
            OptValue::Float(f)
        }
        OptType::Secs => OptValue::Float(parse_secs(s).ok_or_else(|| bad("a duration in seconds (e.g. 30, 1.5, 5m)"))?),
    };
    let n = match v {
        OptValue::Int(i) => i as f64,
        OptValue::Uint(u) => u as f64,
        OptValue::Float(f) => f,
        _ => return Ok(v),
    };
    if let Some(min) = def.min.filter(|&m| n < m) {
        return Err(Error::inval(format!("{name}: value {s} is below the minimum {min}")));
    }
    if let Some(max) = def.max.filter(|&m| n > m) {
        return Err(Error::inval(format!("{name}: value {s} is above the maximum {max}")));
    }
    Ok(v)
}

/// The text Ceph prints for a value (`Option::to_str`): floats as C's `%f`, sizes in bytes.
/// `Secs` print as plain seconds so the text parses back.
fn format_value(ty: OptType, v: &OptValue) -> String {
    match v {
        OptValue::Str(s) => s.clone(),
        OptValue::Bool(b) => b.to_string(),
        OptValue::Int(i) => i.to_string(),
        OptValue::Uint(u) => u.to_string(),
        OptValue::Float(f) if ty == OptType::Secs => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                format!("{f}")
            }
        }
        OptValue::Float(f) => format!("{f:.6}"),
    }
}

fn zero_value(ty: OptType) -> OptValue {
    match ty {
        OptType::Str => OptValue::Str(String::new()),
        OptType::Bool => OptValue::Bool(false),
        OptType::Int => OptValue::Int(0),
        OptType::Uint | OptType::Size => OptValue::Uint(0),
        OptType::Float | OptType::Secs => OptValue::Float(0.0),
    }
}

/// Parsed compiled-in defaults, indexed like `options::all()`.
static DEFAULTS: LazyLock<Vec<OptValue>> = LazyLock::new(|| {
    options::all()
        .iter()
        .map(|d| {
            parse_value(d, &d.default).unwrap_or_else(|e| {
                // A table bug; the options tests catch it, so a daemon never runs with it.
                log::error!("bad default for option {}: {e}", d.name);
                zero_value(d.ty)
            })
        })
        .collect()
});

/// Values set per level. A `Default` entry is this instance's default (Ceph's `set_val_default`,
/// e.g. no admin socket for library clients), which replaces the compiled-in one.
type Levels = BTreeMap<ConfLevel, OptValue>;

fn final_of(vals: &[Levels], i: usize) -> &OptValue {
    vals[i].values().next_back().unwrap_or(&DEFAULTS[i])
}

fn default_of(vals: &[Levels], i: usize) -> &OptValue {
    vals[i].get(&ConfLevel::Default).unwrap_or(&DEFAULTS[i])
}

/// Whether a value comes from a source other than a default.
fn is_configured(levels: &Levels) -> bool {
    levels.keys().any(|l| *l != ConfLevel::Default)
}

struct Observer {
    keys: Vec<String>,
    f: ObserverFn,
}

fn short_hostname() -> String {
    let full = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    full.split('.').next().unwrap_or(&full).to_string()
}

/// One `key = value` line of a config file.
struct IniEntry {
    section: String,
    key: String,
    value: String,
    line: usize,
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
fn parse_ini(text: &str) -> Result<(Vec<IniEntry>, Vec<String>)> {
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

/// The configuration of one daemon or client. All methods take `&self`; share it in an `Arc`.
pub struct Config {
    name: EntityName,
    cluster: String,
    hostname: String,
    values: RwLock<Vec<Levels>>,
    observers: Mutex<BTreeMap<u64, Observer>>,
    next_observer: AtomicU64,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn new(name: EntityName, cluster: &str) -> Config {
        Config {
            name,
            cluster: cluster.to_string(),
            hostname: short_hostname(),
            values: RwLock::new(vec![Levels::new(); options::all().len()]),
            observers: Mutex::new(BTreeMap::new()),
            next_observer: AtomicU64::new(1),
        }
    }

    pub fn name(&self) -> &EntityName {
        &self.name
    }

    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    fn index(key: &str) -> Result<usize> {
        options::index_of(key).ok_or_else(|| Error::noent(format!("no such configuration option '{}'", key.trim())))
    }

    /// Reads a `ceph.conf`-style file; see [`Config::parse_str`].
    pub fn parse_file(&self, path: &Path) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(e, format!("cannot read config file '{}'", path.display())))?;
        let prefix = |m: &str| format!("{}: {m}", path.display());
        self.parse_str(&text)
            .map(|w| w.iter().map(|m| prefix(m)).collect())
            .map_err(|e| Error::new(e.errno, prefix(&e.msg)))
    }

    /// Applies a config file's text at [`ConfLevel::File`] and returns warnings (unknown keys...).
    ///
    /// Only `[global]`, `[<type>]` and `[<type>.<id>]` apply, the more specific winning. A syntax
    /// error or an invalid value fails the whole text, so a daemon never starts half-configured.
    pub fn parse_str(&self, text: &str) -> Result<Vec<String>> {
        let (entries, mut warnings) = parse_ini(text)?;
        let ty = self.name.ty.as_str();
        let full = self.name.to_string();
        let rank = |section: &str| match section {
            "global" => Some(0),
            s if s == ty => Some(1),
            s if s == full => Some(2),
            _ => None,
        };
        // key → (rank, entry); later lines of the same rank win, as in Ceph.
        let mut chosen: BTreeMap<&str, (u8, &IniEntry)> = BTreeMap::new();
        for e in &entries {
            let Some(r) = rank(&e.section) else { continue };
            if options::index_of(&e.key).is_none() {
                warnings.push(format!(
                    "line {}: unknown option '{}' in [{}] ignored",
                    e.line, e.key, e.section
                ));
                continue;
            }
            match chosen.get(e.key.as_str()) {
                Some((old, _)) if *old > r => {}
                _ => {
                    chosen.insert(&e.key, (r, e));
                }
            }
        }
        let mut items = Vec::with_capacity(chosen.len());
        for (_, e) in chosen.values() {
            let i = Self::index(&e.key)?;
            let v = parse_value(&options::all()[i], &e.value)
                .map_err(|err| Error::inval(format!("line {}: {}", e.line, err.msg)))?;
            items.push((i, v));
        }
        let changed = self.apply(ConfLevel::File, items);
        self.notify(&changed);
        Ok(warnings)
    }

    /// Sets `key` at `level`. Observers of `key` are told if the final value changed.
    pub fn set_val(&self, key: &str, value: &str, level: ConfLevel) -> Result<()> {
        self.set_vals(&[(key, value)], level)
    }

    /// Sets several keys at once: all are checked before any is applied, and each observer is told
    /// once with every changed key it watches.
    pub fn set_vals(&self, kv: &[(&str, &str)], level: ConfLevel) -> Result<()> {
        let mut items = Vec::with_capacity(kv.len());
        for (k, v) in kv {
            let i = Self::index(k)?;
            items.push((i, parse_value(&options::all()[i], v)?));
        }
        let changed = self.apply(level, items);
        self.notify(&changed);
        Ok(())
    }

    /// Stores checked values and returns the names whose final value changed.
    fn apply(&self, level: ConfLevel, items: Vec<(usize, OptValue)>) -> Vec<String> {
        let mut vals = self.values.write();
        let mut before: BTreeMap<usize, OptValue> = BTreeMap::new();
        for (i, v) in items {
            before.entry(i).or_insert_with(|| final_of(&vals, i).clone());
            vals[i].insert(level, v);
        }
        before
            .into_iter()
            .filter(|(i, old)| final_of(&vals, *i) != old)
            .map(|(i, _)| options::all()[i].name.clone())
            .collect()
    }

    /// Removes the value set at `level`; returns whether there was one.
    pub fn rm_val(&self, key: &str, level: ConfLevel) -> Result<bool> {
        let i = Self::index(key)?;
        let (removed, changed) = {
            let mut vals = self.values.write();
            let old = final_of(&vals, i).clone();
            let removed = vals[i].remove(&level).is_some();
            (removed, *final_of(&vals, i) != old)
        };
        if changed {
            self.notify(&[options::all()[i].name.clone()]);
        }
        Ok(removed)
    }

    /// The final value; `Str` values have their metavariables expanded.
    pub fn get_val(&self, key: &str) -> Result<OptValue> {
        let i = Self::index(key)?;
        let vals = self.values.read();
        Ok(match final_of(&vals, i) {
            OptValue::Str(s) => OptValue::Str(self.expand(&vals, s, &mut vec![i])),
            v => v.clone(),
        })
    }

    /// The final value as `config get`/`config show` print it.
    pub fn get_val_str(&self, key: &str) -> Result<String> {
        let i = Self::index(key)?;
        let vals = self.values.read();
        Ok(self.value_string(&vals, i, &mut vec![i]))
    }

    fn get_or_warn(&self, key: &str) -> Option<OptValue> {
        match self.get_val(key) {
            Ok(v) => Some(v),
            Err(e) => {
                log::warn!("config: {}", e.msg);
                None
            }
        }
    }

    /// `get_val_str` for code that names a known option; "" (and a warning) if it is unknown.
    pub fn get_str(&self, key: &str) -> String {
        match self.get_val_str(key) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("config: {}", e.msg);
                String::new()
            }
        }
    }

    pub fn get_bool(&self, key: &str) -> bool {
        match self.get_or_warn(key) {
            Some(OptValue::Bool(b)) => b,
            Some(OptValue::Int(i)) => i != 0,
            Some(OptValue::Uint(u)) => u != 0,
            Some(OptValue::Float(f)) => f != 0.0,
            Some(OptValue::Str(s)) => parse_bool(&s).unwrap_or(false),
            None => false,
        }
    }

    /// Numeric getters convert between numeric types (saturating), so callers need not care
    /// whether Ceph declared an option `int` or `uint`.
    pub fn get_u64(&self, key: &str) -> u64 {
        match self.get_or_warn(key) {
            Some(OptValue::Uint(u)) => u,
            Some(OptValue::Int(i)) => u64::try_from(i).unwrap_or(0),
            Some(OptValue::Float(f)) => f as u64,
            Some(OptValue::Bool(b)) => u64::from(b),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0),
            None => 0,
        }
    }

    pub fn get_i64(&self, key: &str) -> i64 {
        match self.get_or_warn(key) {
            Some(OptValue::Int(i)) => i,
            Some(OptValue::Uint(u)) => i64::try_from(u).unwrap_or(i64::MAX),
            Some(OptValue::Float(f)) => f as i64,
            Some(OptValue::Bool(b)) => i64::from(b),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0),
            None => 0,
        }
    }

    pub fn get_f64(&self, key: &str) -> f64 {
        match self.get_or_warn(key) {
            Some(OptValue::Float(f)) => f,
            Some(OptValue::Int(i)) => i as f64,
            Some(OptValue::Uint(u)) => u as f64,
            Some(OptValue::Bool(b)) => f64::from(u8::from(b)),
            Some(OptValue::Str(s)) => s.trim().parse().unwrap_or(0.0),
            None => 0.0,
        }
    }

    /// Expands `$cluster`, `$name`, `$id`, `$type`, `$host`, `$pid`, `$home`, `$num` and any option
    /// name (`$run_dir`), also as `${var}`. Unknown variables and loops are left as written.
    pub fn expand_meta(&self, s: &str) -> String {
        let vals = self.values.read();
        self.expand(&vals, s, &mut Vec::new())
    }

    fn value_string(&self, vals: &[Levels], i: usize, stack: &mut Vec<usize>) -> String {
        match final_of(vals, i) {
            OptValue::Str(s) => self.expand(vals, s, stack),
            v => format_value(options::all()[i].ty, v),
        }
    }

    fn is_var(var: &str) -> bool {
        METAVARIABLES.contains(&var) || options::index_of(var).is_some()
    }

    fn resolve(&self, vals: &[Levels], var: &str, stack: &mut Vec<usize>) -> Option<String> {
        Some(match var {
            "cluster" => self.cluster.clone(),
            "type" => self.name.ty.as_str().to_string(),
            "name" => self.name.to_string(),
            "id" | "num" => self.name.id.clone(),
            "pid" => std::process::id().to_string(),
            "home" => std::env::var("HOME").unwrap_or_default(),
            "host" => match options::index_of("host").and_then(|i| self.option_var(vals, i, stack)) {
                Some(h) if !h.is_empty() => h,
                _ => self.hostname.clone(),
            },
            _ => return self.option_var(vals, options::index_of(var)?, stack),
        })
    }

    fn option_var(&self, vals: &[Levels], i: usize, stack: &mut Vec<usize>) -> Option<String> {
        if stack.contains(&i) || stack.len() >= MAX_EXPAND_DEPTH {
            log::warn!(
                "config: not expanding ${}: it refers to itself or nests too deep",
                options::all()[i].name
            );
            return None;
        }
        stack.push(i);
        let s = self.value_string(vals, i, stack);
        stack.pop();
        Some(s)
    }

    fn expand(&self, vals: &[Levels], s: &str, stack: &mut Vec<usize>) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(inner) = after.strip_prefix('{') {
                if let Some(end) = inner.find('}') {
                    match self.resolve(vals, &inner[..end], stack) {
                        Some(v) => out.push_str(&v),
                        None => out.push_str(&rest[pos..pos + end + 3]),
                    }
                    rest = &inner[end + 1..];
                    continue;
                }
            }
            let ident_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            // Ceph matches variables by prefix, so `$id_x` is `$id` followed by `_x`; prefer the longest.
            let var_len = (1..=ident_len).rev().find(|&n| Self::is_var(&after[..n]));
            match var_len.and_then(|n| Some((n, self.resolve(vals, &after[..n], stack)?))) {
                Some((n, v)) => {
                    out.push_str(&v);
                    rest = &after[n..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Registers `f` for changes of `keys`; returns an id for [`Config::remove_observer`].
    pub fn add_observer(&self, keys: &[&str], f: ObserverFn) -> u64 {
        let id = self.next_observer.fetch_add(1, Ordering::Relaxed);
        let keys = keys.iter().map(|k| normalize_key(k)).collect();
        self.observers.lock().insert(id, Observer { keys, f });
        id
    }

    /// A call already under way may still complete after this returns.
    pub fn remove_observer(&self, id: u64) {
        self.observers.lock().remove(&id);
    }

    pub fn is_observed(&self, key: &str) -> bool {
        let k = normalize_key(key);
        self.observers.lock().values().any(|o| o.keys.contains(&k))
    }

    /// Calls observers with no lock held, so they may read or even set config themselves.
    fn notify(&self, changed: &[String]) {
        if changed.is_empty() {
            return;
        }
        let calls: Vec<(ObserverFn, Vec<String>)> = self
            .observers
            .lock()
            .values()
            .filter_map(|o| {
                let mine: Vec<String> = changed.iter().filter(|k| o.keys.contains(k)).cloned().collect();
                (!mine.is_empty()).then(|| (o.f.clone(), mine))
            })
            .collect();
        for (f, keys) in calls {
            f(&keys);
        }
    }

    /// `config set <key> <val>...`: applies at [`ConfLevel::Override`] and returns Ceph's report.
    pub fn set_from_admin(&self, key: &str, vals: &[String]) -> Result<String> {
        let i = Self::index(key)?;
        let def = &options::all()[i];
        let value = vals.join(" ");
        self.set_val(&def.name, &value, ConfLevel::Override)?;
        let shown = {
            let vals = self.values.read();
            vals[i]
                .get(&ConfLevel::Override)
                .map(|v| format_value(def.ty, v))
                .unwrap_or(value)
        };
        let mut report = format!("{} = '{}' ", def.name, shown);
        if !self.is_observed(&def.name) {
            report.push_str("(not observed, change may require restart) ");
        }
        Ok(report)
    }

    /// `config show`: name, cluster, then every option's final value as a string.
    pub fn show(&self) -> FVal {
        let vals = self.values.read();
        let mut out = FVal::obj()
            .with("name", FVal::str(self.name.to_string()))
            .with("cluster", FVal::str(&self.cluster));
        for (i, d) in options::all().iter().enumerate() {
            out.push(d.name.clone(), FVal::str(self.value_string(&vals, i, &mut vec![i])));
        }
        out
    }

    /// `config diff`: options set above the default, with each level's value, the default and the final.
    pub fn diff(&self) -> FVal {
        let vals = self.values.read();
        let mut diff = FVal::obj();
        for (i, d) in options::all().iter().enumerate() {
            if !is_configured(&vals[i]) {
                continue;
            }
            let mut o = FVal::obj().with("default", FVal::str(format_value(d.ty, default_of(&vals, i))));
            for (level, v) in vals[i].iter().filter(|(l, _)| **l != ConfLevel::Default) {
                o.push(level.as_str(), FVal::str(format_value(d.ty, v)));
            }
            o.push("final", FVal::str(self.value_string(&vals, i, &mut vec![i])));
            diff.push(d.name.clone(), o);
        }
        FVal::obj().with("diff", diff)
    }

    /// Names of the options set at a level above the default, sorted.
    pub fn changed_keys_since_default(&self) -> Vec<String> {
        let vals = self.values.read();
        options::all()
            .iter()
            .enumerate()
            .filter(|(i, _)| is_configured(&vals[*i]))
            .map(|(_, d)| d.name.clone())
            .collect()
    }

    /// `config help [key]`: one option's schema, or `{"options": [...]}` for all.
    pub fn help(&self, key: Option<&str>) -> Result<FVal> {
        match key {
            Some(k) => {
                let i = options::index_of(k)
                    .ok_or_else(|| Error::noent(format!("No such configuration option '{}'", k.trim())))?;
                Ok(schema(i))
            }
            None => Ok(FVal::obj().with("options", FVal::Arr((0..options::all().len()).map(schema).collect()))),
        }
    }

    /// Applies `--key value` / `--key=value` (and `--flag`, `--no-flag` for booleans) at
    /// [`ConfLevel::Cmdline`]; returns the arguments that are not options, in order.
    pub fn parse_argv(&self, args: &[String]) -> Result<Vec<String>> {
        self.parse_args_at(args, ConfLevel::Cmdline)
    }

    /// [`Config::parse_argv`] at another level (`injectargs` uses [`ConfLevel::Override`]).
    /// Nothing is applied if any argument is bad.
    pub fn parse_args_at(&self, args: &[String], level: ConfLevel) -> Result<Vec<String>> {
        let mut rest = Vec::new();
        let mut items = Vec::new();
        let mut it = args.iter().peekable();
        while let Some(arg) = it.next() {
            if arg == "--" {
                rest.push(arg.clone());
                rest.extend(it.cloned());
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                rest.push(arg.clone());
                continue;
            };
            let (k, inline) = match body.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (body, None),
            };
            let negated = |k: &str| {
                let i = options::index_of(k.strip_prefix("no-").or_else(|| k.strip_prefix("no_"))?)?;
                (options::all()[i].ty == OptType::Bool).then_some(i)
            };
            let (i, value) = if let Some(i) = options::index_of(k) {
                let def = &options::all()[i];
                let value = match inline {
                    Some(v) => v.to_string(),
                    None if def.ty == OptType::Bool => match it.peek() {
                        Some(next) if parse_bool(next).is_some() => it.next().cloned().unwrap_or_default(),
                        _ => "true".to_string(),
                    },
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| Error::inval(format!("--{k} needs a value")))?,
                };
                (i, value)
            } else if let Some(i) = negated(k) {
                if inline.is_some() {
                    return Err(Error::inval(format!("--{k} takes no value")));
                }
                (i, "false".to_string())
            } else {
                rest.push(arg.clone());
                continue;
            };
            items.push((i, parse_value(&options::all()[i], &value)?));
        }
        let changed = self.apply(level, items);
        self.notify(&changed);
        Ok(rest)
    }
}

fn typed(ty: OptType, v: &OptValue) -> FVal {
    match v {
        OptValue::Str(s) => FVal::str(s),
        OptValue::Bool(b) => FVal::Bool(*b),
        OptValue::Int(i) => FVal::I64(*i),
        OptValue::Uint(u) => FVal::U64(*u),
        OptValue::Float(f) if ty == OptType::Secs && f.fract() == 0.0 => FVal::U64(*f as u64),
        OptValue::Float(f) => FVal::F64(*f),
    }
}

fn bound(ty: OptType, b: Option<f64>) -> FVal {
    match (ty, b) {
        (OptType::Int, Some(b)) => FVal::I64(b as i64),
        (OptType::Uint | OptType::Size, Some(b)) => FVal::U64(b as u64),
        (OptType::Float | OptType::Secs, Some(b)) => FVal::F64(b),
        _ => FVal::str(""),
    }
}

/// Ceph's `Option::dump` field order and shape.
fn schema(i: usize) -> FVal {
    let d = &options::all()[i];
    let strs = |v: &[&str]| FVal::Arr(v.iter().map(|s| FVal::str(*s)).collect());
    let flags: &[&str] = if d.runtime { &["runtime"] } else { &[] };
    FVal::obj()
        .with("name", FVal::str(&d.name))
        .with("type", FVal::str(d.ty.as_str()))
        .with("level", FVal::str(d.level.as_str()))
        .with("desc", FVal::str(&d.desc))
        .with("long_desc", FVal::str(&d.long_desc))
        .with("default", typed(d.ty, &DEFAULTS[i]))
        .with("daemon_default", FVal::str(""))
        .with("tags", FVal::Arr(Vec::new()))
        .with("services", strs(d.services))
        .with("see_also", strs(d.see_also))
        .with("enum_values", strs(d.enum_values))
        .with("min", bound(d.ty, d.min))
        .with("max", bound(d.ty, d.max))
        .with("can_update_at_runtime", FVal::Bool(d.runtime))
        .with("flags", strs(flags))
}

#[cfg(test)]
mod tests {
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
}
