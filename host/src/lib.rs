#![doc = include_str!("../README.md")]

pub mod body;
pub mod endpoint;
pub mod frame;
pub mod policy;
pub mod serve;
pub mod startup;

pub use endpoint::{Listener, Stream, connect};
pub use policy::PolicyArgs;
