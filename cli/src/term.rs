//! The one way out to the terminal. Whatever a server sent (names, display texts, notes, codes, error
//! descriptions, provider names from a brands directory) may hold terminal escape sequences (colours, a cleared
//! screen, an OSC 8 hyperlink to somewhere else, a changed window title), C0/C1 controls (`\r` to overwrite what
//! was printed, NUL), bidi overrides that show text in another order than it is, and other invisible characters.
//! None of that reaches the terminal:
//!
//! - [`field`] makes one server-derived value safe to put on a line: escape sequences (ESC and the C1 introducers
//!   CSI, OSC, DCS, SOS, PM, APC, with their parameters and strings) are removed, every other control character
//!   too, tabs, newlines, `\r` and line separators become spaces (a field never forges an extra line), and the
//!   bidi and invisible format characters are removed.
//! - [`text`] does the same to a whole output but keeps its newlines; [`out`] and [`err`] (through the `out!`,
//!   `outln!` and `errln!` macros) pass everything printed through it, so a field that was not cleaned still
//!   cannot reach the terminal raw. The crate denies `print!`/`println!`/`eprintln!` to keep it the only way.
//! - [`json`] escapes what serde_json leaves raw (DEL, the C1 controls, bidi and invisible format characters) as
//!   `\uXXXX`: the same JSON value, nothing that a terminal acts on.
//!
//! Kept on purpose: ZWJ and ZWNJ (U+200C, U+200D), which emoji and several scripts (Persian, Indic) need.

use std::io::Write;

/// Whether `c` is a bidi control (embeddings, overrides, isolates, marks) or another invisible format character
/// that can make text look like something else.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{061C}'                  // ARABIC LETTER MARK
        | '\u{00AD}'                // SOFT HYPHEN
        | '\u{180E}'                // MONGOLIAN VOWEL SEPARATOR
        | '\u{200B}'                // ZERO WIDTH SPACE
        | '\u{200E}' | '\u{200F}'   // LRM, RLM
        | '\u{202A}'..='\u{202E}'   // LRE, RLE, PDF, LRO, RLO
        | '\u{2060}'..='\u{2064}'   // WORD JOINER, invisible operators
        | '\u{2066}'..='\u{2069}'   // LRI, RLI, FSI, PDI
        | '\u{206A}'..='\u{206F}'   // deprecated format characters
        | '\u{FEFF}'                // BOM / ZERO WIDTH NO-BREAK SPACE
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// Characters that end a line or move the cursor back: spaces inside a field.
fn line_break(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

/// What the parser is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// Just after ESC.
    Escape,
    /// ESC followed by intermediate bytes (0x20..=0x2F): ends with a byte in 0x30..=0x7E.
    EscapeIntermediate,
    /// CSI parameters and intermediates (0x20..=0x3F): ends with a final byte in 0x40..=0x7E.
    Csi,
    /// OSC, DCS, SOS, PM, APC: a string that ends with BEL or ST (ESC `\` or U+009C).
    Str,
    /// ESC inside a string: `\` ends it.
    StrEscape,
}

fn neutralise(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut state = State::Ground;
    for c in s.chars() {
        // A newline always ends whatever sequence was open, so a broken sequence cannot swallow the rest.
        if c == '\n' && state != State::Ground {
            state = State::Ground;
        }
        match state {
            State::Ground => match c {
                '\u{1B}' => state = State::Escape,
                '\u{9B}' => state = State::Csi,
                '\u{90}' | '\u{98}' | '\u{9D}' | '\u{9E}' | '\u{9F}' => state = State::Str,
                '\n' if keep_newlines => out.push('\n'),
                c if line_break(c) => out.push(' '),
                c if c.is_control() || invisible(c) => {}
                c => out.push(c),
            },
            State::Escape => {
                state = match c {
                    '[' => State::Csi,
                    ']' | 'P' | 'X' | '^' | '_' => State::Str,
                    '\u{20}'..='\u{2F}' => State::EscapeIntermediate,
                    '\u{1B}' => State::Escape,
                    _ => State::Ground,
                };
            }
            State::EscapeIntermediate => {
                if !('\u{20}'..='\u{2F}').contains(&c) {
                    state = State::Ground;
                }
            }
            State::Csi => {
                if !('\u{20}'..='\u{3F}').contains(&c) {
                    state = State::Ground;
                }
            }
            State::Str => match c {
                '\u{07}' | '\u{9C}' => state = State::Ground,
                '\u{1B}' => state = State::StrEscape,
                _ => {}
            },
            State::StrEscape => {
                state = if c == '\\' { State::Ground } else { State::Str };
            }
        }
    }
    out
}

/// One server-derived value made safe to print on a line (see the module documentation).
pub fn field(s: &str) -> String {
    neutralise(s, false)
}

/// A whole output made safe to print: like [`field`], but newlines stay.
pub fn text(s: &str) -> String {
    neutralise(s, true)
}

