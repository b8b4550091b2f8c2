//! Ceph command descriptors (`perf dump name=logger,type=CephString,req=false`): parsing,
//! argument validation on the server, the `get_command_descriptions` signature form, and the
//! word matching a CLI does with those signatures (`ceph daemon PATH perf dump osd`).

use crate::common::error::{Error, Result};
use crate::common::formatter::FVal;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDesc {
    /// Every `key=value` of the descriptor word, as strings (that is what the signature carries).
    pub fields: BTreeMap<String, String>,
}

impl ArgDesc {
    pub fn name(&self) -> &str {
        self.fields.get("name").map(String::as_str).unwrap_or("")
    }
    pub fn ty(&self) -> &str {
        self.fields.get("type").map(String::as_str).unwrap_or("CephString")
    }
    pub fn required(&self) -> bool {
        self.fields.get("req").is_none_or(|v| v != "false")
    }
    /// `n=N`: the argument takes every remaining word, as a list.
    pub fn repeated(&self) -> bool {
        self.fields.contains_key("n")
    }
    fn choices(&self) -> Vec<&str> {
        self.fields
            .get("strings")
            .map(|s| s.split('|').collect())
            .unwrap_or_default()
    }
    fn range(&self) -> (Option<f64>, Option<f64>) {
        let Some(r) = self.fields.get("range") else {
            return (None, None);
        };
        let mut it = r.split('|');
        (
            it.next().and_then(|v| v.parse().ok()),
            it.next().and_then(|v| v.parse().ok()),
        )
    }

    /// Checks one JSON value against this argument; the error says why.
    fn check_value(&self, v: &Value) -> std::result::Result<(), String> {
        if self.repeated() {
            if let Value::Array(items) = v {
                return items.iter().try_for_each(|i| self.check_scalar(i));
            }
        }
        self.check_scalar(v)
    }

