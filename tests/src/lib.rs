//! Harness for ChartLink's end-to-end tests: find the external tools the test tooling installs (`cargo xtask
//! tools`), run chromedriver with a headless Debian Chromium, and catch an OAuth redirect on a loopback port the
//! way a desktop app does (RFC 8252 §7.3).
//!
//! A missing tool is a test failure with the command that installs it, never a silent skip.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The path of a tool: the `CHARTLINK_*` variable `cargo xtask ci` sets, else the usual location. Panics with the
/// install command when the tool is missing.
pub fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.exists(),
        "{} not found at {} — run `cargo xtask tools` (it installs what the tests need)",
        env,
        path.display()
    );
    path
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where tests leave artifacts (screenshots): `target/test-artifacts`.
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    let dir = target.join("test-artifacts");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A chromedriver process driving a headless Chromium with a fresh profile; killed on drop.
#[derive(Debug)]
pub struct HeadlessChromium {
    driver: Child,
    port: u16,
    profile: PathBuf,
}

impl HeadlessChromium {
    /// Starts chromedriver on a free port and waits until it answers.
    pub async fn start() -> Self {
        let chromedriver = tool("CHARTLINK_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = free_port().await;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile =
            std::env::temp_dir().join(format!("chartlink-chromium-{}-{port}", std::process::id()));
        let me = Self {
            driver,
            port,
            profile,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return me;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start on port {port}");
    }

    /// A new browser session.
    pub async fn session(&self) -> Client {
        let chromium = tool("CHARTLINK_CHROMIUM", "/usr/bin/chromium");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--no-first-run",
                    "--disable-sync", "--window-size=900,1400",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session")
    }
}

impl Drop for HeadlessChromium {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

/// A one-shot loopback HTTP listener that catches the redirect to `http://127.0.0.1:PORT/callback` and answers
/// with a short page, as a desktop app's loopback redirect does.
#[derive(Debug)]
pub struct LoopbackRedirect {
    pub addr: SocketAddr,
    rx: oneshot::Receiver<String>,
}

impl LoopbackRedirect {
    /// Listens on a free loopback port.
    pub async fn listen() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut tx = Some(tx);
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let target = req.split_whitespace().nth(1).unwrap_or("").to_owned();
                let body =
                    "<html><body><h1 id=\"done\">You can return to the app.</h1></body></html>";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                if target.starts_with("/callback")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(format!("http://{addr}{target}"));
                }
            }
        });
        Self { addr, rx }
    }

    /// The redirect URI to register in the authorization request.
    pub fn redirect_uri(&self) -> String {
        format!("http://{}/callback", self.addr)
    }

    /// Waits for the redirect; returns the full URL it arrived at.
    pub async fn wait(self) -> String {
        tokio::time::timeout(Duration::from_secs(30), self.rx)
            .await
            .expect("redirect within 30 s")
            .expect("redirect")
    }
}

/// Query parameters of a URL.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// One query parameter.
pub fn query_param(url: &str, key: &str) -> Option<String> {
    query_params(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// The text of the first element matching `css`.
pub async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .expect("element")
        .text()
        .await
        .expect("text")
}

/// Clicks the first element matching `css` (a checkbox, a radio button).
pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .expect("element")
        .click()
        .await
        .expect("click");
}

/// Clicks a button that submits a form and waits until the browser has left the old page (WebDriver's click does
/// not wait for the navigation it starts).
pub async fn submit(c: &Client, css: &str) {
    let old = c.find(Locator::Css("html")).await.expect("page");
    click(c, css).await;
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c.wait()
        .for_element(Locator::Css("body"))
        .await
        .expect("next page");
}

/// Fills the portal's login form and submits it.
pub async fn portal_login(c: &Client, user: &str, password: &str) {
    c.find(Locator::Id("username"))
        .await
        .expect("username")
        .send_keys(user)
        .await
        .expect("type");
    c.find(Locator::Id("password"))
        .await
        .expect("password")
        .send_keys(password)
        .await
        .expect("type");
    submit(c, "#login").await;
}
