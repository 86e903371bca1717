#![doc = include_str!("../README.md")]

pub mod attest;
pub mod client;
pub mod sim;
