//! The batch builder: the needs that wait, with what earlier decisions left
//! for each (their group mates' sites, their bed), placed all together by
//! the engine's `assign`, the same policy `refer solve` runs.

use super::fold::{pool, site_pool, InLine};
use super::policy::MIN_SPAN_SECS;
use super::{hold_id, Decision, Ledger, Projection};
use crate::{assign, Earlier, Mode, Request, Standing, Stock};
use refer_domain::ids::{NeedId, PlacementId};
use refer_domain::kinds::NeedKind;
use refer_domain::need::{hold_expiry, NeedStatus, Target};
use refer_domain::request::NeedSpec;
use refer_domain::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

impl Projection {
    /// Notes the sites that opened since the last look (their hours began,
    /// a donation's window started) as having gained room, so the waitlisted
    /// needs they could take get another look. Hours change on the minute,
    /// so this looks at most once per minute of `now`. Returns whether any
    /// site opened.
    pub fn note_openings(&mut self, now: Timestamp) -> bool {
        let Some(catalog) = &self.sites else { return false };
        let last = match self.hours_checked {
            Some(last) if last.epoch_minutes() >= now.epoch_minutes() => return false,
            Some(last) => last,
            None => {
                // First look (a start): the whole waitlist is looked at anyway.
                self.hours_checked = Some(now);
                return false;
            }
        };
        self.hours_checked = Some(now);
        let before = self.freed.len();
        for i in 0..catalog.len() {
            let site = catalog.site(i);
            if site.offer.open_at(now) && !site.offer.open_at(last) {
                self.freed.insert(site.target);
            }
        }
        self.freed.len() > before
    }

    /// The waitlisted needs worth another look: all of them after a change
    /// to the sites themselves (then `everything` is set: every awaiting need
    /// gets a look too); otherwise those that a target with more room since
    /// the last plan could take (most capacity changes concern one site, and
    /// the waitlist can be long).
    pub(crate) fn revisit(&mut self, now: Timestamp, ledger: &Ledger, everything: &mut bool) -> Vec<NeedId> {
        let freed = std::mem::take(&mut self.freed);
        if std::mem::take(&mut self.capacity_changed) {
            // New sites may bring languages and regions the compiled queries
            // do not know of: compile them again when next needed.
            self.queries.clear();
            *everything = true;
            return self.waitlisted.iter().copied().collect();
        }
        let Self {
            sites: Some(catalog),
            queries,
            needs,
            waitlisted,
            ..
        } = self
        else {
            return vec![];
        };
        let freed: Vec<usize> = freed.iter().flat_map(|t| catalog.sites_of(*t)).collect();
        if freed.is_empty() {
            return vec![];
        }
        for id in waitlisted.iter() {
            if let (None, Some(need)) = (queries.get(id), needs.get(id)) {
                if let Some(request) = &need.request {
                    let excluded: Vec<Target> = need.excluded.iter().copied().collect();
                    queries.insert(*id, catalog.query(&request.spec, &excluded));
                }
            }
        }
        let catalog = self.sites.as_ref().expect("compiled above");
        self.waitlisted
            .iter()
            .copied()
            .filter(|id| {
                let Some(query) = self.queries.get(id) else {
                    return false;
                };
                freed.iter().any(|&i| {
                    let site = catalog.site(i);
                    catalog
                        .option_at(i, query, now, || self.free(site_pool(site), ledger))
                        .is_some()
                })
            })
            .collect()
    }

    /// Needs to match now, in line: those awaiting a match with no decision
    /// under way (of `awaiting`: every such need, or those that changed since
    /// the last plan), and the waitlisted ones given another look. A need
    /// whose next hold is placed already (a crash between hold and proposal)
    /// is left to housekeeping, which completes the proposal: matching it
    /// again would count those units twice.
    fn queue(&self, awaiting: &BTreeSet<InLine>, ledger: &Ledger, waitlisted: &[NeedId]) -> Vec<NeedId> {
        let mut line: Vec<_> = awaiting
            .iter()
            .filter(|place| !ledger.needs.contains_key(&place.3))
            .copied()
            .collect();
        if !waitlisted.is_empty() {
            line.extend(
                waitlisted
                    .iter()
                    .filter(|id| !ledger.needs.contains_key(id))
                    .filter_map(|id| self.place_in_line(*id)),
            );
            line.sort();
        }
        line.into_iter()
            .map(|(_, _, _, id)| id)
            .filter(|id| {
                let next = hold_id(*id, self.needs[id].proposals_made + 1);
                !self
                    .holds_by_need
                    .get(id)
                    .is_some_and(|holds| holds.iter().any(|(_, h)| *h == next))
            })
            .collect()
    }

