//! `tenure lsp`, driven over stdio as an editor drives it: initialize, open a runbook, change
//! it, ask for hovers, completions and definitions, and shut down.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use serde_json::{json, Value};

use crate::Tenure;

const URI: &str = "file:///work/runbooks/leaver.yaml";

const FIRST: &str = "runbook: leaver
version: 1
tenant: contoso
inputs:
  user: { type: email, required: true }
steps:
  block:
    uses: entra.disable_sign_in
    with: { user: \"{{inputs.user}}\" }
  wipe:
    uses: intune.wipe_devices
    needs: [block]
    with: { user: \"{{steps.block.outputs.id}}\" }
";

/// The editor's side of the pipe: writes framed messages, reads them on a thread.
struct Editor {
    stdin: ChildStdin,
    incoming: Receiver<Value>,
    next_id: i64,
}

impl Editor {
    fn send(&mut self, message: Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request and returns its result (other messages on the way are dropped).
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let m = self.next();
            if m["id"] == json!(id) {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
        }
    }

    fn next(&self) -> Value {
        self.incoming
            .recv_timeout(Duration::from_secs(20))
            .expect("the server answers within 20 s")
    }

    /// The next diagnostics published.
    fn diagnostics(&self) -> Vec<Value> {
        loop {
            let m = self.next();
            if m["method"] == "textDocument/publishDiagnostics" {
                assert_eq!(m["params"]["uri"], URI);
                return m["params"]["diagnostics"].as_array().unwrap().clone();
            }
        }
    }

    fn at(&mut self, method: &str, line: u32, character: u32) -> Value {
        self.request(
            method,
            json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}}),
        )
    }
}

fn read_messages(stdout: impl Read + Send + 'static) -> Receiver<Value> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut length = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.strip_prefix("Content-Length: ") {
                    length = v.parse::<usize>().ok();
                }
            }
            let mut body = vec![0; length.expect("a Content-Length header")];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if tx.send(serde_json::from_slice(&body).unwrap()).is_err() {
                return;
            }
        }
    });
    rx
}

fn labels(result: &Value) -> Vec<String> {
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["label"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_editor_gets_diagnostics_hovers_completions_and_definitions() {
    let mut proc = Tenure::new()
        .arg("lsp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut editor = Editor {
        stdin: proc.stdin.take().unwrap(),
        incoming: read_messages(proc.stdout.take().unwrap()),
        next_id: 0,
    };
    let init = editor.request(
        "initialize",
        json!({"processId": null, "rootUri": "file:///work", "capabilities": {}}),
    );
    assert_eq!(init["serverInfo"]["name"], "tenure");
    assert_eq!(init["capabilities"]["textDocumentSync"], 1, "{init}");
    assert_eq!(init["capabilities"]["hoverProvider"], true);
    editor.notify("initialized", json!({}));

    // didOpen: the wipe has no approval before it (a lint), at 11:11 (0-based 10:10).
    editor.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": URI, "languageId": "yaml", "version": 1, "text": FIRST}}),
    );
    let diags = editor.diagnostics();
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0]["code"], "RB0071");
    assert_eq!(diags[0]["severity"], 2);
    assert_eq!(
        diags[0]["range"]["start"],
        json!({"line": 10, "character": 10})
    );

    // didChange (full text): an unknown need is an error with a suggestion; the lint stays.
    let second = FIRST.replace("needs: [block]", "needs: [blok]");
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": second}]}),
    );
    let diags = editor.diagnostics();
    let err = diags
        .iter()
        .find(|d| d["code"] == "RB0030")
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert_eq!(err["severity"], 1);
    assert_eq!(err["range"]["start"], json!({"line": 11, "character": 12}));
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `block`?"),
        "{err}"
    );

    // Back to the first text, then hovers.
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [{"text": FIRST}]}),
    );
    assert_eq!(editor.diagnostics().len(), 1);
    let kind = editor.at("textDocument/hover", 10, 16);
    let text = kind["contents"]["value"].as_str().unwrap();
    assert!(
        text.starts_with("**intune.wipe_devices**: Factory-reset"),
        "{text}"
    );
    assert!(text.contains("`keep_enrollment_data`"), "{text}");
    let output = editor.at("textDocument/hover", 12, 28);
    let text = output["contents"]["value"].as_str().unwrap();
    assert!(text.contains("block.outputs.id"), "{text}");
    assert!(text.contains("The user's object id"), "{text}");
    let param = editor.at("textDocument/hover", 8, 12);
    let text = param["contents"]["value"].as_str().unwrap();
    assert!(text.starts_with("`user` (a string, required)"), "{text}");
    // Past the end of a line and of the file: no answer, no crash.
    assert_eq!(editor.at("textDocument/hover", 3, 500), Value::Null);
    assert_eq!(editor.at("textDocument/hover", 500, 0), Value::Null);

    // Completion: kinds after `uses:`, parameters in `with:`, outputs in a template.
    let typing = FIRST.replace("uses: intune.wipe_devices", "uses: intune.");
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 4}, "contentChanges": [{"text": typing}]}),
    );
    editor.diagnostics();
    let kinds = labels(&editor.at("textDocument/completion", 10, 17));
    assert!(
        kinds.contains(&"intune.retire_devices".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"entra.delete_user".to_string()),
        "{kinds:?}"
    );
    let with = FIRST.replace(
        "    with: { user: \"{{steps.block.outputs.id}}\" }\n",
        "    with:\n      keep\n",
    );
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 5}, "contentChanges": [{"text": with}]}),
    );
    editor.diagnostics();
    let params = labels(&editor.at("textDocument/completion", 13, 10));
    assert!(
        params.contains(&"keep_enrollment_data".to_string()),
        "{params:?}"
    );
    assert!(params.contains(&"user".to_string()), "{params:?}");
    let template = FIRST.replace("{{steps.block.outputs.id}}", "{{steps.block.outputs.");
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 6}, "contentChanges": [{"text": template}]}),
    );
    editor.diagnostics();
    let outputs = labels(&editor.at("textDocument/completion", 12, 41));
    assert_eq!(outputs, ["id", "changed"], "{outputs:?}");
    let steps = labels(&editor.at("textDocument/completion", 11, 12));
    assert_eq!(
        steps,
        ["block"],
        "`needs` offers the other steps: {steps:?}"
    );

    // Definition: a step named in a template, and an input.
    editor.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": URI, "version": 7}, "contentChanges": [{"text": FIRST}]}),
    );
    editor.diagnostics();
    let step = editor.at("textDocument/definition", 12, 24);
    assert_eq!(step["uri"], URI);
    assert_eq!(step["range"]["start"], json!({"line": 6, "character": 2}));
    let input = editor.at("textDocument/definition", 8, 25);
    assert_eq!(input["range"]["start"], json!({"line": 4, "character": 2}));
    let need = editor.at("textDocument/definition", 11, 14);
    assert_eq!(need["range"]["start"], json!({"line": 6, "character": 2}));

    // shutdown, exit: the process ends by itself, with success.
    assert_eq!(editor.request("shutdown", Value::Null), Value::Null);
    editor.notify("exit", Value::Null);
    drop(editor);
    let out = proc.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
