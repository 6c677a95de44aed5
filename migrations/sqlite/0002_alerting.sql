-- Alerting, SQLite: the same tables, columns and meaning as
-- migrations/postgres/0002_alerting.sql (read its header). Differences
-- forced by SQLite: STRICT tables, booleans as INTEGER 0/1, INTEGER PRIMARY
-- KEY AUTOINCREMENT instead of BIGSERIAL (ids are never reused, so a
-- delivery can never be mistaken for a deleted one).

CREATE TABLE incidents (
    id                  TEXT PRIMARY KEY,
    rule                TEXT    NOT NULL,
    subject             TEXT    NOT NULL,
    severity            TEXT    NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    is_event            INTEGER NOT NULL CHECK (is_event IN (0, 1)),
    validators          TEXT    NOT NULL CHECK (json_valid(validators)),
    epoch               INTEGER CHECK (epoch >= 0),
    summary             TEXT    NOT NULL,
    opened_at_ms        INTEGER NOT NULL,
    last_notified_at_ms INTEGER NOT NULL,
    resolved_at_ms      INTEGER,
    resolution          TEXT
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX incidents_one_open ON incidents (rule, subject)
    WHERE resolved_at_ms IS NULL;
CREATE INDEX incidents_opened ON incidents (opened_at_ms);

CREATE TABLE notifications (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id   TEXT    NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind          TEXT    NOT NULL
        CHECK (kind IN ('firing', 'update', 'reminder', 'resolved', 'event')),
    created_at_ms INTEGER NOT NULL,
    payload       TEXT    NOT NULL CHECK (json_valid(payload))
) STRICT;
CREATE INDEX notifications_incident ON notifications (incident_id);

CREATE TABLE deliveries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id    INTEGER NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    channel            TEXT    NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'abandoned')),
    attempts           INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at_ms INTEGER NOT NULL,
    last_error         TEXT,
    finished_at_ms     INTEGER,
    UNIQUE (notification_id, channel)
) STRICT;
CREATE INDEX deliveries_pending ON deliveries (channel, id) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    at_ms       INTEGER NOT NULL,
    ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error       TEXT,
    PRIMARY KEY (delivery_id, attempt)
) STRICT, WITHOUT ROWID;
