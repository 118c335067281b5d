//! The provisioner's library half: the device data channel's client and the failure
//! classes with their exit codes, shared by the `tether` binary and the tests that play
//! a provisioner (or an attacker) against a real device.

pub mod channel;
pub mod failure;
