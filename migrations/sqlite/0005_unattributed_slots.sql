-- Issue 11: no slot is absent from the history. When no node serves an
-- epoch's proposer duties any more, a slot without a block cannot be
-- blamed on anybody: it is stored as `unknown` with the reason and without
-- a validator (NULL), instead of being left out.
--
-- SQLite cannot drop a NOT NULL constraint: the table is rebuilt with the
-- same columns and checks, its rows copied, its indexes made again.
CREATE TABLE proposals_new (
    slot            INTEGER PRIMARY KEY CHECK (slot >= 0),
    epoch           INTEGER NOT NULL CHECK (epoch >= 0),
    validator_index INTEGER CHECK (validator_index >= 0),
    status          TEXT    NOT NULL
        CHECK (status IN ('proposed', 'missed', 'orphaned', 'unknown')),
    block_root      TEXT    CHECK (length(block_root) = 66 AND block_root GLOB '0x*'
                                   AND substr(block_root, 3) NOT GLOB '*[^0-9a-f]*'),
    reason          TEXT
) STRICT;
INSERT INTO proposals_new (slot, epoch, validator_index, status, block_root, reason)
    SELECT slot, epoch, validator_index, status, block_root, reason FROM proposals;
DROP TABLE proposals;
ALTER TABLE proposals_new RENAME TO proposals;
CREATE INDEX proposals_epoch ON proposals (epoch);
CREATE INDEX proposals_validator_slot ON proposals (validator_index, slot);
