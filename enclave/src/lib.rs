#![doc = include_str!("../README.md")]

pub mod config;
pub mod identity;
pub mod kms;
pub mod lifecycle;
pub mod logship;
pub mod node;
pub mod nsm;
pub mod peer;
pub mod policy;
pub mod primes;
pub mod seal;
pub mod server;
pub mod transport;

pub use server::{Enclave, run};
pub mod mpc;

#[cfg(test)]
mod cluster_tests;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod testkit;
