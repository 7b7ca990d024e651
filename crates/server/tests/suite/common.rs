//! Shared helpers: a temp world (allowed root, store, simulator), daemons
//! served on real loopback sockets, and a small API client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cadre_config::Config;
use cadre_core::Providers;
use cadre_server::{AppState, DaemonOptions, Token};
use cadre_sim::{FileSpec, ModelOverride, Scenario, SimServer, SkillSpec, SubtaskSpec};
use cadre_store::Store;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One file a job changes: path, original, the correct edits.
#[derive(Clone, Debug)]
pub struct Case {
    pub path: String,
    pub original: String,
    pub edits: Vec<(String, String)>,
}

impl Case {
    pub fn expected(&self) -> String {
        let mut text = self.original.clone();
        for (old, new) in &self.edits {
            text = text.replacen(old.as_str(), new, 1);
        }
        text
    }
}

/// `n` small Python modules that each mention `UserId` twice.
pub fn cases(prefix: &str, n: usize) -> Vec<Case> {
    (0..n)
        .map(|i| {
            let function = format!("handler_{i}");
            Case {
                path: format!("{prefix}/mod{i}.py"),
                original: format!(
                    "from app.models import UserId\n\n\ndef {function}(uid: UserId) -> int:\n    return uid.value\n"
                ),
                edits: vec![
                    (
                        "from app.models import UserId".to_owned(),
                        "from app.models import AccountId".to_owned(),
                    ),
                    (
                        format!("def {function}(uid: UserId)"),
                        format!("def {function}(uid: AccountId)"),
                    ),
                ],
            }
        })
        .collect()
}

/// A scenario planning every case, with perfect models of the given latency.
pub fn scenario(cases: &[Case], latency_ms: u64) -> Scenario {
    let mut builder = Scenario::builder()
        .seed(3)
        .notes("Rename UserId to AccountId.")
        .subtasks(
            cases
                .iter()
                .map(|c| SubtaskSpec::new(&c.path, "Rename UserId to AccountId.")),
        )
        .files(
            cases
                .iter()
                .map(|c| FileSpec::with_edits(&c.path, c.edits.iter().cloned())),
        );
    for model in ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"] {
        builder = builder.model(
            model,
            ModelOverride::default()
                .skill(SkillSpec::uniform(1.0))
                .latency(latency_ms, 0),
        );
    }
    builder.build().unwrap()
}

/// A temp dir with an allowed root, a store file and (optionally) a simulator.
pub struct World {
    pub tmp: tempfile::TempDir,
    /// The daemon's allowed root.
    pub root: PathBuf,
    pub store: Store,
    pub config: Config,
    pub sim: Option<SimServer>,
}

impl World {
    pub async fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let store = Store::open(&tmp.path().join("cadre.db")).await.unwrap();
        World {
            tmp,
            root,
            store,
            config: Config::default_embedded().unwrap(),
            sim: None,
        }
    }

    /// Starts the simulator serving `cases` at `latency_ms`.
    pub async fn with_sim(mut self, cases: &[Case], latency_ms: u64) -> World {
        let scenario = scenario(cases, latency_ms);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.sim = Some(SimServer::start(scenario, listener).await.unwrap());
        self
    }

    /// A workspace `root/NAME` holding `cases`' originals.
    pub fn workspace(&self, name: &str, cases: &[Case]) -> PathBuf {
        let ws = self.root.join(name);
        std::fs::create_dir_all(&ws).unwrap();
        for c in cases {
            let target = ws.join(&c.path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, &c.original).unwrap();
        }
        ws
    }

    pub fn options(&self) -> DaemonOptions {
        let mut options = DaemonOptions::from_config(&self.config.daemon);
        options.allowed_roots = vec![self.root.clone()];
        options.shutdown_grace = Duration::from_secs(10);
        options
    }

    /// The daemon state: providers point at the simulator (none without one).
    pub fn state(&self, options: DaemonOptions) -> AppState {
        let providers = match &self.sim {
            Some(sim) => {
                let url = sim.base_url();
                Providers::from_config(&self.config, &|_| None, Some((&url, "test-key"))).unwrap()
            }
            None => Providers::default(),
        };
        AppState::new(&self.config, self.store.clone(), providers, options).unwrap()
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    /// Asserts the API's error shape with this status and type; returns the message.
    pub fn expect_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(self.json["error"]["type"], kind, "{self:#?}");
        let message = self.json["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {self:#?}"))
            .to_owned();
        assert!(!message.is_empty());
        assert_eq!(
            self.json.as_object().map(|o| o.len()),
            Some(1),
            "only `error` at the top: {self:#?}"
        );
        message
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// A client for one daemon.
#[derive(Clone, Debug)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

