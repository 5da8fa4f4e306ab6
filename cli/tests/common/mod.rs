//! What the CLI's integration tests share: a private data directory, the `chartlink` binary, and a link completed by
//! a scripted patient at the sandbox's portal (the CLI's loopback redirect answered as the browser would).
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chartlink_sandbox::PortalRobot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cl-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn chartlink(data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chartlink"));
    c.arg("--data-dir").arg(data_dir);
    // No xdg-open/open on the PATH: the test plays the browser.
    c.env("PATH", data_dir.join("no-bin"));
    c
}

/// `chartlink link FHIR-BASE` as a process, the portal completed by `robot`; returns the CLI's output.
pub async fn link(base: &str, data_dir: &Path, robot: PortalRobot) -> (Output, String) {
    let mut child = chartlink(data_dir)
        .args(["link", base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stderr).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("http"))
            .expect("the CLI prints the authorization URL");
        std::thread::spawn(move || lines.for_each(drop));
        url
    })
    .await
    .unwrap();
    let opened = url.clone();
    let redirect = robot.authorize(&url).await.unwrap();
    let u = url::Url::parse(&redirect).unwrap();
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", u.port().unwrap()))
        .await
        .unwrap();
    let target = format!("{}?{}", u.path(), u.query().unwrap_or_default());
    sock.write_all(format!("GET {target} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = sock.read_to_end(&mut answer).await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (out, opened)
}
