//! Fuzz properties for Seshat; the targets in `fuzz_targets/` are one-liners.

pub mod props;
