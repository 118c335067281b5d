//! MQTT payloads and topics: the envelope `{"protocol": N, "t": <unix secs>, "data": {…}}`
//! with TuyaOS's protocol numbers, and each device's in and out topics.

use serde::{Deserialize, Serialize};

/// The topic the cloud publishes to a device on.
pub fn in_topic(dev_id: &str) -> String {
    format!("smart/device/in/{dev_id}")
}

/// The topic a device publishes to the cloud on.
pub fn out_topic(dev_id: &str) -> String {
    format!("smart/device/out/{dev_id}")
}

/// What a message is, by TuyaOS's protocol numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "u32", into = "u32")]
pub enum Protocol {
    /// 4: data-point report, device to cloud.
    DpReport,
    /// 5: data-point command, cloud to device.
    DpCommand,
    /// 8: unbind, cloud to device.
    Unbind,
    /// 11: reset, cloud to device.
    Reset,
    /// 15: a component update is available, cloud to device.
    ComponentUpdate,
    /// A number this version does not know; receivers ignore such messages, so a newer
    /// cloud cannot break an older device.
    Other(u32),
}

impl Protocol {
    /// The protocol number on the wire.
    pub const fn number(self) -> u32 {
        match self {
            Protocol::DpReport => 4,
            Protocol::DpCommand => 5,
            Protocol::Unbind => 8,
            Protocol::Reset => 11,
            Protocol::ComponentUpdate => 15,
            Protocol::Other(n) => n,
        }
    }
}

impl From<u32> for Protocol {
    fn from(n: u32) -> Self {
        match n {
            4 => Protocol::DpReport,
            5 => Protocol::DpCommand,
            8 => Protocol::Unbind,
            11 => Protocol::Reset,
            15 => Protocol::ComponentUpdate,
            other => Protocol::Other(other),
        }
    }
}

impl From<Protocol> for u32 {
    fn from(p: Protocol) -> Self {
        p.number()
    }
}

/// Every MQTT payload between cloud and device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// What the message is.
    pub protocol: Protocol,
    /// When it was sent, Unix seconds.
    pub t: u64,
    /// The protocol's content (for 4 and 5, data points by id).
    pub data: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_missing_field, assert_round_trip};

    #[test]
    fn protocol_numbers_are_tuyaos_ones_and_round_trip() {
        let known = [
            (Protocol::DpReport, 4),
            (Protocol::DpCommand, 5),
            (Protocol::Unbind, 8),
            (Protocol::Reset, 11),
            (Protocol::ComponentUpdate, 15),
        ];
        for (p, n) in known {
            assert_eq!(p.number(), n);
            assert_eq!(Protocol::from(n), p);
        }
        assert_eq!(Protocol::from(99), Protocol::Other(99));
    }

    #[test]
    fn the_envelope_round_trips_and_ignores_unknown_fields() {
        let json = r#"{"protocol":5,"t":1700000000,"data":{"1":true,"2":40},"s":7}"#;
        let env: Envelope = serde_json::from_str(json).expect("parses");
        assert_eq!(env.protocol, Protocol::DpCommand);
        assert_eq!(env.data["2"], 40);
        assert_round_trip(&env);
        assert_missing_field::<Envelope>(r#"{"protocol":4,"t":1}"#, "data");
        assert_missing_field::<Envelope>(r#"{"t":1,"data":{}}"#, "protocol");
    }

    #[test]
    fn topics_follow_the_tuyaos_layout() {
        assert_eq!(in_topic("d-1"), "smart/device/in/d-1");
        assert_eq!(out_topic("d-1"), "smart/device/out/d-1");
    }
}
