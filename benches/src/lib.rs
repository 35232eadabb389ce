//! See `cargo xtask bench`.