/// A serialized JSON document with DEL, the C1 controls, bidi and invisible format characters written as
/// `\uXXXX` (serde_json already escapes C0). They can only occur inside JSON strings, so the value is unchanged.
pub fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || invisible(c) || (line_break(c) && !c.is_ascii()) {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn write(mut to: impl Write, s: &str) {
    let _ = to.write_all(text(s).as_bytes());
    let _ = to.flush();
}

/// Prints to stdout, through [`text`].
pub fn out(s: &str) {
    write(std::io::stdout().lock(), s);
}

/// Prints to stderr, through [`text`].
pub fn err(s: &str) {
    write(std::io::stderr().lock(), s);
}

/// Moves the cursor back to the start of the line (the demo's progress bar, redrawn in place on a terminal): the
/// only control character the CLI prints itself.
pub fn carriage_return() {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(b"\r");
}

/// `print!` through [`out`] (the CLI's `print!`).
macro_rules! out {
    ($($arg:tt)*) => { $crate::term::out(&format!($($arg)*)) };
}

/// `println!` through [`out`].
macro_rules! outln {
    () => { $crate::term::out("\n") };
    ($($arg:tt)*) => { $crate::term::out(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`err`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::term::err(&format!("{}\n", format_args!($($arg)*))) };
}

/// Hostile values a server could send, each with what must survive of it.
#[cfg(test)]
pub(crate) const HOSTILE: &[&str] = &[
    "\u{1B}]8;;http://evil.example/\u{07}Click me\u{1B}]8;;\u{07}",
    "\u{1B}]8;;http://evil.example/\u{1B}\\Click me\u{1B}]8;;\u{1B}\\",
    "\u{1B}[31mred\u{1B}[0m \u{1B}[2J\u{1B}[H cleared",
    "\u{9B}31mC1 red\u{9B}0m",
    "\u{9D}0;title\u{9C}after OSC",
    "\u{1B}P1$r\u{1B}\\DCS",
    "\u{1B}]0;window title\u{07}title",
    "\u{1B}(0line drawing\u{1B}(B",
    "abc\u{202E}fdp.exe",
    "\u{2066}isolated\u{2069} \u{200F}rlm\u{200E} \u{061C}alm",
    "NUL\u{0}here \u{7F}del \u{8}backspace",
    "Normal result\rCRITICAL",
    "line one\nline two\r\nline three\u{2028}four\u{85}five\tsix",
    "zero\u{200B}width\u{FEFF}bom\u{E0041}tag",
    "\u{1B}]8;;http://unterminated",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_clean(s: &str) {
        for c in s.chars() {
            assert!(
                !c.is_control() && !invisible(c),
                "{c:?} (U+{:04X}) left in {s:?}",
                c as u32
            );
        }
    }

    #[test]
    fn hostile_fields_lose_every_control_and_stay_on_one_line() {
        for h in HOSTILE {
            let f = field(h);
            assert_clean(&f);
            assert!(!f.contains("http://evil"), "{f:?}");
            assert!(
                !f.contains("8;;") && !f.contains("[31m") && !f.contains("31m"),
                "{f:?}"
            );
        }
        assert_eq!(field(HOSTILE[0]), "Click me");
        assert_eq!(field(HOSTILE[1]), "Click me");
        assert_eq!(field(HOSTILE[2]), "red  cleared");
        assert_eq!(field(HOSTILE[3]), "C1 red");
        assert_eq!(field(HOSTILE[4]), "after OSC");
        assert_eq!(field(HOSTILE[5]), "DCS");
        assert_eq!(field(HOSTILE[6]), "title");
        assert_eq!(field(HOSTILE[7]), "line drawing");
        assert_eq!(field(HOSTILE[8]), "abcfdp.exe");
        assert_eq!(field(HOSTILE[9]), "isolated rlm alm");
        assert_eq!(field(HOSTILE[10]), "NULhere del backspace");
        assert_eq!(field(HOSTILE[11]), "Normal result CRITICAL");
        assert_eq!(
            field(HOSTILE[12]),
            "line one line two  line three four five six"
        );
        assert_eq!(field(HOSTILE[13]), "zerowidthbomtag");
        assert_eq!(field(HOSTILE[14]), "");
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for s in [
            "Thyrotropin [Units/volume] in Serum or Plasma",
            "Allergy to peanut — anaphylaxis",
            "José Müller-Łukasiewicz, 李小龍, محمد‌رضا",
            "👩‍👦 120/80 mm[Hg] ≥ 5 % [H]",
        ] {
            assert_eq!(field(s), s);
            assert_eq!(text(s), s);
        }
    }

    #[test]
    fn whole_outputs_keep_their_lines_and_an_open_sequence_ends_at_the_line() {
        assert_eq!(
            text("a\u{1B}]8;;http://evil\nb\u{1B}[2Jc\n"),
            "a\nbc\n",
            "a sequence that never ends does not swallow the next line"
        );
        for h in HOSTILE {
            let t = text(&format!("{h}\n"));
            assert_clean(&t.replace('\n', ""));
        }
    }

    #[test]
    fn json_output_is_the_same_value_without_raw_controls() {
        for h in HOSTILE {
            let doc = serde_json::json!({ "display": h, "list": [h] });
            let escaped = json(&doc.to_string());
            assert_clean(&escaped);
            let back: serde_json::Value = serde_json::from_str(&escaped).expect("still JSON");
            assert_eq!(back, doc, "the data is unchanged");
        }
    }
}
