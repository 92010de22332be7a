//! The page around every view: language, skip link, navigation, the
//! language switch and sign-out, and one place that turns a service's
//! answer into words. Everything interpolated is escaped here.

use crate::i18n::{Lang, T};
use crate::session::Session;
use refer_client::Role;
use std::fmt::Write;

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn role_name(role: Role, lang: Lang) -> &'static str {
    match role {
        Role::Intake => T::RoleIntake,
        Role::Provider => T::RoleProvider,
        Role::Business => T::RoleBusiness,
        Role::Admin => T::RoleAdmin,
    }
    .get(lang)
}

/// A whole page. `session` adds the navigation and sign-out form.
pub fn page(lang: Lang, title: &str, session: Option<&Session>, body: &str) -> String {
    let l = |t: T| t.get(lang);
    let mut nav = String::new();
    if let Some(s) = session {
        let home = match s.role {
            Role::Intake => format!(
                "<a href=\"/intake\">{}</a> <a href=\"/intake/new\">{}</a>",
                l(T::Placements),
                l(T::NewPlacement)
            ),
            Role::Provider => format!("<a href=\"/provider\">{}</a>", l(T::Sites)),
            Role::Business => format!(
                "<a href=\"/business\">{}</a> <a href=\"/business/new\">{}</a>",
                l(T::Donations),
                l(T::NewDonation)
            ),
            Role::Admin => format!("<a href=\"/admin\">{}</a>", l(T::Coalition)),
        };
        let home = format!("{home} <a href=\"/reports\">{}</a>", l(T::Reports));
        let _ = write!(
            nav,
            "<nav aria-label=\"{console}\">{home} <span class=\"who\">{signed} {role}</span>\
             <form method=\"post\" action=\"/signout\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">{out}</button></form></nav>",
            console = l(T::Console),
            signed = l(T::SignedInAs),
            role = role_name(s.role, lang),
            csrf = esc(&s.csrf),
            out = l(T::SignOut),
        );
    }
    let other = lang.other();
    format!(
        "<!doctype html>\n<html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Refer</title><link rel=\"stylesheet\" href=\"/static/console.css\">\
         <script src=\"/static/console.js\" defer></script></head><body>\
         <a class=\"skip\" href=\"#main\">{skip}</a>\
         <header><strong>Refer</strong> {nav}\
         <a class=\"lang\" href=\"/lang/{other_code}\" lang=\"{other_code}\" hreflang=\"{other_code}\">{switch}</a></header>\
         <main id=\"main\"><h1>{title}</h1>{body}</main></body></html>",
        code = lang.code(),
        title = esc(title),
        skip = l(T::SkipToContent),
        other_code = other.code(),
        switch = T::LanguageName.get(other),
    )
}

/// A notice for the user, read out by screen readers.
/// Horizontal bars, one per (label, value): an image with a text
/// alternative; the same numbers follow in a table. A value withheld
/// (`None`: a published figure that is hidden) has no bar and says `hidden`.
pub fn chart(title: &str, bars: &[(String, Option<f64>)], id: &str, hidden: &str) -> String {
    let max = bars.iter().filter_map(|(_, n)| *n).fold(0.0, f64::max).max(1e-9);
    let row = 28;
    let height = row * bars.len().max(1) + 8;
    let mut svg = format!(
        "<figure><svg role=\"img\" aria-labelledby=\"{id}\" viewBox=\"0 0 360 {height}\" width=\"100%\" \
         preserveAspectRatio=\"xMinYMin meet\"><title id=\"{id}\">{}</title>",
        esc(title)
    );
    for (i, (label, n)) in bars.iter().enumerate() {
        let y = 4 + i * row;
        let (width, text) = match n {
            Some(n) => (10 + (150.0 * *n / max) as usize, n.to_string()),
            None => (0, hidden.to_owned()),
        };
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{ty}\" class=\"label\">{label}</text><rect x=\"150\" y=\"{y}\" width=\"{width}\" height=\"20\" class=\"bar\"></rect>\
             <text x=\"{tx}\" y=\"{ty}\" class=\"count\">{text}</text>",
            ty = y + 15,
            label = esc(label),
            text = esc(&text),
            tx = 155 + width,
        );
    }
    svg + "</svg></figure>"
}

pub fn alert(text: &str) -> String {
    format!("<p class=\"alert\" role=\"alert\">{}</p>", esc(text))
}

pub fn notice(text: &str) -> String {
    format!("<p class=\"notice\" role=\"status\">{}</p>", esc(text))
}

