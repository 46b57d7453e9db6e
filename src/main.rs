//! vblaunch: the thin entry point. Everything lives in the library; this file
//! parses the command line, runs it, prints the error chain once and maps it to
//! a documented exit code.
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = vblaunch::cli::parse();
    let pause = cli.global.pause_on_error;
    match vblaunch::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let code = vblaunch::exit::code_of(&err);
            vblaunch::report::report_error(&err);
            if pause {
                vblaunch::report::after_failure(&format!("{}\n\n{err}", err.root_cause()));
            }
            ExitCode::from(code.as_u8())
        }
    }
}
