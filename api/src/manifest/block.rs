//! A reader for the plain block YAML that generated and hand-written
//! manifests consist of: nested block mappings and sequences whose scalars
//! are simple words, decimal integers, dotted addresses, `true`/`false`,
//! `null`, `[]`, `{}` and quoted strings without escapes.
//!
//! It gives the same value as the general parser or declines (`None`), and
//! then the general parser reads the document: anything else YAML allows
//! (flow collections, anchors, tags, comments after a value, multi-line or
//! escaped scalars, numbers other than plain decimal integers, words the
//! schema could read as booleans or nulls) is declined rather than
//! interpreted, and so are syntax errors, whose messages come from the
//! general parser. `block_tests` checks both readers agree.

use serde_json::{Map, Value};

/// One content line: its indentation and the text after it.
#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    text: &'a str,
}

/// The value of one document, or `None` when the general parser must read it.
pub(super) fn parse(doc: &str) -> Option<Value> {
    let mut lines = Vec::with_capacity(doc.len() / 16);
    for raw in doc.split('\n') {
        if raw.contains(['\t', '\r', '\u{feff}']) {
            return None;
        }
        let text = raw.trim_start_matches(' ');
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if raw == "---" && lines.is_empty() {
            continue;
        }
        if raw.starts_with("---") || raw.starts_with("...") || raw.starts_with('%') {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - text.len(),
            text: text.trim_end_matches(' '),
        });
    }
    let first = *lines.first()?;
    if first.indent != 0 || is_item(first.text) {
        return None;
    }
    let mut pos = 0;
    let value = mapping(&mut lines, &mut pos, 0)?;
    (pos == lines.len()).then_some(value)
}

fn is_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// The node whose first line is `lines[*pos]` at `indent`, a mapping or a
/// sequence.
fn node(lines: &mut [Line<'_>], pos: &mut usize, indent: usize) -> Option<Value> {
    if is_item(lines[*pos].text) {
        sequence(lines, pos, indent)
    } else {
        mapping(lines, pos, indent)
    }
}

fn mapping(lines: &mut [Line<'_>], pos: &mut usize, indent: usize) -> Option<Value> {
    let mut map = Map::new();
    while let Some(&line) = lines.get(*pos) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent || is_item(line.text) {
            return None;
        }
        let (key, rest) = match line.text.split_once(": ") {
            Some((k, v)) => (k, v.trim_start_matches(' ')),
            None => (line.text.strip_suffix(':')?, ""),
        };
        if !plain_key(key) || map.contains_key(key) {
            return None;
        }
        *pos += 1;
        let value = if rest.is_empty() {
            match lines.get(*pos) {
                Some(next) if next.indent > indent => node(lines, pos, next.indent)?,
                // A sequence may sit at its key's indentation.
                Some(next) if next.indent == indent && is_item(next.text) => {
                    sequence(lines, pos, indent)?
                }
                _ => Value::Null,
            }
        } else {
            let v = scalar(rest)?;
            // A deeper line after a scalar would continue it.
            if lines.get(*pos).is_some_and(|l| l.indent > indent) {
                return None;
            }
            v
        };
        map.insert(key.to_string(), value);
    }
    Some(Value::Object(map))
}

fn sequence(lines: &mut [Line<'_>], pos: &mut usize, indent: usize) -> Option<Value> {
    let mut items = Vec::new();
    while let Some(&line) = lines.get(*pos) {
        if line.indent < indent {
            break;
        }
        if line.indent > indent || !is_item(line.text) {
            // At the key's indentation, a key line ends an indentless
            // sequence; the mapping reading it decides.
            if line.indent == indent && !is_item(line.text) {
                break;
            }
            return None;
        }
        let after = line.text[1..].trim_start_matches(' ');
        if after.is_empty() || is_item(after) {
            return None;
        }
        let column = line.indent + (line.text.len() - after.len());
        if after.contains(": ") || after.ends_with(':') {
            // `- key: value`: a mapping at the column after the dash.
            lines[*pos] = Line {
                indent: column,
                text: after,
            };
            items.push(mapping(lines, pos, column)?);
        } else {
            items.push(scalar(after)?);
            *pos += 1;
            if lines.get(*pos).is_some_and(|l| l.indent > indent) {
                return None;
            }
        }
    }
    Some(Value::Array(items))
}

/// Words the YAML schemas read as something other than a string, in any
/// case: left to the general parser.
fn special_word(s: &str) -> bool {
    const WORDS: [&str; 12] = [
        "true", "false", "null", "yes", "no", "on", "off", "y", "n", "inf", "nan", "infinity",
    ];
    WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
}

fn plain_key(k: &str) -> bool {
    k.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b))
        && !special_word(k)
}

fn scalar(s: &str) -> Option<Value> {
    match s {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        "null" => return Some(Value::Null),
        "[]" => return Some(Value::Array(Vec::new())),
        "{}" => return Some(Value::Object(Map::new())),
        _ => {}
    }
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q) {
            let inner = inner.strip_suffix(q)?;
            if inner.contains([q, '\\']) {
                return None;
            }
            return Some(Value::String(inner.to_string()));
        }
    }
    let bytes = s.as_bytes();
    let first = *bytes.first()?;
    if first.is_ascii_alphabetic() {
        let word = bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
        return (word && !special_word(s)).then(|| Value::String(s.to_string()));
    }
    if bytes.iter().all(u8::is_ascii_digit) {
        // No leading zeros (read as strings by this project's options, as
        // octal by others), and only what fits.
        if s.len() > 1 && first == b'0' {
            return None;
        }
        return s.parse::<i64>().ok().map(Value::from);
    }
    // A dotted address (three or more dots, digits only) is no number in
    // any schema.
    let dotted = first.is_ascii_digit()
        && bytes.iter().all(|&b| b.is_ascii_digit() || b == b'.')
        && bytes.iter().filter(|&&b| b == b'.').count() >= 3
        && !s.ends_with('.');
    dotted.then(|| Value::String(s.to_string()))
}