/// The HTTP status of a page that shows a service's refusal `status`: the
/// browser, a proxy's log and a test see what went wrong, not a 200.
pub fn http_status(status: &tonic::Status) -> axum::http::StatusCode {
    use axum::http::StatusCode as H;
    use tonic::Code::*;
    match status.code() {
        InvalidArgument | OutOfRange => H::UNPROCESSABLE_ENTITY,
        FailedPrecondition | AlreadyExists | Aborted => H::CONFLICT,
        NotFound => H::NOT_FOUND,
        PermissionDenied | Unauthenticated => H::FORBIDDEN,
        ResourceExhausted => H::TOO_MANY_REQUESTS,
        // As `problem` says: the service is down.
        Unavailable | DeadlineExceeded | Unknown | Cancelled => H::SERVICE_UNAVAILABLE,
        Ok => H::OK,
        Internal | Unimplemented | DataLoss => H::BAD_GATEWAY,
    }
}

/// A service's refusal in words: which service is down, or what it said
/// (its messages name the field at fault).
pub fn problem(lang: Lang, service: &str, status: &tonic::Status) -> String {
    use tonic::Code::*;
    match status.code() {
        Unavailable | DeadlineExceeded | Unknown | Cancelled => alert(&format!(
            "{} {service} {}",
            T::TheService.get(lang),
            T::ServiceDown.get(lang)
        )),
        NotFound => alert(T::NotFound.get(lang)),
        PermissionDenied | Unauthenticated => alert(T::Forbidden.get(lang)),
        _ => alert(&format!("{} {}", T::CouldNot.get(lang), status.message())),
    }
}

/// A service's refusal of a form, said in the page's words: an invalid
/// field (`invalid <path>: <reason>`) is named as the page names it
/// (`label(path)`: "Person 2, Needs"), its reason in the page's language
/// where the console knows it (`reason_in`); anything else as `problem`.
pub fn refusal(lang: Lang, service: &str, status: &tonic::Status, label: impl Fn(&str) -> Option<String>) -> String {
    if status.code() == tonic::Code::InvalidArgument {
        let said = status
            .message()
            .strip_prefix("invalid ")
            .and_then(|m| m.split_once(": "));
        if let Some((name, reason)) = said.and_then(|(path, reason)| Some((label(path)?, reason))) {
            return alert(&format!(
                "{} {name}: {}",
                T::CouldNot.get(lang),
                reason_in(lang, reason)
            ));
        }
    }
    problem(lang, service, status)
}

/// The services' reasons for refusing a field (English, `#` for each
/// bound), as the page says them in English and in Spanish; a reason not
/// listed is left as the service said it.
const REASONS: &[(&str, &str, &str)] = &[
    ("is required", "is required", "es obligatorio"),
    (
        "must hold # to # needs",
        "must hold # to # needs",
        "debe tener de # a # necesidades",
    ),
    (
        "must list # to # languages",
        "must list # to # languages",
        "debe tener de # a # idiomas",
    ),
    (
        "must hold # to # people",
        "must hold # to # people",
        "debe tener de # a # personas",
    ),
    ("must be # to #", "must be # to #", "debe ser de # a #"),
    (
        "must be at most # printable characters",
        "must be at most # printable characters",
        "debe tener como máximo # caracteres imprimibles",
    ),
    ("lists a kind twice", "lists a kind twice", "repite un tipo"),
    ("at most # regions", "at most # regions", "como máximo # regiones"),
    (
        "must serve at least one age band",
        "tick at least one",
        "marque al menos una",
    ),
    (
        "must serve at least one gender",
        "tick at least one",
        "marque al menos uno",
    ),
    (
        "must be after start_ms",
        "must end after it starts",
        "debe terminar después de empezar",
    ),
    (
        "must be at least # when set",
        "must be at least # when set",
        "debe ser al menos # si se indica",
    ),
];

/// `reason` in `lang`: its bounds kept, its words from `REASONS`.
fn reason_in(lang: Lang, reason: &str) -> String {
    let mut numbers = Vec::new();
    let mut shape = String::new();
    let mut chars = reason.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut n = c.to_string();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                n.push(d);
            }
            numbers.push(n);
            shape.push('#');
        } else {
            shape.push(c);
        }
    }
    let Some((_, en, es)) = REASONS.iter().find(|(said, ..)| *said == shape) else {
        return reason.to_owned();
    };
    let mut numbers = numbers.into_iter();
    let words = if lang == Lang::En { en } else { es };
    words
        .chars()
        .map(|c| match c {
            '#' => numbers.next().unwrap_or_default(),
            c => c.to_string(),
        })
        .collect()
}

