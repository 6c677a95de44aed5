-- valwatch schema, PostgreSQL. Released migrations are never edited: change
-- the schema with a new numbered file.
--
-- Numbers: slots, epochs, validator indices and Gwei are u64 in the program
-- and BIGINT (i64) here, because PostgreSQL has no unsigned type. The store
-- refuses to write a value above i64::MAX instead of wrapping it. None of
-- these tables holds such a value: FAR_FUTURE_EPOCH (u64::MAX) appears only
-- in registry fields (activation/exit epochs) that are not stored, and the
-- total Ether supply in Gwei (~1.2e17) is far below i64::MAX (~9.2e18).
-- `CHECK (x >= 0)` keeps the unsigned meaning.
--
-- Roots: 0x-prefixed lowercase hex TEXT, the form the Beacon API and block
-- explorers use, so Grafana can show and link them without encode(); they are
-- only stored once per slot or per node and epoch, so the doubled size does
-- not matter.
--
-- Every verdict table has an `epoch` column and an index that starts with
-- it: retention deletes by epoch, reports and dashboards select epoch ranges.
-- Per-validator views use the (validator_index, epoch) indexes.

-- Small key/value facts about the database, e.g. the network it belongs to.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Named progress markers; 'processed' is the last epoch stored as final.
CREATE TABLE cursors (
    name  TEXT PRIMARY KEY,
    epoch BIGINT NOT NULL CHECK (epoch >= 0)
);

-- One row per written epoch. is_final never goes back to false: a later
-- non-final write of a final epoch is refused as a whole.
CREATE TABLE epochs (
    epoch    BIGINT PRIMARY KEY CHECK (epoch >= 0),
    is_final BOOLEAN NOT NULL
);

CREATE TABLE attestations (
    epoch           BIGINT  NOT NULL CHECK (epoch >= 0),
    validator_index BIGINT  NOT NULL CHECK (validator_index >= 0),
    status          TEXT    NOT NULL
        CHECK (status IN ('included', 'missed', 'pending', 'inactive', 'unknown')),
    duty_slot       BIGINT  CHECK (duty_slot >= 0),
    inclusion_slot  BIGINT  CHECK (inclusion_slot >= 0),
    inclusion_delay BIGINT  CHECK (inclusion_delay >= 0),
    late            BOOLEAN,
    source_correct  BOOLEAN,
    target_correct  BOOLEAN,
    head_correct    BOOLEAN,
    reason          TEXT,
    PRIMARY KEY (epoch, validator_index)
);
CREATE INDEX attestations_validator_epoch ON attestations (validator_index, epoch);

-- One proposer per slot; the epoch is that of the record that judged it.
CREATE TABLE proposals (
    slot            BIGINT PRIMARY KEY CHECK (slot >= 0),
    epoch           BIGINT NOT NULL CHECK (epoch >= 0),
    validator_index BIGINT NOT NULL CHECK (validator_index >= 0),
    status          TEXT   NOT NULL
        CHECK (status IN ('proposed', 'missed', 'orphaned', 'unknown')),
    block_root      TEXT   CHECK (block_root ~ '^0x[0-9a-f]{64}$'),
    reason          TEXT
);
CREATE INDEX proposals_epoch ON proposals (epoch);
CREATE INDEX proposals_validator_slot ON proposals (validator_index, slot);

CREATE TABLE sync_participation (
    epoch           BIGINT NOT NULL CHECK (epoch >= 0),
    validator_index BIGINT NOT NULL CHECK (validator_index >= 0),
    participated    BIGINT NOT NULL CHECK (participated >= 0),
    missed          BIGINT NOT NULL CHECK (missed >= 0),
    PRIMARY KEY (epoch, validator_index)
);
CREATE INDEX sync_participation_validator_epoch ON sync_participation (validator_index, epoch);

CREATE TABLE balances (
    epoch                  BIGINT  NOT NULL CHECK (epoch >= 0),
    validator_index        BIGINT  NOT NULL CHECK (validator_index >= 0),
    balance_gwei           BIGINT  NOT NULL CHECK (balance_gwei >= 0),
    effective_balance_gwei BIGINT  NOT NULL CHECK (effective_balance_gwei >= 0),
    status                 TEXT    NOT NULL CHECK (status IN (
        'pending_initialized', 'pending_queued', 'active_ongoing', 'active_exiting',
        'active_slashed', 'exited_unslashed', 'exited_slashed', 'withdrawal_possible',
        'withdrawal_done', 'unknown')),
    slashed                BOOLEAN NOT NULL,
    balance_change_gwei    BIGINT,
    PRIMARY KEY (epoch, validator_index)
);
-- Also serves latest_balances (newest epoch before E, per validator).
CREATE INDEX balances_validator_epoch ON balances (validator_index, epoch);

CREATE TABLE slashings (
    epoch            BIGINT NOT NULL CHECK (epoch >= 0),
    validator_index  BIGINT NOT NULL CHECK (validator_index >= 0),
    kind             TEXT   NOT NULL CHECK (kind IN ('proposer', 'attester')),
    included_in_slot BIGINT NOT NULL CHECK (included_in_slot >= 0),
    PRIMARY KEY (epoch, validator_index, kind)
);
CREATE INDEX slashings_validator_epoch ON slashings (validator_index, epoch);

-- One row per (epoch, node): what each beacon node said of the canonical chain.
CREATE TABLE cross_checks (
    epoch         BIGINT  NOT NULL CHECK (epoch >= 0),
    node          TEXT    NOT NULL,
    slot          BIGINT  NOT NULL CHECK (slot >= 0),
    node_root     TEXT    CHECK (node_root ~ '^0x[0-9a-f]{64}$'),
    expected_root TEXT    CHECK (expected_root ~ '^0x[0-9a-f]{64}$'),
    agrees        BOOLEAN NOT NULL,
    error         TEXT,
    PRIMARY KEY (epoch, node)
);

-- Proposer duties are perishable: nodes answer them only for the current and
-- next epoch, so they are kept to judge proposals later.
CREATE TABLE proposer_duty_sets (
    epoch          BIGINT PRIMARY KEY CHECK (epoch >= 0),
    dependent_root TEXT   NOT NULL CHECK (dependent_root ~ '^0x[0-9a-f]{64}$')
);
CREATE TABLE proposer_duties (
    epoch           BIGINT NOT NULL REFERENCES proposer_duty_sets (epoch) ON DELETE CASCADE,
    slot            BIGINT NOT NULL CHECK (slot >= 0),
    validator_index BIGINT NOT NULL CHECK (validator_index >= 0),
    PRIMARY KEY (epoch, slot)
);

-- Other perishable node answers (liveness, rewards), kept as the JSON the
-- program serialised; `kind` names the answer.
CREATE TABLE perishable (
    kind  TEXT   NOT NULL,
    epoch BIGINT NOT NULL CHECK (epoch >= 0),
    body  JSONB  NOT NULL,
    PRIMARY KEY (kind, epoch)
);
CREATE INDEX perishable_epoch ON perishable (epoch);
