#![doc = include_str!("../README.md")]

pub mod api;
pub mod audit;
pub mod auth;
pub mod chains;
pub mod client;
pub mod config;
pub mod http;
pub mod metrics;
pub mod nodes;
pub mod rpc;
pub mod service;
pub mod store;