    fn check_scalar(&self, v: &Value) -> std::result::Result<(), String> {
        let name = self.name();
        let in_range = |x: f64| {
            let (lo, hi) = self.range();
            if lo.is_some_and(|lo| x < lo) || hi.is_some_and(|hi| x > hi) {
                Err(format!("{name}: {x} out of range {}", self.fields["range"]))
            } else {
                Ok(())
            }
        };
        match self.ty() {
            "CephInt" => {
                let x = match v {
                    Value::Number(n) if n.is_i64() || n.is_u64() => n.as_f64().unwrap_or(0.0),
                    Value::String(s) => {
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| format!("{name}: '{s}' is not an integer"))? as f64
                    }
                    _ => return Err(format!("{name}: expected an integer")),
                };
                in_range(x)
            }
            "CephFloat" => {
                let x = match v {
                    Value::Number(n) => n.as_f64().unwrap_or(0.0),
                    Value::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .map_err(|_| format!("{name}: '{s}' is not a number"))?,
                    _ => return Err(format!("{name}: expected a number")),
                };
                in_range(x)
            }
            "CephBool" => match v {
                Value::Bool(_) => Ok(()),
                Value::String(s) if matches!(s.as_str(), "true" | "false") => Ok(()),
                _ => Err(format!("{name}: expected true or false")),
            },
            "CephChoices" => match v {
                Value::String(s) if self.choices().contains(&s.as_str()) => Ok(()),
                _ => Err(format!(
                    "{name}: expected one of {}",
                    self.fields.get("strings").cloned().unwrap_or_default()
                )),
            },
            _ => match v {
                Value::String(_) => Ok(()),
                _ => Err(format!("{name}: expected a string")),
            },
        }
    }

    /// Converts a CLI word to the JSON value the descriptor wants, or None if it does not fit.
    fn word_value(&self, w: &str) -> Option<Value> {
        let v = match self.ty() {
            "CephInt" => Value::from(w.parse::<i64>().ok()?),
            "CephFloat" => Value::from(w.parse::<f64>().ok()?),
            "CephBool" => Value::Bool(w.parse::<bool>().ok()?),
            _ => Value::String(w.to_string()),
        };
        self.check_scalar(&v).ok()?;
        Some(v)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdDesc {
    /// The literal words (the command's prefix).
    pub words: Vec<String>,
    pub args: Vec<ArgDesc>,
}

impl CmdDesc {
    /// Parses a descriptor: literal words, then `key=value,...` argument words.
    pub fn parse(desc: &str) -> Result<CmdDesc> {
        let mut words = Vec::new();
        let mut args = Vec::new();
        for w in desc.split_whitespace() {
            if w.contains('=') || w.contains(',') {
                let mut fields = BTreeMap::new();
                for kv in w.split(',') {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| Error::inval(format!("descriptor '{desc}': '{kv}' is not key=value")))?;
                    if k.is_empty() {
                        return Err(Error::inval(format!("descriptor '{desc}': empty key in '{w}'")));
                    }
                    fields.insert(k.to_string(), v.to_string());
                }
                let a = ArgDesc { fields };
                if a.name().is_empty() {
                    return Err(Error::inval(format!(
                        "descriptor '{desc}': argument '{w}' has no name="
                    )));
                }
                if args.iter().any(|b: &ArgDesc| b.name() == a.name()) {
                    return Err(Error::inval(format!(
                        "descriptor '{desc}': argument '{}' twice",
                        a.name()
                    )));
                }
                args.push(a);
            } else if !args.is_empty() {
                return Err(Error::inval(format!(
                    "descriptor '{desc}': literal word '{w}' after arguments"
                )));
            } else {
                words.push(w.to_string());
            }
        }
        if words.is_empty() {
            return Err(Error::inval(format!("descriptor '{desc}' has no command word")));
        }
        Ok(CmdDesc { words, args })
    }

    pub fn prefix(&self) -> String {
        self.words.join(" ")
    }

    /// Validates request arguments: required ones present, values of the declared type.
    pub fn validate(&self, args: &Map<String, Value>) -> std::result::Result<(), String> {
        for a in &self.args {
            match args.get(a.name()) {
                None if a.required() => return Err(format!("missing required argument '{}'", a.name())),
                None => {}
                Some(v) => a.check_value(v)?,
            }
        }
        Ok(())
    }

    /// The `sig` array of `get_command_descriptions`.
    pub fn sig(&self) -> FVal {
        let mut v: Vec<FVal> = self.words.iter().map(FVal::str).collect();
        for a in &self.args {
            v.push(FVal::Obj(
                a.fields.iter().map(|(k, v)| (k.clone(), FVal::str(v))).collect(),
            ));
        }
        FVal::Arr(v)
    }

    /// Reads a `sig` array back (what a client gets from `get_command_descriptions`).
    pub fn from_sig(sig: &Value) -> Option<CmdDesc> {
        let mut words = Vec::new();
        let mut args = Vec::new();
        for item in sig.as_array()? {
            match item {
                Value::String(s) => words.push(s.clone()),
                Value::Object(o) => args.push(ArgDesc {
                    fields: o
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(String::from).unwrap_or_else(|| v.to_string())))
                        .collect(),
                }),
                _ => return None,
            }
        }
        Some(CmdDesc { words, args })
    }

    /// Matches CLI words against this descriptor, giving the request's named arguments.
    /// An optional argument whose word does not fit its type is skipped, as Ceph's CLI does.
    pub fn match_words(&self, input: &[String]) -> Option<Map<String, Value>> {
        if input.len() < self.words.len() || input[..self.words.len()] != self.words[..] {
            return None;
        }
        let mut rest = &input[self.words.len()..];
        let mut out = Map::new();
        for a in &self.args {
            if rest.is_empty() {
                if a.required() {
                    return None;
                }
                continue;
            }
            if a.repeated() {
                let vals: Option<Vec<Value>> = rest.iter().map(|w| a.word_value(w)).collect();
                out.insert(a.name().to_string(), Value::Array(vals?));
                rest = &[];
                continue;
            }
            match a.word_value(&rest[0]) {
                Some(v) => {
                    out.insert(a.name().to_string(), v);
                    rest = &rest[1..];
                }
                None if a.required() => return None,
                None => {}
            }
        }
        rest.is_empty().then_some(out)
    }
}

