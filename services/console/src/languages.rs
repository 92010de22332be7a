//! Languages by name, in the reader's language: picked from a list (the
//! languages the coalition's people speak most), or typed by name in
//! English or Spanish. The API's ISO 639 codes are never shown nor asked for.

use crate::html::esc;
use crate::i18n::Lang;
use crate::Filled;
use std::fmt::Write;

/// ISO 639 code, English name, Spanish name. The first `TICKED` are ticked
/// from checkboxes (the languages most spoken by the people the coalition
/// meets); all of them, Guatemala's Mayan languages among them (for which
/// Spanish is not enough), are offered as the other field is typed.
pub const LANGUAGES: &[(&str, &str, &str)] = &[
    ("en", "English", "inglés"),
    ("es", "Spanish", "español"),
    ("zh", "Chinese", "chino"),
    ("ko", "Korean", "coreano"),
    ("vi", "Vietnamese", "vietnamita"),
    ("tl", "Tagalog", "tagalo"),
    ("ase", "American Sign Language", "lengua de señas americana"),
    ("ar", "Arabic", "árabe"),
    ("hy", "Armenian", "armenio"),
    ("fr", "French", "francés"),
    ("ht", "Haitian Creole", "criollo haitiano"),
    ("hi", "Hindi", "hindi"),
    ("ja", "Japanese", "japonés"),
    ("quc", "K'iche'", "k'iche'"),
    ("km", "Khmer", "jemer"),
    ("mam", "Mam", "mam"),
    ("nah", "Nahuatl", "náhuatl"),
    ("fa", "Persian", "persa"),
    ("pt", "Portuguese", "portugués"),
    ("kjb", "Q'anjob'al", "q'anjob'al"),
    ("ru", "Russian", "ruso"),
    ("th", "Thai", "tailandés"),
    ("uk", "Ukrainian", "ucraniano"),
];

/// How many of `LANGUAGES` are checkboxes: few enough that a phone's form
/// stays short.
const TICKED: usize = 6;

/// A language's name in `lang`; a code not in the list is shown as it is.
pub fn name(code: &str, lang: Lang) -> String {
    match LANGUAGES.iter().find(|(c, ..)| *c == code) {
        Some((_, en, es)) => match lang {
            Lang::En => (*en).to_owned(),
            Lang::Es => (*es).to_owned(),
        },
        None => code.to_owned(),
    }
}

/// Languages by name in `lang`, comma-separated.
pub fn names(codes: &[String], lang: Lang) -> String {
    codes.iter().map(|c| name(c, lang)).collect::<Vec<_>>().join(", ")
}

/// The choice of languages: a checkbox for each of the first `TICKED`,
/// named in `lang` (ticked: `default` on a new form, else as filled), and a
/// field for others typed by name (`<field>.other`), every language's name
/// offered as it is typed.
pub fn fields(field: &str, legend: &str, other: &str, lang: Lang, f: &Filled, default: &[&str]) -> String {
    let named: Vec<(&str, String)> = LANGUAGES.iter().map(|(code, ..)| (*code, name(code, lang))).collect();
    let options: Vec<(&str, &str)> = named.iter().take(TICKED).map(|(c, n)| (*c, n.as_str())).collect();
    let mut out = crate::html::checkboxes(field, legend, &options, f, default);
    let id = format!("{field}.other");
    let _ = write!(
        out,
        "<label for=\"{id}\">{other}</label><input id=\"{id}\" name=\"{id}\" list=\"{field}.names\" value=\"{}\" autocomplete=\"off\">\
         <datalist id=\"{field}.names\">",
        esc(f.get(&id))
    );
    for (_, n) in &named {
        let _ = write!(out, "<option value=\"{}\">", esc(n));
    }
    out += "</datalist>";
    out
}

/// The codes chosen in `fields`: those ticked, then those typed by name (in
/// English or Spanish, any case, accents optional), each once. A typed name
/// that is no language of the list is the error, as typed.
pub fn chosen(field: &str, f: &Filled) -> Result<Vec<String>, String> {
    let mut codes: Vec<String> = LANGUAGES
        .iter()
        .filter(|(code, ..)| f.has(field, code))
        .map(|(code, ..)| (*code).to_owned())
        .collect();
    for typed in f.get(&format!("{field}.other")).split([',', ';']) {
        let typed = typed.trim();
        if typed.is_empty() {
            continue;
        }
        let key = fold(typed);
        let found = LANGUAGES
            .iter()
            .find(|(_, en, es)| fold(en) == key || fold(es) == key)
            .ok_or_else(|| typed.to_owned())?;
        if !codes.iter().any(|c| c == found.0) {
            codes.push(found.0.to_owned());
        }
    }
    Ok(codes)
}

/// Lower case, without accents or apostrophes: how a name typed on a phone
/// is compared.
pub(crate) fn fold(name: &str) -> String {
    name.to_lowercase()
        .chars()
        .filter(|c| !matches!(c, '\'' | '’'))
        .map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ñ' => 'n',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given Spanish ticked and "Mam, ingles, Espanol" typed, the need asks
    /// for Spanish, Mam and English, each once, as codes.
    #[test]
    fn languages_are_chosen_by_name_ticked_or_typed_in_either_language() {
        let f = Filled::of(&[("p0.languages", "es"), ("p0.languages.other", "Mam, ingles; Espanol ")]);
        assert_eq!(chosen("p0.languages", &f).unwrap(), ["es", "mam", "en"]);
        let f = Filled::of(&[("p0.languages.other", "k'iche, Q’anjob’al")]);
        assert_eq!(chosen("p0.languages", &f).unwrap(), ["quc", "kjb"]);
    }

    /// A name that is no language of the list is refused as typed; a code
    /// is not a name.
    #[test]
    fn a_typed_name_not_in_the_list_is_the_error() {
        let f = Filled::of(&[("p0.languages", "en"), ("p0.languages.other", "Spanish, Klingon")]);
        assert_eq!(chosen("p0.languages", &f).unwrap_err(), "Klingon");
        let f = Filled::of(&[("p0.languages.other", "es")]);
        assert_eq!(chosen("p0.languages", &f).unwrap_err(), "es");
    }

    /// Codes are shown by name in the reader's language; one not in the
    /// list as it is.
    #[test]
    fn codes_are_shown_by_name() {
        let codes = ["es".to_owned(), "mam".to_owned(), "xx".to_owned()];
        assert_eq!(names(&codes, Lang::En), "Spanish, Mam, xx");
        assert_eq!(names(&codes, Lang::Es), "español, mam, xx");
    }
}
