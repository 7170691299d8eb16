//! Tenure's language server: `tenure lsp` speaks the Language Server Protocol over stdio
//! (with `lsp-server`, the protocol layer of rust-analyzer). As the author types it publishes
//! the compiler's diagnostics (errors and the domain lints), hovers with the catalogue's
//! words for kinds, parameters and outputs, completes kinds, parameters, step ids, inputs,
//! vars and `steps.<id>.outputs.<name>`, and goes to the definition of steps, inputs and vars.
//!
//! It depends on the compiler and the catalogue only, and never panics on any input: LSP
//! positions (UTF-16) are clamped to the text.

pub mod calls;
mod context;
mod document;
mod features;
mod server;
mod text;

pub use document::Document;
pub use server::{capabilities, Server};
pub use text::LineIndex;

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The editor broke the protocol (e.g. no `initialize` first).
    #[error("LSP protocol error: {0}")]
    Protocol(#[from] lsp_server::ProtocolError),
    /// Reading or writing stdio failed.
    #[error("LSP I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The writer thread is gone.
    #[error("the editor's connection closed")]
    Closed,
}

/// Serves one editor over stdin/stdout until it sends `shutdown` and `exit`.
pub fn run_stdio() -> Result<(), Error> {
    let (connection, io) = lsp_server::Connection::stdio();
    let (id, _params) = connection.initialize_start()?;
    let init = serde_json::json!({
        "capabilities": capabilities(),
        "serverInfo": {"name": "tenure", "version": env!("CARGO_PKG_VERSION")},
    });
    connection.initialize_finish(id, init)?;
    let mut server = Server::new();
    for message in &connection.receiver {
        if let lsp_server::Message::Request(req) = &message {
            if connection.handle_shutdown(req)? {
                break;
            }
        }
        for out in server.handle(message) {
            connection.sender.send(out).map_err(|_| Error::Closed)?;
        }
    }
    drop(connection);
    io.join()?;
    Ok(())
}