    /// Where `need` is placed or about to be: proposed, accepted or
    /// fulfilled there, a hold open there, or a hold planned there.
    fn placed_at(&self, need: NeedId, ledger: &Ledger) -> Option<Target> {
        let n = self.needs.get(&need)?;
        if let Some(p) = n.proposal {
            if matches!(
                n.status,
                NeedStatus::Proposed | NeedStatus::Accepted | NeedStatus::Fulfilled
            ) {
                return Some(p.target);
            }
        }
        if n.status.is_final() {
            return None;
        }
        let next = hold_id(need, n.proposals_made + 1);
        let held = self
            .holds_by_need
            .get(&need)
            .and_then(|holds| holds.iter().find(|(_, hold)| *hold == next).map(|(target, _)| *target));
        held.or_else(|| ledger.hold_target(&next))
    }

    /// What decisions before this plan left for `need`: its person's bed,
    /// and where its group mates have the same kind of need placed. Every
    /// stage of a decision counts (planned, held, proposed, accepted), so a
    /// group kept apart stays apart across commits and restarts.
    fn earlier(&self, need: NeedId, ledger: &Ledger) -> Earlier {
        let Some(request) = self.needs.get(&need).and_then(|n| n.request.as_ref()) else {
            return Earlier::default();
        };
        let kind = request.spec.kind;
        let of_kind = |id: &NeedId, kind: NeedKind| {
            self.needs
                .get(id)
                .and_then(|n| n.request.as_ref())
                .is_some_and(|r| r.spec.kind == kind)
        };
        let bed = if kind == NeedKind::Shelter {
            None
        } else {
            self.bundles
                .get(&request.placement)
                .into_iter()
                .flatten()
                .filter(|id| of_kind(id, NeedKind::Shelter))
                .find_map(|id| self.placed_at(*id, ledger))
                .and_then(|target| {
                    let catalog = self.sites.as_ref()?;
                    let site = catalog.sites_of(target).next()?;
                    Some(catalog.site(site).location.point)
                })
        };
        let mates: BTreeSet<Target> = request
            .group
            .and_then(|g| self.groups.get(&g.group))
            .into_iter()
            .flatten()
            .filter(|id| **id != need && of_kind(id, kind))
            .filter_map(|id| self.placed_at(*id, ledger))
            .collect();
        Earlier {
            bed,
            mates: mates.into_iter().collect(),
        }
    }

    /// When a hold placed now at `target` expires.
    fn expiry(&self, target: Target, now: Timestamp) -> Timestamp {
        let window_end = match target {
            Target::Provider(_) => None,
            Target::Donation(id) => self
                .donations
                .get(&id)
                .and_then(|d| d.offer.as_ref())
                .map(|offer| offer.window.end),
        };
        hold_expiry(now, window_end)
    }

    /// How each queued need stands under the policy (`Policy`): held back
    /// while its tier may wait and it waited less than that, else decided
    /// now. Notes when each need was first seen, and keeps the forecast's
    /// sample (needs first seen within the lookback) up to date.
    fn stand(&mut self, queued: &[NeedId], now: Timestamp) -> Vec<Option<Standing>> {
        let lookback = self.policy.lookback_secs;
        let mut standings = Vec::with_capacity(queued.len());
        for id in queued {
            let Some(request) = self.needs.get(id).and_then(|n| n.request.as_ref()) else {
                standings.push(Some(Standing::Now));
                continue;
            };
            let tier = crate::tier(&request.spec);
            let wait = self.policy.hold_back(tier);
            let first = !self.seen.contains_key(id);
            let recorded = self.needs[id].held_until.map(|until| until.plus_secs(-wait));
            let since = *self.seen.entry(*id).or_insert(recorded.unwrap_or(now));
            self.observing_since.get_or_insert(now);
            if first && lookback > 0 {
                self.recent.insert((since, *id));
            }
            let held = wait > 0 && now < since.plus_secs(wait);
            if held && self.learning(now) {
                // No arrival rate known yet: soon and routine needs wait
                // until it is (`MIN_SPAN_SECS` after the first need seen).
                standings.push(None);
                continue;
            }
            standings.push(Some(if held { Standing::HeldBack } else { Standing::Now }));
        }
        let horizon = Timestamp(now.0.saturating_sub(lookback.saturating_mul(1000)));
        while self.recent.first().is_some_and(|(at, _)| *at <= horizon) {
            self.recent.pop_first();
        }
        standings
    }

