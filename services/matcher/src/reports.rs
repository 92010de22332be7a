//! GetReport: a period's figures (docs/reports.md) from a read model of the
//! whole stream kept in memory (`refer_reports::Ledger`). It is rebuilt by
//! reading the stream from its start at the first call after a start, and
//! each call first folds what was appended since the last, so a report
//! always covers the stream up to the call. Any matcher answers, leading or
//! standing by, whatever its partition: the figures are the coalition's.

use refer_domain::ids::OrgId;
use refer_proto::matcher::v1 as pb;
use refer_reports::disclosure::{unpublished, Published, Shown};
use refer_reports::{Delay, Ledger, Period, PublishedDelay, Scope};
use refer_service::{caller, convert, invalid, Role};
use std::sync::Arc;
use tonic::Status;

/// The longest period one call may ask for.
const MOST_MONTHS: usize = 120;

/// The ledger and the stream sequence to fold from next.
#[derive(Clone)]
pub(crate) struct Reports {
    pub(crate) js: async_nats::jetstream::Context,
    pub(crate) stream: String,
    pub(crate) clock: refer_service::SharedClock,
    pub(crate) ledger: Arc<tokio::sync::Mutex<(Ledger, u64)>>,
}

impl Reports {
    pub(crate) fn new(js: async_nats::jetstream::Context, stream: String, clock: refer_service::SharedClock) -> Self {
        Self {
            js,
            stream,
            clock,
            ledger: Arc::new(tokio::sync::Mutex::new((Ledger::default(), 1))),
        }
    }

    pub(crate) async fn get(&self, request: tonic::Request<pb::GetReportRequest>) -> Result<pb::Report, Status> {
        let who = caller(&request)?;
        let request = request.into_inner();
        let from = if request.from_month.is_empty() {
            refer_reports::disclosure::month_of(self.clock.now().millis())
        } else {
            request.from_month.clone()
        };
        let to = if request.to_month.is_empty() {
            from.clone()
        } else {
            request.to_month.clone()
        };
        let field = |e: refer_reports::PeriodError| match e {
            refer_reports::PeriodError::Month(ref m) if *m == to && *m != from => invalid("to_month", e),
            refer_reports::PeriodError::Month(_) => invalid("from_month", e),
            refer_reports::PeriodError::Backwards { .. } => invalid("to_month", e),
        };
        let period = Period::months(&from, &to).map_err(field)?;
        let months = period.each_month().len();
        if months > MOST_MONTHS {
            return Err(invalid(
                "to_month",
                format!("the period spans {months} months; at most {MOST_MONTHS} in one report"),
            ));
        }
        let scope = match (request.organisation_id.as_str(), who.role) {
            ("", Role::Admin) => Scope::Coalition,
            ("", _) => Scope::Organisation(who.org),
            (id, role) => {
                let org = OrgId::from_uuid(convert::id(id, "organisation_id")?);
                if role != Role::Admin && org != who.org {
                    return Err(Status::permission_denied(
                        "organisation_id: a partner reads only its own organisation's figures",
                    ));
                }
                Scope::Organisation(org)
            }
        };
        let mut guard = self.ledger.lock().await;
        let (ledger, next) = &mut *guard;
        // On a failed read the ledger keeps what it folded, and `next`
        // says where that ends: the next call goes on from there.
        refer_client::history::each_event_from(&self.js, &self.stream, "", next, |e| ledger.apply(&e))
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "report: reading the stream");
                Status::unavailable("the stream cannot be read now; try again")
            })?;
        let report = ledger.report(&period, scope);
        let read_to = *next - 1;
        drop(guard);
        let organisation_id = match scope {
            Scope::Coalition => String::new(),
            Scope::Organisation(org) => convert::id_pb(org.as_uuid()),
        };
        if request.publish {
            let published = report
                .publish()
                .map_err(|e| Status::internal(format!("a report table is malformed: {e}")))?;
            return Ok(pb::Report {
                from_month: published.from_month,
                to_month: published.to_month,
                organisation_id,
                published: true,
                tables: published.tables.iter().map(table_pb).collect(),
                times: published.times.iter().map(published_delay_pb).collect(),
                months: published
                    .months
                    .iter()
                    .map(|m| pb::MonthDelays {
                        month: m.month.clone(),
                        times: m.times.iter().map(published_delay_pb).collect(),
                    })
                    .collect(),
                providers_active: Some(figure(published.providers_active)),
                businesses_active: Some(figure(published.businesses_active)),
                read_to,
            });
        }
        Ok(pb::Report {
            from_month: period.first_month(),
            to_month: period.last_month(),
            organisation_id,
            published: false,
            tables: report.tables.iter().map(|t| table_pb(&unpublished(t))).collect(),
            times: report.times.iter().map(delay_pb).collect(),
            months: report
                .months
                .iter()
                .map(|m| pb::MonthDelays {
                    month: m.month.clone(),
                    times: m.times.iter().map(delay_pb).collect(),
                })
                .collect(),
            providers_active: Some(figure(Shown::Count(report.providers_active))),
            businesses_active: Some(figure(Shown::Count(report.businesses_active))),
            read_to,
        })
    }
}

fn figure(shown: Shown) -> pb::Figure {
    pb::Figure {
        shown: Some(match shown {
            Shown::Count(n) => pb::figure::Shown::Count(n),
            Shown::UnderFive => pb::figure::Shown::UnderFive(true),
            Shown::Suppressed => pb::figure::Shown::Suppressed(true),
        }),
    }
}

fn table_pb(t: &Published) -> pb::ReportTable {
    pb::ReportTable {
        title: t.title.clone(),
        rows: t.rows.clone(),
        columns: t.columns.clone(),
        cells: t.cells.iter().flatten().copied().map(figure).collect(),
        row_totals: t.row_totals.iter().copied().map(figure).collect(),
        column_totals: t.column_totals.iter().copied().map(figure).collect(),
        total: Some(figure(t.total)),
    }
}

fn delay_pb(d: &Delay) -> pb::Delay {
    pb::Delay {
        name: d.name.clone(),
        median_minutes: d.median_minutes,
        p90_minutes: d.p90_minutes,
        needs: d.needs,
    }
}

fn published_delay_pb(d: &PublishedDelay) -> pb::Delay {
    pb::Delay {
        name: d.name.clone(),
        median_minutes: d.median_minutes,
        p90_minutes: d.p90_minutes,
        needs: 0,
    }
}
