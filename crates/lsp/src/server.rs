//! The protocol side: open documents, and the answer to each message. [`Server::handle`] is a
//! plain function of a message (the stdio loop in [`crate::run_stdio`] feeds it), so tests and
//! the benchmark drive it in-process too.

use std::collections::HashMap;

use lsp_server::{ErrorCode, Message, Notification, Request, Response};
use lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument, Notification as _,
    PublishDiagnostics,
};
use lsp_types::request::{Completion, GotoDefinition, HoverRequest, Request as _};
use lsp_types::{
    CompletionOptions, CompletionParams, CompletionResponse, DidChangeTextDocumentParams,
    DidCloseTextDocumentParams, DidOpenTextDocumentParams, GotoDefinitionParams,
    GotoDefinitionResponse, HoverParams, HoverProviderCapability, Location, OneOf,
    PublishDiagnosticsParams, ServerCapabilities, TextDocumentSyncCapability, TextDocumentSyncKind,
    Uri,
};
use serde::de::DeserializeOwned;
use tenure_runbook::SchemaCatalogue;

use crate::document::Document;
use crate::features;
use crate::text::LineIndex;

/// What the server offers: full-text sync, hover, completion (after `.`), definitions.
pub fn capabilities() -> ServerCapabilities {
    ServerCapabilities {
        text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec![".".into(), "{".into(), " ".into()]),
            ..CompletionOptions::default()
        }),
        definition_provider: Some(OneOf::Left(true)),
        ..ServerCapabilities::default()
    }
}

/// The open documents and the catalogue they are checked against.
pub struct Server {
    catalogue: SchemaCatalogue,
    docs: HashMap<String, (Uri, Document)>,
}

impl Default for Server {
    fn default() -> Self {
        Self::new()
    }
}

impl Server {
    /// A server with no documents, checking against the kinds that can run.
    pub fn new() -> Self {
        Server {
            catalogue: tenure_steps::catalogue(),
            docs: HashMap::new(),
        }
    }

    /// Answers one message from the editor: responses to requests, and diagnostics published
    /// for documents that changed. Bad parameters get an error response, never a panic.
    pub fn handle(&mut self, message: Message) -> Vec<Message> {
        match message {
            Message::Request(req) => vec![Message::Response(self.request(req))],
            Message::Notification(n) => self.notification(n),
            Message::Response(_) => Vec::new(),
        }
    }

    fn request(&mut self, req: Request) -> Response {
        let id = req.id.clone();
        let result = match req.method.as_str() {
            HoverRequest::METHOD => params::<HoverParams>(&req).map(|p| {
                let at = p.text_document_position_params;
                let hover = self
                    .doc(&at.text_document.uri)
                    .and_then(|d| features::hover(d, &self.catalogue, at.position));
                serde_json::to_value(hover)
            }),
            Completion::METHOD => params::<CompletionParams>(&req).map(|p| {
                let at = p.text_document_position;
                let items = self
                    .doc(&at.text_document.uri)
                    .map(|d| features::complete(d, &self.catalogue, at.position))
                    .unwrap_or_default();
                serde_json::to_value(CompletionResponse::Array(items))
            }),
            GotoDefinition::METHOD => params::<GotoDefinitionParams>(&req).map(|p| {
                let at = p.text_document_position_params;
                let uri = at.text_document.uri;
                let found = self
                    .doc(&uri)
                    .and_then(|d| features::definition(d, at.position))
                    .map(|range| {
                        GotoDefinitionResponse::Scalar(Location {
                            uri: uri.clone(),
                            range,
                        })
                    });
                serde_json::to_value(found)
            }),
            _ => {
                return Response::new_err(
                    id,
                    ErrorCode::MethodNotFound as i32,
                    format!("unsupported request `{}`", req.method),
                )
            }
        };
        match result {
            Ok(Ok(value)) => Response::new_ok(id, value),
            Ok(Err(e)) => Response::new_err(id, ErrorCode::InternalError as i32, e.to_string()),
            Err(e) => Response::new_err(id, ErrorCode::InvalidParams as i32, e),
        }
    }

    fn notification(&mut self, n: Notification) -> Vec<Message> {
        match n.method.as_str() {
            DidOpenTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidOpenTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                let doc = Document::new(p.text_document.text, None);
                self.docs
                    .insert(uri.as_str().to_string(), (uri.clone(), doc));
                self.publish(&uri)
            }
            DidChangeTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidChangeTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                let Some((_, mut old)) = self.docs.remove(uri.as_str()) else {
                    return Vec::new();
                };
                let mut text = std::mem::take(&mut old.text);
                for change in p.content_changes {
                    match change.range {
                        None => text = change.text,
                        Some(range) => {
                            let index = LineIndex::new(&text);
                            let (a, b) = (index.offset(range.start), index.offset(range.end));
                            let (a, b) = (a.min(b), a.max(b));
                            text.replace_range(a..b, &change.text);
                        }
                    }
                }
                let doc = Document::new(text, old.into_names());
                self.docs
                    .insert(uri.as_str().to_string(), (uri.clone(), doc));
                self.publish(&uri)
            }
            DidCloseTextDocument::METHOD => {
                let Ok(p) = serde_json::from_value::<DidCloseTextDocumentParams>(n.params) else {
                    return Vec::new();
                };
                let uri = p.text_document.uri;
                self.docs.remove(uri.as_str());
                vec![publish(uri, Vec::new())]
            }
            _ => Vec::new(),
        }
    }

    fn doc(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str()).map(|(_, d)| d)
    }

    fn publish(&self, uri: &Uri) -> Vec<Message> {
        let Some((_, doc)) = self.docs.get(uri.as_str()) else {
            return Vec::new();
        };
        let name = uri
            .as_str()
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("runbook.yaml");
        vec![publish(
            uri.clone(),
            doc.diagnostics(uri, name, &self.catalogue),
        )]
    }
}

