//! The in-flight ledger: decisions planned but not yet seen on the stream.
//! Their units are spoken for, and their needs are not planned again. Not
//! persisted: after a restart the same decisions are derived again with the
//! same hold ids.

use refer_domain::ids::{HoldId, NeedId};
use refer_domain::kinds::ServiceKind;
use refer_domain::need::{NeedStatus, Target};
use std::collections::BTreeMap;

/// Where units come from: a provider's service, or a donation (one pool).
pub type Pool = (Target, Option<ServiceKind>);

#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Holds planned: where, for which need, how many units.
    pub(crate) holds: BTreeMap<HoldId, (Pool, NeedId, u32)>,
    /// What those holds speak for, per pool (kept as they come and go, so a
    /// plan need not add them up).
    pub(crate) spoken: BTreeMap<Pool, u32>,
    /// Needs with a decision under way, and their step (`Need::step`)
    /// when it was made: the decision is seen once the step changed.
    pub(crate) needs: BTreeMap<NeedId, (NeedStatus, u32)>,
    /// Holds being confirmed or released.
    pub(crate) settling: BTreeMap<HoldId, Target>,
}

impl Ledger {
    /// Forgets a decision that failed, so the need is planned again.
    pub fn abandon(&mut self, need: NeedId, hold: Option<HoldId>) {
        self.needs.remove(&need);
        if let Some(hold) = hold {
            self.drop_hold(hold);
        }
    }

    /// Forgets a settlement that failed, so housekeeping tries it again.
    pub fn abandon_settling(&mut self, hold: HoldId) {
        self.settling.remove(&hold);
    }

    /// Whether `hold` is planned and not yet seen.
    pub fn holds(&self, hold: &HoldId) -> bool {
        self.holds.contains_key(hold)
    }

    /// Units spoken for at `pool`.
    pub(crate) fn spoken_at(&self, pool: &Pool) -> u32 {
        self.spoken.get(pool).copied().unwrap_or(0)
    }

    /// Where the planned hold `hold` is.
    pub(crate) fn hold_target(&self, hold: &HoldId) -> Option<Target> {
        self.holds.get(hold).map(|((target, _), _, _)| *target)
    }

    pub(crate) fn plan_hold(&mut self, hold: HoldId, pool: Pool, need: NeedId, units: u32) {
        if let Some(old) = self.holds.insert(hold, (pool, need, units)) {
            self.unspeak(old.0, old.2);
        }
        *self.spoken.entry(pool).or_insert(0) += units;
    }

    pub(crate) fn drop_hold(&mut self, hold: HoldId) {
        if let Some((pool, _, units)) = self.holds.remove(&hold) {
            self.unspeak(pool, units);
        }
    }

    fn unspeak(&mut self, pool: Pool, units: u32) {
        if let Some(spoken) = self.spoken.get_mut(&pool) {
            *spoken = spoken.saturating_sub(units);
            if *spoken == 0 {
                self.spoken.remove(&pool);
            }
        }
    }
}
