//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (`chromedriver`) against a real `cadre daemon` and `cadre sim serve`.
//!
//! [`a_job_from_the_form_to_a_branch`] submits a job from the page, watches
//! its grid fill in live, opens a file's attempts and diff (a file holding
//! `<script>` shows it as text), cancels a second job and applies the first
//! to a new branch, checked in git, filters the job list by status and
//! opens the `/stats` page; [`the_token_flow`] logs in and out of a
//! daemon with `CADRE_TOKEN`. Both check the console stays free of errors
//! and save screenshots under `target/dashboard-screenshots/`.
//!
//! Without `chromium` and `chromedriver` the tests say so and pass, unless
//! `CI` is set (`.ci/run` installs both): then they fail.

#![expect(
    clippy::unwrap_used,
    reason = "process and browser helpers outside #[test] fns fail loudly"
)]

mod webdriver;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use cadre_e2e::{
    FileCase, Fixture, HAIKU, RENAME, ScenarioSpec, git, read_file, rename_module, write_file,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use webdriver::{Browsers, Driver};

/// How long anything may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(90);
const SECRET: &str = "dashboard token 8d1f";

/// A `cadre daemon` child process; killed on drop.
struct Daemon {
    child: Child,
    url: String,
}

impl Daemon {
    fn start(f: &Fixture, root: &Path, env: &[(&str, &str)]) -> Daemon {
        let root = root.to_string_lossy().into_owned();
        let args = ["daemon", "--listen", "127.0.0.1:0", "--allow-root", &root];
        let mut child = f
            .command(&args, env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("cadre daemon listening on ")
            .unwrap_or_else(|| panic!("the daemon did not announce its address: {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        Daemon { child, url }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `$CARGO_TARGET_DIR` (or `target/`)`/dashboard-screenshots/`.
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("dashboard-screenshots")
}

/// Console entries at level SEVERE (errors, CSP violations, failed loads).
async fn console_errors(driver: &Driver) -> Vec<String> {
    driver
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .map(|(_, message)| message)
        .collect()
}

fn cases() -> Vec<FileCase> {
    let mut cases: Vec<FileCase> = ["orders", "billing", "search", "profile", "admin"]
        .iter()
        .map(|name| rename_module(&format!("app/{name}.py"), "lookup"))
        .collect();
    // One escalation for the funnel.
    cases[1] = cases[1].clone().script(HAIKU, &["partial"]);
    cases.push(FileCase::new(
        "app/xss.py",
        "# <script>document.title = 'pwned'</script>\nfrom app.models import UserId\n",
        &[(
            "from app.models import UserId",
            "from app.models import AccountId",
        )],
    ));
    cases
}

/// Waits until the job page shows status `want`.
async fn wait_status(driver: &Driver, want: &str) {
    driver
        .wait(
            &format!("status {want}"),
            PATIENCE,
            "return document.getElementById('status').textContent === arguments[0];",
            json!([want]),
        )
        .await;
}

/// Submits `workspace` from the job list's form; returns the job id.
async fn submit_from_form(driver: &Driver, daemon: &Daemon, workspace: &Path) -> String {
    driver.goto(&format!("{}/", daemon.url)).await;
    driver.type_into("#f-instruction", RENAME).await;
    driver
        .type_into("#f-workspace", &workspace.to_string_lossy())
        .await;
    driver.click("#submit-button").await;
    let question = driver.accept_alert().await;
    assert!(question.contains(RENAME), "{question}");
    let url = driver
        .wait(
            "the job page",
            PATIENCE,
            "return location.pathname.startsWith('/jobs/') ? location.pathname : null;",
            json!([]),
        )
        .await;
    url.as_str()
        .unwrap()
        .trim_start_matches("/jobs/")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_from_the_form_to_a_branch() {
    let Some(browsers) = Browsers::find("a_job_from_the_form_to_a_branch") else {
        return;
    };
    let cases = cases();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(1500, 1500));
    git(&f.ws, &f.home, &["init", "--quiet"]);
    git(&f.ws, &f.home, &["add", "-A"]);
    git(&f.ws, &f.home, &["commit", "--quiet", "-m", "initial"]);
    let second = f.tmp.path().join("second");
    for case in &cases {
        write_file(&second, &case.path, &case.original);
    }
    let daemon = Daemon::start(&f, f.tmp.path(), &[]);
    let driver = Driver::start(&browsers, 1280, 1600).await;
    let shots = shots_dir();

    // Submit from the form; the job page then fills in without a reload.
    let job = submit_from_form(&driver, &daemon, &f.ws).await;
    driver.js("window.cadreNoReload = true;", json!([])).await;
    driver
        .wait(
            "a file accepted while the job runs",
            PATIENCE,
            "return document.querySelector('.cell.accepted') !== null;",
            json!([]),
        )
        .await;
    driver.screenshot(&shots.join("job-running.png")).await;
    wait_status(&driver, "completed").await;
    assert_eq!(
        driver
            .js("return window.cadreNoReload === true;", json!([]))
            .await,
        true,
        "the page reloaded instead of updating live"
    );
    let cells = driver
        .js(
            "return document.querySelectorAll('.cell.accepted').length;",
            json!([]),
        )
        .await;
    assert_eq!(cells, cases.len());
    let log = driver.text("#log").await.unwrap();
    assert!(
        log.contains("attempt_finished") && log.contains("review_verdict"),
        "{log}"
    );
    let funnel = driver
        .text("#funnel tr[data-tier='haiku']")
        .await
        .unwrap_or_default();
    assert!(funnel.starts_with("haiku"), "{funnel}");
    assert_eq!(
        driver
            .js("return document.querySelector(\"#funnel tr[data-tier='haiku'] td:nth-child(4)\").textContent;", json!([]))
            .await,
        "1",
        "one escalation out of haiku"
    );

    // A file's attempts and diff; `<script>` in it is text, not markup.
    driver.click(".cell[data-path='app/billing.py']").await;
    let attempts = driver
        .js(
            "return [...document.querySelectorAll('#attempts tr')].map(r => r.textContent);",
            json!([]),
        )
        .await;
    let attempts = attempts.as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].as_str().unwrap().contains("partial")
            || attempts[0].as_str().unwrap().contains("failed"),
        "{attempts:?}"
    );
    driver.click(".cell[data-path='app/xss.py']").await;
    let diff = driver.text("#file-diff").await.unwrap();
    assert!(
        diff.contains("<script>document.title = 'pwned'</script>"),
        "{diff}"
    );
    assert!(diff.contains("+from app.models import AccountId"), "{diff}");
    let scripts = driver
        .js(
            "return document.querySelectorAll('script').length;",
            json!([]),
        )
        .await;
    assert_eq!(scripts, 3, "only the page's own scripts");
    assert_ne!(
        driver.js("return document.title;", json!([])).await,
        "pwned"
    );
    let review = driver.text("#review").await.unwrap();
    assert!(
        review.contains("app/xss.py") && review.contains("approve"),
        "{review}"
    );
    driver.screenshot(&shots.join("job-finished.png")).await;

    // A second job, cancelled from its page.
    let other = submit_from_form(&driver, &daemon, &second).await;
    assert_ne!(other, job);
    driver
        .wait(
            "the second job running",
            PATIENCE,
            "return document.querySelector('.cell') !== null && !document.getElementById('cancel').disabled;",
            json!([]),
        )
        .await;
    driver.click("#cancel").await;
    assert_eq!(driver.accept_alert().await, "Cancel this job?");
    wait_status(&driver, "cancelled").await;

    // Apply the first job to a new branch, then look at it in git.
    driver.goto(&format!("{}/jobs/{job}", daemon.url)).await;
    wait_status(&driver, "completed").await;
    driver.type_into("#branch", "cadre/from-dashboard").await;
    driver.click("#apply").await;
    let question = driver.accept_alert().await;
    assert!(question.contains("cadre/from-dashboard"), "{question}");
    driver
        .wait(
            "the apply to finish",
            PATIENCE,
            "return document.getElementById('action-result').textContent.includes('applied');",
            json!([]),
        )
        .await;
    for case in &cases {
        let committed = git(
            &f.ws,
            &f.home,
            &["show", &format!("cadre/from-dashboard:{}", case.path)],
        );
        assert_eq!(committed, case.expected(), "{} on the branch", case.path);
        assert_eq!(read_file(&f.ws, &case.path), case.original, "working tree");
    }

    // The job list shows both, with their progress.
    driver.goto(&format!("{}/", daemon.url)).await;
    driver
        .wait(
            "both jobs listed",
            PATIENCE,
            "return document.querySelectorAll('#jobs tr').length === 2 && document.querySelector('#jobs tr td:nth-child(3)').textContent !== '-';",
            json!([]),
        )
        .await;
    let first_row = driver
        .text(&format!("#jobs tr[data-job='{job}']"))
        .await
        .unwrap();
    assert!(
        first_row.contains(&format!("{0} / {0}", cases.len())),
        "{first_row}"
    );
    driver.screenshot(&shots.join("jobs.png")).await;

    // The status filter asks the daemon: each status shows only its job.
    for (status, shown, hidden) in [("cancelled", &other, &job), ("completed", &job, &other)] {
        driver
            .js(
                "const s = document.getElementById('status-filter'); s.value = arguments[0]; \
                 s.dispatchEvent(new Event('change'));",
                json!([status]),
            )
            .await;
        driver
            .wait(
                &format!("only the {status} job listed"),
                PATIENCE,
                "const rows = [...document.querySelectorAll('#jobs tr')]; \
                 return rows.length === 1 && rows[0].dataset.job === arguments[0];",
                json!([shown]),
            )
            .await;
        let listed = driver.text("#jobs").await.unwrap_or_default();
        assert!(listed.contains(status), "{status}: {listed}");
        assert_ne!(shown, hidden);
    }

    // `cadre stats` as a page: a row per class and tier, the learned starts.
    driver.goto(&format!("{}/stats", daemon.url)).await;
    driver
        .wait(
            "the stats rows",
            PATIENCE,
            "return document.querySelectorAll('#classes tr').length > 0 \
             && document.querySelectorAll('#learned tr[data-learned]').length > 0;",
            json!([]),
        )
        .await;
    let classes = driver.text("#classes").await.unwrap_or_default();
    assert!(classes.contains('%'), "{classes}");
    // Both jobs count (the cancelled one's files may have had attempts).
    let totals = driver.text("#totals").await.unwrap_or_default();
    assert!(
        totals.contains(" accepted") && totals.contains("escalated"),
        "{totals}"
    );
    let learned = driver.text("#learned").await.unwrap_or_default();
    assert!(learned.contains("cost/solve"), "{learned}");
    // The codemod tier's figures: no job here had a rule, so no rule ran.
    let codemod = driver
        .js(
            "return [...document.querySelectorAll('#codemod tr[data-codemod] td')] \
             .map((td) => td.textContent.trim());",
            json!([]),
        )
        .await;
    assert_eq!(codemod, json!(["0", "0", "0.0%", "$0.0000"]), "{codemod}");
    driver.screenshot(&shots.join("stats.png")).await;
    let errors = console_errors(&driver).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    driver.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_flow() {
    let Some(browsers) = Browsers::find("the_token_flow") else {
        return;
    };
    let cases = vec![rename_module("app/orders.py", "lookup")];
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(0, 0));
    let daemon = Daemon::start(&f, f.tmp.path(), &[("CADRE_TOKEN", SECRET)]);
    let driver = Driver::start(&browsers, 420, 900).await;

    // No cookie: the API refuses, the pages send to the login form.
    let anonymous = reqwest::get(format!("{}/v1/jobs", daemon.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    driver.goto(&format!("{}/", daemon.url)).await;
    assert_eq!(driver.url().await, format!("{}/login", daemon.url));

    driver.type_into("#token", "not the token").await;
    driver.click("#login").await;
    driver
        .wait(
            "the form again",
            PATIENCE,
            "return document.getElementById('token');",
            json!([]),
        )
        .await;
    assert_eq!(driver.url().await, format!("{}/login", daemon.url));
    // The refused login answered 401; nothing else may have failed.
    let errors = console_errors(&driver).await;
    assert!(
        errors
            .iter()
            .all(|e| e.contains("/login") && e.contains("401")),
        "{errors:#?}"
    );

    driver.type_into("#token", SECRET).await;
    driver.click("#login").await;
    driver
        .wait(
            "the job list",
            PATIENCE,
            "return location.pathname === '/' && !document.getElementById('logout').hidden;",
            json!([]),
        )
        .await;
    // The session cookie is invisible to scripts; the token is nowhere in the page.
    assert_eq!(driver.js("return document.cookie;", json!([])).await, "");
    let source = driver
        .js("return document.documentElement.outerHTML;", json!([]))
        .await;
    assert!(!source.as_str().unwrap().contains(SECRET));
    let workspace = f.ws.clone();
    let job = submit_from_form(&driver, &daemon, &workspace).await;
    wait_status(&driver, "completed").await;
    driver
        .screenshot(&shots_dir().join("narrow-token-job.png"))
        .await;
    assert!(!job.is_empty());

    driver.click("#logout").await;
    driver
        .wait(
            "the login form",
            PATIENCE,
            "return location.pathname === '/login';",
            json!([]),
        )
        .await;
    driver.goto(&format!("{}/jobs/{job}", daemon.url)).await;
    assert_eq!(driver.url().await, format!("{}/login", daemon.url));
    let errors = console_errors(&driver).await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    driver.quit().await;
}
