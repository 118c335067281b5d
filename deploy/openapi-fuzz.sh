#!/usr/bin/env bash
# Runs an outside OpenAPI fuzzer (Schemathesis, from PyPI) against the service's own
# /openapi.json: it generates valid and invalid requests for every operation from the
# document and checks the answers against it (no server errors, no undocumented status
# codes or content types, responses matching their schemas, schema-valid requests not
# refused, schema-violating ones not accepted). Needs python3 with pip.
#
#   deploy/openapi-fuzz.sh            # 50 examples per operation
#   EXAMPLES=200 deploy/openapi-fuzz.sh
#
# Signed device endpoints can only be refused here (the fuzzer cannot sign requests),
# and revoking a token keeps it readable to its owner as "revoked" by design, so the
# "deleted resource still available" check is left out.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=${EXAMPLES:-50}
command -v st >/dev/null || python3 -m pip install -q schemathesis
cargo build -q --locked -p tether-service
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
umask 077
printf 'admin:%s\n' "$(head -c 18 /dev/urandom | base64)" > "$work/admin"
port=$((20000 + RANDOM % 20000))
# The API's semantics are under test, not its TLS: the service runs --plain here.
target/debug/tether-service serve --plain --listen "127.0.0.1:$port" --mqtt-listen 127.0.0.1:0 \
    --data-dir "$work/data" --bootstrap-admin-file "$work/admin" > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
done
password=$(cut -d: -f2- "$work/admin")
token=$(curl -sf "http://127.0.0.1:$port/v1/auth/token" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
st run "http://127.0.0.1:$port/openapi.json" -H "Authorization: Bearer $token" \
    --max-examples "$examples" --checks all --exclude-checks use_after_free \
    --max-response-time 65 --request-timeout 70 --workers 2