fn publish(uri: Uri, diagnostics: Vec<lsp_types::Diagnostic>) -> Message {
    Message::Notification(Notification::new(
        PublishDiagnostics::METHOD.to_string(),
        PublishDiagnosticsParams {
            uri,
            diagnostics,
            version: None,
        },
    ))
}

fn params<P: DeserializeOwned>(req: &Request) -> Result<P, String> {
    serde_json::from_value(req.params.clone()).map_err(|e| format!("invalid params: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lsp_server::RequestId;
    use serde_json::json;

    const URI: &str = "file:///r/runbooks/%C3%A9.yaml";

    fn open(server: &mut Server, text: &str) -> Vec<Message> {
        server.handle(Message::Notification(Notification::new(
            DidOpenTextDocument::METHOD.into(),
            json!({"textDocument": {"uri": URI, "languageId": "yaml", "version": 1, "text": text}}),
        )))
    }

    fn ask(server: &mut Server, method: &str, line: u32, character: u32) -> Response {
        let out = server.handle(Message::Request(Request::new(
            RequestId::from(1),
            method.into(),
            json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}}),
        )));
        match out.into_iter().next() {
            Some(Message::Response(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_position_of_every_prefix_answers_without_a_panic() {
        let text = "runbook: é😀\nsteps:\n  a:\n    uses: entra.create_user\n    with: { user_principal_name: \"{{inputs.x}}😀\", di }\n    needs: [b]\n  b: { uses: wait, with: { for: 1h } }\non_failure:\n  c:\n    uses: notify.teams\n    with:\n      message: \"{{steps.a.outputs.\n";
        let mut server = Server::new();
        let cut: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .step_by(7)
            .collect();
        for end in cut {
            let published = open(&mut server, &text[..end]);
            assert_eq!(published.len(), 1);
            for line in 0..14 {
                for character in [0, 1, 3, 7, 12, 19, 30, 45, 60, 200, u32::MAX] {
                    for method in [
                        HoverRequest::METHOD,
                        Completion::METHOD,
                        GotoDefinition::METHOD,
                    ] {
                        let r = ask(&mut server, method, line, character);
                        assert!(r.error.is_none(), "{method} {line}:{character}: {r:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_params_and_unknown_methods_get_errors() {
        let mut server = Server::new();
        let out = server.handle(Message::Request(Request::new(
            RequestId::from(2),
            HoverRequest::METHOD.into(),
            json!({"nonsense": true}),
        )));
        let Some(Message::Response(r)) = out.first() else {
            panic!()
        };
        assert_eq!(
            r.error.as_ref().unwrap().code,
            ErrorCode::InvalidParams as i32
        );
        let out = server.handle(Message::Request(Request::new(
            RequestId::from(3),
            "textDocument/formatting".into(),
            json!({}),
        )));
        let Some(Message::Response(r)) = out.first() else {
            panic!()
        };
        assert_eq!(
            r.error.as_ref().unwrap().code,
            ErrorCode::MethodNotFound as i32
        );
        // A change to a document never opened, and a range edit out of bounds.
        assert!(server
            .handle(Message::Notification(Notification::new(
                DidChangeTextDocument::METHOD.into(),
                json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": "x"}]}),
            )))
            .is_empty());
        open(&mut server, "runbook: t\n");
        let out = server.handle(Message::Notification(Notification::new(
            DidChangeTextDocument::METHOD.into(),
            json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [
                {"range": {"start": {"line": 9, "character": 9}, "end": {"line": 0, "character": 3}}, "text": "é"}
            ]}),
        )));
        assert_eq!(out.len(), 1);
    }
}

#[cfg(test)]
mod call_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runbook_calls_are_resolved_beside_the_document() {
        let dir = std::env::temp_dir().join(format!("tenure-lsp-calls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("child.yaml"),
            "runbook: child\nversion: 1\ntenant: contoso\ninputs:\n  user: { type: email, required: true }\nsteps:\n  hide:\n    uses: exchange.hide_from_gal\n    with: { user: \"{{inputs.user}}\" }\n",
        )
        .unwrap();
        let uri = format!("file://{}/parent.yaml", dir.display());
        let text = "runbook: parent\nversion: 1\ntenant: contoso\nsteps:\n  ok:\n    uses: runbook.call\n    with: { runbook: child, inputs: { user: a@contoso.example } }\n  typo:\n    uses: runbook.call\n    with: { runbook: chlid, inputs: { usr: a@contoso.example } }\n";
        let mut server = Server::new();
        let out = server.handle(Message::Notification(Notification::new(
            DidOpenTextDocument::METHOD.into(),
            json!({"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}}),
        )));
        std::fs::remove_dir_all(&dir).unwrap();
        let Some(Message::Notification(n)) = out.first() else {
            panic!("{out:?}")
        };
        let diags = n.params["diagnostics"].as_array().unwrap();
        let codes: Vec<&str> = diags.iter().map(|d| d["code"].as_str().unwrap()).collect();
        assert_eq!(codes, ["RB0046"], "{diags:?}");
        assert!(diags[0]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `child`?"));
        assert_eq!(
            diags[0]["range"]["start"],
            json!({"line": 9, "character": 21})
        );
    }
}
