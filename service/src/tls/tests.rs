//! The local CA and operator files: created owner-only, kept across starts, and refused
//! with the reason when they do not fit.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;

use super::*;

fn names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("exists")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_local_ca_is_created_owner_only_and_kept_across_starts() {
    let data = tempfile::tempdir().expect("temp dir");
    let tls = Tls::load(&TlsSource::LocalCa, data.path(), &names())
        .expect("loads")
        .expect("TLS on");
    let dir = data.path().join(TLS_DIR);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir.join("server.key")), 0o600);
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem");
    let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("PEM");
    let b64 = base64::engine::general_purpose::STANDARD.encode(ca.as_ref());
    assert_eq!(tls.ca_arr(), vec![b64.clone()]);

    let again = Tls::load(&TlsSource::LocalCa, data.path(), &names())
        .expect("loads")
        .expect("TLS on");
    assert_eq!(again.ca_arr(), vec![b64], "the CA survives a restart");
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.pem")).expect("ca.pem"),
        ca_pem
    );
}

#[test]
fn off_is_none_and_operator_files_load_with_their_ca() {
    let data = tempfile::tempdir().expect("temp dir");
    assert!(
        Tls::load(&TlsSource::Off, data.path(), &names())
            .expect("loads")
            .is_none()
    );
    let local = Tls::load(&TlsSource::LocalCa, data.path(), &names())
        .expect("loads")
        .expect("TLS on");
    let dir = data.path().join(TLS_DIR);
    let files = TlsSource::Files {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: Vec::new(),
    };
    let other = tempfile::tempdir().expect("temp dir");
    let loaded = Tls::load(&files, other.path(), &names())
        .expect("loads")
        .expect("TLS on");
    assert_eq!(
        loaded.ca_arr(),
        local.ca_arr(),
        "the chain's last certificate"
    );
    assert!(!other.path().join(TLS_DIR).exists(), "no local CA is made");
}

#[test]
fn files_that_do_not_fit_are_refused_with_the_reason() {
    let data = tempfile::tempdir().expect("temp dir");
    Tls::load(&TlsSource::LocalCa, data.path(), &names()).expect("loads");
    let dir = data.path().join(TLS_DIR);
    let wrong_key = TlsSource::Files {
        cert: dir.join("server.pem"),
        key: dir.join("ca.key"),
        ca: Vec::new(),
    };
    let err = Tls::load(&wrong_key, data.path(), &names()).expect_err("mismatch");
    assert!(format!("{err:#}").contains("does not match"), "{err:#}");

    let missing = TlsSource::Files {
        cert: dir.join("nothing.pem"),
        key: dir.join("server.key"),
        ca: Vec::new(),
    };
    let err = Tls::load(&missing, data.path(), &names()).expect_err("missing");
    assert!(format!("{err:#}").contains("nothing.pem"), "{err:#}");

    let not_pem = dir.join("garbage.pem");
    std::fs::write(&not_pem, "hello").expect("written");
    let garbage = TlsSource::Files {
        cert: not_pem,
        key: dir.join("server.key"),
        ca: Vec::new(),
    };
    let err = Tls::load(&garbage, data.path(), &names()).expect_err("no certificate");
    assert!(format!("{err:#}").contains("no certificate"), "{err:#}");
}

#[test]
fn a_rotation_serves_the_cross_certificate_hands_out_both_cas_and_ends_when_retired() {
    let data = tempfile::tempdir().expect("temp dir");
    let err = rotate_local_ca(data.path()).expect_err("nothing to rotate");
    assert!(err.to_string().contains("no local CA"), "{err}");
    let old = local_ca_pem(data.path()).expect("a CA");
    let old_der = CertificateDer::from_pem_slice(old.as_bytes()).expect("PEM");

    rotate_local_ca(data.path()).expect("rotates");
    let dir = data.path().join(TLS_DIR);
    assert_eq!(mode(&dir.join("previous-ca.key")), 0o600);
    let err = rotate_local_ca(data.path()).expect_err("one rotation at a time");
    assert!(err.to_string().contains("retire the previous CA"), "{err}");
    let new = local_ca_pem(data.path()).expect("the new CA");
    assert_ne!(new, old);
    let new_der = CertificateDer::from_pem_slice(new.as_bytes()).expect("PEM");
    let (chain, _, cas) = local_ca(&dir, &names()).expect("the overlap loads");
    assert_eq!(
        cas,
        vec![new_der.clone(), old_der.clone()],
        "IoT DNS hands out both"
    );
    let cross = CertificateDer::from_pem_file(dir.join("cross-ca.pem")).expect("a cross cert");
    assert_eq!(chain[1], cross, "the chain carries the cross certificate");

    retire_previous_ca(data.path()).expect("retires");
    for gone in ["previous-ca.pem", "previous-ca.key", "cross-ca.pem"] {
        assert!(!dir.join(gone).exists(), "{gone}");
    }
    let (chain, _, cas) = local_ca(&dir, &names()).expect("loads");
    assert_eq!(cas, vec![new_der.clone()]);
    assert_eq!(chain[1], new_der);
    let err = retire_previous_ca(data.path()).expect_err("nothing to retire");
    assert!(err.to_string().contains("no previous CA"), "{err}");
}
