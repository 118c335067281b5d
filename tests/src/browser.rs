//! A real browser for the console tests: Debian's `chromedriver` started on a free port,
//! driving headless `chromium` over the W3C WebDriver protocol (JSON over HTTP). Each
//! [`Browser`] is one browser session with its own cookies, so two users can be signed
//! in side by side.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::process::{spawn_logged, terminate};
use crate::{WAIT, read_log};

/// The WebDriver name of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running `chromedriver`.
#[derive(Debug)]
pub struct Driver {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts `chromedriver` on a free port and waits until it is ready.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = std::process::Command::new("chromedriver");
        command.arg(format!("--port={port}"));
        let child = spawn_logged(
            command,
            &dir.path().join("driver.out"),
            &dir.path().join("driver.log"),
        );
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let runtime = runtime();
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = runtime.block_on(async {
                let answer = http
                    .get(format!("{}/status", driver.url))
                    .send()
                    .await
                    .ok()?;
                let status: Value = answer.json().await.ok()?;
                status["value"]["ready"].as_bool()
            });
            if ready == Some(true) {
                break;
            }
            assert!(
                started.elapsed() < WAIT,
                "chromedriver did not start:\n{}",
                read_log(&driver.dir.path().join("driver.log"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }

    /// A new browser session: headless Chromium, trusting the service's local CA
    /// (`acceptInsecureCerts`: the test's CA is not in the browser's store).
    pub fn browser(&self) -> Browser {
        let runtime = runtime();
        let http = reqwest::Client::new();
        let profile = self.dir.path().join(format!("profile-{}", unique()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "acceptInsecureCerts": true,
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium(),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,900", "--hide-scrollbars", "--force-device-scale-factor=1",
                         "--no-first-run", "--lang=en-US",
                         format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let answer: Value = runtime
            .block_on(async {
                http.post(format!("{}/session", self.url))
                    .json(&capabilities)
                    .send()
                    .await?
                    .json()
                    .await
            })
            .expect("chromedriver answers");
        let id = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_owned();
        Browser {
            runtime,
            http,
            base: format!("{}/session/{id}", self.url),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

fn chromium() -> String {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("chromium")
        .to_owned()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for WebDriver calls")
}

/// One browser session.
#[derive(Debug)]
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
    base: String,
}

/// An element on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let answer: Value = self
            .runtime
            .block_on(async {
                let mut request = self.http.request(method.clone(), &url);
                if let Some(body) = body {
                    request = request.json(&body);
                }
                request.send().await?.json().await
            })
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        answer["value"].clone()
    }

    fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let value = self.call(method.clone(), path, body);
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    /// Opens `url` and waits for it to load.
    pub fn open(&self, url: &str) {
        self.ok(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// The current address.
    pub fn url(&self) -> String {
        self.ok(reqwest::Method::GET, "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element `css` selects, if there is one now.
    pub fn find(&self, css: &str) -> Option<Element> {
        let value = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        value[ELEMENT].as_str().map(|id| Element(id.to_owned()))
    }

    /// The element `css` selects, waited for.
    pub fn element(&self, css: &str) -> Element {
        self.wait(&format!("an element {css:?} on {}", self.url()), || {
            self.find(css)
        })
    }

    /// The text of the element `css` selects (waited for).
    pub fn text(&self, css: &str) -> String {
        let Element(id) = self.element(css);
        self.ok(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Types `text` into the field `css` selects, after clearing it.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.element(css);
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        );
        self.send_keys(&element, text);
    }

    /// Sends `text` as key strokes to `element`.
    fn send_keys(&self, Element(id): &Element, text: &str) {
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Types `keys` (WebDriver key codes allowed: `\u{E004}` is Tab, `\u{E007}` Enter)
    /// into whatever has the keyboard focus now, as a user at a keyboard does.
    pub fn type_keys(&self, keys: &str) {
        let active = self.ok(reqwest::Method::GET, "/element/active", None);
        let id = active[ELEMENT].as_str().expect("a focused element");
        self.send_keys(&Element(id.to_owned()), keys);
    }

    /// The `id` of the element that has the keyboard focus.
    pub fn focused(&self) -> String {
        self.run("return document.activeElement.id;", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Chooses the file at `path` in the file field `css` selects.
    pub fn attach(&self, css: &str, path: &Path) {
        let element = self.element(css);
        self.send_keys(&element, path.to_str().expect("a UTF-8 path"));
    }

    /// Clicks the element `css` selects.
    pub fn click(&self, css: &str) {
        let Element(id) = self.element(css);
        self.ok(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        );
    }

    /// Accepts the page's `confirm()` dialog, once it is open.
    pub fn accept_dialog(&self) {
        self.wait("a dialog", || {
            let value = self.call(reqwest::Method::POST, "/alert/accept", Some(json!({})));
            value.get("error").is_none().then_some(())
        });
    }

    /// Runs `script` in the page (a function body; `arguments` are `args`) and returns
    /// what it returns; a promise is waited for.
    pub fn run(&self, script: &str, args: Value) -> Value {
        self.ok(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({
                "script": format!("const done = arguments[arguments.length - 1]; \
                    Promise.resolve((() => {{ {script} }})()).then(done, (e) => done('error: ' + e));"),
                "args": args,
            })),
        )
    }

    /// The page's HTML.
    pub fn source(&self) -> String {
        self.ok(reqwest::Method::GET, "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Sets the window's size (a phone's, say) for the next screenshots.
    pub fn resize(&self, width: u32, height: u32) {
        self.ok(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, path: &Path) {
        let data = self.ok(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("a base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("screenshot written");
    }

    /// Calls `probe` every 100 ms until it gives a value; fails after [`WAIT`] with
    /// `what` and the page's address.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = probe() {
                return found;
            }
            assert!(
                started.elapsed() < WAIT,
                "{what} did not happen within {} s (page {})",
                WAIT.as_secs(),
                self.base
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.runtime.block_on(self.http.delete(&self.base).send());
    }
}
