//! The public listener: accept loop (`server.rs`), who the client is
//! (`client_ip.rs`), what path it asked for (`path.rs`), and the download
//! handler that answers with a redirect or a proxied body (`download.rs`,
//! `body.rs`; the proxying itself is in [`crate::proxy`]).

pub(crate) mod accept;
mod answers;
mod body;
pub mod client_ip;
mod conn;
mod download;
pub(crate) mod files;
pub(crate) mod handover;
pub mod head;
mod ipaddr;
pub mod path;
mod redirect;
mod server;
mod stop;

pub use body::ResponseBody;
pub use download::{text, HandleFuture, PublicHandler, Resp};
pub use server::{serve, ServeOptions};
