//! Integration tests of the device host: the real pairing component in the real runtime.

mod c_header;
mod capture;
mod check_component;
mod component;
mod device;
mod limits;
mod process;
mod rollout;
mod rotation;
mod support;
mod tls;
mod update;
mod update_process;
