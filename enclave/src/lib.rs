#![doc = include_str!("../README.md")]

pub mod config;
pub mod identity;
pub mod lifecycle;
pub mod nsm;
pub mod server;
pub mod transport;

pub use server::{Enclave, run};
