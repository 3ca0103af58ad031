//! The EC2 test server: moto (from the harness virtualenv, `cargo xtask fakes`) run
//! through the AWS adapter's harness layer, `crates/aws/tests/it/moto_vpn.py`, which
//! fills moto's Site-to-Site VPN gaps (see that file), on a free loopback port, one
//! server per test, stopped on drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};

/// A running moto server, killed when dropped.
#[derive(Debug)]
pub struct Moto {
    child: Child,
    /// Its endpoint, `http://127.0.0.1:<port>`.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The interpreter of the virtualenv that holds `moto_server` (`VPNBRIDGE_MOTO_SERVER`
/// or the one `cargo xtask fakes` installs).
fn moto_python() -> PathBuf {
    let server = std::env::var_os("VPNBRIDGE_MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        PathBuf::from(home).join(".cache/vpnbridge/venv/bin/moto_server")
    });
    let python = server.with_file_name("python3");
    assert!(
        server.exists() && python.exists(),
        "moto is not installed at {} (or VPNBRIDGE_MOTO_SERVER is wrong): run `cargo xtask fakes` once",
        server.display()
    );
    python
}

impl Moto {
    /// Starts a server and waits (at most 30 s) until it listens.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`Self::start`], with extra environment for the harness (e.g.
    /// `VPNBRIDGE_MOTO_TELEMETRY_UP`).
    pub fn start_with(harness_env: &[(&str, &str)]) -> Self {
        let python = moto_python();
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
        let dir = tempfile::Builder::new().prefix("vpnbridge-moto-").tempdir().expect("scratch dir");
        let log = dir.path().join("requests.log");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../aws/tests/it/moto_vpn.py");
        let child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(&log)
            .envs(harness_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let mut moto = Moto { child, url: format!("http://127.0.0.1:{port}"), log, _dir: dir };
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited at start ({status})");
            }
            assert!(Instant::now() < deadline, "moto did not listen on {addr} within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// An EC2 client for this server, with dummy credentials set on the client's own
    /// configuration (not the process environment).
    pub fn client(&self) -> Client {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "vpnbridge-tests"))
            .build();
        Client::from_conf(conf)
    }

    /// EC2 actions the server has answered so far, in order.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Forgets the request log (the server's state is kept).
    pub fn clear_requests(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
