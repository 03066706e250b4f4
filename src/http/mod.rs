//! The public listener: accept loop (`server.rs`), who the client is
//! (`client_ip.rs`), what path it asked for (`path.rs`), and the download
//! handler that answers with a redirect (`download.rs`).

mod answers;
pub mod client_ip;
mod download;
pub(crate) mod files;
pub mod path;
mod server;

pub use download::{HandleFuture, PublicHandler};
pub use server::{serve, ServeOptions};
