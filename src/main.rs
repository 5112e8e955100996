fn main() -> std::process::ExitCode {
    mbrl::cli::main()
}
