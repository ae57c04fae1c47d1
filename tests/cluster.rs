//! The replicas tests in a binary of their own: they measure take-over times and gaps between
//! probes of four daemons carrying 3,000 servers on two cores, and inside the `it` binary
//! another test ran beside them (cargo runs test binaries one after another).
#![allow(dead_code)]

#[path = "it/support/mod.rs"]
mod support;

#[path = "it/replicas.rs"]
mod replicas;
