//! `seshat`: the Seshat server and local-cluster runner. See `seshat --help`.

fn main() -> std::process::ExitCode {
    seshat_server::cli::main()
}
