//! The service's integration tests (`tests/it`) again, with the registry on PostgreSQL
//! instead of SQLite: the same files, built into a second binary whose crate name
//! `engine::POSTGRES` reads.

#[path = "../it/activation.rs"]
mod activation;
#[path = "../it/api_errors.rs"]
mod api_errors;
#[path = "../it/attacks/mod.rs"]
mod attacks;
#[path = "../it/auth.rs"]
mod auth;
#[path = "../it/binary.rs"]
mod binary;
#[path = "../it/broker.rs"]
mod broker;
#[path = "../it/console.rs"]
mod console;
#[path = "../it/engine.rs"]
mod engine;
#[path = "../it/iot_dns.rs"]
mod iot_dns;
#[path = "../it/licenses.rs"]
mod licenses;
#[path = "../it/ops.rs"]
mod ops;
#[path = "../it/pairing_tokens.rs"]
mod pairing_tokens;
#[path = "../it/reports.rs"]
mod reports;
#[path = "../it/restart.rs"]
mod restart;
#[path = "../it/support.rs"]
mod support;
#[path = "../it/tls.rs"]
mod tls;
#[path = "../it/transfer.rs"]
mod transfer;

// Only on PostgreSQL: several service processes on one database, and a broker cluster.
mod cluster;
mod nodes;
