// glibc malloc cost ~14 % of the server's CPU per verify (unlink_chunk,
// malloc_consolidate…); mimalloc's thread-local free lists avoid that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    talos::app::cli::main()
}
