//! One thin module per subcommand: take the parsed arguments ([`crate::cli`]),
//! call the engine or the read-only queries, print. No module here is
//! imported by the layers below it.
pub mod config;
pub mod doctor;
pub mod fold;
pub mod launch;
pub mod list;
pub mod restore;
pub mod shortcut;
pub mod status;
