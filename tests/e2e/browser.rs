//! A headless Chromium driven through WebDriver, for the UI's browser tests: a `chromedriver`
//! started on a free 127.0.0.1 port (the one `TENURE_CHROMEDRIVER` names), one browser
//! session on it, and the few things a test does with a page (go to, wait for an element or
//! an attribute, click, fill, read, screenshot, sign in).
//!
//! Without `TENURE_CHROMEDRIVER` the browser tests are skipped with a message, except under
//! `CI`, where they are mandatory (`.ci/run` installs Chromium and its driver). Screenshots go
//! to `target/ui-screenshots/NAME.png`. Dropping a [`Browser`] ends its session (which closes
//! Chromium) and stops the driver, also when the test failed.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a test waits for something to appear on a page.
pub(crate) const WAIT: Duration = Duration::from_secs(20);

/// A window size the UI must work at.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Size {
    /// 1366×900.
    Laptop,
    /// 390×844, a phone held upright.
    Phone,
}

impl Size {
    fn pixels(self) -> (u32, u32) {
        match self {
            Size::Laptop => (1366, 900),
            Size::Phone => (390, 844),
        }
    }
}

/// The `chromedriver` to use: `TENURE_CHROMEDRIVER`. `None` (and a message saying how to run
/// them) skips the browser tests; under `CI` a missing driver fails the test instead.
pub(crate) fn chromedriver() -> Option<PathBuf> {
    match std::env::var_os("TENURE_CHROMEDRIVER") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.is_file(),
                "TENURE_CHROMEDRIVER={} is not a file",
                path.display()
            );
            Some(path)
        }
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set TENURE_CHROMEDRIVER (.ci/run installs chromium and chromium-driver) \
                 so the browser tests run"
            );
            eprintln!(
                "TENURE_CHROMEDRIVER is not set: skipping the browser tests (apt-get install \
                 chromium chromium-driver, then export TENURE_CHROMEDRIVER=/usr/bin/chromedriver)"
            );
            None
        }
    }
}

/// Where screenshots go: `target/ui-screenshots` (or under `CARGO_TARGET_DIR`).
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => crate::root().join(dir),
        None => crate::root().join("target"),
    };
    target.join("ui-screenshots")
}

/// A free TCP port on 127.0.0.1 (free when asked; the driver binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// A headless Chromium session on its own `chromedriver`, pointed at one server.
pub(crate) struct Browser {
    client: Client,
    driver: Child,
    port: u16,
    session: String,
    /// The server's base URL (`http://127.0.0.1:PORT`); paths given to [`Browser::goto`] are
    /// relative to it.
    pub(crate) base: String,
}

