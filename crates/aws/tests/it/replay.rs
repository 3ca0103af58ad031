//! Recorded EC2 exchanges for what moto cannot show: `pending` states, AWS's real
//! configuration document, throttling, a timeout after the create was committed.
//!
//! A scripted HTTP/1.1 server on loopback answers each request with the next recorded
//! response for its action (EC2 query-protocol XML, as AWS sends it; concurrent
//! describes of different kinds may arrive in any order), answers an unrecorded request
//! with a 500, and logs every action it received.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::config::timeout::TimeoutConfig;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
pub enum Reply {
    /// 200 with this body.
    Ok(String),
    /// An EC2 error: HTTP status, code, request id.
    Error(u16, &'static str, &'static str),
    /// Reads the request, then never answers (the call was committed, the answer lost).
    Hang,
}

type Script = Arc<Mutex<VecDeque<(&'static str, Reply)>>>;

pub struct Replay {
    pub url: String,
    script: Script,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Replay {
    pub async fn start(script: Vec<(&'static str, Reply)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let script: Script = Arc::new(Mutex::new(script.into()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (script.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, s.clone(), l.clone()));
            }
        });
        Replay { url, script, seen }
    }

    /// A client with test credentials, fast SDK retries and a short attempt timeout.
    pub fn client(&self) -> Client {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "vpnbridge-replay"))
            .retry_config(RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1)))
            .timeout_config(TimeoutConfig::builder().operation_attempt_timeout(Duration::from_millis(500)).build())
            .build();
        Client::from_conf(conf)
    }

    /// The actions received so far.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Whether every recorded response was used.
    pub fn exhausted(&self) -> bool {
        self.script.lock().unwrap().is_empty()
    }
}

async fn serve(mut conn: TcpStream, script: Script, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        // Headers.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len: usize = head
            .lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().to_owned()))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string();
        buf.drain(..head_end + len);
        let action = body.split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("").to_owned();
        seen.lock().unwrap().push(action.clone());
        let next = {
            let mut script = script.lock().unwrap();
            script.iter().position(|(want, _)| *want == action).and_then(|i| script.remove(i))
        };
        let (status, body) = match next {
            Some((_, Reply::Ok(xml))) => (200, xml),
            Some((_, Reply::Error(status, code, req))) => (status, error_body(code, "recorded error", req)),
            Some((_, Reply::Hang)) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            None => (500, error_body("ReplayExhausted", &format!("no recorded response for {action}"), "replay")),
        };
        let reason = if status == 200 { "OK" } else { "Error" };
        let response =
            format!("HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        if conn.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn error_body(code: &str, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
    )
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

pub const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
