//! Who asked, from where, and when: stored as the metadata of every event a command writes.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};

/// Metadata keys as stored in `events.metadata`; never rename them.
pub mod keys {
    pub const USER_ID: &str = "user_id";
    pub const TENANT_ID: &str = "tenant_id";
    pub const CLIENT_IP: &str = "client_ip";
    pub const USER_AGENT: &str = "user_agent";
    pub const CORRELATION_ID: &str = "correlation_id";
    pub const COMMAND: &str = "command";
    pub const TIME: &str = "time";
}

/// The context of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandMetadata {
    pub user_id: String,
    pub tenant_id: String,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id`.
    pub correlation_id: String,
    pub time: DateTime<Utc>,
}

impl CommandMetadata {
    /// The map stored with each event; `command` names the command that produced it.
    pub fn to_map(&self, command: &str) -> HashMap<String, String> {
        let mut map = HashMap::from([
            (keys::USER_ID.to_owned(), self.user_id.clone()),
            (keys::TENANT_ID.to_owned(), self.tenant_id.clone()),
            (keys::CORRELATION_ID.to_owned(), self.correlation_id.clone()),
            (keys::COMMAND.to_owned(), command.to_owned()),
            (
                keys::TIME.to_owned(),
                self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
        ]);
        if let Some(ip) = &self.client_ip {
            map.insert(keys::CLIENT_IP.to_owned(), ip.clone());
        }
        if let Some(agent) = &self.user_agent {
            map.insert(keys::USER_AGENT.to_owned(), agent.clone());
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_fields_are_left_out_when_absent() {
        let meta = CommandMetadata {
            user_id: "u".into(),
            tenant_id: "t".into(),
            client_ip: None,
            user_agent: Some("curl/8".into()),
            correlation_id: "c".into(),
            time: DateTime::from_timestamp(0, 0).expect("epoch"),
        };
        let map = meta.to_map("ArchiveModel");
        assert_eq!(
            map.get(keys::COMMAND).map(String::as_str),
            Some("ArchiveModel")
        );
        assert_eq!(
            map.get(keys::TIME).map(String::as_str),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert!(!map.contains_key(keys::CLIENT_IP));
        assert_eq!(
            map.get(keys::USER_AGENT).map(String::as_str),
            Some("curl/8")
        );
    }
}
