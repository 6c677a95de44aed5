//! IO that reads a node's operation pools for the double-signing watch:
//! the attestation pool sliced by slot and committee, and the attester and
//! proposer slashings waiting for a block.
//!
//! A pool that answered "not served" (404 on v2 and v1) is not asked again
//! for `REPROBE_SLOTS`: nodes without pool routes (the Lodestar devnet
//! recording) otherwise cost two requests every slot for nothing.
//!
//! Owns: which pool routes are asked and how "not served" is told from a
//! failure, and the memory of which were not. Must not: judge (the
//! comparison is `analysis::doublesign`).

use crate::beacon::{BeaconError, BeaconPool};
use crate::chain::{Attestation, AttesterSlashing, ProposerSlashing, Slot};

/// Slots a "not served" pool is believed before it is asked again: eight
/// mainnet epochs (51 minutes). A node upgraded or replaced behind the same
/// URL is found again within that; the double-signing watch meanwhile
/// relies on blocks and the event stream, as it does for such a node.
pub const REPROBE_SLOTS: u64 = 256;

/// Which pools answered "not served", and until which slot that stands.
#[derive(Debug, Default)]
pub struct PoolMemory {
    votes_until: Option<Slot>,
    slashings_until: Option<Slot>,
}

impl PoolMemory {
    fn skips(until: Option<Slot>, now: Slot) -> bool {
        until.is_some_and(|u| now < u)
    }
}

/// What a node answered about one of its pools.
#[derive(Debug)]
pub enum PoolRead<T> {
    Served(T),
    /// The node answered 404 on the route (v2 and v1): it keeps no such
    /// pool, or does not expose it. Not an error.
    NotServed,
}

/// The aggregates of the attestation pool for each `(slot, committee)` of
/// `queries` (`None`: the whole slot), in the order asked. One request per
/// query; a route not served ends the read at once, and is not asked again
/// before `REPROBE_SLOTS` past the first query's slot.
pub async fn pool_votes(
    pool: &BeaconPool,
    memory: &mut PoolMemory,
    queries: &[(Slot, Option<u64>)],
) -> Result<PoolRead<Vec<Attestation>>, BeaconError> {
    let Some(&(now, _)) = queries.first() else {
        return Ok(PoolRead::Served(Vec::new()));
    };
    if PoolMemory::skips(memory.votes_until, now) {
        return Ok(PoolRead::NotServed);
    }
    let mut out = Vec::new();
    for &(slot, committee) in queries {
        let answer = pool
            .call("/eth/v2/beacon/pool/attestations", |c| async move {
                c.pool_attestations_at(Some(slot), committee).await
            })
            .await?;
        match answer {
            Some((_, atts)) => out.extend(atts),
            None => {
                memory.votes_until = Some(Slot(now.0 + REPROBE_SLOTS));
                return Ok(PoolRead::NotServed);
            }
        }
    }
    Ok(PoolRead::Served(out))
}

/// The attester and proposer slashings of the pools. A route that is not
/// served reads as empty; `NotServed` only when neither is, and then they
/// are not asked again before `REPROBE_SLOTS` past `now`.
pub async fn pool_slashings(
    pool: &BeaconPool,
    memory: &mut PoolMemory,
    now: Slot,
) -> Result<PoolRead<(Vec<AttesterSlashing>, Vec<ProposerSlashing>)>, BeaconError> {
    if PoolMemory::skips(memory.slashings_until, now) {
        return Ok(PoolRead::NotServed);
    }
    let attester = pool
        .call("/eth/v2/beacon/pool/attester_slashings", |c| async move {
            c.pool_attester_slashings().await
        })
        .await?;
    let proposer = pool
        .call("/eth/v1/beacon/pool/proposer_slashings", |c| async move {
            c.pool_proposer_slashings().await
        })
        .await?;
    if attester.is_none() && proposer.is_none() {
        memory.slashings_until = Some(Slot(now.0 + REPROBE_SLOTS));
        return Ok(PoolRead::NotServed);
    }
    Ok(PoolRead::Served((
        attester.unwrap_or_default(),
        proposer.unwrap_or_default(),
    )))
}
