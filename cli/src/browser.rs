//! The two ways the CLI gets through the portal: the system browser with a loopback redirect (RFC 8252 §7.3: an
//! ephemeral port on 127.0.0.1, any port allowed by the server), and the sandbox's scripted patient for the demo.

use std::time::Duration;

use async_trait::async_trait;
use chartlink_core::{AuthBrowser, BrowserError};
use chartlink_sandbox::PortalRobot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A loopback listener for one OAuth redirect.
#[derive(Debug)]
pub struct Loopback {
    listener: TcpListener,
    port: u16,
}

impl Loopback {
    /// Binds an ephemeral port on 127.0.0.1.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        Ok(Self { listener, port })
    }

    /// `http://127.0.0.1:PORT/callback`.
    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// Waits for the browser to arrive at the callback (other requests, such as a favicon, get a 404) and answers
    /// with a page telling the user to go back to the terminal.
    pub async fn wait(self, timeout: Duration) -> Result<String, BrowserError> {
        let accept = async {
            loop {
                let (mut sock, _) = self
                    .listener
                    .accept()
                    .await
                    .map_err(|e| BrowserError::Failed(e.to_string()))?;
                let mut buf = vec![0u8; 16 * 1024];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                let target = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let (status, body) = if target.starts_with("/callback") {
                    (
                        "200 OK",
                        "<!doctype html><title>ChartLink</title><h1>Done - you can close this window and return to the terminal.</h1>",
                    )
                } else {
                    ("404 Not Found", "not found")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                if target.starts_with("/callback") {
                    return Ok(format!("http://127.0.0.1:{}{target}", self.port));
                }
            }
        };
        tokio::time::timeout(timeout, accept)
            .await
            .map_err(|_| BrowserError::Cancelled)?
    }
}

/// Opens `url` in the user's default browser.
pub fn open_system_browser(url: &str) -> std::io::Result<()> {
    let mut cmd = if cfg!(target_os = "macos") {
        std::process::Command::new("open")
    } else if cfg!(windows) {
        let mut c = std::process::Command::new("cmd");
        c.args(["/C", "start", ""]);
        c
    } else {
        std::process::Command::new("xdg-open")
    };
    cmd.arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
}

/// The sandbox's scripted patient as the SDK's browser, narrating what it does on the portal's pages.
#[derive(Debug)]
pub struct ScriptedPatient {
    pub robot: PortalRobot,
    pub narrate: bool,
}

#[async_trait]
impl AuthBrowser for ScriptedPatient {
    async fn authorize(&self, url: String, _redirect_uri: String) -> Result<String, BrowserError> {
        if self.narrate {
            let who = self.robot.patient.as_deref().unwrap_or("their own record");
            println!("  portal: logging in as {:?}", self.robot.username);
            println!("  portal: \"Which account are you linking this app to?\" -> {who}");
            println!(
                "  portal: reading the app's questionnaire, ticking \"I have read the statements above\", Allow Access"
            );
        }
        self.robot
            .authorize(&url)
            .await
            .map_err(|e| BrowserError::Failed(e.to_string()))
    }
}

/// Scripted patients, one per link, in order (the demo links two records).
#[derive(Debug)]
pub struct ScriptedPatients(pub std::sync::Mutex<std::collections::VecDeque<ScriptedPatient>>);

#[async_trait]
impl AuthBrowser for ScriptedPatients {
    async fn authorize(&self, url: String, redirect_uri: String) -> Result<String, BrowserError> {
        let next = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        match next {
            Some(p) => p.authorize(url, redirect_uri).await,
            None => Err(BrowserError::Failed("no scripted patient left".into())),
        }
    }
}