impl Api {
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
    }

    /// Submits a job; panics unless 201. Returns the job id.
    pub async fn submit(&self, workspace: &Path, extra: Value) -> String {
        let mut body = serde_json::json!({
            "instruction": "Rename UserId to AccountId",
            "workspace": workspace,
        });
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        let reply = self.post("/v1/jobs", &body.to_string()).await;
        assert_eq!(reply.status, 201, "{reply:#?}");
        reply.json["job_id"].as_str().unwrap().to_owned()
    }

    /// The whole event stream of a job (until the server ends it), parsed.
    pub async fn events(&self, job: &str, last_event_id: Option<i64>) -> Vec<SseEvent> {
        let mut request = self
            .client
            .get(format!("{}/v1/jobs/{job}/events", self.base));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let reply = tokio::time::timeout(Duration::from_secs(60), self.send(request))
            .await
            .expect("the event stream did not end");
        assert_eq!(reply.status, 200, "{reply:#?}");
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("text/event-stream")
        );
        parse_sse(&reply.text)
    }

    /// Waits (bounded) until the job's status is terminal; returns the report.
    pub async fn wait_terminal(&self, job: &str) -> Value {
        for _ in 0..1200 {
            let reply = self.get(&format!("/v1/jobs/{job}")).await;
            assert_eq!(reply.status, 200, "{reply:#?}");
            let status = reply.json["status"].as_str().unwrap_or_default().to_owned();
            if ["completed", "needs_human", "failed", "cancelled"].contains(&status.as_str()) {
                return reply.json;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job} did not finish");
    }
}

/// One server-sent event.
#[derive(Clone, Debug, PartialEq)]
pub struct SseEvent {
    pub id: i64,
    pub kind: String,
    pub data: Value,
}

/// The events of a whole `text/event-stream` body (frames without an id or
/// an event name are skipped), read with the workspace's one SSE parser.
pub fn parse_sse(text: &str) -> Vec<SseEvent> {
    cadre_llm::SseFrameParser::new()
        .push(text.as_bytes())
        .unwrap()
        .into_iter()
        .filter_map(|frame| {
            Some(SseEvent {
                id: frame.id?.trim().parse().ok()?,
                kind: frame.event?,
                data: serde_json::from_str(&frame.data).unwrap(),
            })
        })
        .collect()
}

/// A daemon (or just its API) served on a loopback port.
pub struct Served {
    pub api: Api,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<cadre_server::Result<()>>,
}

impl Served {
    /// The API alone (no dispatcher: submitted jobs stay queued).
    pub async fn app(state: AppState) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let app = cadre_server::app(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .map_err(cadre_server::Error::Io)
        });
        Served {
            api: Api {
                base: format!("http://{addr}"),
                client: reqwest::Client::new(),
                token: None,
            },
            stop: Some(tx),
            task,
        }
    }

    /// The whole daemon: `cadre_server::run`.
    pub async fn daemon(state: AppState) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(cadre_server::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Served {
            api: Api {
                base: format!("http://{addr}"),
                client: reqwest::Client::new(),
                token: None,
            },
            stop: Some(tx),
            task,
        }
    }

    /// Triggers shutdown and waits for it (bounded).
    pub async fn stop(mut self) -> cadre_server::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(60), &mut self.task)
            .await
            .expect("the daemon did not stop")
            .unwrap()
    }
}

pub fn token(secret: &str) -> Option<Token> {
    Some(Token::new(secret).unwrap())
}
