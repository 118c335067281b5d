//! Integration tests of the cloud service: the real server on a free port, with a real
//! SQLite file in a temporary data dir (the binary `postgres` runs them on PostgreSQL).

mod activation;
mod api_errors;
mod attacks;
mod auth;
mod binary;
mod broker;
mod console;
mod engine;
mod iot_dns;
mod licenses;
mod ops;
mod pairing_tokens;
mod reports;
mod restart;
mod support;
mod tls;
mod transfer;
