//! mirrorgate: a geo-aware mirror redirector and load balancer.
//!
//! (Architecture overview: written as the parts land.)
#![forbid(unsafe_code)]

pub mod config;
pub mod geo;
pub mod health;