    /// Whether a held-back need's wait ended, or the forecast shrank (the
    /// urgent needs seen lately aged out of the lookback) while needs are
    /// held back: either calls for another look at them. The matcher's
    /// timer asks, as no commit marks these moments.
    pub fn waits_due(&self, now: Timestamp) -> bool {
        if self.held_back.is_empty() {
            return false;
        }
        if self.learned_at.is_some_and(|at| at <= now) {
            return true;
        }
        let horizon = Timestamp(now.0.saturating_sub(self.policy.lookback_secs.saturating_mul(1000)));
        self.held_back.values().any(|until| *until <= now) || self.recent.first().is_some_and(|(at, _)| *at <= horizon)
    }

    /// Whether the matcher has not yet observed long enough to know an
    /// arrival rate (it notes when it will, for `waits_due`).
    fn learning(&mut self, now: Timestamp) -> bool {
        let Some(since) = self.observing_since else { return true };
        let learned = since.plus_secs(MIN_SPAN_SECS);
        if now < learned {
            self.learned_at = Some(learned);
            return true;
        }
        false
    }

    /// The needs held back, with when each one's wait ends (what intake is
    /// shown while they wait).
    pub fn held_back(&self) -> &BTreeMap<NeedId, Timestamp> {
        &self.held_back
    }

    /// The waitlisted needs held back that get another look now: every one
    /// when the forecast shrank, else those whose wait ended (no longer
    /// held back).
    fn waits_ended(&mut self, now: Timestamp) -> Vec<NeedId> {
        // Needs placed, cancelled or under way are no longer held back.
        let needs = &self.needs;
        self.held_back.retain(|id, _| {
            needs
                .get(id)
                .is_some_and(|n| n.status == NeedStatus::Waitlisted || n.status == NeedStatus::Requested)
        });
        if !self.waits_due(now) {
            return Vec::new();
        }
        if self.learned_at.is_some_and(|at| at <= now) {
            self.learned_at = None;
        }
        let horizon = Timestamp(now.0.saturating_sub(self.policy.lookback_secs.saturating_mul(1000)));
        while self.recent.first().is_some_and(|(at, _)| *at <= horizon) {
            self.recent.pop_first();
        }
        let ended: Vec<NeedId> = self
            .held_back
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &ended {
            self.held_back.remove(id);
        }
        let waiting = |id: &NeedId| self.needs.get(id).is_some_and(|n| n.status == NeedStatus::Waitlisted);
        ended
            .into_iter()
            .chain(self.held_back.keys().copied())
            .filter(waiting)
            .collect()
    }

