//! Integration tests of the device host: the real pairing component in the real runtime.

mod check_component;
mod component;
mod device;
mod limits;
mod support;
