#!/usr/bin/env bash
# Container end-to-end test: builds the images (deploy/build.sh), brings up compose.yaml
# (the cloud, three device hosts, the provisioner), provisions every device over its
# soft-AP network, checks they are online through the API, all of it over TLS (devices
# pin the cloud's CA and refuse plain connections), then runs the faults:
#   1. SIGKILL the service and start it again: all devices back within 30 s, nothing lost;
#   2. cut one device off the cloud network for 20 s: back within its backoff bound, the
#      others unaffected;
#   3. restart a device container: back online without a new activation;
#   4. a wrong Wi-Fi password through the provisioner: passwd-error, then success.
# Everything is torn down at the end, also when a step fails. Each step prints its time.
#
#   deploy/e2e.sh                         # build, then test
#   TETHER_E2E_SKIP_BUILD=1 deploy/e2e.sh # use the images already built
#
# Without a Docker engine, docker-compose, python3 or (to build) musl-gcc it skips (exit
# 0) unless CI=true, where that is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."

project=${TETHER_E2E_PROJECT:-tether-e2e}
started=$SECONDS
last=$SECONDS
step() {
    printf '==> %s (at %ss, previous step %ss)\n' "$*" "$((SECONDS - started))" "$((SECONDS - last))"
    last=$SECONDS
}
fail() {
    echo "FAILED: $*" >&2
    exit 1
}
dc() { docker-compose -p "$project" -f compose.yaml "$@"; }

# What the test needs; without it, skip (but under CI=true, fail).
missing=""
docker info >/dev/null 2>&1 || missing="a Docker engine (docker info failed)"
[[ -n $missing ]] || command -v docker-compose >/dev/null || missing="docker-compose"
[[ -n $missing ]] || command -v python3 >/dev/null || missing="python3"
if [[ -z $missing && -z ${TETHER_E2E_SKIP_BUILD:-} ]] && ! command -v musl-gcc >/dev/null; then
    missing="musl-gcc (apt-get install musl-tools)"
fi
if [[ -n $missing ]]; then
    [[ ${CI:-} == true ]] && fail "the container test needs $missing, and CI=true needs the test"
    echo "skipped: the container test needs $missing"
    exit 0
fi

cleanup() {
    status=$?
    if ((status != 0)); then
        echo "--- logs of the failed run ---" >&2
        dc logs --no-color --tail 40 >&2 || true
    fi
    dc --profile tools down -v --remove-orphans >/dev/null 2>&1 || true
    exit "$status"
}
trap cleanup EXIT

if [[ -z ${TETHER_E2E_SKIP_BUILD:-} ]]; then
    step "images"
    deploy/build.sh
fi

provisioner() { dc run --rm -T provisioner "$@"; }
container() { dc ps -q "$1"; }

# Waits up to $1 seconds for `$2...` to succeed; prints how long it took.
within() {
    local limit=$1 since=$SECONDS
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS - since < limit)) || return 1
        sleep 1
    done
    echo "    after $((SECONDS - since)) s"
}

# How many devices the API lists online (the provisioner's account owns all three).
online_count() {
    provisioner devices --json | python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if d["online"]))'
}
all_online() { [[ $(online_count) == 3 ]]; }
device_online() {
    provisioner device "$1" --json | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["online"] else 1)'
}
device_field() {
    provisioner device "$1" --json | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])"
}

step "cloud"
# Whatever an interrupted earlier run left behind goes first.
dc --profile tools down -v --remove-orphans >/dev/null 2>&1 || true
mkdir -p deploy/e2e/devices
for n in 1 2 3; do : >"deploy/e2e/devices/device$n.toml"; done
# The cloud's CA, made in its data volume before it first starts, as a factory would
# have it to write into devices.
dc run --rm -T --no-deps cloud tls ca >deploy/e2e/devices/ca.pem
grep -q 'BEGIN CERTIFICATE' deploy/e2e/devices/ca.pem || fail "tether-service tls ca printed no certificate"
chmod 644 deploy/e2e/devices/ca.pem
dc up -d cloud
healthy() { [[ $(docker inspect -f '{{.State.Health.Status}}' "$(container cloud)") == healthy ]]; }
within 60 healthy || fail "the service never became healthy"

