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
    /// A page served at `/start` (the authorization request as an auto-submitting POST form).
    start_page: Option<String>,
}

impl Loopback {
    /// Binds an ephemeral port on 127.0.0.1.
    pub async fn bind() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            start_page: None,
        })
    }

    /// Serves `html` at `/start` and returns that page's URL: the browser opens it and it posts the authorization
    /// request (SMART `authorize-post`).
    pub fn serve_start_page(&mut self, html: String) -> String {
        self.start_page = Some(html);
        format!("http://127.0.0.1:{}/start", self.port)
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
                } else if let (true, Some(page)) = (target == "/start", &self.start_page) {
                    ("200 OK", page.as_str())
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

/// The platforms that launch a browser differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    MacOs,
    Windows,
    /// Linux and the BSDs: `xdg-open`.
    Unix,
}

impl Platform {
    /// The platform this was built for.
    pub fn current() -> Self {
        if cfg!(target_os = "macos") {
            Platform::MacOs
        } else if cfg!(windows) {
            Platform::Windows
        } else {
            Platform::Unix
        }
    }
}

/// The command line that opens `url` in the default browser: the program and its arguments, run without a shell.
///
/// Only an absolute `http`/`https` URL is opened, in its normalised form (the `url` crate percent-encodes spaces,
/// quotes, `<`, `>` and every non-ASCII character), and a URL that still holds whitespace, a quote or a control
/// character is refused. On Windows the URL never goes through `cmd /C start`, where `&`, `|`, `^` or `%` in a
/// query would run commands: `rundll32 url.dll,FileProtocolHandler URL` hands it to the default browser as is.
pub fn browser_command(url: &str, platform: Platform) -> std::io::Result<(String, Vec<String>)> {
    let invalid = |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned());
    let parsed = url::Url::parse(url).map_err(|e| invalid(&format!("not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "only http and https URLs are opened in the browser",
        ));
    }
    let url = parsed.as_str();
    if url
        .chars()
        .any(|c| !c.is_ascii_graphic() || c == '"' || c == '\'' || c == '`')
    {
        return Err(invalid(
            "the URL holds characters that are not safe to pass on",
        ));
    }
    let url = url.to_owned();
    Ok(match platform {
        Platform::MacOs => ("open".into(), vec![url]),
        Platform::Windows => (
            "rundll32".into(),
            vec!["url.dll,FileProtocolHandler".into(), url],
        ),
        Platform::Unix => ("xdg-open".into(), vec![url]),
    })
}

/// Opens `url` in the user's default browser (see [`browser_command`]). An opener that cannot start is an error
/// here; one that starts and then fails (no browser configured: `xdg-open` exits non-zero) is reported on stderr
/// as soon as it exits, so the user is not left waiting for a login page that never opened.
pub fn open_system_browser(url: &str) -> std::io::Result<()> {
    let (program, args) = browser_command(url, Platform::current())?;
    let mut child = std::process::Command::new(&program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::spawn(move || {
        if let Ok(status) = child.wait()
            && !status.success()
        {
            errln!(
                "chartlink: the browser could not be opened ({program} failed: {status}); open the address above yourself"
            );
        }
    });
    Ok(())
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
            outln!("  portal: logging in as {:?}", self.robot.username);
            outln!("  portal: \"Which account are you linking this app to?\" -> {who}");
            outln!(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_gets_the_url_as_one_argument_without_a_shell() {
        let url = "https://portal.example/authorize?client_id=a&state=x%20y&scope=launch%2Fpatient";
        for (platform, program, first) in [
            (Platform::MacOs, "open", None),
            (Platform::Unix, "xdg-open", None),
            (
                Platform::Windows,
                "rundll32",
                Some("url.dll,FileProtocolHandler"),
            ),
        ] {
            let (p, args) = browser_command(url, platform).expect("a fine URL");
            assert_eq!(p, program);
            assert_ne!(p, "cmd", "never through cmd /C start");
            let expected: Vec<String> = first
                .map(str::to_owned)
                .into_iter()
                .chain([url.to_owned()])
                .collect();
            assert_eq!(args, expected, "{platform:?}");
        }
    }

    #[test]
    fn the_url_is_normalised_before_it_is_passed_on() {
        let (_, args) = browser_command(
            "https://portal.example/a b?q=\"x\"&r=<y>|^%",
            Platform::Windows,
        )
        .expect("parsed and encoded");
        let url = args.last().expect("url");
        assert!(
            !url.contains(' ') && !url.contains('"') && !url.contains('<') && !url.contains('>'),
            "{url}"
        );
        assert!(
            url.starts_with("https://portal.example/a%20b?q=%22x%22"),
            "{url}"
        );
        let (_, args) =
            browser_command("https://portal.example/\u{202E}x", Platform::Unix).expect("ok");
        assert!(
            args[0].is_ascii(),
            "non-ASCII is percent-encoded: {}",
            args[0]
        );
    }

    #[test]
    fn only_http_and_https_urls_are_launched() {
        for bad in [
            "file:///etc/passwd",
            "javascript:alert(1)",
            "ms-settings:",
            "calc.exe",
            "\\\\evil\\share",
            "-a Terminal",
            "smb://evil/share",
            "http://",
            "",
        ] {
            for platform in [Platform::MacOs, Platform::Windows, Platform::Unix] {
                assert!(
                    browser_command(bad, platform).is_err(),
                    "{bad:?} on {platform:?} must be refused"
                );
            }
        }
        assert!(browser_command("http://127.0.0.1:8080/portal", Platform::Unix).is_ok());
    }
}
