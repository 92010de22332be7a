//! What the intake and provider pages show first: where to bring an
//! accepted person, who meets them and a phone to tap, for a site and a
//! donated room alike; what happened to a need; one card per person for a
//! provider; a party recovered together as one. And a business gives and
//! sees its donation's hand-off in its own forms.

mod browse;

use browse::*;
use refer_client::authed;
use refer_proto::common::v1 as pb;
use refer_proto::donations::v1 as don;
use refer_tests::*;

const CLINIC_DOOR: &str = "Side door on Elm St; Ana meets you, (555) 010-2000";
const DESK: &str = "Front desk, ask for the night manager: +1 555 010 3000";

/// The `n` referrals pending at `site` of provider `i`, once there are (at most 30 s).
async fn pending(c: &Coalition, i: usize, site: &str, n: usize) -> Vec<refer_proto::capacity::v1::Referral> {
    let started = std::time::Instant::now();
    loop {
        let pending = referrals(c, i, site, true).await;
        if pending.len() >= n {
            return pending;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "{} of {n} referrals came: {pending:?}",
            pending.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_person_shows_the_hand_off_first_with_a_phone_to_tap() {
    let c = Coalition::start(1, 1).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let clinic = site(&c, 0, &[pb::ServiceKind::Medical], 2).await;
    accept_every_referral_with(&c, 0, clinic, CLINIC_DOOR);
    let rooms = hotel_rooms(&c, 0).await;

    // A person needing a bed (only the donated rooms have one) and care.
    let placed = request_person(
        &c,
        "first-1",
        person("case-first", &[pb::NeedKind::Shelter, pb::NeedKind::Medical]),
    )
    .await;
    placement_until(&c.intake, &placed.placement_id, "both accepted", |p| {
        p.needs
            .iter()
            .all(|n| n.status == refer_proto::intake::v1::NeedStatus::Accepted as i32)
    })
    .await;

    let intake = sign_in(at, INTAKE).await.session.expect("intake is signed in");
    let page = http(at, "GET", "/intake", Some(&intake), "").await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    let article = &body[body.find("data-placement=").expect("the placement")..];
    let (handoff, table) = (
        article.find("class=\"handoff\"").expect("a hand-off"),
        article.find("<table").unwrap(),
    );
    assert!(handoff < table, "the hand-off comes before the table: {article}");
    // The clinic's, a phone to tap.
    assert!(article.contains("href=\"tel:5550102000\""), "{article}");
    assert!(
        article.contains(">(555) 010-2000</a>"),
        "the number as written: {article}"
    );
    // The rooms have no hand-off yet: named, and said so, not a bare "Accepted".
    assert!(
        article.contains("<strong>a donated hotel room</strong>: no hand-off given yet"),
        "{article}"
    );

    // The business gives it on its hand-off page, which shows it back to edit.
    let business = sign_in(at, &business_token(0))
        .await
        .session
        .expect("the business is signed in");
    let list = http(at, "GET", "/business", Some(&business), "").await;
    let edit = format!("/business/donations/{rooms}/handoff");
    assert!(list.body.contains(&format!("href=\"{edit}\"")), "{}", list.body);
    let form_page = http(at, "GET", &edit, Some(&business), "").await;
    assert_eq!(form_page.status, 200);
    assert!(
        form_page.body.contains("rows=\"4\"></textarea>"),
        "empty at first: {}",
        form_page.body
    );
    let text: String = form_urlencoded::byte_serialize(DESK.as_bytes()).collect();
    let form = format!("csrf={}&key=k-desk&instructions={text}", csrf(&form_page.body));
    let saved = http(at, "POST", &edit, Some(&business), &form).await;
    assert_eq!(
        (saved.status, saved.location.as_deref()),
        (303, Some("/business?saved=1"))
    );
    let shown = http(at, "GET", &edit, Some(&business), "").await;
    assert!(shown.body.contains(&format!(">{DESK}</textarea>")), "{}", shown.body);

    // Intake now reads the desk's, as readily, with its number to tap.
    let page = http(at, "GET", "/intake", Some(&intake), "").await;
    assert!(page.body.contains("href=\"tel:+15550103000\""), "{}", page.body);
    assert!(
        page.body
            .contains("Bring them to <strong>a donated hotel room</strong>"),
        "{}",
        page.body
    );
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_gives_the_hand_off_with_its_donation() {
    let c = Coalition::start(0, 1).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let business = sign_in(at, &business_token(0)).await.session.expect("signed in");
    let new = http(at, "GET", "/business/new", Some(&business), "").await;
    assert!(
        new.body.contains("name=\"handoff\""),
        "the form asks for it: {}",
        new.body
    );

    // A refusal names the field as the form does: no gender ticked.
    let bare = format!(
        "csrf={}&key=no-gender&kind=hotel_room_night&quantity=3&from=0&until=48&max=0&ages=adult&languages=en&place=Pasadena",
        csrf(&new.body)
    );
    let refused = http(at, "POST", "/business/new", Some(&business), &bare).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("Gender: tick at least one"), "{}", refused.body);

    let text: String = form_urlencoded::byte_serialize(DESK.as_bytes()).collect();
    let form = format!(
        "csrf={}&key=with-desk&at={}&kind=hotel_room_night&quantity=3&from=0&until=48&max=0\
         &ages=adult&genders=female&languages=en&place=Pasadena&coords=&region=&handoff={text}",
        csrf(&new.body),
        {
            let field = "name=\"at\" value=\"";
            let at = new.body.find(field).expect("the form's time") + field.len();
            new.body[at..].split('"').next().unwrap().to_owned()
        }
    );
    let offered = http(at, "POST", "/business/new", Some(&business), &form).await;
    assert_eq!(
        (offered.status, offered.location.as_deref()),
        (303, Some("/business?saved=1")),
        "{}",
        offered.body
    );
    let list = don::ListDonationsRequest::default();
    let listed = c
        .donations
        .clone()
        .list_donations(authed(&business_token(0), list))
        .await
        .unwrap();
    let [offer] = &listed.into_inner().donations[..] else {
        panic!("one donation")
    };
    let get = don::GetDonationHandoffRequest {
        donation_id: offer.donation_id.clone(),
    };
    let given = c
        .donations
        .clone()
        .get_donation_handoff(authed(&business_token(0), get))
        .await
        .unwrap();
    assert_eq!(given.into_inner().instructions, DESK);
    // Submitted again (a retry, a reload): still one donation.
    let again = http(at, "POST", "/business/new", Some(&business), &form).await;
    assert_eq!(again.status, 303, "{}", again.body);
    let list = don::ListDonationsRequest::default();
    let listed = c
        .donations
        .clone()
        .list_donations(authed(&business_token(0), list))
        .await
        .unwrap();
    assert_eq!(listed.into_inner().donations.len(), 1);
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decline_shows_in_the_needs_timeline_with_its_reason_and_never_the_site() {
    use refer_proto::capacity::v1 as cap;
    use refer_proto::intake::v1::NeedStatus as S;
    let c = Coalition::start(2, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let first = site(&c, 0, &[pb::ServiceKind::ShelterBed], 1).await;
    let placed = request_person(&c, "timeline-1", person("case-timeline", &[pb::NeedKind::Shelter])).await;

    // The only site says no: not eligible.
    let referral = pending(&c, 0, &first, 1).await.remove(0);
    let decline = cap::DeclineReferralRequest {
        idempotency_key: "no".into(),
        provider_id: first,
        referral_id: referral.referral_id,
        reason: pb::DeclineReason::NotEligible as i32,
    };
    c.capacity
        .clone()
        .decline_referral(authed(&provider_token(0), decline))
        .await
        .unwrap();
    // Another site takes the person.
    let second = site(&c, 1, &[pb::ServiceKind::ShelterBed], 1).await;
    accept_every_referral(&c, 1, second);
    let done = placement_until(&c.intake, &placed.placement_id, "accepted", |p| {
        p.needs[0].status == S::Accepted as i32
    })
    .await;

    // What intake reads: every step in order, the decline with its reason.
    let steps: Vec<(i32, i32)> = done.needs[0]
        .timeline
        .iter()
        .map(|s| (s.status, s.decline_reason))
        .collect();
    assert_eq!(steps.first(), Some(&(S::Requested as i32, 0)), "{steps:?}");
    assert_eq!(steps.last(), Some(&(S::Accepted as i32, 0)), "{steps:?}");
    assert!(
        steps.contains(&(S::Declined as i32, pb::DeclineReason::NotEligible as i32)),
        "{steps:?}"
    );
    let proposed = steps.iter().filter(|s| s.0 == S::Proposed as i32).count();
    assert_eq!(proposed, 2, "proposed to each site once: {steps:?}");
    let times: Vec<i64> = done.needs[0].timeline.iter().map(|s| s.at_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first: {times:?}");

    // The page shows it, open, in words.
    let intake = sign_in(at, INTAKE).await.session.expect("intake is signed in");
    let page = http(at, "GET", "/intake", Some(&intake), "").await;
    assert!(page.body.contains("<details class=\"timeline\" open>"), "{}", page.body);
    assert!(
        page.body.contains("Declined, looking again: Not eligible</li>"),
        "{}",
        page.body
    );
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_sees_one_card_per_person_with_all_their_needs_and_the_urgency() {
    let c = Coalition::start(1, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let services = [pb::ServiceKind::ShelterBed, pb::ServiceKind::Counseling];
    let both = site(&c, 0, &services, 10).await;
    // A person needing a bed and counseling, and one needing a bed.
    let two = person("case-two", &[pb::NeedKind::Shelter, pb::NeedKind::Counseling]);
    request_person(&c, "cards-1", two).await;
    request_person(&c, "cards-2", person("case-one", &[pb::NeedKind::Shelter])).await;
    let pending = pending(&c, 0, &both, 3).await;

    // Through the API: the first person's two referrals share a tag, the other's differs.
    let counseled: Vec<&str> = pending
        .iter()
        .filter(|r| r.service == pb::ServiceKind::Counseling as i32)
        .map(|r| r.person.as_str())
        .collect();
    let [two_tag] = counseled[..] else {
        panic!("one counseling referral: {pending:?}")
    };
    let tags: Vec<&str> = pending.iter().map(|r| r.person.as_str()).collect();
    assert_eq!(
        tags.iter().filter(|t| **t == two_tag).count(),
        2,
        "one person's referrals share a tag"
    );
    let one_tag = *tags.iter().find(|t| **t != two_tag).expect("the other person's");
    assert!(tags.iter().all(|t| t.len() == 24), "an opaque tag: {tags:?}");

    // On the page: two cards, the first person's with both needs.
    let provider = sign_in(at, &provider_token(0)).await.session.expect("signed in");
    let page = http(at, "GET", "/provider", Some(&provider), "").await;
    let cards: Vec<&str> = page.body.split("<li class=\"person\"").skip(1).collect();
    assert_eq!(cards.len(), 2, "{}", page.body);
    let card = |tag: &str| {
        *cards
            .iter()
            .find(|c| c.contains(&format!("data-person=\"{tag}\"")))
            .unwrap()
    };
    assert_eq!(
        card(two_tag).matches("<li class=\"referral\"").count(),
        2,
        "both needs on one card"
    );
    assert_eq!(card(one_tag).matches("<li class=\"referral\"").count(), 1);
    assert!(
        card(one_tag).contains("Tonight"),
        "the urgency shown: {}",
        card(one_tag)
    );
    // Each number says what it is: free now, and the places in all that the stepper sets.
    assert!(page.body.contains("free now"), "{}", page.body);
    assert!(
        page.body.contains(">Places in all (free, held and in use)</label>"),
        "{}",
        page.body
    );
    console.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_recovered_together_show_as_one_party_with_its_members() {
    use refer_proto::intake::v1 as ik;
    let c = Coalition::start(0, 0).await;
    let ca = c.setup.keys.ca_file();
    let console = refer_console::launch(&config(&c)).await.unwrap();
    let at = (console.addr, ca.as_path());
    let alone = request_person(&c, "alone-1", person("case-alone", &[pb::NeedKind::Shelter])).await;
    let group = ik::RequestGroupRequest {
        idempotency_key: "party-1".into(),
        cohesion: ik::Cohesion::KeepTogether as i32,
        people: ["case-mother", "case-daughter", "case-son"]
            .iter()
            .map(|case| person(case, &[pb::NeedKind::Shelter]))
            .collect(),
    };
    let party = c
        .intake
        .clone()
        .request_group(authed(INTAKE, group))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(party.people.len(), 3);

    let intake = sign_in(at, INTAKE).await.session.expect("intake is signed in");
    let page = http(at, "GET", "/intake", Some(&intake), "").await;
    let sections: Vec<&str> = page.body.split("<section class=\"party\"").skip(1).collect();
    assert_eq!(sections.len(), 1, "one party: {}", page.body);
    let section = sections[0].split("</section>").next().unwrap();
    assert!(section.contains("Recovered together: a group of 3 people"), "{section}");
    for p in &party.people {
        assert!(
            section.contains(&format!("data-placement=\"{}\"", p.placement_id)),
            "{section}"
        );
    }
    assert!(
        !section.contains(&alone.placement_id),
        "a person alone is not in the party"
    );
    assert!(page
        .body
        .contains(&format!("data-placement=\"{}\"", alone.placement_id)));
    console.stop().await.unwrap();
}
