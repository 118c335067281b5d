//! Mosquitto, the peer of `sessions`: Debian's mosquitto 2 on a free loopback port, its
//! clients authenticated by a password file (PBKDF2) holding the same devices' MQTT
//! credentials, so that the same client harness measures its memory per session in the
//! same run as the embedded broker's.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tether_proto::activation::ActivateResponse;

use crate::procs::Memory;

/// A running mosquitto.
pub struct Mosquitto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts mosquitto accepting `devices`' credentials; `None` when it is not installed.
    pub fn start(devices: &[ActivateResponse]) -> anyhow::Result<Option<Self>> {
        if Command::new("mosquitto").arg("-h").output().is_err() {
            return Ok(None);
        }
        let dir = tempfile::tempdir()?;
        let passwords = dir.path().join("passwords");
        let mut file = std::fs::File::create(&passwords)?;
        for device in devices {
            writeln!(
                file,
                "{}:{}",
                device.mqtt.username,
                device.mqtt.password.expose()
            )?;
        }
        drop(file);
        // Hashes the plain file in place (PBKDF2-SHA512), as an operator would.
        let hashed = Command::new("mosquitto_passwd")
            .arg("-U")
            .arg(&passwords)
            .status()
            .context("mosquitto_passwd is missing (apt-get install mosquitto)")?;
        anyhow::ensure!(hashed.success(), "mosquitto_passwd -U failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
                 max_connections -1\nmax_keepalive 1200\npersistence false\nlog_dest none\n",
                passwords.display()
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start mosquitto")?;
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(10),
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(Self {
            child,
            port,
            _dir: dir,
        }))
    }

    /// `device` pointed at this broker instead of the service's.
    pub fn device(&self, device: &ActivateResponse) -> ActivateResponse {
        let mut moved = device.clone();
        moved.mqtt.url = format!("mqtt://127.0.0.1:{}", self.port);
        moved
    }

    /// Its memory now.
    pub fn memory(&self) -> Memory {
        Memory::of(self.child.id())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
