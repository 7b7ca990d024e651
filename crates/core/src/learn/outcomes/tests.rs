//! Parsing outcome tables: quoting, pricing, mapping and errors.
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
