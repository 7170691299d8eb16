//! `tenure sandbox serve` as its own process, with its state kept in a file.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the sandbox on a free port and returns its base URL (read from its first line).
fn serve(state: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .args([
            "sandbox",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--state",
            state.to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (Server(child), url)
}

fn http(method: &str, url: &str, body: Option<&str>, bearer: Option<&str>) -> String {
    // Plain HTTP/1.1 over a socket keeps the e2e tests free of an HTTP client dependency.
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    let body = body.unwrap_or("");
    let ctype = if body.starts_with('{') {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let auth = bearer
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(s, "{method} /{path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn sandbox_process_serves_and_keeps_state_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let upn = "restart.survivor@contoso.example";
    {
        let (_server, url) = serve(&state);
        let token_resp = http("POST", &format!("{url}/login.microsoftonline.com/contoso/oauth2/v2.0/token"),
            Some("client_id=tenure-sandbox&client_secret=sandbox-secret&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default&grant_type=client_credentials"), None);
        let token = token_resp
            .split("\"access_token\":\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let body = format!(
            r#"{{"accountEnabled":true,"displayName":"S","mailNickname":"rs","userPrincipalName":"{upn}","passwordProfile":{{"password":"Str0ng!Passw0rd"}}}}"#
        );
        let out = http(
            "POST",
            &format!("{url}/graph.microsoft.com/v1.0/users"),
            Some(&body),
            Some(&token),
        );
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    }
    let (_server, url) = serve(&state);
    let state_body = http("GET", &format!("{url}/_sandbox/state"), None, None);
    assert!(
        state_body.contains(upn),
        "the user created before the restart is still there"
    );
    assert!(
        state_body.contains(&format!("\"contoso/user/{upn}\":{{\"created\":1")),
        "{}",
        &state_body[state_body.find("counters").unwrap()..][..200]
    );
}
