-- talos schema v1 (SQLite).
-- Portable types: TEXT ids, INTEGER epoch-millisecond timestamps, JSON as
-- TEXT, enums as INTEGER ordinals (domain `as_i32`).

CREATE TABLE networks (
    id         TEXT    NOT NULL PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE issued_api_keys (
    nid                    TEXT    NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 TEXT    NOT NULL,
    name                   TEXT    NOT NULL,
    token_prefix           TEXT,
    version                INTEGER NOT NULL DEFAULT 1,
    actor_id               TEXT,
    scopes                 TEXT    NOT NULL,
    status                 INTEGER NOT NULL,
    metadata               TEXT    NOT NULL,
    last_used_at           INTEGER,
    expires_at             INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    rate_limit_quota       INTEGER,
    rate_limit_window      INTEGER,
    revocation_reason      INTEGER NOT NULL DEFAULT 0,
    revocation_reason_text TEXT    NOT NULL DEFAULT '',
    allowed_cidrs          TEXT    NOT NULL,
    request_id             TEXT,
    visibility             INTEGER NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX issued_api_keys_actor_idx ON issued_api_keys (nid, actor_id, key_id);

CREATE TABLE imported_api_keys (
    nid                    TEXT    NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 TEXT    NOT NULL,
    name                   TEXT    NOT NULL,
    actor_id               TEXT,
    scopes                 TEXT    NOT NULL,
    status                 INTEGER NOT NULL,
    metadata               TEXT    NOT NULL,
    last_used_at           INTEGER,
    expires_at             INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    rate_limit_quota       INTEGER,
    rate_limit_window      INTEGER,
    revocation_reason      INTEGER NOT NULL DEFAULT 0,
    revocation_reason_text TEXT    NOT NULL DEFAULT '',
    allowed_cidrs          TEXT    NOT NULL,
    request_id             TEXT,
    visibility             INTEGER NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX imported_api_keys_actor_idx ON imported_api_keys (nid, actor_id, key_id);
