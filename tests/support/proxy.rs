//! A real tinyproxy on a loopback port, for the proxy tests: Basic credentials required, one
//! host denied by a filter. The process is killed when the guard drops (`Reaper`), even on a
//! failed test.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Reaper;
use super::Scratch;
pub use super::free_port;

pub const USER: &str = "probe";
/// The password tinyproxy expects; proxy URLs carry it percent-encoded (`%50` is `P`), so a
/// passing run also proves the decoding.
pub const PASSWORD: &str = "Secr3tPassw0rd";
pub const PASSWORD_IN_URL: &str = "Secr3t%50assw0rd";
/// A name the proxy refuses to CONNECT to (403 Filtered).
pub const DENIED_HOST: &str = "denied.test";
/// A name only the proxy can resolve (to 127.0.0.1): it sees its own /etc/hosts.
pub const PROXY_ONLY_HOST: &str = "proxy-only.test";

pub struct Tinyproxy {
    child: Reaper,
    pub addr: SocketAddr,
    scratch: Scratch,
}

impl Tinyproxy {
    /// Needs root, for the mount namespace.
    pub fn start() -> Tinyproxy {
        super::require_root("tinyproxy with its own /etc/hosts");
        let scratch = Scratch::new("tinyproxy");
        let filter = scratch.write(
            "filter",
            &format!("^{}$\n", DENIED_HOST.replace('.', "\\.")),
        );
        let port = free_port();
        let conf = scratch.write(
            "tinyproxy.conf",
            &format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 10\nMaxClients 32\nAllow 127.0.0.1\n\
                 BasicAuth {USER} {PASSWORD}\nFilter \"{}\"\nFilterDefaultDeny No\nLogLevel Info\n",
                filter.display()
            ),
        );
        let hosts = scratch.write("hosts", &format!("127.0.0.1 localhost {PROXY_ONLY_HOST}\n"));
        let log = std::fs::File::create(scratch.0.join("tinyproxy.log")).expect("log file");
        // A private mount namespace gives tinyproxy its own /etc/hosts and leaves the host's
        // alone; `exec` keeps one process, so the guard's kill reaches tinyproxy itself.
        let script = format!(
            "mount --bind '{}' /etc/hosts && exec tinyproxy -d -c '{}'",
            hosts.display(),
            conf.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("unshare runs (util-linux; the proxy tests need root for the mount namespace)");
        let mut proxy = Tinyproxy {
            child: Reaper(child),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            scratch,
        };
        proxy.wait_up();
        proxy
    }

    /// Waits (bounded) until the port accepts connections.
    fn wait_up(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                panic!(
                    "tinyproxy exited with {status} (installed? root?): {}",
                    self.log()
                );
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "tinyproxy did not listen on {} within 10 s: {}",
            self.addr,
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.scratch.0.join("tinyproxy.log")).unwrap_or_default()
    }

    /// `http://probe:PASSWORD@127.0.0.1:PORT`, the password percent-encoded.
    pub fn url(&self) -> String {
        format!("http://{USER}:{PASSWORD_IN_URL}@{}", self.addr)
    }

    pub fn url_with_password(&self, password: &str) -> String {
        format!("http://{USER}:{password}@{}", self.addr)
    }

    pub fn url_without_credentials(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What reports must show for `url()`.
    pub fn masked(&self) -> String {
        format!("http://{USER}:***@{}", self.addr)
    }
}
