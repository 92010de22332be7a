//! Languages by name, in the reader's language: picked from a list (the
//! languages the coalition's people speak most), or typed by name in
//! English or Spanish. The API's ISO 639 codes are never shown nor asked for.

use crate::html::esc;
use crate::i18n::Lang;
use crate::Filled;
use std::fmt::Write;

/// ISO 639 code, English name, Spanish name. English and Spanish first;
/// then the languages of people met by the anchors' task forces (among
/// them Guatemala's Mayan languages, for which Spanish is not enough).
pub const LANGUAGES: &[(&str, &str, &str)] = &[
    ("en", "English", "inglés"),
    ("es", "Spanish", "español"),
    ("ar", "Arabic", "árabe"),
    ("hy", "Armenian", "armenio"),
    ("zh", "Chinese", "chino"),
    ("fr", "French", "francés"),
    ("ht", "Haitian Creole", "criollo haitiano"),
    ("hi", "Hindi", "hindi"),
    ("ja", "Japanese", "japonés"),
    ("quc", "K'iche'", "k'iche'"),
    ("km", "Khmer", "jemer"),
    ("ko", "Korean", "coreano"),
    ("mam", "Mam", "mam"),
    ("nah", "Nahuatl", "náhuatl"),
    ("fa", "Persian", "persa"),
    ("pt", "Portuguese", "portugués"),
    ("kjb", "Q'anjob'al", "q'anjob'al"),
    ("ru", "Russian", "ruso"),
    ("ase", "American Sign Language", "lengua de señas americana"),
    ("tl", "Tagalog", "tagalo"),
    ("th", "Thai", "tailandés"),
    ("uk", "Ukrainian", "ucraniano"),
    ("vi", "Vietnamese", "vietnamita"),
];

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

/// The choice of languages: a checkbox per language of the list, named in
/// `lang` (ticked: `default` on a new form, else as filled), and a field
/// for others, typed by name (`<field>.other`).
pub fn fields(field: &str, legend: &str, other: &str, lang: Lang, f: &Filled, default: &[&str]) -> String {
    let options: Vec<(&str, String)> = LANGUAGES.iter().map(|(code, ..)| (*code, name(code, lang))).collect();
    let options: Vec<(&str, &str)> = options.iter().map(|(c, n)| (*c, n.as_str())).collect();
    let mut out = crate::html::checkboxes(field, legend, &options, f, default);
    let id = format!("{field}.other");
    let _ = write!(
        out,
        "<label for=\"{id}\">{other}</label><input id=\"{id}\" name=\"{id}\" value=\"{}\" autocomplete=\"off\">",
        esc(f.get(&id))
    );
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

    fn filled(pairs: &[(&str, &str)]) -> Filled {
        Filled(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    /// Given Spanish ticked and "Mam, ingles, Espanol" typed, the need asks
    /// for Spanish, Mam and English, each once, as codes.
    #[test]
    fn languages_are_chosen_by_name_ticked_or_typed_in_either_language() {
        let f = filled(&[("p0.languages", "es"), ("p0.languages.other", "Mam, ingles; Espanol ")]);
        assert_eq!(chosen("p0.languages", &f).unwrap(), ["es", "mam", "en"]);
        let f = filled(&[("p0.languages.other", "k'iche, Q’anjob’al")]);
        assert_eq!(chosen("p0.languages", &f).unwrap(), ["quc", "kjb"]);
    }

    /// A name that is no language of the list is refused as typed; a code
    /// is not a name.
    #[test]
    fn a_typed_name_not_in_the_list_is_the_error() {
        let f = filled(&[("p0.languages", "en"), ("p0.languages.other", "Spanish, Klingon")]);
        assert_eq!(chosen("p0.languages", &f).unwrap_err(), "Klingon");
        let f = filled(&[("p0.languages.other", "es")]);
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
