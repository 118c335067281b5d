//! Integration tests of the cloud service: the real server on a free port, with a real
//! SQLite file in a temporary data dir.

mod activation;
mod api_errors;
mod auth;
mod broker;
mod iot_dns;
mod pairing_tokens;
mod reports;
mod restart;
mod support;
