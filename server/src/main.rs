//! `seshat`: the Seshat server and local-cluster runner. See `seshat --help`.

#[global_allocator]
static GLOBAL: seshat_server::Allocator = seshat_server::ALLOCATOR;

fn main() -> std::process::ExitCode {
    seshat_server::cli::main()
}
