#!/usr/bin/env bash
# Property-based API testing with schemathesis against a running dev server,
# driven by the project's own OpenAPI document (openapi.json, the document
# the server serves at /openapi.json).
#
#   scripts/schemathesis.sh [MAX_EXAMPLES]     (default 50 per operation)
#
# What it does: installs schemathesis into a venv (TALOS_VENV, default
# /var/tmp/talos-venv-py<version>) if it is not there, builds the `talos` binary (or uses
# TALOS_BIN), starts `talos serve --dev` on two free loopback ports with a
# temporary SQLite database, runs every operation with a bounded number of
# generated examples (positive and negative data; phases examples, coverage,
# fuzzing, stateful), and stops the server. It fails when schemathesis does.
#
# Checks: not_a_server_error (no 5xx), response_schema_conformance and
# content_type_conformance. Other knobs: ST_SEED (default 1, so runs are
# reproducible), ST_MAX_TIME (a hard stop for the whole run, default 900 s;
# the example count is the real bound),
# ST_WORKERS (default 2), ST_REPORT_DIR (default: a temp dir, kept on failure).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES="${1:-50}"
# The newest CPython at hand: 3.11.7 (the machine's python3) fails inside
# schemathesis 4.32.5's coverage phase, where hypothesis ast-parses a large
# module, with "SystemError: AST constructor recursion depth mismatch" (a
# CPython bug fixed in later releases); 3.13 runs clean. pyenv's shims for
# versions that are not selected only print an error, so the interpreters are
# tried by running them.
PYTHON=python3
for candidate in python3.13 python3.12 /root/.pyenv/versions/3.13*/bin/python3 /root/.pyenv/versions/3.12*/bin/python3; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
        PYTHON=$candidate
        break
    fi
done
PY_VERSION=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
VENV="${TALOS_VENV:-/var/tmp/talos-venv-py$PY_VERSION}"
SCHEMATHESIS_VERSION=4.32.5
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/talos-target}"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [[ -z "${TALOS_BIN:-}" ]]; then
    echo "==> cargo build --bin talos"
    cargo build --quiet --bin talos
    TALOS_BIN="$CARGO_TARGET_DIR/debug/talos"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

WORK="$(mktemp -d /tmp/talos-schemathesis.XXXXXX)"
REPORT_DIR="$(realpath -m "${ST_REPORT_DIR:-$WORK/report}")"
PORT="$(free_port)"
OPS_PORT="$(free_port)"
while [[ "$OPS_PORT" == "$PORT" ]]; do OPS_PORT="$(free_port)"; done
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc == 0 ]]; then
        rm -rf "$WORK"
    else
        echo "schemathesis: failed; server log and report kept in $WORK" >&2
    fi
}
trap cleanup EXIT

echo "==> starting talos serve --dev on 127.0.0.1:$PORT (ops $OPS_PORT), data in $WORK"
# A fixed random secret in the environment: --dev then neither generates nor
# prints one.
TALOS_SECRETS_HMAC_CURRENT="$(python3 -c 'import secrets; print(secrets.token_hex(32))')" \
TALOS_SERVE_HTTP_PORT="$PORT" \
TALOS_SERVE_METRICS_PORT="$OPS_PORT" \
TALOS_DB_DSN="sqlite://$WORK/talos.db" \
TALOS_LOG_LEVEL="${TALOS_LOG_LEVEL:-warn}" \
    "$TALOS_BIN" serve --dev --data-dir "$WORK/dev" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 100); do
    if curl -fsS "http://127.0.0.1:$PORT/health/alive" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log" >&2
        echo "schemathesis: the server did not start" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health/ready" >/dev/null

# The document the server serves is the committed one (a test checks this
# too); schemathesis reads the committed file.
if ! curl -fsS "http://127.0.0.1:$PORT/openapi.json" | cmp -s - openapi.json; then
    echo "schemathesis: the served /openapi.json differs from openapi.json" >&2
    exit 1
