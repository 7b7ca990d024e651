//! Outcome tables for `cadre routing replay`: a CSV with one row per task.
//!
//! Columns: `task_id`; optionally `class` (any label); per model a column
//! `<model>` holding whether it solved the task (0/1, or a probability in
//! [0, 1]) and its cost as `<model>__cost_usd`, `<model>__cost_usd_list`, or
//! `<model>__input_tokens` + `<model>__output_tokens` (priced from the model
//! table of the tier the column maps to). Model columns map to tiers by
//! explicit [`ColumnMap`]s first, then by the tier's name appearing in the
//! column name (`claude_haiku_4_5` -> `haiku`); columns that map to no tier
//! are ignored. Every error names the line, the task and the column.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use cadre_config::Config;
use serde::Serialize;

use super::estimate::OutcomeCell;
use crate::{Error, Result};

/// Where a column's cost came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// `<model>__cost_usd`.
    CostUsd,
    /// `<model>__cost_usd_list`.
    CostUsdList,
    /// `<model>__input_tokens` and `<model>__output_tokens` priced from the model table.
    Tokens,
}

impl fmt::Display for CostSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CostUsd => "__cost_usd",
            Self::CostUsdList => "__cost_usd_list",
            Self::Tokens => "__input_tokens/__output_tokens x model prices",
        })
    }
}

/// A model column that plays a tier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModelColumn {
    /// The column name (`claude_haiku_4_5`).
    pub column: String,
    /// The tier it plays.
    pub tier: String,
    /// Where its costs come from.
    pub cost_source: CostSource,
}

/// One task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutcomeRow {
    /// `task_id`.
    pub task_id: String,
    /// `class`, or empty when the file has none.
    pub class: String,
    /// 1-based line where the row starts.
    pub line: usize,
    /// One cell per tier of the table, in the table's tier order.
    pub cells: Vec<OutcomeCell>,
}

/// A parsed outcome file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutcomeTable {
    /// Tiers with a column, in `tiers.order` (cheapest first).
    pub tiers: Vec<String>,
    /// The column playing each tier (same order as `tiers`).
    pub columns: Vec<ModelColumn>,
    /// Model columns mapped to no tier.
    pub ignored_columns: Vec<String>,
    /// Whether the file has a `class` column.
    pub has_class: bool,
    /// The tasks, in file order.
    pub rows: Vec<OutcomeRow>,
}

/// `COLUMN=TIER` (or `COLUMN=none` to ignore the column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    /// The model column.
    pub column: String,
    /// The tier it plays; `None` ignores it.
    pub tier: Option<String>,
}

impl FromStr for ColumnMap {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let Some((column, tier)) = s.split_once('=') else {
            return Err(Error::InvalidInput(format!(
                "--map {s:?}: expected COLUMN=TIER (or COLUMN=none)"
            )));
        };
        let (column, tier) = (column.trim(), tier.trim());
        if column.is_empty() {
            return Err(Error::InvalidInput(format!(
                "--map {s:?}: the column name is empty"
            )));
        }
        Ok(Self {
            column: column.to_owned(),
            tier: match tier {
                "" | "none" | "-" => None,
                t => Some(t.to_owned()),
            },
        })
    }
}

/// A CSV record and the line it starts on.
struct Record {
    line: usize,
    fields: Vec<String>,
}

