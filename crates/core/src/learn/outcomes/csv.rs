//! A small RFC 4180 reader for outcome tables: commas, double quotes (`""`
//! escapes a quote), quoted newlines, LF or CRLF line ends; every error
//! names the line and the field.

use crate::{Error, Result};

/// A CSV record and the line it starts on.
pub(super) struct Record {
    pub(super) line: usize,
    pub(super) fields: Vec<String>,
}

/// RFC 4180: commas, double quotes (`""` escapes a quote), quoted newlines,
/// LF or CRLF line ends. Blank lines are skipped.
pub(super) fn parse_csv(text: &str) -> Result<Vec<Record>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut was_quoted = false;
    let mut line = 1;
    let mut record_line = 1;
    let mut chars = text.chars().peekable();
    let finish = |fields: &mut Vec<String>, field: &mut String, quoted: bool| {
        let value = std::mem::take(field);
        fields.push(if quoted {
            value
        } else {
            value.trim().to_owned()
        });
    };
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.trim().is_empty() && !was_quoted => {
                field.clear();
                in_quotes = true;
                was_quoted = true;
            }
            '"' => {
                return Err(Error::InvalidInput(format!(
                    "outcomes line {line}, field {}: a quote inside an unquoted field",
                    fields.len() + 1
                )));
            }
            ',' => {
                finish(&mut fields, &mut field, was_quoted);
                was_quoted = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                finish(&mut fields, &mut field, was_quoted);
                was_quoted = false;
                if !(fields.len() == 1 && fields[0].is_empty()) {
                    records.push(Record {
                        line: record_line,
                        fields: std::mem::take(&mut fields),
                    });
                }
                fields.clear();
                line += 1;
                record_line = line;
            }
            other => {
                if was_quoted && !other.is_whitespace() {
                    return Err(Error::InvalidInput(format!(
                        "outcomes line {line}, field {}: text after a closing quote",
                        fields.len() + 1
                    )));
                }
                field.push(other);
            }
        }
    }
    if in_quotes {
        return Err(Error::InvalidInput(format!(
            "outcomes line {record_line}: a quoted field is never closed"
        )));
    }
    finish(&mut fields, &mut field, was_quoted);
    if !(fields.len() == 1 && fields[0].is_empty()) {
        records.push(Record {
            line: record_line,
            fields,
        });
    }
    Ok(records)
}
