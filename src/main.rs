fn main() -> std::process::ExitCode {
    vnetprobe::app::main(std::env::args_os())
}
