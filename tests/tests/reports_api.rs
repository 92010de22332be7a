//! GetReport through the API, as each partner and an admin would call it:
//! each organisation reads its own work and nobody else's, an admin the
//! whole coalition, the figures count what the test itself did, a report
//! taken later covers what happened since, and published figures hide
//! small counts.

use refer_proto::common::v1 as pb;
use refer_proto::matcher::v1 as m;
use refer_proto::matcher::v1::matcher_client::MatcherClient;
use refer_service::testing::{authed, refused};
use refer_tests::*;
use tonic::Code;

fn ask(organisation_id: &str, publish: bool) -> m::GetReportRequest {
    m::GetReportRequest {
        // Empty months: the month the coalition's clock is in (NIGHT's).
        from_month: String::new(),
        to_month: String::new(),
        organisation_id: organisation_id.into(),
        publish,
    }
}

async fn report(c: &Coalition, token: &str, request: m::GetReportRequest) -> m::Report {
    MatcherClient::new(c.channel(3))
        .get_report(authed(token, request))
        .await
        .unwrap()
        .into_inner()
}

/// A table's figure in `row` and `column` as the caller sees it.
fn cell(r: &m::Report, title: &str, row: &str, column: &str) -> m::figure::Shown {
    let t = r
        .tables
        .iter()
        .find(|t| t.title == title)
        .unwrap_or_else(|| panic!("no table {title:?}"));
    let i = t.rows.iter().position(|x| x == row).expect("row");
    let j = t.columns.iter().position(|x| x == column).expect("column");
    t.cells[i * t.columns.len() + j].shown.expect("a figure")
}

fn count(n: u64) -> m::figure::Shown {
    m::figure::Shown::Count(n)
}

const OUTCOMES: &str = "needs by kind and outcome";

#[tokio::test]
async fn each_organisation_reads_its_own_figures_and_an_admin_the_coalition_s() {
    let c = Coalition::start(2, 0).await;
    let beds = site(&c, 0, &[pb::ServiceKind::ShelterBed], 5).await;
    // Provider 1 is a partner with a site that gets nothing.
    site(&c, 1, &[pb::ServiceKind::Counseling], 5).await;
    accept_every_referral(&c, 0, beds);
    let mut placements = Vec::new();
    for n in 0..2 {
        let p = request_person(&c, &format!("report-{n}"), person("case", &[pb::NeedKind::Shelter])).await;
        placements.push(p.placement_id);
    }
    for id in &placements {
        placement_until(&c.intake, id, "accepted", |p| {
            p.needs
                .iter()
                .all(|n| n.status == refer_proto::intake::v1::NeedStatus::Accepted as i32)
        })
        .await;
    }

    // The admin: the whole coalition; both providers acted this month.
    let coalition = report(&c, ADMIN, ask("", false)).await;
    assert_eq!(coalition.organisation_id, "");
    assert!(!coalition.published);
    assert_eq!(cell(&coalition, OUTCOMES, "shelter", "placed"), count(2));
    assert_eq!(coalition.providers_active.unwrap().shown, Some(count(2)));
    let accepted = coalition
        .times
        .iter()
        .find(|d| d.name == "request to acceptance")
        .unwrap();
    assert_eq!(accepted.needs, 2);
    assert_eq!(coalition.months.len(), 1);

    // The agency that asked, and the provider that took them: theirs.
    let agency = report(&c, INTAKE, ask("", false)).await;
    assert_eq!(agency.organisation_id, AGENCY.as_uuid().simple().to_string());
    assert_eq!(cell(&agency, OUTCOMES, "shelter", "placed"), count(2));
    let shelter = report(&c, &provider_token(0), ask("", false)).await;
    assert_eq!(cell(&shelter, OUTCOMES, "shelter", "placed"), count(2));
    assert_eq!(shelter.providers_active.unwrap().shown, Some(count(1)));
    // Those that had no part in them: none.
    for token in [OTHER_INTAKE.to_owned(), provider_token(1)] {
        let theirs = report(&c, &token, ask("", false)).await;
        assert_eq!(cell(&theirs, OUTCOMES, "shelter", "placed"), count(0), "{token}");
    }
    // An admin may narrow to one organisation.
    let named = report(&c, ADMIN, ask(&provider_org(0).as_uuid().to_string(), false)).await;
    assert_eq!(cell(&named, OUTCOMES, "shelter", "placed"), count(2));

    // A partner may not read another's.
    let mut matcher = MatcherClient::new(c.channel(3));
    for (token, other) in [
        (provider_token(1), provider_org(0)),
        (INTAKE.to_owned(), OTHER_AGENCY),
        (provider_token(0), AGENCY),
    ] {
        let err = matcher
            .get_report(authed(&token, ask(&other.as_uuid().to_string(), false)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{token}");
        assert!(err.message().contains("organisation_id"), "{}", err.message());
    }
    assert_eq!(
        refused(matcher.get_report(tonic::Request::new(ask("", false))).await),
        Code::Unauthenticated
    );

    // Published: 2 placements by one shelter are hidden (not even "< 5",
    // which would bound one shelter's work), and delays over 2 needs withheld.
    let published = report(&c, ADMIN, ask("", true)).await;
    assert!(published.published);
    assert_eq!(
        cell(&published, OUTCOMES, "shelter", "placed"),
        m::figure::Shown::Suppressed(true)
    );
    assert!(published
        .times
        .iter()
        .all(|d| d.median_minutes.is_none() && d.needs == 0));

    // A report taken later covers what happened since.
    let third = request_person(&c, "report-2", person("case", &[pb::NeedKind::Shelter])).await;
    placement_until(&c.intake, &third.placement_id, "accepted", |p| {
        p.needs
            .iter()
            .all(|n| n.status == refer_proto::intake::v1::NeedStatus::Accepted as i32)
    })
    .await;
    let later = report(&c, ADMIN, ask("", false)).await;
    assert_eq!(cell(&later, OUTCOMES, "shelter", "placed"), count(3));
    assert!(later.read_to > coalition.read_to);
}

#[tokio::test]
async fn a_report_request_that_cannot_be_read_names_its_field() {
    let c = Coalition::start(0, 0).await;
    let mut matcher = MatcherClient::new(c.channel(3));
    let months = |from: &str, to: &str, org: &str| m::GetReportRequest {
        from_month: from.into(),
        to_month: to.into(),
        organisation_id: org.into(),
        publish: false,
    };
    for (request, field) in [
        (months("2026-13", "", ""), "from_month"),
        (months("26-12", "2026-12", ""), "from_month"),
        (months("2026-12", "2026-1", ""), "to_month"),
        (months("2026-12", "2026-11", ""), "to_month"),
        (months("2000-01", "2026-12", ""), "to_month"),
        (months("2026-12", "", "not-an-org"), "organisation_id"),
    ] {
        assert_invalid(matcher.get_report(authed(ADMIN, request)).await, field);
    }
    // Ten years is the longest period a report covers.
    let decade = matcher
        .get_report(authed(ADMIN, months("2017-01", "2026-12", "")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (decade.from_month.as_str(), decade.to_month.as_str()),
        ("2017-01", "2026-12")
    );
    assert_eq!(decade.months.len(), 120);
}
