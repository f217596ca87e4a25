//! Benchmark commands (`likeness bench ...`); each module is one benchmark.

pub mod ann;
pub mod cnn;
pub mod exact;