fi
# Seed data, so that the operations on one key reach the store instead of
# answering 404: a few issued and imported keys, whose ids the non-stateful
# phases use as path parameters (a revoke or delete succeeds once, then the
# rest of its examples exercise the 404/409 paths).
issue() {
    curl -fsS "http://127.0.0.1:$PORT/v2alpha1/admin/issuedApiKeys" \
        -d "{\"name\":\"st-$1\",\"actor_id\":\"schemathesis\",\"scopes\":[\"read\"],\"ttl\":\"24h\",\"metadata\":{\"k\":1}}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["issued_api_key"]["key_id"])'
}
import_key() {
    curl -fsS "http://127.0.0.1:$PORT/v2alpha1/admin/importedApiKeys" \
        -d "{\"raw_key\":\"sk_schemathesis_$1_$RANDOM$RANDOM\",\"name\":\"st-$1\",\"actor_id\":\"schemathesis\"}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["key_id"])'
}
cat >"$WORK/schemathesis.toml" <<TOML
[[operations]]
include-operation-id = ["adminGetIssuedApiKey"]
parameters = { key_id = "$(issue get)" }
[[operations]]
include-operation-id = ["adminUpdateIssuedApiKey"]
parameters = { issued_api_key_key_id = "$(issue update)" }
[[operations]]
include-operation-id = ["adminRotateIssuedApiKey"]
parameters = { key_id = "$(issue rotate)" }
[[operations]]
include-operation-id = ["adminRevokeIssuedApiKey"]
parameters = { key_id = "$(issue revoke)" }
[[operations]]
include-operation-id = ["adminRevokeApiKey"]
parameters = { key_id = "$(issue revoke-any)" }
[[operations]]
include-operation-id = ["adminGetImportedApiKey"]
parameters = { key_id = "$(import_key get)" }
[[operations]]
include-operation-id = ["adminUpdateImportedApiKey"]
parameters = { imported_api_key_key_id = "$(import_key update)" }
[[operations]]
include-operation-id = ["adminRevokeImportedApiKey"]
parameters = { key_id = "$(import_key revoke)" }
[[operations]]
include-operation-id = ["adminDeleteImportedApiKey"]
parameters = { key_id = "$(import_key delete)" }
TOML

# The copy of the document schemathesis reads has two test-harness changes;
# neither changes a URL or a body it sends:
# * the PATCH paths use grpc-gateway's dotted parameter names
#   (`{issued_api_key.key_id}`, as in Ory's own document), which schemathesis
#   cannot expand (it formats paths with Python's str.format, where a dot is
#   attribute access); they become `{issued_api_key_key_id}`;
# * OpenAPI links from issue/import/rotate to the operations on the created
#   key, so the stateful phase chains real resources.
python3 - openapi.json "$WORK/openapi.json" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
paths = {}
for path, item in doc["paths"].items():
    for op in item.values():
        for param in op.get("parameters", []):
            if param.get("in") == "path":
                param["name"] = param["name"].replace(".", "_")
    paths[re.sub(r"\{([^}]*)\}", lambda m: "{" + m.group(1).replace(".", "_") + "}", path)] = item
doc["paths"] = paths
ops = {op["operationId"]: op for item in paths.values() for op in item.values()}

def links(source, pointer, targets):
    out = ops[source]["responses"]["200"].setdefault("links", {})
    for target, param in targets:
        out[target] = {"operationId": target, "parameters": {param: "$response.body#" + pointer}}

issued = [("adminGetIssuedApiKey", "key_id"), ("adminUpdateIssuedApiKey", "issued_api_key_key_id"),
          ("adminRotateIssuedApiKey", "key_id"), ("adminRevokeIssuedApiKey", "key_id"),
          ("adminRevokeApiKey", "key_id")]
imported = [("adminGetImportedApiKey", "key_id"), ("adminUpdateImportedApiKey", "imported_api_key_key_id"),
            ("adminRevokeImportedApiKey", "key_id"), ("adminDeleteImportedApiKey", "key_id"),
            ("adminRevokeApiKey", "key_id")]
links("adminIssueApiKey", "/issued_api_key/key_id", issued)
links("adminRotateIssuedApiKey", "/issued_api_key/key_id", issued)
links("adminImportApiKey", "/key_id", imported)
json.dump(doc, open(sys.argv[2], "w"), indent=2)
PY

echo "==> schemathesis run: $MAX_EXAMPLES examples per operation, seed ${ST_SEED:-1}"
mkdir -p "$REPORT_DIR"
set +e
# Run from the temp dir: schemathesis and hypothesis keep state in
# .schemathesis/ and .hypothesis/ under the working directory.
(cd "$WORK" && timeout "${ST_MAX_TIME:-900}" "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" \
    run "$WORK/openapi.json" \
    --url "http://127.0.0.1:$PORT" \
    --checks not_a_server_error,response_schema_conformance,content_type_conformance \
    --max-examples "$MAX_EXAMPLES" \
    --seed "${ST_SEED:-1}" \
    --workers "${ST_WORKERS:-2}" \
    --request-timeout 10 \
    --report junit --report-dir "$REPORT_DIR" \
    --no-color) 2>&1 | tee "$WORK/schemathesis.log"
rc=${PIPESTATUS[0]}
set -e

if grep -Eq '(panicked|internal error)' "$WORK/server.log"; then
    echo "schemathesis: the server log shows a panic or internal error:" >&2
    grep -E '(panicked|internal error)' "$WORK/server.log" | head -20 >&2
    rc=1
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "schemathesis: the server died during the run" >&2
    rc=1
fi
exit "$rc"
