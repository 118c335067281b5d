//! A login flood against the real service process: 10 000 attempts with made-up
//! usernames from one address. The service's memory stays within a stated bound, the
//! real owner (from another address) still logs in, and `/readyz` stays 200 throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tether_e2e::Cloud;

/// Attempts in the flood.
const ATTEMPTS: usize = 10_000;
/// Connections the flood uses at once.
const CONNECTIONS: usize = 16;
/// Growth of the service's peak memory the flood may cause (MiB). Two Argon2 checks at
/// once take 38 MiB; rate-limit state for one address takes next to nothing.
const MEMORY_BOUND_MIB: u64 = 64;

/// A keep-alive HTTP/1.1 connection from `source` (a loopback address).
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(service: SocketAddr, source: Ipv4Addr) -> Self {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket
            .bind(&SocketAddr::from((source, 0)).into())
            .expect("binds a loopback source");
        socket.connect(&service.into()).expect("connects");
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends a request; the answer's status and body.
    fn request(&mut self, method: &str, path: &str, body: &str) -> (u16, String) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: tether\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader
            .get_mut()
            .write_all(head.as_bytes())
            .expect("sends");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().expect("a length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

fn login_body(name: &str, password: &str) -> String {
    format!(r#"{{"username":"{name}","password":"{password}"}}"#)
}

#[test]
fn a_login_flood_from_one_address_leaves_memory_bounded_the_owner_in_and_readyz_up() {
    // Plain HTTP: the flood is of logins, and its connections speak raw HTTP/1.1 (a TLS
    // handshake per connection would only make the flood slower).
    let cloud = Cloud::start_plain();
    cloud.add_user("owner", "owner-password-1", false);
    let service: SocketAddr = cloud.addr();
    let (rss_before, _) = cloud.memory_kib();

    // /readyz from a third address, every 50 ms, for the whole flood.
    let flooding = Arc::new(AtomicBool::new(true));
    let probes = Arc::new(AtomicU64::new(0));
    let watcher = {
        let (flooding, probes) = (flooding.clone(), probes.clone());
        std::thread::spawn(move || {
            let mut conn = Conn::open(service, Ipv4Addr::new(127, 0, 0, 3));
            while flooding.load(Ordering::Relaxed) {
                let (status, body) = conn.request("GET", "/readyz", "");
                assert_eq!(status, 200, "/readyz during the flood: {body}");
                probes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let started = Instant::now();
    let statuses: Vec<[u64; 3]> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|w| {
                scope.spawn(move || {
                    let mut conn = Conn::open(service, Ipv4Addr::new(127, 0, 0, 2));
                    let mut counts = [0u64; 3];
                    for i in (w..ATTEMPTS).step_by(CONNECTIONS) {
                        let body = login_body(&format!("user{i:05}x{w}"), "not-the-password");
                        let (status, text) = conn.request("POST", "/v1/auth/token", &body);
                        match status {
                            401 => counts[0] += 1,
                            429 => counts[1] += 1,
                            _ => {
                                counts[2] += 1;
                                eprintln!("unexpected {status}: {text}");
                            }
                        }
                    }
                    counts
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let flood_time = started.elapsed();
    let total = statuses.iter().fold([0u64; 3], |mut acc, c| {
        (0..3).for_each(|i| acc[i] += c[i]);
        acc
    });

    // The owner, from another address, during the same minute.
    let mut owner = Conn::open(service, Ipv4Addr::new(127, 0, 0, 4));
    let (status, body) = owner.request(
        "POST",
        "/v1/auth/token",
        &login_body("owner", "owner-password-1"),
    );
    flooding.store(false, Ordering::Relaxed);
    watcher.join().expect("/readyz stayed 200");
    let (rss_after, peak) = cloud.memory_kib();
    eprintln!(
        "flood: {ATTEMPTS} logins in {flood_time:?}: {} refused as wrong, {} limited (429), {} other; \
         service RSS {rss_before} KiB before, {rss_after} KiB after, peak {peak} KiB; {} /readyz probes",
        total[0],
        total[1],
        total[2],
        probes.load(Ordering::Relaxed)
    );
    assert_eq!(status, 200, "the owner could not log in: {body}");
    assert_eq!(total[2], 0, "answers other than 401 and 429");
    assert!(
        total[1] >= 9_900,
        "only {} of {ATTEMPTS} were limited",
        total[1]
    );
    assert!(probes.load(Ordering::Relaxed) > 0);
    assert!(
        peak.saturating_sub(rss_before) <= MEMORY_BOUND_MIB * 1024,
        "the flood grew the service's peak memory by {} KiB",
        peak.saturating_sub(rss_before)
    );
}
