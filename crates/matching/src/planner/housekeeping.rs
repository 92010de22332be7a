//! Housekeeping: the follow-ups the state calls for. Settle holds whose need
//! moved on, finish half-done proposals, expire referrals past their
//! deadline, accept proposals to donations.

use super::{hold_id, Decision, Ledger, Projection};
use refer_domain::ids::NeedId;
use refer_domain::need::{NeedStatus, Target};
use refer_domain::provider::ReleaseReason;
use refer_domain::Timestamp;
use std::collections::BTreeSet;

impl Projection {
    /// Everything to do after an event: housekeeping, then matching.
    pub fn plan(&mut self, now: Timestamp, ledger: &mut Ledger) -> Vec<Decision> {
        // Only the holds of needs that changed can need settling: a commit
        // looks at those, not at every open hold.
        let touched = std::mem::take(&mut self.touched);
        let scope = (!std::mem::take(&mut self.sweep_all)).then_some(&touched);
        let mut decisions = self.chores(now, ledger, scope);
        decisions.extend(self.match_needs(now, ledger));
        decisions
    }

    /// Housekeeping over every hold. Also run on a timer: a deadline passes
    /// with no commit to notice it.
    pub fn housekeeping(&self, now: Timestamp, ledger: &mut Ledger) -> Vec<Decision> {
        self.chores(now, ledger, None)
    }

    /// Housekeeping, for the holds of `needs` only, or of every need.
    fn chores(&self, now: Timestamp, ledger: &mut Ledger, needs: Option<&BTreeSet<NeedId>>) -> Vec<Decision> {
        let mut decisions = Vec::new();

        // Settle holds whose need has moved on, and finish half-done proposals.
        let holds = match needs {
            None => self.holds(),
            Some(needs) => needs
                .iter()
                .flat_map(|need| {
                    self.holds_by_need
                        .get(need)
                        .into_iter()
                        .flatten()
                        .map(move |(target, hold)| (*target, *hold, *need))
                })
                .collect(),
        };
        for (target, hold, need_id) in holds {
            if ledger.holds(&hold) || ledger.settling.contains_key(&hold) {
                continue;
            }
            let Some(need) = self.needs.get(&need_id) else { continue };
            let live = need.proposal.filter(|p| p.hold == hold && p.target == target);
            match (need.status, live) {
                (NeedStatus::Proposed, Some(_)) => {}
                (NeedStatus::Accepted | NeedStatus::Fulfilled, Some(_)) => {
                    ledger.settling.insert(hold, target);
                    decisions.push(Decision::Confirm { target, hold });
                }
                (status, None) if status.awaits_match() && hold == hold_id(need_id, need.proposals_made + 1) => {
                    let Some(deadline) = self.hold_expiry(target, hold) else {
                        continue;
                    };
                    ledger.needs.insert(need_id, need.step());
                    decisions.push(Decision::CompleteProposal {
                        need: need_id,
                        target,
                        hold,
                        deadline,
                    });
                }
                (status, _) => {
                    let reason = match status {
                        NeedStatus::Declined => ReleaseReason::Declined,
                        NeedStatus::Expired => ReleaseReason::Expired,
                        _ => ReleaseReason::Cancelled,
                    };
                    ledger.settling.insert(hold, target);
                    decisions.push(Decision::Release { target, hold, reason });
                }
            }
        }

        // Referrals past their deadline; donation proposals not yet accepted.
        let due = self.proposed.iter().take_while(|(at, _)| *at <= now).map(|(_, id)| id);
        for (id, need) in due.filter_map(|id| Some((id, self.needs.get(id)?))) {
            let Some(proposal) = need.proposal.filter(|_| need.status == NeedStatus::Proposed) else {
                continue;
            };
            if ledger.needs.contains_key(id) {
                continue;
            }
            match proposal.target {
                Target::Provider(_) if proposal.deadline <= now => {
                    ledger.needs.insert(*id, need.step());
                    decisions.push(Decision::Expire {
                        need: *id,
                        target: proposal.target,
                        hold: proposal.hold,
                    });
                }
                Target::Donation(_) => {
                    ledger.needs.insert(*id, need.step());
                    decisions.push(Decision::AcceptDonation {
                        need: *id,
                        target: proposal.target,
                        hold: proposal.hold,
                    });
                }
                Target::Provider(_) => {}
            }
        }
        decisions
    }
}