/// A labelled `<select>` with `chosen` selected.
pub fn select(name: &str, label: &str, options: &[(&str, &str)], chosen: &str) -> String {
    let mut out = format!("<label for=\"{name}\">{label}</label><select id=\"{name}\" name=\"{name}\">");
    for (value, text) in options {
        let selected = if *value == chosen { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{}</option>", esc(text));
    }
    out + "</select>"
}

/// Checkboxes named `name`, one per `(value, text)`: checked as the form was
/// filled, or, on a form not filled yet, those in `default`.
pub(crate) fn checkboxes(
    name: &str,
    legend: &str,
    options: &[(&str, &str)],
    f: &crate::Filled,
    default: &[&str],
) -> String {
    let mut out = format!("<fieldset class=\"choices\"><legend>{legend}</legend>");
    let any = f.0.iter().any(|(k, _)| k == name);
    for (value, text) in options {
        let id = format!("{name}-{value}");
        let on = if any {
            f.has(name, value)
        } else {
            default.contains(value)
        };
        let checked = if on { " checked" } else { "" };
        let _ = write!(
            out,
            "<span class=\"choice\"><input type=\"checkbox\" id=\"{id}\" name=\"{name}\" value=\"{value}\"{checked}>\
             <label for=\"{id}\">{}</label></span>",
            esc(text)
        );
    }
    out + "</fieldset>"
}

/// A hidden CSRF field for a form of `session`.
pub fn csrf(session: &Session) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&session.csrf))
}

/// The coalition's time zone, set once at launch (`set_time_zone`): one
/// console serves one coalition, and every time it shows is in its zone.
static ZONE: std::sync::RwLock<Option<(String, jiff::tz::TimeZone)>> = std::sync::RwLock::new(None);

/// Shows every time in the zone named `name` (checked by the configuration).
pub fn set_time_zone(name: &str) -> anyhow::Result<()> {
    let zone = jiff::tz::TimeZone::get(name).map_err(|e| anyhow::anyhow!("time zone {name:?}: {e}"))?;
    *ZONE.write().expect("the zone lock is never poisoned") = Some((name.to_owned(), zone));
    Ok(())
}

fn zone() -> (String, jiff::tz::TimeZone) {
    ZONE.read()
        .expect("the zone lock is never poisoned")
        .clone()
        .unwrap_or_else(|| ("UTC".to_owned(), jiff::tz::TimeZone::UTC))
}

fn zoned(ms: i64, format: &str) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(at) => at.to_zoned(zone().1).strftime(format).to_string(),
        Err(_) => String::from("?"),
    }
}

/// When `ms` is, as `HH:MM` and the zone's abbreviation (`18:05 PST`;
/// the countdown script shows minutes left).
pub fn time(ms: i64) -> String {
    zoned(ms, "%H:%M %Z")
}

/// A day and time, `YYYY-MM-DD HH:MM` and the zone's abbreviation.
pub fn when(ms: i64) -> String {
    zoned(ms, "%Y-%m-%d %H:%M %Z")
}

