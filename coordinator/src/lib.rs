#![doc = include_str!("../README.md")]

pub mod api;
pub mod audit;
#[cfg(feature = "server")]
pub mod auth;
#[cfg(feature = "server")]
pub mod broker;
#[cfg(feature = "server")]
pub mod chains;
#[cfg(feature = "server")]
pub mod client;
#[cfg(feature = "server")]
pub mod config;
pub mod events;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod nodes;
#[cfg(feature = "server")]
pub mod rpc;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod store;

/// Without the `server` feature: the service's pure checks alone (the fuzz targets').
#[cfg(not(feature = "server"))]
pub mod service {
    mod crypto;
    pub use crypto::{derive_public_key, verify_signature};
}
