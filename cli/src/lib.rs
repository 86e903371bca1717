#![doc = include_str!("../README.md")]

pub mod admins;
pub mod attest;
pub mod ceremony;
pub use coordinator::client;
pub mod demo;
pub mod devchain;
pub mod images;
pub mod import;
pub mod kms;
pub mod ops;
pub mod recover;
pub mod requests;
pub mod roster;
pub mod sim;
#[cfg(test)]
mod testing;
pub mod trust;
pub mod tx;
