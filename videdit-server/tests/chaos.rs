//! The chaos test: the real binary as an API server and four worker
//! processes (three slots each) on a private PostgreSQL cluster and a
//! private s3s-fs, while a driver SIGKILLs a random worker every few
//! seconds and starts it again, restarts s3s-fs once and PostgreSQL once
//! (an immediate shutdown: crash recovery). At the end every video is
//! ready with each of its shorts rendered, storage holds exactly the
//! objects the database names (also after half of the videos are
//! deleted), no job is left running, and every event reached the webhook
//! receiver.
//!
//! Kills come every 5–9 s while uploads arrive and until there have been
//! `max(8, uploads / 2)`; then the run settles. `CHAOS_UPLOADS` sets the
//! number of uploads (default 8 here, for a 2-core CI box; the long form,
//! `benches/chaos`, runs 40 and 200).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{EndpointExt, Request, Response, Route, handler};
use serde_json::{Value, json};
use videdit_media::process::Ffmpeg;
use videdit_media::testing::{HOOK_STORY_PAYOFF, PRACTICE, SLEEP, TalkSpec, make_talk};

const WORKERS: usize = 4;
const SLOTS: &str = "3";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16, limit: Duration) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < limit, "nothing listens on {port} after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A throw-away PostgreSQL cluster on a free port (as `postgres` when run
/// as root), so that restarting it disturbs no other test.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    fn run(&self, tool: &str, args: &[&str]) {
        let bin = self.bin.join(tool);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let out = cmd.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn start() -> Self {
        let initdb = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries (/usr/lib/postgresql/*/bin; scripts/test installs them)")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|b| b.join("initdb").is_file())
            .max()
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::Builder::new().prefix("videdit-chaos-pg").tempdir().unwrap();
        if is_root() {
            let ok = Command::new("chown").arg("postgres:").arg(dir.path()).status().unwrap();
            assert!(ok.success());
        }
        let pg = Self { bin: initdb, data: dir.path().join("data"), port: free_port(), _dir: dir };
        let data = pg.data.to_str().unwrap().to_owned();
        pg.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]);
        pg.pg_ctl("start");
        pg
    }

    fn pg_ctl(&self, action: &str) {
        let data = self.data.to_str().unwrap().to_owned();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self._dir.path().display()
        );
        let log = self._dir.path().join("log");
        let log = log.to_str().unwrap().to_owned();
        let mut args = vec!["-D", &data, "-l", &log, "-w", "-o", &opts];
        if action == "restart" {
            args.extend(["-m", "immediate"]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_owned();
        let bin = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let _ = cmd.args(["-D", &data, "-m", "immediate", "stop"]).output();
    }
}

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// s3s-fs on a fixed port over a folder that outlives its restarts.
struct S3 {
    port: u16,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl S3 {
    const BUCKET: &'static str = "chaos";

    fn start() -> Self {
        let dir = tempfile::Builder::new().prefix("videdit-chaos-s3").tempdir().unwrap();
        std::fs::create_dir(dir.path().join(Self::BUCKET)).unwrap();
        let mut s = Self { port: free_port(), dir, proc: None };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--access-key", "chaos"])
            .args(["--secret-key", "chaos-secret-key"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs 0.14.1 on PATH (scripts/test installs it)");
        self.proc = Some(Proc(child));
        wait_port(self.port, Duration::from_secs(20));
    }

    fn restart(&mut self) {
        self.proc = None;
        self.spawn();
    }

    /// Every object key in the bucket (s3s-fs keeps objects as files; its
    /// own bookkeeping files are left out).
    fn keys(&self) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    let key = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                    if key.starts_with("orgs/") && !key.contains(".s3s") {
                        out.insert(key);
                    }
                }
            }
        }
        let root = self.dir.path().join(Self::BUCKET);
        let mut out = BTreeSet::new();
        walk(&root, &root, &mut out);
        out
    }
}

/// The settings every process gets.
fn env(pg: &Postgres, s3: &S3) -> Vec<(String, String)> {
    let model = videdit_media::testing::tiny_en_test_model();
    [
        ("DATABASE_URL", pg.url()),
        ("STORAGE", "s3".into()),
        ("S3_ENDPOINT", format!("http://127.0.0.1:{}", s3.port)),
        ("S3_BUCKET", S3::BUCKET.into()),
        ("S3_ACCESS_KEY_ID", "chaos".into()),
        ("S3_SECRET_ACCESS_KEY", "chaos-secret-key".into()),
        ("S3_REGION", "us-east-1".into()),
        ("S3_FORCE_PATH_STYLE", "true".into()),
        ("AUTH_MODE", "insecure-dev".into()),
        ("WEBHOOKS_ALLOW_LOOPBACK", "true".into()),
        ("LIMIT_REQUESTS_PER_SECOND", "1000".into()),
        ("LIMIT_REQUESTS_PER_SECOND_PER_IP", "1000".into()),
        ("POLL_INTERVAL_MS", "250".into()),
        ("VIDEDIT_MODEL_DIR", model.parent().unwrap().to_str().unwrap().into()),
        ("WHISPER_MODEL", "tiny.en".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn videdit(args: &[&str], env: &[(String, String)], extra: &[(&str, String)], log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_videdit"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log.try_clone().unwrap())
        .spawn()
        .unwrap();
    Proc(child)
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<String>>>);

#[handler]
fn receive(req: &Request, Data(r): Data<&Receiver>) -> Response {
    if let Some(id) = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()) {
        r.0.lock().unwrap().push(id.to_owned());
    }
    Response::builder().body("ok")
}

/// The API, retried through the outages the driver causes.
struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let started = Instant::now();
        loop {
            let mut req =
                self.http.request(method.parse().unwrap(), format!("{}/api/v1{path}", self.base)).bearer_auth("dev");
            if let Some(b) = &body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) if r.status().as_u16() < 500 => {
                    let status = r.status().as_u16();
                    let v = r.json().await.unwrap_or(Value::Null);
                    return (status, v);
                }
                Ok(r) if started.elapsed() > Duration::from_secs(120) => panic!("{method} {path}: {}", r.status()),
                Err(e) if started.elapsed() > Duration::from_secs(120) => panic!("{method} {path}: {e}"),
                _ => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// Every video, page by page.
    async fn videos(&self) -> Vec<Value> {
        let mut out = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/videos?limit=100&cursor={c}"),
                None => "/videos?limit=100".to_owned(),
            };
            let (status, page) = self.call("GET", &path, None).await;
            assert_eq!(status, 200, "{page}");
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["nextCursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    async fn upload(&self, bytes: &[u8], n: usize) -> String {
        let body = json!({"fileName": format!("talk-{n}.mp4"), "contentType": "video/mp4", "size": bytes.len()});
        let (status, plan) = self.call("POST", "/uploads", Some(body)).await;
        assert_eq!(status, 201, "{plan}");
        // The PUT goes to s3s-fs, which may be restarting.
        let started = Instant::now();
        loop {
            let mut put = self.http.put(plan["url"].as_str().unwrap());
            for h in plan["headers"].as_array().into_iter().flatten() {
                put = put.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
            }
            match put.body(bytes.to_vec()).send().await {
                Ok(r) if r.status().is_success() => break,
                other => {
                    assert!(started.elapsed() < Duration::from_secs(60), "PUT: {other:?}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
        let upload = plan["uploadId"].as_str().unwrap();
        let (status, v) = self.call("POST", &format!("/uploads/{upload}/complete"), Some(json!({}))).await;
        assert_eq!(status, 200, "{v}");
        plan["videoId"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_and_services_restarted_lose_and_duplicate_nothing() {
    let uploads: usize = std::env::var("CHAOS_UPLOADS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let started = Instant::now();
    let pg = Postgres::start();
    let mut s3 = S3::start();
    let logs = tempfile::tempdir().unwrap();
    let env = env(&pg, &s3);
    let status = Command::new(env!("CARGO_BIN_EXE_videdit"))
        .arg("migrate")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .status()
        .unwrap();
    assert!(status.success(), "migrate");
    let api_port = free_port();
    let _server =
        videdit(&["serve"], &env, &[("BIND_ADDR", format!("127.0.0.1:{api_port}"))], &logs.path().join("server.log"));
    wait_port(api_port, Duration::from_secs(30));
    let spawn_worker = |i: usize| {
        videdit(
            &["worker"],
            &env,
            &[("JOB_CONCURRENCY", SLOTS.into()), ("HEALTH_ADDR", format!("127.0.0.1:{}", free_port()))],
            &logs.path().join(format!("worker-{i}.log")),
        )
    };
    let mut workers: Vec<Proc> = (0..WORKERS).map(spawn_worker).collect();
    let api = Api {
        base: format!("http://127.0.0.1:{api_port}"),
        http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
    };

    // A webhook receiver for every event.
    let receiver = Receiver::default();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let hook_addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
    let app = Route::new().at("/*path", poem::post(receive)).data(receiver.clone());
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    let (status, hook) = api.call("POST", "/webhooks", Some(json!({"url": format!("http://{hook_addr}/hook")}))).await;
    assert_eq!(status, 201, "{hook}");

    // Short talks, each uploaded several times.
    let dir = tempfile::tempdir().unwrap();
    let mut talks = vec![];
    for (i, text) in [SLEEP, PRACTICE, HOOK_STORY_PAYOFF].iter().enumerate() {
        let mut spec = TalkSpec::new(vec![(*text).to_owned()]);
        spec.size = Some((320, 180));
        spec.fps = 15;
        let talk = make_talk(&Ffmpeg::default(), &spec, &dir.path().join(format!("talk-{i}.mp4"))).await.unwrap();
        talks.push(std::fs::read(&talk.path).unwrap());
    }

    // The driver: a kill every few seconds, one s3s-fs restart, one
    // PostgreSQL restart, while the uploads go in and the work runs.
    let mut videos = vec![];
    let (mut kills, mut s3_restarts, mut pg_restarts) = (0, 0, 0);
    let mut next_kill = Instant::now() + Duration::from_secs(4);
    let max_kills = (uploads / 2).max(8);
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        usize::try_from(rng % n as u64).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(120 + 30 * uploads as u64);
    let mut next_report = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if videos.len() < uploads {
            let n = videos.len();
            videos.push(api.upload(&talks[n % talks.len()], n).await);
            if n == uploads / 3 && s3_restarts == 0 {
                s3.restart();
                s3_restarts += 1;
            }
        }
        // Kills go on while uploads come in and until `max_kills`; then the
        // run is left to settle (a render that every kill restarts could
        // never finish on two cores).
        if Instant::now() >= next_kill && (videos.len() < uploads || kills < max_kills) {
            let i = random(WORKERS);
            workers[i] = spawn_worker(i); // the old one is SIGKILLed as it is dropped
            kills += 1;
            next_kill = Instant::now() + Duration::from_secs(5 + random(5) as u64);
            if kills == max_kills / 2 && pg_restarts == 0 {
                pg.pg_ctl("restart");
                pg_restarts += 1;
            }
        }
        if videos.len() == uploads {
            let items = api.videos().await;
            let failed: Vec<&Value> = items.iter().filter(|v| v["status"] == "failed").collect();
            assert!(failed.is_empty(), "failed videos: {failed:?}");
            let done = items.iter().filter(|v| v["status"] == "ready").count();
            if done == uploads && pg_restarts == 1 {
                break items;
            }
        }
        if Instant::now() >= next_report {
            next_report = Instant::now() + Duration::from_secs(30);
            let items = api.videos().await;
            let mut states: BTreeMap<String, usize> = BTreeMap::new();
            for v in &items {
                *states
                    .entry(format!("{}/{}", v["status"].as_str().unwrap_or("?"), v["stage"].as_str().unwrap_or("-")))
                    .or_default() += 1;
            }
            println!(
                "chaos {:>4.0} s: {} uploaded, {states:?}, {kills} kills",
                started.elapsed().as_secs_f64(),
                videos.len()
            );
        }
        if Instant::now() >= deadline {
            for e in std::fs::read_dir(logs.path()).unwrap().flatten() {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                println!("--- {}:\n{}", e.path().display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            panic!("not every video was ready in time");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let wall = started.elapsed();

    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(2).connect(&pg.url()).await.unwrap();
    let shorts = expected_objects(&api, &ready).await;
    // Every short rendered; storage holds what the database names, nothing else.
    assert_storage(&s3, &pool, &shorts).await;
    let retries: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(attempt - 1), 0)::bigint FROM videdit_queue.job_history WHERE attempt > 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or(0);

    // Half of the videos deleted: their objects go, the others stay.
    let deleted: Vec<String> = videos.iter().step_by(2).cloned().collect();
    for v in &deleted {
        let (status, body) = api.call("DELETE", &format!("/videos/{v}"), None).await;
        assert!(status == 200 || status == 202 || status == 204, "{status} {body}");
    }
    let kept: Vec<Value> =
        ready.iter().filter(|v| !deleted.contains(&v["id"].as_str().unwrap().to_owned())).cloned().collect();
    let kept_objects = expected_objects(&api, &kept).await;
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let left = s3.keys();
        let gone = deleted.iter().all(|v| !left.iter().any(|k| k.contains(v.as_str())));
        if gone {
            break;
        }
        assert!(Instant::now() < until, "deleted videos' objects remain");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_storage(&s3, &pool, &kept_objects).await;

    // Every event reached the webhook receiver (once per id; a delivery
    // whose worker was killed before it recorded the answer may arrive twice).
    let events: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM videdit.events ORDER BY id").fetch_all(&pool).await.unwrap();
    let until = Instant::now() + Duration::from_secs(180);
    let (received, duplicates) = loop {
        let got = receiver.0.lock().unwrap().clone();
        let mut counts: HashMap<String, usize> = HashMap::new();
        for id in &got {
            *counts.entry(id.clone()).or_default() += 1;
        }
        let missing = events.iter().filter(|e| !counts.contains_key(e.as_str())).count();
        if missing == 0 {
            break (counts.len(), got.len() - counts.len());
        }
        assert!(Instant::now() < until, "{missing} of {} events never delivered", events.len());
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(duplicates <= kills, "{duplicates} duplicate deliveries for {kills} kills");
    // No job is left running: the last deliveries and cleanups end, and a
    // job whose worker was killed is taken again once its lease runs out.
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let running: Vec<String> = sqlx::query_scalar("SELECT kind FROM videdit_queue.jobs WHERE state = 'running'")
            .fetch_all(&pool)
            .await
            .unwrap();
        if running.is_empty() {
            break;
        }
        assert!(Instant::now() < until, "jobs left running: {running:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    println!(
        "chaos: {uploads} videos, {} shorts, {kills} worker kills, {s3_restarts} s3s-fs and {pg_restarts} PostgreSQL \
         restarts, {retries} job retries, {received} events delivered ({duplicates} twice), ready after {:.0} s",
        shorts.values().map(BTreeSet::len).sum::<usize>() / 3,
        wall.as_secs_f64()
    );
}

/// The objects each ready video should have in storage: its source, its
/// loudness analysis and three files per short; every short `ready`.
async fn expected_objects(api: &Api, videos: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for v in videos {
        let id = v["id"].as_str().unwrap();
        let (_, shorts) = api.call("GET", &format!("/videos/{id}/shorts"), None).await;
        let items = shorts["items"].as_array().cloned().unwrap_or_else(|| shorts.as_array().cloned().unwrap());
        if items.is_empty() {
            let (_, jobs) = api.call("GET", &format!("/videos/{id}/jobs"), None).await;
            let (_, events) = api.call("GET", "/events?limit=500", None).await;
            let mine: Vec<&Value> =
                events["items"].as_array().unwrap().iter().filter(|e| e["data"]["videoId"] == id).collect();
            panic!("video {id} has no shorts: {v}\njobs: {jobs}\nevents: {mine:?}");
        }
        let mut names = BTreeSet::new();
        for s in &items {
            assert_eq!(s["status"], "ready", "{s}");
            let sid = s["id"].as_str().unwrap();
            for ext in ["mp4", "jpg", "recipe.json"] {
                names.insert(format!("shorts/{sid}.{ext}"));
            }
        }
        out.insert(id.to_owned(), names);
    }
    out
}

/// Storage holds, under each video, its source, `loudness.json` and the
/// files of its current shorts, and nothing of any other video.
async fn assert_storage(s3: &S3, pool: &sqlx::PgPool, expected: &BTreeMap<String, BTreeSet<String>>) {
    let org: String = sqlx::query_scalar("SELECT org_id::text FROM videdit.videos LIMIT 1")
        .fetch_optional(pool)
        .await
        .unwrap()
        .unwrap_or_default();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for key in s3.keys() {
        let rest = key.strip_prefix(&format!("orgs/{org}/videos/")).unwrap_or_else(|| panic!("stray object {key}"));
        let (video, name) = rest.split_once('/').unwrap();
        found.entry(video.to_owned()).or_default().insert(name.to_owned());
    }
    for (video, names) in &found {
        let want = expected.get(video).unwrap_or_else(|| panic!("objects of an unknown video {video}: {names:?}"));
        let shorts: BTreeSet<String> = names.iter().filter(|n| n.starts_with("shorts/")).cloned().collect();
        assert_eq!(&shorts, want, "video {video}: the shorts' files are not exactly the current shorts'");
        let others: Vec<&String> = names.iter().filter(|n| !n.starts_with("shorts/")).collect();
        assert!(
            others.iter().filter(|n| n.starts_with("source.")).count() == 1
                && others.iter().all(|n| n.starts_with("source.") || *n == "loudness.json"),
            "video {video}: {others:?}"
        );
    }
    let missing: Vec<&String> = expected.keys().filter(|v| !found.contains_key(*v)).collect();
    assert!(missing.is_empty(), "videos with nothing in storage: {missing:?}");
}
