-- talos schema v1 (CockroachDB).
-- PostgreSQL-compatible DDL. Differences from migrations/postgres:
-- * enums are INT4, because a bare INT/INTEGER is 64-bit in CockroachDB and
--   the adapter decodes ordinals as 32-bit integers;
-- * no COLLATE "C": CockroachDB's STRING already compares bytewise, and
--   collated strings are a distinct type there.
-- Migrations run without advisory locks (CockroachDB has none).

CREATE TABLE networks (
    id         VARCHAR(36) NOT NULL PRIMARY KEY,
    created_at BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL
);

CREATE TABLE issued_api_keys (
    nid                    VARCHAR(36)  NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 VARCHAR(64)  NOT NULL,
    name                   TEXT         NOT NULL,
    token_prefix           VARCHAR(64),
    version                INT4         NOT NULL DEFAULT 1,
    actor_id               VARCHAR(255),
    scopes                 TEXT         NOT NULL,
    status                 INT4         NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INT4         NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL DEFAULT '',
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64),
    visibility             INT4         NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX issued_api_keys_actor_idx ON issued_api_keys (nid, actor_id, key_id);

CREATE TABLE imported_api_keys (
    nid                    VARCHAR(36)  NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    key_id                 VARCHAR(64)  NOT NULL,
    name                   TEXT         NOT NULL,
    actor_id               VARCHAR(255),
    scopes                 TEXT         NOT NULL,
    status                 INT4         NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INT4         NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL DEFAULT '',
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64),
    visibility             INT4         NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE (nid, request_id)
);

CREATE INDEX imported_api_keys_actor_idx ON imported_api_keys (nid, actor_id, key_id);