/// RFC 4180: commas, double quotes (`""` escapes a quote), quoted newlines,
/// LF or CRLF line ends. Blank lines are skipped.
fn parse_csv(text: &str) -> Result<Vec<Record>> {
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

const SUFFIXES: &[&str] = &["cost_usd", "cost_usd_list", "input_tokens", "output_tokens"];

/// Parses an outcome CSV. `maps` overrides the default column-to-tier
/// mapping; tiers must be in `tiers.order`; token columns are priced from
/// `models.<tier>`.
pub fn parse_outcomes(text: &str, config: &Config, maps: &[ColumnMap]) -> Result<OutcomeTable> {
    let records = parse_csv(text)?;
    let Some((header, body)) = records.split_first() else {
        return Err(Error::InvalidInput(
            "outcomes: the file is empty (expected a header line)".into(),
        ));
    };
    let bad_header = |column: &str, message: String| {
        Error::InvalidInput(format!(
            "outcomes line {}, column {column}: {message}",
            header.line
        ))
    };
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, name) in header.fields.iter().enumerate() {
        if name.is_empty() {
            return Err(bad_header(
                &format!("#{}", i + 1),
                "the header has an empty column name".into(),
            ));
        }
        if index.insert(name.as_str(), i).is_some() {
            return Err(bad_header(name, "the column appears twice".into()));
        }
    }
    let Some(&task_col) = index.get("task_id") else {
        return Err(bad_header(
            "task_id",
            "missing (the header must have a task_id column)".into(),
        ));
    };
    let class_col = index.get("class").copied();
    let model_columns: Vec<&str> = header
        .fields
        .iter()
        .map(String::as_str)
        .filter(|n| !n.contains("__") && *n != "task_id" && *n != "class")
        .collect();
    for name in &header.fields {
        if let Some((model, suffix)) = name.split_once("__")
            && SUFFIXES.contains(&suffix)
            && !model_columns.contains(&model)
        {
            return Err(bad_header(
                name,
                format!("there is no model column {model:?} for it"),
            ));
        }
    }

    // Column -> tier.
    let order = &config.tiers.order;
    let mut mapped: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut claimed: HashMap<String, String> = HashMap::new();
    for map in maps {
        if !model_columns.contains(&map.column.as_str()) {
            return Err(Error::InvalidInput(format!(
                "--map {}: no model column {:?} (model columns: {})",
                map.column,
                map.column,
                model_columns.join(", ")
            )));
        }
        if let Some(tier) = &map.tier {
            if config.tier_index(tier).is_none() {
                return Err(Error::InvalidInput(format!(
                    "--map {}={tier}: {tier:?} is not a tier (tiers.order: {})",
                    map.column,
                    order.join(", ")
                )));
            }
            if let Some(other) = claimed.insert(tier.clone(), map.column.clone())
                && other != map.column
            {
                return Err(Error::InvalidInput(format!(
                    "--map: columns {other} and {} both map to tier {tier}",
                    map.column
                )));
            }
        }
        mapped.insert(map.column.clone(), map.tier.clone());
    }
    for &column in &model_columns {
        if mapped.contains_key(column) {
            continue;
        }
        let lower = column.to_lowercase();
        let hits: Vec<&String> = order
            .iter()
            .filter(|t| lower.contains(&t.to_lowercase()))
            .collect();
        let tier = match hits.as_slice() {
            [] => None,
            [tier] => Some((*tier).clone()),
            _ => {
                return Err(bad_header(
                    column,
                    format!(
                        "the name contains several tier names ({}); say which with --map {column}=TIER",
                        hits.iter()
                            .map(|t| t.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        };
        if let Some(tier) = &tier
            && let Some(other) = claimed.get(tier)
        {
            // An explicit mapping already owns this tier.
            if maps.iter().any(|m| &m.column == other) {
                mapped.insert(column.to_owned(), None);
                continue;
            }
            return Err(bad_header(
                column,
                format!(
                    "both {other} and {column} look like tier {tier}; choose with --map {column}=TIER or --map {column}=none"
                ),
            ));
        }
        if let Some(tier) = &tier {
            claimed.insert(tier.clone(), column.to_owned());
        }
        mapped.insert(column.to_owned(), tier);
    }

    let mut columns = Vec::new();
    let mut tiers = Vec::new();
    for tier in order {
        let Some(column) = claimed.get(tier) else {
            continue;
        };
        let has = |suffix: &str| index.contains_key(format!("{column}__{suffix}").as_str());
        let cost_source = if has("cost_usd") {
            CostSource::CostUsd
        } else if has("cost_usd_list") {
            CostSource::CostUsdList
        } else if has("input_tokens") && has("output_tokens") {
            CostSource::Tokens
        } else {
            return Err(bad_header(
                column,
                format!(
                    "no cost for this model: add {column}__cost_usd, {column}__cost_usd_list, or {column}__input_tokens and {column}__output_tokens"
                ),
            ));
        };
        tiers.push(tier.clone());
        columns.push(ModelColumn {
            column: column.clone(),
            tier: tier.clone(),
            cost_source,
        });
    }
    if columns.is_empty() {
        return Err(Error::InvalidInput(format!(
            "outcomes: no model column maps to a tier of tiers.order ({}); model columns: {}; use --map COLUMN=TIER",
            order.join(", "),
            if model_columns.is_empty() {
                "none".to_owned()
            } else {
                model_columns.join(", ")
            }
        )));
    }
    let ignored_columns = model_columns
        .iter()
        .filter(|c| !columns.iter().any(|m| m.column == **c))
        .map(|c| (*c).to_owned())
        .collect();

    // Rows.
    let mut rows: Vec<OutcomeRow> = Vec::with_capacity(body.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for record in body {
        if record.fields.len() != header.fields.len() {
            let task = record
                .fields
                .get(task_col)
                .map(|t| format!(" (task {t:?})"))
                .unwrap_or_default();
            return Err(Error::InvalidInput(format!(
                "outcomes line {}{task}: expected {} fields like the header, found {}",
                record.line,
                header.fields.len(),
                record.fields.len()
            )));
        }
        let task_id = record.fields[task_col].clone();
        let at = |column: &str, message: String| {
            Error::InvalidInput(format!(
                "outcomes line {} (task {task_id:?}), column {column}: {message}",
                record.line
            ))
        };
        if task_id.is_empty() {
            return Err(at("task_id", "empty task id".into()));
        }
        if let Some(first) = seen.insert(task_id.clone(), record.line) {
            return Err(at(
                "task_id",
                format!("duplicate task id (first on line {first})"),
            ));
        }
        let field = |column: &str| -> &str {
            index
                .get(column)
                .and_then(|&i| record.fields.get(i))
                .map_or("", String::as_str)
        };
        let number = |column: &str, what: &str| -> Result<f64> {
            let raw = field(column);
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ if raw.is_empty() => Err(at(column, format!("empty; expected {what}"))),
                _ => Err(at(column, format!("expected {what}, got {raw:?}"))),
            }
        };
        let mut cells = Vec::with_capacity(columns.len());
        for col in &columns {
            let raw = field(&col.column);
            let p = match raw {
                "true" | "TRUE" | "True" => 1.0,
                "false" | "FALSE" | "False" => 0.0,
                _ => match raw.parse::<f64>() {
                    Ok(v) if (0.0..=1.0).contains(&v) => v,
                    _ => {
                        return Err(at(
                            &col.column,
                            format!("solved must be 0, 1 or a probability in [0, 1], got {raw:?}"),
                        ));
                    }
                },
            };
            let cost_usd = match col.cost_source {
                CostSource::CostUsd => {
                    number(&format!("{}__cost_usd", col.column), "a cost in USD >= 0")?
                }
                CostSource::CostUsdList => number(
                    &format!("{}__cost_usd_list", col.column),
                    "a cost in USD >= 0",
                )?,
                CostSource::Tokens => {
                    let input = number(
                        &format!("{}__input_tokens", col.column),
                        "a token count >= 0",
                    )?;
                    let output = number(
                        &format!("{}__output_tokens", col.column),
                        "a token count >= 0",
                    )?;
                    let model = config.models.get(&col.tier).ok_or_else(|| {
                        Error::Config(format!("tier {} has no [models] entry", col.tier))
                    })?;
                    (input * model.input_usd_per_mtok + output * model.output_usd_per_mtok)
                        / 1_000_000.0
                }
            };
            cells.push(OutcomeCell { p, cost_usd });
        }
        rows.push(OutcomeRow {
            task_id,
            class: class_col
                .map(|i| record.fields[i].clone())
                .unwrap_or_default(),
            line: record.line,
            cells,
        });
    }
    if rows.is_empty() {
        return Err(Error::InvalidInput(
            "outcomes: the file has a header but no task rows".into(),
        ));
    }
    Ok(OutcomeTable {
        tiers,
        columns,
        ignored_columns,
        has_class: class_col.is_some(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::default_embedded().unwrap()
    }

    fn err(text: &str, maps: &[ColumnMap]) -> String {
        parse_outcomes(text, &config(), maps)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn learn_csv_handles_quotes_crlf_and_blank_lines() {
        let text = "\u{feff}task_id,class,haiku_x,haiku_x__cost_usd\r\n\"a,1\",\"easy \"\"one\"\"\",1,0.5\r\n\r\nb,\"multi\nline\",0.25,2\n";
        let t = parse_outcomes(text, &config(), &[]).unwrap();
        assert_eq!(t.tiers, ["haiku"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].task_id, "a,1");
        assert_eq!(t.rows[0].class, "easy \"one\"");
        assert_eq!(t.rows[1].class, "multi\nline");
        assert_eq!(t.rows[1].line, 4);
        assert_eq!(
            t.rows[1].cells[0],
            OutcomeCell {
                p: 0.25,
                cost_usd: 2.0
            }
        );
    }

    #[test]
    fn learn_csv_prices_tokens_and_maps_columns() {
        let text = "task_id,m_sonnet,m_sonnet__input_tokens,m_sonnet__output_tokens,other,other__cost_usd\nt1,1,1000000,100000,0,1\n";
        let t = parse_outcomes(text, &config(), &[]).unwrap();
        assert_eq!(t.tiers, ["sonnet"]);
        assert_eq!(t.columns[0].cost_source, CostSource::Tokens);
        assert!((t.rows[0].cells[0].cost_usd - 4.5).abs() < 1e-12);
        assert_eq!(t.ignored_columns, ["other"]);
        let maps: Vec<ColumnMap> = ["other=opus", "m_sonnet=none"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let t = parse_outcomes(text, &config(), &maps).unwrap();
        assert_eq!(t.tiers, ["opus"]);
        assert_eq!(t.ignored_columns, ["m_sonnet"]);
        assert!("nonsense".parse::<ColumnMap>().is_err());
    }

    #[test]
    fn learn_csv_errors_name_line_task_and_column() {
        let head = "task_id,x_haiku,x_haiku__cost_usd\n";
        let e = err(&format!("{head}t1,1,0.1\nt2,maybe,0.1\n"), &[]);
        assert_eq!(
            e,
            "outcomes line 3 (task \"t2\"), column x_haiku: solved must be 0, 1 or a probability in [0, 1], got \"maybe\""
        );
        let e = err(&format!("{head}t1,1.5,0.1\n"), &[]);
        assert!(e.contains("line 2 (task \"t1\"), column x_haiku:"), "{e}");
        let e = err(&format!("{head}t1,1,-3\n"), &[]);
        assert!(
            e.contains("line 2 (task \"t1\"), column x_haiku__cost_usd: expected a cost"),
            "{e}"
        );
        let e = err(&format!("{head}t1,1,\n"), &[]);
        assert!(e.contains("column x_haiku__cost_usd: empty"), "{e}");
        let e = err(&format!("{head}t1,1\n"), &[]);
        assert!(e.contains("line 2 (task \"t1\"): expected 3 fields"), "{e}");
        let e = err(&format!("{head}t1,1,0.1\nt1,0,0.1\n"), &[]);
        assert!(
            e.contains("line 3 (task \"t1\"), column task_id: duplicate task id (first on line 2)"),
            "{e}"
        );
        let e = err("id,x_haiku,x_haiku__cost_usd\nt1,1,1\n", &[]);
        assert!(e.contains("line 1, column task_id: missing"), "{e}");
        let e = err("task_id,x_haiku\nt1,1\n", &[]);
        assert!(e.contains("column x_haiku: no cost for this model"), "{e}");
        let e = err(
            "task_id,x_haiku,y_haiku,x_haiku__cost_usd,y_haiku__cost_usd\nt,1,1,1,1\n",
            &[],
        );
        assert!(
            e.contains("both x_haiku and y_haiku look like tier haiku"),
            "{e}"
        );
        let e = err("task_id,gpt,gpt__cost_usd\nt,1,1\n", &[]);
        assert!(e.contains("no model column maps to a tier"), "{e}");
        let e = err(&format!("{head}\"t1,1,0.1\n"), &[]);
        assert!(e.contains("line 2: a quoted field is never closed"), "{e}");
        let e = err(head, &[]);
        assert!(e.contains("no task rows"), "{e}");
        let e = err(
            &format!("{head}t1,1,0.1\n"),
            &["nope=haiku".parse().unwrap()],
        );
        assert!(e.contains("--map nope: no model column"), "{e}");
        let e = err(
            &format!("{head}t1,1,0.1\n"),
            &["x_haiku=huge".parse().unwrap()],
        );
        assert!(e.contains("\"huge\" is not a tier"), "{e}");
        let e = err("task_id,a__cost_usd\nt,1\n", &[]);
        assert!(
            e.contains("column a__cost_usd: there is no model column"),
            "{e}"
        );
    }
}
