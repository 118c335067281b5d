//! The C header carries the same OPRT numbers as the one mapping in `tether-proto`.

use tether_proto::ErrorCode;

#[test]
fn the_c_header_defines_every_error_code_with_its_number() {
    let header = include_str!("../../c/tether_pairing.h");
    assert!(header.contains("OPERATE_RET tuya_iot_gw_wf_user_cfg(const char *ssid, const char *passwd, const char *token);"));
    assert!(header.contains("#define OPRT_OK                      (0)"));
    for &code in ErrorCode::ALL {
        let line = header
            .lines()
            .find(|l| l.starts_with(&format!("#define {} ", code.c_name())))
            .unwrap_or_else(|| panic!("{} is missing from the header", code.c_name()));
        assert!(
            line.contains(&format!("({})", code.oprt())),
            "{line} should say {}",
            code.oprt()
        );
    }
    let defines = header
        .lines()
        .filter(|l| l.starts_with("#define OPRT_"))
        .count();
    assert_eq!(
        defines,
        ErrorCode::ALL.len() + 1,
        "no code the proto crate does not know"
    );
}