/// A span of time as a person reads it: seconds under a minute (a quick
/// acceptance is not "0 min"), minutes under an hour, then hours and minutes.
pub fn duration(ms: i64) -> String {
    let secs = (ms.max(0) + 500) / 1000;
    let minutes = (secs + 30) / 60;
    match (secs, minutes) {
        (0..=59, _) => format!("{secs} s"),
        (_, 0..=59) => format!("{minutes} min"),
        _ => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

/// An instant the browser words in the reader's language (`console.js`),
/// in the coalition's zone; the server's text is the same instant for a
/// page read without scripts.
pub fn local_time(ms: i64) -> String {
    let iso = jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    format!(
        "<time data-local=\"{ms}\" data-zone=\"{}\" datetime=\"{iso}\">{}</time>",
        esc(&zone().0),
        when(ms)
    )
}

/// A tag after a heading (" suspended", " withdrawn") when `on`.
pub fn tag_if(on: bool, text: &str) -> String {
    if on {
        format!(" <span class=\"tag\">{}</span>", esc(text))
    } else {
        String::new()
    }
}

/// Hand-off instructions as a person reads them on a phone: escaped, line
/// breaks kept, and each phone number (10 to 15 digits, as people write
/// them: "(555) 010-2000", "+1 555 010 2000") a tap-to-call link that never
/// wraps. Shorter runs of digits (a date, a room number) stay text.
pub fn with_phones(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let (mut out, mut plain) = (String::new(), String::new());
    let flush = |out: &mut String, plain: &mut String| {
        *out += &esc(plain).replace('\n', "<br>");
        plain.clear();
    };
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i] == '+' || chars[i] == '(' || chars[i].is_ascii_digit();
        if starts && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let mut end = i + 1;
            while end < chars.len() && (chars[end].is_ascii_digit() || " -.()".contains(chars[end])) {
                end += 1;
            }
            // Separators after the last digit belong to the sentence, and so
            // does a closing bracket that opened before the number.
            while end > i && !chars[end - 1].is_ascii_digit() {
                let run = &chars[i..end];
                let open = run.iter().filter(|c| **c == '(').count();
                let close = run.iter().filter(|c| **c == ')').count();
                if chars[end - 1] == ')' && open == close {
                    break;
                }
                end -= 1;
            }
            let run: String = chars[i..end].iter().collect();
            let digits: String = run.chars().filter(char::is_ascii_digit).collect();
            let next_ok = end == chars.len() || !chars[end].is_alphanumeric();
            if (10..=15).contains(&digits.len()) && next_ok {
                flush(&mut out, &mut plain);
                let plus = if run.starts_with('+') { "+" } else { "" };
                let _ = write!(out, "<a class=\"tel\" href=\"tel:{plus}{digits}\">{}</a>", esc(&run));
                i = end;
                continue;
            }
        }
        plain.push(chars[i]);
        i += 1;
    }
    flush(&mut out, &mut plain);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_in_a_hand_off_are_tap_to_call_and_nothing_else_is() {
        assert_eq!(
            with_phones("Front desk, ask for Ana: (555) 010-2000."),
            "Front desk, ask for Ana: <a class=\"tel\" href=\"tel:5550102000\">(555) 010-2000</a>."
        );
        assert_eq!(
            with_phones("Call +1 555 010 2000\nthen come in"),
            "Call <a class=\"tel\" href=\"tel:+15550102000\">+1 555 010 2000</a><br>then come in"
        );
        assert_eq!(
            with_phones("(call 555.010.2000)"),
            "(call <a class=\"tel\" href=\"tel:5550102000\">555.010.2000</a>)"
        );
        // A date, a room, a code with letters: text.
        for text in ["Arrive 2026-12-05, room 214", "Ref A5550102000", "5550102000B"] {
            assert_eq!(with_phones(text), esc(text), "{text}");
        }
        assert_eq!(with_phones("<b>5550102000</b>").matches("href").count(), 1);
        assert_eq!(with_phones("<b>x</b>"), "&lt;b&gt;x&lt;/b&gt;");
    }

    #[test]
    fn interpolated_text_is_escaped() {
        assert_eq!(esc("<script>\"x\"&'"), "&lt;script&gt;&quot;x&quot;&amp;&#39;");
        let page = page(Lang::Es, "<b>", None, "");
        assert!(page.contains("<html lang=\"es\">"));
        assert!(page.contains("<h1>&lt;b&gt;</h1>"));
        assert!(!page.contains("<script>"), "no inline script");
    }
}

#[cfg(test)]
mod zone_tests {
    use super::*;

    /// Given a field the page names, a refusal names it so, with the reason
    /// in the page's language and its bounds; a field it does not name is
    /// said as the service said it.
    #[test]
    fn a_refused_field_is_named_as_the_page_names_it() {
        let refused = tonic::Status::invalid_argument("invalid people[1].needs: must hold 1 to 8 needs");
        let label = |path: &str| (path == "people[1].needs").then(|| "Persona 2, Necesidades".to_owned());
        let said = refusal(Lang::Es, "intake", &refused, label);
        assert!(
            said.contains("Persona 2, Necesidades: debe tener de 1 a 8 necesidades"),
            "{said}"
        );
        let other = tonic::Status::invalid_argument("invalid people: repeats a placement or need id");
        let said = refusal(Lang::Es, "intake", &other, label);
        assert!(
            said.contains("invalid people: repeats a placement or need id"),
            "{said}"
        );
        assert_eq!(reason_in(Lang::En, "must be 1 to 20"), "must be 1 to 20");
        assert_eq!(reason_in(Lang::Es, "must be 1 to 20"), "debe ser de 1 a 20");
    }

    /// Given the coalition in Los Angeles, an instant of a November night
    /// (02:00 UTC) is shown as the evening before, Pacific time.
    #[test]
    fn times_are_shown_in_the_coalitions_time_zone() {
        set_time_zone("America/Los_Angeles").unwrap();
        let at = 1_795_658_400_000; // 2026-11-26 02:00 UTC
        assert_eq!(time(at), "18:00 PST");
        assert_eq!(when(at), "2026-11-25 18:00 PST");
        assert!(local_time(at).contains("datetime=\"2026-11-26T02:00:00Z\""));
        assert!(set_time_zone("Mars/Olympus").is_err());
    }

    /// A quick acceptance reads in seconds, never "0 min".
    #[test]
    fn a_span_reads_in_the_unit_a_person_would_use() {
        assert_eq!(duration(2_400), "2 s");
        assert_eq!(duration(59_400), "59 s");
        assert_eq!(duration(90_000), "2 min");
        assert_eq!(duration(3_600_000 + 5 * 60_000), "1 h 5 min");
        assert_eq!(duration(7_199_000), "2 h 0 min");
    }
}
