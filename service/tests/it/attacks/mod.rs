//! Attacks on the service with real clients: a bought device misusing MQTT features, a
//! stranger flooding or probing the API, and someone holding a copy of the data dir or a
//! captured request. Each test fails without the defence it names.

mod at_rest;
mod http;
mod mqtt;
