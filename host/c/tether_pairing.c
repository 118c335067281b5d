/*
 * tether_pairing.c - tuya_iot_gw_wf_user_cfg() and tether_pairing_window_open()
 * over tether-host's control socket.
 *
 * One request, one answer: {"cmd":"user-cfg","ssid":...,"passwd":...,"token":...}
 * or {"cmd":"pairing-open","secs":N}, then {"code":"...","oprt":N}. Any failure to
 * reach the host or to read its answer is OPRT_COM_ERROR; NULL or oversized
 * arguments are OPRT_INVALID_PARM.
 */
#include "tether_pairing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_ARG 256
#define MAX_MSG 2048

/* Appends s to out as a JSON string; returns the new length or -1 if it does not fit. */
static int json_string(char *out, int len, int cap, const char *s) {
    if (len >= cap - 1) return -1;
    out[len++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (len >= cap - 8) return -1;
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20) {
            len += snprintf(out + len, cap - len, "\\u%04x", c);
        } else {
            out[len++] = (char)c;
        }
    }
    if (len >= cap - 1) return -1;
    out[len++] = '"';
    return len;
}

static int append(char *out, int len, int cap, const char *text) {
    int n = (int)strlen(text);
    if (len + n >= cap) return -1;
    memcpy(out + len, text, (size_t)n);
    return len + n;
}

/* Sends one request line to the host and returns the oprt of its answer. */
static OPERATE_RET ctl_request(const char *msg, int len) {
    const char *path = getenv("TETHER_CTL_SOCKET");
    if (!path || !*path) path = TETHER_DEFAULT_CTL_SOCKET;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) return OPRT_COM_ERROR;
    strcpy(addr.sun_path, path);

    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return OPRT_COM_ERROR;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return OPRT_COM_ERROR;
    }
    int sent = 0;
    while (sent < len) {
        ssize_t n = write(fd, msg + sent, (size_t)(len - sent));
        if (n <= 0) {
            close(fd);
            return OPRT_COM_ERROR;
        }
        sent += (int)n;
    }
    char reply[MAX_MSG];
    int got = 0;
    while (got < MAX_MSG - 1) {
        ssize_t n = read(fd, reply + got, (size_t)(MAX_MSG - 1 - got));
        if (n <= 0) break;
        got += (int)n;
        if (memchr(reply, '\n', (size_t)got)) break;
    }
    close(fd);
    reply[got] = '\0';
    const char *oprt = strstr(reply, "\"oprt\":");
    if (!oprt) return OPRT_COM_ERROR;
    return (OPERATE_RET)strtol(oprt + 7, NULL, 10);
}

OPERATE_RET tuya_iot_gw_wf_user_cfg(const char *ssid, const char *passwd, const char *token) {
    if (!ssid || !passwd || !token) return OPRT_INVALID_PARM;
    if (strlen(ssid) > MAX_ARG || strlen(passwd) > MAX_ARG || strlen(token) > MAX_ARG) return OPRT_INVALID_PARM;

    char msg[MAX_MSG];
    int len = 0;
    len = append(msg, len, MAX_MSG, "{\"cmd\":\"user-cfg\",\"ssid\":");
    if (len >= 0) len = json_string(msg, len, MAX_MSG, ssid);
    if (len >= 0) len = append(msg, len, MAX_MSG, ",\"passwd\":");
    if (len >= 0) len = json_string(msg, len, MAX_MSG, passwd);
    if (len >= 0) len = append(msg, len, MAX_MSG, ",\"token\":");
    if (len >= 0) len = json_string(msg, len, MAX_MSG, token);
    if (len >= 0) len = append(msg, len, MAX_MSG, "}\n");
    if (len < 0) return OPRT_INVALID_PARM;

    return ctl_request(msg, len);
}

OPERATE_RET tether_pairing_window_open(unsigned int secs) {
    if (secs < 1 || secs > 3600) return OPRT_INVALID_PARM;
    char msg[64];
    int len = snprintf(msg, sizeof msg, "{\"cmd\":\"pairing-open\",\"secs\":%u}\n", secs);
    return ctl_request(msg, len);
}
