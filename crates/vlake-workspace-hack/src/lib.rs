//! No code. Depending on this crate gives shared dependencies the features of the whole
//! workspace's build, so that every build reuses one set of compiled dependencies; see its
//! `Cargo.toml`.