    /// Matches the needs that wait, all together, with the matching engine:
    /// each to an eligible target with room, or the waitlist. Waitlisted needs
    /// are looked at again only when a target they could use gained room
    /// (see `revisit`). `ledger` is updated with what is planned, so a
    /// caller that executes it later (or a replay that never does) plans the
    /// same way.
    pub fn match_needs(&mut self, now: Timestamp, ledger: &mut Ledger) -> Vec<Decision> {
        self.compile_sites();
        self.note_openings(now);
        let mut everything = std::mem::take(&mut self.sweep_awaiting);
        let mut revisit = self.revisit(now, ledger, &mut everything);
        revisit.extend(self.waits_ended(now));
        revisit.sort();
        revisit.dedup();
        // Every awaiting need that is not in `unplanned` has a decision in
        // flight (each queued need is proposed or waitlisted), unless a
        // decision failed, which sets `capacity_changed`: then all of them.
        let unplanned = std::mem::take(&mut self.unplanned);
        let awaiting = if everything { &self.awaiting } else { &unplanned };
        let queued = self.queue(awaiting, ledger, &revisit);
        if queued.is_empty() {
            return Vec::new();
        }
        let standings = self.stand(&queued, now);
        // The forecast (`Policy::forecast`), made when a need is held back:
        // it only ranks above those.
        let forecast: Vec<NeedSpec> = if standings.contains(&Some(Standing::HeldBack)) {
            let sample: Vec<&NeedSpec> = self
                .recent
                .iter()
                .filter_map(|(_, id)| Some(&self.needs.get(id)?.request.as_ref()?.spec))
                .collect();
            self.policy.forecast(self.observing_since, now, &sample)
        } else {
            Vec::new()
        };
        let choices = {
            let mut requests: Vec<Request> = queued
                .iter()
                .zip(&standings)
                .filter_map(|(id, standing)| Some((id, (*standing)?)))
                .map(|(id, standing)| {
                    let need = &self.needs[id];
                    let request = need.request.as_ref().expect("queued needs are requested");
                    Request {
                        standing,
                        spec: &request.spec,
                        person: request.placement,
                        group: request.group,
                        exclude: need.excluded.iter().copied().collect(),
                        earlier: self.earlier(*id, ledger),
                    }
                })
                .collect();
            // The forecast (never placed for real: its choices are dropped below).
            requests.extend(forecast.iter().enumerate().map(|(k, spec)| Request {
                standing: Standing::Forecast,
                spec,
                person: PlacementId::from_uuid(Uuid::from_u128(u128::MAX - k as u128)),
                group: None,
                exclude: Vec::new(),
                earlier: Earlier::default(),
            }));
            let catalog = self.sites.as_ref().expect("compiled above");
            let free = |i: usize| self.free(site_pool(catalog.site(i)), ledger);
            let stale = |i: usize| self.stale(site_pool(catalog.site(i)), now);
            let stock = Stock {
                free: &free,
                stale: &stale,
            };
            let mut decided = assign(catalog, stock, now, &requests, Mode::Batch).into_iter();
            // Back in line with `queued` (a need waiting to learn the rate
            // was not in the batch).
            let choices: Vec<crate::Choice> = standings
                .iter()
                .map(|s| s.and_then(|_| decided.next().flatten()))
                .collect();
            choices
        };

        let catalog = self.sites.as_ref().expect("compiled above");
        let mut decisions = Vec::new();
        for ((need_id, choice), standing) in queued.into_iter().zip(choices).zip(standings) {
            let need = &self.needs[&need_id];
            match (choice, standing) {
                (None, None | Some(Standing::HeldBack)) => {
                    let tier = crate::tier(&need.request.as_ref().expect("queued needs are requested").spec);
                    let until = self.seen[&need_id].plus_secs(self.policy.hold_back(tier));
                    self.held_back.insert(need_id, until);
                }
                _ => {
                    self.held_back.remove(&need_id);
                }
            }
            let request = need.request.as_ref().expect("queued needs are requested");
            match choice {
                Some((site, _)) => {
                    let target = catalog.site(site).target;
                    let pool = pool(target, request.spec.kind);
                    let hold = hold_id(need_id, need.proposals_made + 1);
                    let units = request.spec.units();
                    ledger.plan_hold(hold, pool, need_id, units);
                    ledger.needs.insert(need_id, need.step());
                    decisions.push(Decision::Propose {
                        need: need_id,
                        target,
                        service: pool.1,
                        hold,
                        units,
                        expires_at: self.expiry(target, now),
                    });
                }
                None => {
                    // Waitlisted, or held back until an instant: said on
                    // the stream when either changes, so intake sees why
                    // and until when (and a restart keeps the wait).
                    let held_until = self.held_back.get(&need_id).copied();
                    if need.status != NeedStatus::Waitlisted || need.held_until != held_until {
                        ledger.needs.insert(need_id, need.step());
                        decisions.push(Decision::Waitlist {
                            need: need_id,
                            attempt: need.step().1,
                            held_until,
                        });
                    }
                }
            }
        }
        decisions
    }
}