impl Browser {
    /// Starts `driver_path` (see [`chromedriver`]) and a browser at `size` for the server at
    /// `base`.
    pub(crate) async fn start(driver_path: &Path, base: &str, size: Size) -> Browser {
        let port = free_port();
        let mut driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", driver_path.display()));
        let started = Instant::now();
        let http = reqwest::Client::new();
        loop {
            let ready = http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await
                .ok();
            let ready = match ready {
                Some(r) => r.json::<Value>().await.ok(),
                None => None,
            };
            if ready.is_some_and(|s| s["value"]["ready"] == true) {
                break;
            }
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver ended before it was ready: {status}");
            }
            if started.elapsed() > WAIT {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver was not ready on port {port} after {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (width, height) = size.pixels();
        let mut options = json!({
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--no-first-run",
                "--hide-scrollbars",
                format!("--window-size={width},{height}"),
            ],
        });
        if let Some(binary) = std::env::var_os("TENURE_CHROMIUM") {
            options["binary"] = json!(binary.to_string_lossy());
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), options);
        let connected =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps)
                .connect(&format!("http://127.0.0.1:{port}"))
                .await;
        let client = match connected {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("no browser session (is chromium installed, or TENURE_CHROMIUM set?): {e}");
            }
        };
        let session = client.session_id().await.ok().flatten().unwrap_or_default();
        let browser = Browser {
            client,
            driver,
            port,
            session,
            base: base.trim_end_matches('/').to_string(),
        };
        browser.resize(size).await;
        browser
    }

    /// Sets the size of the page's viewport (the window is resized until it fits).
    pub(crate) async fn resize(&self, size: Size) {
        let (width, height) = size.pixels();
        self.client.set_window_size(width, height).await.unwrap();
        // Headless windows have no frame, but make sure: the viewport is what a layout sees.
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        let (w, h) = (
            inner[0].as_u64().unwrap_or(0),
            inner[1].as_u64().unwrap_or(0),
        );
        if (w, h) != (u64::from(width), u64::from(height)) && w > 0 && h > 0 {
            let dw = i64::from(width) - w as i64;
            let dh = i64::from(height) - h as i64;
            let fixed = |v: u32, d: i64| (i64::from(v) + d).max(1) as u32;
            self.client
                .set_window_size(fixed(width, dw), fixed(height, dh))
                .await
                .unwrap();
        }
    }

    /// The width of the viewport as the page sees it.
    pub(crate) async fn viewport_width(&self) -> u64 {
        self.client
            .execute("return window.innerWidth", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(0)
    }

    /// Opens `url`: a path on the server (`/ui/runs`) or a full URL.
    pub(crate) async fn goto(&self, url: &str) {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_string()
        };
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    }

    /// The current URL.
    pub(crate) async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The current path (and query).
    pub(crate) async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Where the browser is and what it shows, for a failing assertion.
    async fn context(&self) -> String {
        let url = self.url().await;
        let source = self.client.source().await.unwrap_or_default();
        let mut shown: String = source.chars().take(4000).collect();
        if shown.len() < source.len() {
            shown.push_str("\n…");
        }
        format!("at {url}:\n{shown}")
    }

    /// The elements matching `css` now (none is not an error).
    pub(crate) async fn all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .unwrap_or_default()
    }

    /// Whether an element matches `css` now.
    pub(crate) async fn exists(&self, css: &str) -> bool {
        !self.all(css).await.is_empty()
    }

    /// Fails the test if an element matches `css` now.
    pub(crate) async fn assert_absent(&self, css: &str) {
        if self.exists(css).await {
            panic!("`{css}` should not be on the page {}", self.context().await);
        }
    }

    /// Waits up to `timeout` for an element matching `css`.
    pub(crate) async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        let started = Instant::now();
        loop {
            if let Some(e) = self.all(css).await.into_iter().next() {
                return e;
            }
            if started.elapsed() > timeout {
                panic!("no `{css}` after {timeout:?} {}", self.context().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for an element matching `css` whose `attr` is `value` (the
    /// element may be replaced meanwhile, as a live fragment is).
    pub(crate) async fn wait_for_attr(
        &self,
        css: &str,
        attr: &str,
        value: &str,
        timeout: Duration,
    ) -> Element {
        let started = Instant::now();
        let mut last = None;
        loop {
            for e in self.all(css).await {
                // A replaced element is stale: read it again on the next round.
                match e.attr(attr).await {
                    Ok(Some(v)) if v == value => return e,
                    Ok(v) => last = v,
                    Err(_) => {}
                }
            }
            if started.elapsed() > timeout {
                panic!(
                    "`{css}` never had {attr}={value:?} in {timeout:?} (last {last:?}) {}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `timeout` for the path to start with `prefix`, and returns it.
    pub(crate) async fn wait_for_path(&self, prefix: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            let path = self.path().await;
            if path.starts_with(prefix) {
                return path;
            }
            if started.elapsed() > timeout {
                panic!(
                    "never reached {prefix} in {timeout:?} {}",
                    self.context().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element matching `css` (waiting for it). An element that a live refresh
    /// replaced between finding and clicking is found again.
    pub(crate) async fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let e = self.wait_for(css, WAIT).await;
            match e.click().await {
                Ok(()) => return,
                Err(err) if started.elapsed() < WAIT => {
                    note_retry(css, &err);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("click on `{css}`: {err} {}", self.context().await),
            }
        }
    }

    /// Replaces the text of the field matching `css` (waiting for it) with `text`.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.wait_for(css, WAIT).await;
        e.clear().await.unwrap();
        e.send_keys(text)
            .await
            .unwrap_or_else(|err| panic!("typing into `{css}`: {err}"));
    }

    /// The text of the element matching `css` (waiting for it; found again if a live refresh
    /// replaced it meanwhile).
    pub(crate) async fn text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            match self.wait_for(css, WAIT).await.text().await {
                Ok(text) => return text,
                Err(err) if started.elapsed() > WAIT => panic!("text of `{css}`: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Attribute `attr` of the element matching `css` (waiting for it, as [`Browser::text`]).
    pub(crate) async fn attr(&self, css: &str, attr: &str) -> Option<String> {
        let started = Instant::now();
        loop {
            match self.wait_for(css, WAIT).await.attr(attr).await {
                Ok(value) => return value,
                Err(err) if started.elapsed() > WAIT => panic!("{attr} of `{css}`: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Runs `script` in the page (WebDriver's, not subject to the page's CSP) and returns
    /// its value.
    pub(crate) async fn script(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The value of cookie `name` (also an `HttpOnly` one: WebDriver sees them all).
    pub(crate) async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// Opens a new tab on `url` and switches to it; returns the handle of the tab it left.
    pub(crate) async fn open_tab(&self, url: &str) -> fantoccini::wd::WindowHandle {
        let here = self.client.window().await.unwrap();
        let tab = self.client.new_window(true).await.unwrap();
        self.client.switch_to_window(tab.handle).await.unwrap();
        self.goto(url).await;
        here
    }

    /// Closes the current tab and goes back to `to`.
    pub(crate) async fn close_tab(&self, to: fantoccini::wd::WindowHandle) {
        self.client.close_window().await.unwrap();
        self.client.switch_to_window(to).await.unwrap();
    }

    /// Runs a Chrome DevTools Protocol command through the driver and returns its result.
    async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let answer: Value = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/session/{}/goog/cdp/execute",
                self.port, self.session
            ))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(answer["value"]["error"].is_null(), "{cmd}: {answer}");
        answer["value"].clone()
    }

    /// Saves the whole page at the window's width (at most 4,000 pixels tall) as
    /// `target/ui-screenshots/NAME.png`.
    pub(crate) async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let width = metrics["cssLayoutViewport"]["clientWidth"]
            .as_f64()
            .unwrap_or(1366.0);
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .unwrap_or(900.0)
            .min(4000.0);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Signs in with `token` on the sign-in form and waits for a signed-in page.
    pub(crate) async fn sign_in(&self, token: &str) {
        self.goto("/ui/sign-in").await;
        self.fill("form[action=\"/ui/sign-in\"] input#token", token)
            .await;
        self.click("form[action=\"/ui/sign-in\"] button[type=submit]")
            .await;
        self.wait_for("header .who", WAIT).await;
    }

    /// Signs out with the header's button and waits for the sign-in form.
    pub(crate) async fn sign_out(&self) {
        self.click("form[action=\"/ui/sign-out\"] button").await;
        self.wait_for("form[action=\"/ui/sign-in\"] input#token", WAIT)
            .await;
    }
}

impl Drop for Browser {
    /// Ends the session with a plain blocking request (the test's runtime may be gone after
    /// a failure), which makes the driver close Chromium, then stops the driver.
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(15)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                    self.session, self.port
                );
                // The answer comes once Chromium is closed; the driver keeps the connection.
                let mut answer = Vec::new();
                let mut chunk = [0u8; 1024];
                while !complete(&answer) {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => answer.extend_from_slice(&chunk[..n]),
                    }
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Says on stderr (shown for a failing test) that a click is tried again, and why.
fn note_retry(css: &str, err: &fantoccini::error::CmdError) {
    eprintln!("click on `{css}` tried again: {err}");
}

/// Whether `answer` holds a whole HTTP response (headers and `Content-Length` bytes of body).
fn complete(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    answer.len() >= end + 4 + length
}
