//! The context of one run: the global options, the loaded configuration and
//! the platform paths, built once by [`crate::run`] and passed down to every
//! command. Commands read environment variables through it
//! ([`Context::env`]), and it is the one owner of precedence: command line,
//! then environment, then the config file's `[vm."…"]` table, then its top
//! level, then the built-in defaults ([`Context::effective`]; VBoxManage's
//! path: `--vboxmanage`, `VBLAUNCH_VBOXMANAGE`, the config, the usual
//! install places, in [`Context::vboxmanage`]).
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli;
use crate::config::{self, Config, Effective};
use crate::exit::{fail, Code};
use crate::face::{self, Face};
use crate::vbox;
use std::sync::Arc;

/// The one owner of environment variables and platform paths.
pub struct Context {
    pub global: cli::Global,
    pub config: Config,
    pub config_path: PathBuf,
    /// How the config path was chosen ("--config", "VBLAUNCH_CONFIG", "default").
    pub config_source: &'static str,
    pub data_dir: PathBuf,
    pub env_vboxmanage: Option<PathBuf>,
    /// What the user sees of the run (the console, or native windows).
    pub face: Arc<dyn Face>,
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

impl Context {
    /// The context of a run shown by `face` (None: the console).
    pub(crate) fn new(global: cli::Global, face: Option<Arc<dyn Face>>) -> Result<Context> {
        let (config_path, config_source, explicit) = if let Some(p) = &global.config {
            (p.clone(), "--config", true)
        } else if let Some(p) = non_empty_env("VBLAUNCH_CONFIG") {
            (PathBuf::from(p), "VBLAUNCH_CONFIG", true)
        } else {
            let dir = crate::platform::project_dirs()
                .map(|d| d.config_dir().to_path_buf())
                .ok_or_else(|| {
                    fail(
                    Code::Usage,
                    "cannot find your home folder to locate the config file; pass --config FILE",
                )
                })?;
            (dir.join("vblaunch.toml"), "default", false)
        };
        let data_dir = crate::platform::data_dir();
        let config = config::load(&config_path, explicit)?;
        Ok(Context {
            config,
            config_path,
            config_source,
            data_dir,
            env_vboxmanage: non_empty_env("VBLAUNCH_VBOXMANAGE").map(PathBuf::from),
            face: face.unwrap_or_else(|| Arc::new(face::Console::new(global.verbosity() >= 0))),
            global,
        })
    }

    /// An environment variable (every read of the environment goes through here).
    pub fn env(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    /// The settings for a VM known by any of `keys` (the argument as given,
    /// its name, its UUID): the config file's layers ([`Config::layered`])
    /// with the command line's `--keep`, `--type`, `--wait` and
    /// `--wait-timeout` on top. Every command reads settings through here.
    pub fn effective(&self, keys: &[&str]) -> Effective {
        let mut eff = self.config.layered(keys);
        let g = &self.global;
        if let Some(k) = g.keep {
            eff.keep = k as usize;
        }
        if let Some(t) = g.start_type {
            eff.start_type = t;
        }
        eff.wait |= g.wait;
        if let Some(secs) = g.wait_timeout {
            eff.wait_timeout = Some(std::time::Duration::from_secs(secs));
        }
        eff
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.data_dir.join("locks")
    }

    /// The VBoxManage facade for a VM's effective settings.
    pub fn vbox(&self, eff: &Effective) -> Result<vbox::VBoxManage> {
        let exe = self.vboxmanage(eff)?;
        log::debug!("using VBoxManage at {}", exe.display());
        Ok(vbox::VBoxManage {
            exe,
            call_timeout: eff.call_timeout,
            stall_warning: eff.merge_stall_warning,
            progress: Some({
                let face = Arc::clone(&self.face);
                Arc::new(move |p| face.event(&face::Event::of_call(p)))
            }),
        })
    }

    /// Resolve VBoxManage for a VM's effective settings.
    pub fn vboxmanage(&self, eff: &Effective) -> Result<PathBuf> {
        let explicit = vbox::locate::Explicit {
            flag: self.global.vboxmanage.clone(),
            env: self.env_vboxmanage.clone(),
            config: eff.vboxmanage.clone(),
        };
        let defaults =
            vbox::locate::default_candidates(crate::platform::Os::current(), &|n| self.env(n));
        vbox::locate::locate(&explicit, &defaults, &|p: &Path| p.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vbox::StartType;
    use std::time::Duration;

    fn ctx(toml: &str, global: cli::Global) -> Context {
        Context {
            global,
            config: Config {
                file: config::from_toml_str(toml, "test.toml").unwrap(),
                path: None,
            },
            config_path: PathBuf::from("test.toml"),
            config_source: "test",
            data_dir: PathBuf::from("/nonexistent"),
            env_vboxmanage: None,
            face: Arc::new(face::Console::new(false)),
        }
    }

    #[test]
    fn the_command_line_goes_over_the_vm_table_over_the_top_level() {
        let toml = "keep = 2\nwait = false\nstart_type = \"gui\"\nwait_timeout_secs = 60\n\
                    [vm.\"Dev Box\"]\nkeep = 3\nstart_type = \"separate\"\n";
        // The file alone: the VM's table over the top level.
        let e = ctx(toml, cli::Global::default()).effective(&["Dev Box"]);
        assert_eq!(
            (e.keep, e.start_type, e.wait, e.wait_timeout),
            (3, StartType::Separate, false, Some(Duration::from_secs(60)))
        );
        assert_eq!(
            ctx(toml, cli::Global::default()).effective(&["Other"]).keep,
            2
        );
        // The command line over both.
        let g = cli::Global {
            keep: Some(5),
            start_type: Some(StartType::Headless),
            wait: true,
            wait_timeout: Some(0),
            ..cli::Global::default()
        };
        let e = ctx(toml, g).effective(&["Dev Box"]);
        assert_eq!(
            (e.keep, e.start_type, e.wait, e.wait_timeout),
            (5, StartType::Headless, true, Some(Duration::ZERO))
        );
    }
}
