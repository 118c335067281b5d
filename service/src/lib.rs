//! The Tether cloud service: issues pairing tokens, answers IoT DNS, activates devices
//! and brokers their MQTT sessions. One binary with an embedded SQLite database.

pub mod activation;
pub mod app;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod console;
pub mod db;
pub mod device_auth;
pub mod devices;
pub mod error;
pub mod expiring;
pub mod iot_dns;
pub mod json;
pub mod kept;
pub mod keys;
pub mod labels;
pub mod licenses;
pub mod local;
pub mod metrics;
pub mod modules;
pub mod notify;
pub mod openapi;
pub mod ops;
pub mod pairing_tokens;
pub mod passwords;
pub mod rate_limit;
pub mod reports;
pub mod server;
pub mod tls;
pub mod trace;
pub mod users;

pub use app::Application;
pub use config::ServeConfig;

/// Wall-clock time in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Unix seconds as SQLite stores them.
pub fn db_time(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// SQLite time back to Unix seconds.
pub fn from_db_time(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0)
}
