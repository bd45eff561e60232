//! el2visor-bundle: builds and checks el2visor guest bundles on the host (the format is documented
//! in el2visor's `src/vm/bundle.rs`). Run with `--help` for usage; exit status 0 on success, 1 when
//! an input is refused or a file cannot be read or written, 2 for a wrong command line.

mod bundle_ops;
mod cli;
mod error;
mod run;

use std::process::ExitCode;

fn main() -> ExitCode {
    let result = cli::parse(std::env::args_os().skip(1))
        .map_err(error::ToolError::from)
        .and_then(|cmd| run::run(&cmd));
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("el2visor-bundle: {e}");
            if let error::ToolError::Usage(_) = e {
                eprintln!("run `el2visor-bundle --help` for usage");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
