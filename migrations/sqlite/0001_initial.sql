-- valwatch schema, SQLite: the same tables, columns and meaning as
-- migrations/postgres/0001_initial.sql (read its header for the choices on
-- numbers and roots). Released migrations are never edited.
--
-- Differences forced by SQLite:
-- * STRICT tables, so a wrong type is an error instead of being stored;
--   STRICT knows only INTEGER (64-bit signed, like BIGINT) and TEXT here.
-- * Booleans are INTEGER 0/1 with a CHECK.
-- * Root format is checked with GLOB (no regular expressions).
-- * WITHOUT ROWID for tables whose key is their natural primary key: the
--   rows are small, and this avoids a second b-tree per table.
-- * JSON bodies are TEXT checked by json_valid().

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL CHECK (epoch >= 0)
) STRICT, WITHOUT ROWID;

CREATE TABLE epochs (
    epoch    INTEGER PRIMARY KEY CHECK (epoch >= 0),
    is_final INTEGER NOT NULL CHECK (is_final IN (0, 1))
) STRICT;

CREATE TABLE attestations (
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index INTEGER NOT NULL CHECK (validator_index >= 0),
    status          TEXT    NOT NULL
        CHECK (status IN ('included', 'missed', 'pending', 'inactive', 'unknown')),
    duty_slot       INTEGER CHECK (duty_slot >= 0),
    inclusion_slot  INTEGER CHECK (inclusion_slot >= 0),
    inclusion_delay INTEGER CHECK (inclusion_delay >= 0),
    late            INTEGER CHECK (late IN (0, 1)),
    source_correct  INTEGER CHECK (source_correct IN (0, 1)),
    target_correct  INTEGER CHECK (target_correct IN (0, 1)),
    head_correct    INTEGER CHECK (head_correct IN (0, 1)),
    reason          TEXT,
    PRIMARY KEY (epoch, validator_index)
) STRICT, WITHOUT ROWID;
CREATE INDEX attestations_validator_epoch ON attestations (validator_index, epoch);

CREATE TABLE proposals (
    slot            INTEGER PRIMARY KEY CHECK (slot >= 0),
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index INTEGER NOT NULL CHECK (validator_index >= 0),
    status          TEXT    NOT NULL
        CHECK (status IN ('proposed', 'missed', 'orphaned', 'unknown')),
    block_root      TEXT    CHECK (length(block_root) = 66 AND block_root GLOB '0x*'
                                   AND substr(block_root, 3) NOT GLOB '*[^0-9a-f]*'),
    reason          TEXT
) STRICT;
CREATE INDEX proposals_epoch ON proposals (epoch);
CREATE INDEX proposals_validator_slot ON proposals (validator_index, slot);

CREATE TABLE sync_participation (
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index INTEGER NOT NULL CHECK (validator_index >= 0),
    participated    INTEGER NOT NULL CHECK (participated >= 0),
    missed          INTEGER NOT NULL CHECK (missed >= 0),
    PRIMARY KEY (epoch, validator_index)
) STRICT, WITHOUT ROWID;
CREATE INDEX sync_participation_validator_epoch ON sync_participation (validator_index, epoch);

CREATE TABLE balances (
    epoch                  INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index        INTEGER NOT NULL CHECK (validator_index >= 0),
    balance_gwei           INTEGER NOT NULL CHECK (balance_gwei >= 0),
    effective_balance_gwei INTEGER NOT NULL CHECK (effective_balance_gwei >= 0),
    status                 TEXT    NOT NULL CHECK (status IN (
        'pending_initialized', 'pending_queued', 'active_ongoing', 'active_exiting',
        'active_slashed', 'exited_unslashed', 'exited_slashed', 'withdrawal_possible',
        'withdrawal_done', 'unknown')),
    slashed                INTEGER NOT NULL CHECK (slashed IN (0, 1)),
    balance_change_gwei    INTEGER,
    PRIMARY KEY (epoch, validator_index)
) STRICT, WITHOUT ROWID;
CREATE INDEX balances_validator_epoch ON balances (validator_index, epoch);

CREATE TABLE slashings (
    epoch            INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index  INTEGER NOT NULL CHECK (validator_index >= 0),
    kind             TEXT    NOT NULL CHECK (kind IN ('proposer', 'attester')),
    included_in_slot INTEGER NOT NULL CHECK (included_in_slot >= 0),
    PRIMARY KEY (epoch, validator_index, kind)
) STRICT, WITHOUT ROWID;
CREATE INDEX slashings_validator_epoch ON slashings (validator_index, epoch);

CREATE TABLE cross_checks (
    epoch         INTEGER NOT NULL CHECK (epoch >= 0),
    node          TEXT    NOT NULL,
    slot          INTEGER NOT NULL CHECK (slot >= 0),
    node_root     TEXT    CHECK (length(node_root) = 66 AND node_root GLOB '0x*'
                                 AND substr(node_root, 3) NOT GLOB '*[^0-9a-f]*'),
    expected_root TEXT    CHECK (length(expected_root) = 66 AND expected_root GLOB '0x*'
                                 AND substr(expected_root, 3) NOT GLOB '*[^0-9a-f]*'),
    agrees        INTEGER NOT NULL CHECK (agrees IN (0, 1)),
    error         TEXT,
    PRIMARY KEY (epoch, node)
) STRICT, WITHOUT ROWID;

CREATE TABLE proposer_duty_sets (
    epoch          INTEGER PRIMARY KEY CHECK (epoch >= 0),
    dependent_root TEXT    NOT NULL
        CHECK (length(dependent_root) = 66 AND dependent_root GLOB '0x*'
               AND substr(dependent_root, 3) NOT GLOB '*[^0-9a-f]*')
) STRICT;
CREATE TABLE proposer_duties (
    epoch           INTEGER NOT NULL REFERENCES proposer_duty_sets (epoch) ON DELETE CASCADE,
    slot            INTEGER NOT NULL CHECK (slot >= 0),
    validator_index INTEGER NOT NULL CHECK (validator_index >= 0),
    PRIMARY KEY (epoch, slot)
) STRICT, WITHOUT ROWID;

CREATE TABLE perishable (
    kind  TEXT    NOT NULL,
    epoch INTEGER NOT NULL CHECK (epoch >= 0),
    body  TEXT    NOT NULL CHECK (json_valid(body)),
    PRIMARY KEY (kind, epoch)
) STRICT, WITHOUT ROWID;
CREATE INDEX perishable_epoch ON perishable (epoch);
