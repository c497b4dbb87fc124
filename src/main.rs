// See Cargo.toml: musl's allocator costs a static build a third of its CPU on large runs.
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// One arena (probing runs on one thread; serve's two workers share it), and freed pages go
/// back to the kernel at once rather than after ten seconds: peak memory follows the live set.
#[cfg(all(target_env = "musl", target_pointer_width = "64"))]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8] = b"narenas:1,dirty_decay_ms:0,muzzy_decay_ms:0\0";

fn main() -> std::process::ExitCode {
    vnetprobe::app::main(std::env::args_os())
}
