//! Assertions shared by the serde tests of every body type.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Serialising then parsing gives the same value back.
pub fn assert_round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("serialises");
    let back: T = serde_json::from_str(&json).expect("parses its own output");
    assert_eq!(&back, value, "round trip through {json}");
}

/// Parsing fails with a message naming the missing field.
pub fn assert_missing_field<T: DeserializeOwned + Debug>(json: &str, field: &str) {
    let err = serde_json::from_str::<T>(json).expect_err("a required field is missing");
    assert!(
        err.to_string()
            .contains(&format!("missing field `{field}`")),
        "{err}"
    );
}

/// Parsing fails with a message naming the unknown field.
pub fn assert_unknown_field_refused<T: DeserializeOwned + Debug>(json: &str, field: &str) {
    let err = serde_json::from_str::<T>(json).expect_err("an unknown field is refused");
    assert!(
        err.to_string()
            .contains(&format!("unknown field `{field}`")),
        "{err}"
    );
}
