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

mod csv;

use self::csv::parse_csv;
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
    /// Tiers with a column, cheapest first by their mean cost per task in
    /// this table (a rung ladder; ad-hoc tiers included).
    pub tiers: Vec<String>,
    /// The column playing each tier (same order as `tiers`).
    pub columns: Vec<ModelColumn>,
    /// Model columns mapped to no tier.
    pub ignored_columns: Vec<String>,
    /// Caveats: the cost order disagrees with `tiers.order`, columns that
    /// could not become ad-hoc tiers, thresholded probabilities.
    pub warnings: Vec<String>,
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

const SUFFIXES: &[&str] = &["cost_usd", "cost_usd_list", "input_tokens", "output_tokens"];

/// Which column holds the class of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClassColumn {
    /// `class`, when the file has one.
    #[default]
    Default,
    /// This column (it must exist).
    Named(String),
    /// None: every task is in one class.
    None,
}

/// How to read an outcome table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParseOptions {
    /// Column-to-tier overrides.
    pub maps: Vec<ColumnMap>,
    /// Where the class comes from.
    pub class_column: ClassColumn,
    /// Solved cells at or above this become 1, below it 0; `None` keeps
    /// probabilities as expectations.
    pub threshold: Option<f64>,
    /// Tiers outside `tiers.order`: `--map COLUMN=NAME` may name one, and
    /// every model column that maps to no tier becomes a tier named after
    /// the column when its cost can be read.
    pub ad_hoc: bool,
}

/// Parses an outcome CSV with the default options and these column maps.
pub fn parse_outcomes(text: &str, config: &Config, maps: &[ColumnMap]) -> Result<OutcomeTable> {
    parse_outcomes_with(
        text,
        config,
        &ParseOptions {
            maps: maps.to_vec(),
            ..ParseOptions::default()
        },
    )
}

