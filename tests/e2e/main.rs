//! End-to-end tests: the real `tether-service`, `tether-host` and `tether` binaries,
//! each a separate process on free ports, driven the way a user drives them.

mod clock;
mod console;
mod demo;
mod fleet;
mod flood;
mod licenses;
mod lifecycle;
mod reports;
mod tls;
mod trace;
mod transfer;
