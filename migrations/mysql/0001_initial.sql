-- talos schema v1 (MySQL 8 / MariaDB 10.5+).
-- Portable types: VARCHAR ids, BIGINT epoch-millisecond timestamps, JSON as
-- TEXT, enums as INT ordinals (domain `as_i32`). No TEXT column is part of a
-- key or index. Tables default to utf8mb4_unicode_ci (as Talos does), but the
-- identifier columns use utf8mb4_bin so equality and the keyset order are
-- exact and bytewise, as on every other backend (actor "Bob" != "bob").

CREATE TABLE networks (
    id         VARCHAR(36) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at BIGINT      NOT NULL,
    updated_at BIGINT      NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE issued_api_keys (
    nid                    VARCHAR(36)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    key_id                 VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    name                   TEXT         NOT NULL,
    token_prefix           VARCHAR(64),
    version                INT          NOT NULL DEFAULT 1,
    actor_id               VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    scopes                 TEXT         NOT NULL,
    status                 INT          NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INT          NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL,
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    visibility             INT          NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE KEY issued_api_keys_request_id_key (nid, request_id),
    KEY issued_api_keys_actor_idx (nid, actor_id, key_id),
    CONSTRAINT issued_api_keys_nid_fkey FOREIGN KEY (nid) REFERENCES networks (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE imported_api_keys (
    nid                    VARCHAR(36)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    key_id                 VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    name                   TEXT         NOT NULL,
    actor_id               VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    scopes                 TEXT         NOT NULL,
    status                 INT          NOT NULL,
    metadata               TEXT         NOT NULL,
    last_used_at           BIGINT,
    expires_at             BIGINT,
    created_at             BIGINT       NOT NULL,
    updated_at             BIGINT       NOT NULL,
    rate_limit_quota       BIGINT,
    rate_limit_window      BIGINT,
    revocation_reason      INT          NOT NULL DEFAULT 0,
    revocation_reason_text TEXT         NOT NULL,
    allowed_cidrs          TEXT         NOT NULL,
    request_id             VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    visibility             INT          NOT NULL,
    PRIMARY KEY (nid, key_id),
    UNIQUE KEY imported_api_keys_request_id_key (nid, request_id),
    KEY imported_api_keys_actor_idx (nid, actor_id, key_id),
    CONSTRAINT imported_api_keys_nid_fkey FOREIGN KEY (nid) REFERENCES networks (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
