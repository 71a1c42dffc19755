fn main() -> std::process::ExitCode {
    talos::app::cli::main()
}
