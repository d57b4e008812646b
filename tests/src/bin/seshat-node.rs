//! The `seshat` server binary, rebuilt inside the test crate so that integration
//! tests can name it with `env!("CARGO_BIN_EXE_seshat-node")`.

fn main() -> std::process::ExitCode {
    seshat_server::cli::main()
}
