//! mirrorgate: a geo-aware mirror redirector and load balancer.
//!
//! (Architecture overview: written as the parts land.)
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod cmd;
pub mod config;
pub mod explain;
pub mod geo;
pub mod health;
pub mod http;
pub mod metrics;
pub mod registry;
pub mod select;
pub mod state;