step "account and licenses"
echo 'ann-passw0rd' | dc run --rm -T --no-deps cloud user add ann >/dev/null
dc run --rm -T --no-deps cloud license issue --product-key pe2e00000000000a --count 3 >deploy/e2e/licenses.jsonl
n=0
declare -A setup
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
while read -r license; do
    n=$((n + 1))
    uuid=$(field "$license" uuid)
    authkey=$(field "$license" authkey)
    verifier=$(field "$license" pairing_verifier)
    # The label's setup code stays with the provisioner; the device gets its verifier.
    setup[$n]=$(field "$license" setup_code)
    cat >"deploy/e2e/devices/device$n.toml" <<TOML
data_dir = "/data"
iot_dns_url = "https://cloud:8080"
cloud_ca = "/etc/tether/cloud-ca.pem"
[identity]
uuid = "$uuid"
authkey = "$authkey"
product_key = "pe2e00000000000a"
pairing_verifier = "$verifier"
[wifi]
backend = "sim"
[[wifi.sim.ap]]
ssid = "home"
passwd = "correct horse"
[channel]
listen = "10.41.$n.2:6668"
[ctl]
socket = "/data/ctl.sock"
TOML
    chmod 644 "deploy/e2e/devices/device$n.toml"
done <deploy/e2e/licenses.jsonl
((n == 3)) || fail "expected 3 licenses, got $n"

step "device hosts"
dc up -d device1 device2 device3

step "provisioning (fault 4 first: a wrong password on device1)"
set +e
out=$(provisioner provision --device 10.41.1.2:6668 --setup-code "${setup[1]}" --ssid home --password 'wrong password' 2>&1)
code=$?
set -e
[[ $code == 7 && $out == *passwd_error* ]] || fail "wrong password: exit $code, $out"
echo "    wrong password: exit 7, passwd_error"
declare -A dev
for n in 1 2 3; do
    dev[$n]=$(provisioner provision --device "10.41.$n.2:6668" --setup-code "${setup[$n]}" --ssid home --password 'correct horse' --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["dev_id"])')
    echo "    device$n online as ${dev[$n]}"
done
within 30 all_online || fail "not every device is online in the API"

step "fault 1: SIGKILL the service, start it again"
token=$(provisioner token create --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
docker kill -s KILL "$(container cloud)" >/dev/null
dc start cloud >/dev/null
within 30 all_online || fail "devices not back online within 30 s of the restart ($(online_count) of 3)"
[[ $(provisioner devices --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') == 3 ]] ||
    fail "devices were lost"
state=$(provisioner token status "$token" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])') ||
    fail "the account or the token was lost"
[[ $state == pending ]] || fail "the token is $state after the restart"
echo "    3 devices, the account and a pending token all still there"

step "fault 2: device2 off the cloud network for 20 s"
network="${project}_cloud"
docker network disconnect "$network" "$(container device2)"
sleep 20
device_online "${dev[1]}" && device_online "${dev[3]}" || fail "the other devices were affected"
docker network connect "$network" "$(container device2)"
# The MQTT backoff caps at 60 s; the keep-alive is 60 s.
within 150 device_online "${dev[2]}" || fail "device2 not back online within its backoff bound"

step "fault 3: restart device3"
before=$(device_field "${dev[3]}" activated_at)
dc restart device3 >/dev/null
within 60 device_online "${dev[3]}" || fail "device3 not back online"
after=$(device_field "${dev[3]}" activated_at)
[[ $before == "$after" ]] || fail "device3 activated again ($before, then $after)"

if dc logs --no-color cloud 2>&1 | grep -q -- '--plain'; then
    fail "the service ran without TLS"
fi

step "done"
docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E "^tether(-service|-host)?:${TETHER_TAG:-dev} "
