//! Entity names: `osd.3`, `client.admin`, `mon.a`.

use super::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityType {
    Mon,
    Mds,
    Osd,
    Client,
    Mgr,
}

impl EntityType {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityType::Mon => "mon",
            EntityType::Mds => "mds",
            EntityType::Osd => "osd",
            EntityType::Client => "client",
            EntityType::Mgr => "mgr",
        }
    }
    /// Ceph's `CEPH_ENTITY_TYPE_*` wire values.
    pub fn wire_value(self) -> u8 {
        match self {
            EntityType::Mon => 0x01,
            EntityType::Mds => 0x02,
            EntityType::Osd => 0x04,
            EntityType::Client => 0x08,
            EntityType::Mgr => 0x10,
        }
    }
    /// Daemons get an admin socket by default; library clients do not (Ceph's rule).
    pub fn is_daemon(self) -> bool {
        !matches!(self, EntityType::Client)
    }
}

impl FromStr for EntityType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "mon" => EntityType::Mon,
            "mds" => EntityType::Mds,
            "osd" => EntityType::Osd,
            "client" => EntityType::Client,
            "mgr" => EntityType::Mgr,
            _ => return Err(Error::inval(format!("unknown entity type '{s}'"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityName {
    pub ty: EntityType,
    pub id: String,
}

impl EntityName {
    pub fn new(ty: EntityType, id: impl Into<String>) -> Self {
        EntityName { ty, id: id.into() }
    }
}

impl FromStr for EntityName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (ty, id) = s
            .split_once('.')
            .ok_or_else(|| Error::inval(format!("entity name '{s}' is not TYPE.ID (e.g. osd.3)")))?;
        if id.is_empty() || id.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(Error::inval(format!("entity name '{s}' has a bad id")));
        }
        Ok(EntityName {
            ty: ty.parse()?,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.ty.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse_and_print() {
        let n: EntityName = "osd.3".parse().unwrap();
        assert_eq!(n.ty, EntityType::Osd);
        assert_eq!(n.id, "3");
        assert_eq!(n.to_string(), "osd.3");
        assert_eq!(
            "client.admin".parse::<EntityName>().unwrap().to_string(),
            "client.admin"
        );
        assert!("osd".parse::<EntityName>().is_err());
        assert!("disk.1".parse::<EntityName>().is_err());
        assert!("osd.".parse::<EntityName>().is_err());
    }
}
