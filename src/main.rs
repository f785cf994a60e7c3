//! The `crossmodal` binary: a thin shell over the library (argument parsing, logging, progress
//! bars, exit codes). Errors are printed as a chain (`{:#}`) and the exit code is non-zero.

mod cli;

fn main() {
    if let Err(error) = cli::run() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
