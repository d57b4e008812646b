//! Cross-component test harness.