/// Picks the signature CLI words match best (most literal words), and builds the request.
pub fn request_from_words(sigs: &[CmdDesc], words: &[String]) -> Option<Map<String, Value>> {
    let mut best: Option<(usize, &CmdDesc, Map<String, Value>)> = None;
    for s in sigs {
        if let Some(args) = s.match_words(words) {
            if best.as_ref().is_none_or(|(n, _, _)| s.words.len() > *n) {
                best = Some((s.words.len(), s, args));
            }
        }
    }
    let (_, s, mut args) = best?;
    args.insert("prefix".into(), Value::String(s.prefix()));
    Some(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_and_renders_signatures() {
        let d =
            CmdDesc::parse("perf dump name=logger,type=CephString,req=false name=counter,type=CephString,req=false")
                .unwrap();
        assert_eq!(d.prefix(), "perf dump");
        assert_eq!(d.args.len(), 2);
        assert!(!d.args[0].required());
        let sig = crate::common::formatter::render(&d.sig(), crate::common::formatter::Format::Json);
        assert_eq!(
            sig,
            r#"["perf","dump",{"name":"logger","req":"false","type":"CephString"},{"name":"counter","req":"false","type":"CephString"}]"#
        );
        let back = CmdDesc::from_sig(&serde_json::from_str(&sig).unwrap()).unwrap();
        assert_eq!(back, d);
        assert!(CmdDesc::parse("").is_err());
        assert!(CmdDesc::parse("name=x,type=CephString").is_err());
        assert!(CmdDesc::parse("echo type=CephString").is_err());
        assert!(CmdDesc::parse("echo name=a name=a").is_err());
        assert!(CmdDesc::parse("echo name=a,type=CephString word").is_err());
    }

    #[test]
    fn validates_arguments() {
        let d = CmdDesc::parse(
            "t name=i,type=CephInt,range=1|10 name=c,type=CephChoices,strings=a|b,req=false name=f,type=CephBool,req=false",
        )
        .unwrap();
        let m = |v: Value| v.as_object().unwrap().clone();
        assert!(d.validate(&m(json!({"i": 5}))).is_ok());
        assert!(d.validate(&m(json!({"i": "5", "c": "b", "f": true}))).is_ok());
        assert!(d.validate(&m(json!({}))).unwrap_err().contains("missing"));
        assert!(d.validate(&m(json!({"i": 11}))).unwrap_err().contains("range"));
        assert!(d.validate(&m(json!({"i": "x"}))).is_err());
        assert!(d.validate(&m(json!({"i": 1, "c": "z"}))).is_err());
        assert!(d.validate(&m(json!({"i": 1, "f": "maybe"}))).is_err());
    }

    #[test]
    fn matches_cli_words_like_ceph() {
        let sigs: Vec<CmdDesc> = [
            "perf dump name=logger,type=CephString,req=false name=counter,type=CephString,req=false",
            "perf schema",
            "config set name=var,type=CephString name=val,type=CephString,n=N",
            "config get name=var,type=CephString",
            "perf reset name=var,type=CephString",
            "bench name=count,type=CephInt,req=false name=size,type=CephInt,req=false",
        ]
        .iter()
        .map(|s| CmdDesc::parse(s).unwrap())
        .collect();
        let r = |s: &str| request_from_words(&sigs, &w(s)).map(Value::Object);
        assert_eq!(r("perf dump"), Some(json!({"prefix": "perf dump"})));
        assert_eq!(
            r("perf dump osd op_w"),
            Some(json!({"prefix": "perf dump", "logger": "osd", "counter": "op_w"}))
        );
        assert_eq!(
            r("config set debug_ms 5"),
            Some(json!({"prefix": "config set", "var": "debug_ms", "val": ["5"]}))
        );
        assert_eq!(
            r("bench 5 4096"),
            Some(json!({"prefix": "bench", "count": 5, "size": 4096}))
        );
        assert_eq!(r("config get"), None);
        assert_eq!(r("perf schema extra"), None);
        assert_eq!(r("nonsense"), None);
    }
}
