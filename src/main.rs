//! The `mbrl` binary: mimalloc as the allocator, then the CLI.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h (v2); libmimalloc-sys exports no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() -> std::process::ExitCode {
    // Keep freed memory instead of returning it to the OS: the training loop
    // frees and reallocates the same large tensors every step, and returning
    // them cost 15% of the time in page faults (measured with `perf`).
    // SAFETY: called before any other thread exists.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    mbrl::cli::main()
}
