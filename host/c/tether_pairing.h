/*
 * tether_pairing.h - the TuyaOS-style seed API of a Tether device.
 *
 * tuya_iot_gw_wf_user_cfg() hands router credentials and a pairing token to the
 * running tether-host through its control socket. It returns OPRT_OK when the
 * parameters were accepted; the device then joins the router, activates and goes
 * online on its own. Follow progress with tether-host ctl status.
 *
 * The socket is taken from the TETHER_CTL_SOCKET environment variable, or
 * TETHER_DEFAULT_CTL_SOCKET when it is unset.
 */
#ifndef TETHER_PAIRING_H
#define TETHER_PAIRING_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int OPERATE_RET;

#define TETHER_DEFAULT_CTL_SOCKET "/run/tether/ctl.sock"

#define OPRT_OK                      (0)
#define OPRT_INVALID_PARM            (-2)  /* invalid_parm: an argument is malformed or out of range */
#define OPRT_TOKEN_INVALID           (-2001)  /* token_invalid: the pairing token is malformed or unknown */
#define OPRT_TOKEN_EXPIRED           (-2002)  /* token_expired: the pairing token has expired */
#define OPRT_TOKEN_USED              (-2003)  /* token_used: the pairing token has already been used */
#define OPRT_AP_NOT_FOUND            (-2004)  /* ap_not_found: no access point with that SSID was found */
#define OPRT_PASSWD_ERROR            (-2005)  /* passwd_error: the access point refused the password */
#define OPRT_CANT_CONNECT_AP         (-2006)  /* cant_connect_ap: could not associate with the access point */
#define OPRT_DHCP_FAILED             (-2007)  /* dhcp_failed: the router's DHCP gave no address */
#define OPRT_DNS_FAILED              (-2008)  /* dns_failed: the cloud endpoint lookup (IoT DNS) failed */
#define OPRT_ACTIVATE_FAILED         (-2009)  /* activate_failed: the cloud refused the activation */
#define OPRT_SIGNATURE_ERROR         (-2010)  /* signature_error: the cloud rejected the device's signature */
#define OPRT_DEV_ALREADY_BOUND       (-2011)  /* dev_already_bound: the device is bound to another user; reset it first */
#define OPRT_MQTT_AUTH_FAILED        (-2012)  /* mqtt_auth_failed: the MQTT broker refused the device's credentials */
#define OPRT_NETWORK_UNREACHABLE     (-2013)  /* network_unreachable: the network cannot be reached */
#define OPRT_PAIRING_TIMEOUT         (-2014)  /* timeout: the operation timed out */
#define OPRT_BUSY                    (-2015)  /* busy: another operation is under way */
#define OPRT_TLS_FAILED              (-2016)  /* tls_failed: the cloud's TLS certificate was not trusted (wrong CA, expired or another name) */
#define OPRT_COM_ERROR               (-1)  /* internal: an internal error occurred */

/* Hands credentials and a token to the device; see the file comment. */
OPERATE_RET tuya_iot_gw_wf_user_cfg(const char *ssid, const char *passwd, const char *token);

/* Opens the data channel's pairing window for secs seconds (1-3600), as a pairing
 * button would: a provisioner with the setup code may then configure the paired
 * device (a new Wi-Fi network, say), and a channel locked by failed handshakes
 * unlocks. */
OPERATE_RET tether_pairing_window_open(unsigned int secs);

#ifdef __cplusplus
}
#endif

#endif /* TETHER_PAIRING_H */
