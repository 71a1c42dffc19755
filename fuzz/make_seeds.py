#!/usr/bin/env python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/.

Run from the repo root: `python3 fuzz/make_seeds.py`. The seeds are the
documented examples, spec vectors, keys minted with the fuzz targets' own
secret and a few hostile shapes; the fuzzer finds the rest. Committed
corpora are these seeds after `cargo fuzz cmin`.
"""
import base64
import hashlib
import hmac
import json
import os

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
FUZZ_SECRET = b"fuzz-hmac-secret-0123456789abcdef0123456789"


def b58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def v1(prefix: str, ts: str, uuid: str, secret: bytes = FUZZ_SECRET) -> str:
    ident = b58(f"{ts}:{uuid}".encode())
    mac = hmac.new(secret, f"{prefix}_v1_{ident}_".encode(), hashlib.sha256).digest()
    return f"{prefix}_v1_{ident}_{b58(mac)}"


def varint(v: int) -> bytes:
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def field(kind: int, data: bytes) -> bytes:
    return varint(kind) + varint(len(data)) + data


def macaroon(root: bytes, ident: bytes, location: bytes, caveats) -> bytes:
    key = hmac.new(b"macaroons-key-generator", root, hashlib.sha256).digest()
    sig = hmac.new(key, ident, hashlib.sha256).digest()
    out = b"\x02"
    if location:
        out += field(1, location)
    out += field(2, ident) + b"\x00"
    for c in caveats:
        sig = hmac.new(sig, c, hashlib.sha256).digest()
        out += field(2, c) + b"\x00"
    return out + b"\x00" + field(6, sig)


UUID = "792b4c1a-1a2d-430b-b733-c789a2b7b1fe"
SEEDS = {
    "credential_route": [
        "eyJhbGc.payload_with_underscore.signature-with-dash",
        "eyJhbGciOiJIUzI1NiJ9.payload",
        "mc_v1_AgETaHR0cHM6Ly9leGFtcGxlLmNvbQIk",
        "mc,custom\ncustom_v1_AgE",
        "mc\nmc_v1_",
        v1("talos", "1780334005", UUID),
        v1("mc", "1780334005", UUID),
        "sk_live_abc123xyz789",
        "prod_v1_0ujsswThIG_short",
        "",
    ],
    "v1_key": [
        v1("talos", "1780334005", UUID),
        v1("ory_ak", "1780334005", UUID),
        v1("a_b_c", "0", UUID),
        v1("x", "01780334005", UUID),
        v1("_", "9223372036854775807", UUID),
        "prod_v1_QixobFgVufjZNuoYXKtn78NAqFVroyN518nRaK3WD3nxTNufzwJq9sjdrDMrcyP2_3wyBJBd2KxqXK117oqGWZzJU85Nv7C9vKWj9nVSqbEby",
        "api_v1_0ujsswThIGTUYm2K8Fj63K_toolongchecksum123",
        "_v1__",
    ],
    "filter": [
        'actor_id="user-1"',
        'actor_id="u" AND status=KEY_STATUS_REVOKED',
        'status = "KEY_STATUS_ACTIVE" AND actor_id = "u"',
        'actor_id="u" AND status=KEY_STATUS_UNSPECIFIED',
        'actor_id="a;status=KEY_STATUS_ACTIVE"\nactor_id="a" AND status=KEY_STATUS_ACTIVE',
        'actor_id=""\n',
        'actor_id="a" OR actor_id="b"',
        'actor_id="test\nAND 1=1"',
        "status=KEY_STATUS_EXPIRED",
    ],
    "page_token": [
        "",
        "AQ" + "A" * 60,
        "AQEBAQEBAQEBAQEBdXNlci0x",
        "\x00\x01",
        "0b5b6f7e-5f0c-4a59-9a43-1d1f8f2f6a10",
    ],
    "wire_json": [
        {"name": "ci", "actor_id": "user-1", "scopes": ["read"], "ttl": "720h"},
        {"name": "rl", "actor_id": "u", "rate_limit_policy": {"quota": "100", "window": "60s", "unit": "requests"},
         "ip_restriction": {"allowed_cidrs": ["10.0.0.0/8"]}, "visibility": "KEY_VISIBILITY_PUBLIC", "request_id": "r-1",
         "metadata": {"team": "a", "n": [1, 2.5, None]}},
        {"raw_key": "sk_live_abc123", "name": "legacy", "actor_id": "user-1", "ttl": "1y6mo"},
        {"requests": [{"raw_key": "k1", "name": "a", "actor_id": "u"}, None, {"raw_key": 5}]},
        {"issued_api_key": {"name": "renamed", "scopes": ["a"], "metadata": None, "rate_limit_policy": None}},
        {"reason": "REVOCATION_REASON_PRIVILEGE_WITHDRAWN", "description": "left"},
        {"reason": 3},
        {"credential": "ory_ak_v1_x", "expected_audiences": ["a"]},
        {"requests": [{"credential": "a"}, {"credential": "b"}]},
        {"credential": "k", "algorithm": "TOKEN_ALGORITHM_MACAROON", "ttl": "3600s", "custom_claims": {"t": 1}},
        {"key_id": "k", "name": "n", "actor_id": "a", "scopes": [], "status": "KEY_STATUS_ACTIVE", "metadata": {},
         "create_time": "2025-06-15T15:06:40.123Z", "update_time": "1969-12-31T23:59:59.999+02:00",
         "revocation_reason": "REVOCATION_REASON_UNSPECIFIED", "revocation_description": "",
         "visibility": "KEY_VISIBILITY_SECRET", "rate_limit_policy": {"quota": 9007199254740991}},
        {"quota": "-9223372036854775808", "t": "9999-12-31T23:59:59.999999999Z", "d": "1.000000001s"},
        "",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ],
}

ROOT = bytes([7] * 32)


def main() -> None:
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    mac_seeds = [
        macaroon(ROOT, b"jti-1", b"https://issuer.example", [b'talos-claims {"jti":"jti-1"}', b"scope read"]),
        macaroon(b"k", b"id", b"", []),
        b"time-before 2030-01-01T00:00:00Z\nscope read write\nip 10.0.0.0/8,::1/128",
        b"time-before 2020-01-01T00:00:00Z",
        b"ip not-a-cidr\nunknown caveat",
        b"\x02\x01\x00",
    ]
    SEEDS["macaroon"] = mac_seeds
    for target, seeds in SEEDS.items():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        for s in seeds:
            if isinstance(s, (dict, list)) or s is None:
                data = json.dumps(s).encode()
            elif isinstance(s, str):
                data = s.encode()
            else:
                data = s
            name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
