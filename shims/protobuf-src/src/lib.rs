//! A stand-in for crates.io's `protobuf-src`, patched in by the workspace: the broker
//! cluster's Raft crates generate their gRPC code at build time and fall back to
//! `protobuf-src`, which compiles all of protobuf's C++ from source (many minutes on two
//! cores, in every target dir), when no `protoc` is on the PATH. Their build scripts use
//! the system's `protoc` first, so this crate only answers where they would fall back:
//! by naming what to install (Debian's `protobuf-compiler`).

use std::path::PathBuf;

/// The `protoc` to run: `$PROTOC` if set. Its callers ask only once `protoc` was not
/// found on the PATH, so without `$PROTOC` the build stops here and says what to install.
pub fn protoc() -> PathBuf {
    match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "the broker cluster's gRPC code needs protoc 3.1 or later on the PATH \
             (Debian: apt-get install protobuf-compiler), or PROTOC=/path/to/protoc"
        ),
    }
}

/// Where the well-known `.proto` files are: next to Debian's `protoc`.
pub fn include() -> PathBuf {
    PathBuf::from("/usr/include")
}
