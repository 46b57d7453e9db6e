//! One module per subcommand.
pub mod config;
pub mod fold;
pub mod shortcut;