/// Parses an outcome CSV. `options.maps` overrides the default
/// column-to-tier mapping; tiers are config tiers unless `options.ad_hoc`;
/// token columns are priced from `models.<tier>`. The tiers come out
/// ordered by their mean cost per task.
pub fn parse_outcomes_with(
    text: &str,
    config: &Config,
    options: &ParseOptions,
) -> Result<OutcomeTable> {
    let maps = options.maps.as_slice();
    if let Some(x) = options.threshold
        && !(x.is_finite() && (0.0..=1.0).contains(&x))
    {
        return Err(Error::InvalidInput(format!(
            "--threshold must be in [0, 1], got {x}"
        )));
    }
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
    let class_name = match &options.class_column {
        ClassColumn::Named(name) => name.as_str(),
        ClassColumn::Default | ClassColumn::None => "class",
    };
    let class_col = match &options.class_column {
        ClassColumn::Default => index.get("class").copied(),
        ClassColumn::None => None,
        ClassColumn::Named(name) => Some(index.get(name.as_str()).copied().ok_or_else(|| {
            bad_header(
                name,
                format!(
                    "--class-column {name}: no such column (columns: {})",
                    header.fields.join(", ")
                ),
            )
        })?),
    };
    let model_columns: Vec<&str> = header
        .fields
        .iter()
        .map(String::as_str)
        .filter(|n| !n.contains("__") && *n != "task_id" && *n != "class" && *n != class_name)
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
    let order = config.model_tiers();
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
            if config.tier_index(tier).is_none() && !options.ad_hoc {
                return Err(Error::InvalidInput(format!(
                    "--map {}={tier}: {tier:?} is not a tier (tiers.order: {}); --ad-hoc-tiers allows tiers of the table's own",
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

    let mut warnings = Vec::new();
    let cost_source_of = |column: &str| {
        let has = |suffix: &str| index.contains_key(format!("{column}__{suffix}").as_str());
        if has("cost_usd") {
            Some(CostSource::CostUsd)
        } else if has("cost_usd_list") {
            Some(CostSource::CostUsdList)
        } else if has("input_tokens") && has("output_tokens") {
            Some(CostSource::Tokens)
        } else {
            None
        }
    };
    if options.ad_hoc {
        // Unmapped model columns become tiers of their own when their cost
        // can be read without a model entry.
        for &column in &model_columns {
            let explicit_none = maps.iter().any(|m| m.column == column && m.tier.is_none());
            if explicit_none || claimed.values().any(|c| c == column) {
                continue;
            }
            if claimed.contains_key(column) || config.tier_index(column).is_some() {
                warnings.push(format!(
                    "column {column}: its name is already a tier; not an ad-hoc tier"
                ));
                continue;
            }
            match cost_source_of(column) {
                Some(CostSource::Tokens) if !config.models.contains_key(column) => {
                    warnings.push(format!(
                        "column {column}: tokens but no USD cost and no model entry to price them; ignored (add {column}__cost_usd)"
                    ));
                }
                Some(_) => {
                    claimed.insert(column.to_owned(), column.to_owned());
                }
                None => warnings.push(format!("column {column}: no cost column; ignored")),
            }
        }
    }
    // Config tiers first in tiers.order, then ad-hoc ones by name; the cost
    // order is applied once the rows are read.
    let mut named: Vec<(&String, &String)> = claimed.iter().collect();
    named.sort_by_key(|(tier, _)| {
        (
            config.tier_index(tier).unwrap_or(usize::MAX),
            (*tier).clone(),
        )
    });
    let mut columns = Vec::new();
    let mut tiers = Vec::new();
    for (tier, column) in named {
        let cost_source = if let Some(source) = cost_source_of(column) {
            if source == CostSource::Tokens && !config.models.contains_key(tier) {
                return Err(bad_header(
                    column,
                    format!(
                        "tier {tier} has no [models] entry to price tokens; add {column}__cost_usd"
                    ),
                ));
            }
            source
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
                    Ok(v) if (0.0..=1.0).contains(&v) => match options.threshold {
                        Some(x) => f64::from(u8::from(v >= x)),
                        None => v,
                    },
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
    order_by_cost(config, &mut tiers, &mut columns, &mut rows, &mut warnings);
    Ok(OutcomeTable {
        tiers,
        columns,
        ignored_columns,
        warnings,
        has_class: class_col.is_some(),
        rows,
    })
}

/// Sorts the tiers (and every row's cells) by mean cost per task, cheapest
/// first, and warns when that disagrees with `tiers.order`.
fn order_by_cost(
    config: &Config,
    tiers: &mut Vec<String>,
    columns: &mut Vec<ModelColumn>,
    rows: &mut [OutcomeRow],
    warnings: &mut Vec<String>,
) {
    let n = tiers.len();
    let mean: Vec<f64> = (0..n)
        .map(|t| rows.iter().map(|r| r.cells[t].cost_usd).sum::<f64>() / rows.len().max(1) as f64)
        .collect();
    let mut perm: Vec<usize> = (0..n).collect();
    perm.sort_by(|&a, &b| mean[a].total_cmp(&mean[b]).then(a.cmp(&b)));
    let configured: Vec<&String> = perm
        .iter()
        .map(|&t| &tiers[t])
        .filter(|t| config.tier_index(t).is_some())
        .collect();
    let mut sorted = configured.clone();
    sorted.sort_by_key(|t| config.tier_index(t));
    if configured != sorted {
        warnings.push(format!(
            "by mean cost per task the ladder is {}, which disagrees with tiers.order ({}); the cost order is used",
            perm.iter()
                .map(|&t| format!("{} {}", tiers[t], super::estimate::usd(mean[t])))
                .collect::<Vec<_>>()
                .join(" < "),
            config.tiers.order.join(", ")
        ));
    }
    if perm.iter().enumerate().all(|(i, &t)| i == t) {
        return;
    }
    *tiers = perm.iter().map(|&t| tiers[t].clone()).collect();
    *columns = perm.iter().map(|&t| columns[t].clone()).collect();
    for row in rows {
        row.cells = perm.iter().map(|&t| row.cells[t]).collect();
    }
}

#[cfg(test)]
mod tests;
