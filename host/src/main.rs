//! The `guard` command; everything lives in the library's [`guard::cli`].

fn main() -> std::process::ExitCode {
    guard::cli::main()
}
