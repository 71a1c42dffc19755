-- talos schema v1 (PostgreSQL).
-- Portable types: VARCHAR ids, BIGINT epoch-millisecond timestamps, JSON as
-- TEXT, enums as INTEGER ordinals (domain `as_i32`).
-- key_id/actor_id use COLLATE "C" so ORDER BY and keyset comparisons are
-- bytewise, the same order every other backend uses.

CREATE TABLE networks (
    id         VARCHAR(36) NOT NULL PRIMARY KEY,
    created_at BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL
);

CREATE TABLE issued_api_keys (
    nid                    VARCHAR(36)  NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 VARCHAR(64)  COLLATE "C" NOT NULL,
    name                   TEXT         NOT NULL,
    token_prefix           VARCHAR(64),
    version                INTEGER      NOT NULL DEFAULT 1,
    actor_id               VARCHAR(255) COLLATE "C",
    scopes                 TEXT         NOT NULL,
    status                 INTEGER      NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INTEGER      NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL DEFAULT '',
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64)  COLLATE "C",
    visibility             INTEGER      NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX issued_api_keys_actor_idx ON issued_api_keys (nid, actor_id, key_id);

CREATE TABLE imported_api_keys (
    nid                    VARCHAR(36)  NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 VARCHAR(64)  COLLATE "C" NOT NULL,
    name                   TEXT         NOT NULL,
    actor_id               VARCHAR(255) COLLATE "C",
    scopes                 TEXT         NOT NULL,
    status                 INTEGER      NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INTEGER      NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL DEFAULT '',
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64)  COLLATE "C",
    visibility             INTEGER      NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX imported_api_keys_actor_idx ON imported_api_keys (nid, actor_id, key_id);
