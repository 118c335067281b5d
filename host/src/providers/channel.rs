//! The data channel's TCP server: accepts connections and moves bytes between them and
//! the component, which owns the protocol. Bounded in connections and read size.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::Events;
use crate::runtime::wit::{ChannelData, ChannelOpen, Event};

/// Most connections kept open at once.
const MAX_CONNECTIONS: usize = 8;
/// Largest read handed to the component at once.
const READ_CHUNK: usize = 4096;

enum Out {
    Data(Vec<u8>),
    Close,
}

type Writers = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Out>>>>;

/// The listening server.
pub struct ChannelServer {
    addr: SocketAddr,
    writers: Writers,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for ChannelServer {
    /// Stops listening and closes every connection.
    fn drop(&mut self) {
        self.accepting.abort();
        for (_, writer) in self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            let _ = writer.send(Out::Close);
        }
    }
}

impl std::fmt::Debug for ChannelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ChannelServer {
    /// Binds `listen` and starts accepting.
    pub async fn start(listen: SocketAddr, events: Events) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("failed to listen for the data channel on {listen}"))?;
        let addr = listener.local_addr()?;
        let writers: Writers = Arc::default();
        let accepted = writers.clone();
        let accepting = tokio::spawn(async move {
            let next = AtomicU32::new(1);
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    continue;
                };
                if accepted.lock().unwrap_or_else(|p| p.into_inner()).len() >= MAX_CONNECTIONS {
                    drop(stream);
                    continue;
                }
                let conn = next.fetch_add(1, Ordering::Relaxed);
                let (tx, rx) = mpsc::unbounded_channel();
                accepted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(conn, tx);
                let _ = events.send(Event::ChannelOpened(ChannelOpen {
                    conn,
                    peer: peer.to_string(),
                }));
                tokio::spawn(serve(stream, conn, rx, events.clone(), accepted.clone()));
            }
        });
        tracing::info!(%addr, "data channel listening");
        Ok(Self {
            addr,
            writers,
            accepting,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn send(&self, conn: u32, data: Vec<u8>) {
        if let Some(tx) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&conn)
        {
            let _ = tx.send(Out::Data(data));
        }
    }

    pub fn close(&self, conn: u32) {
        if let Some(tx) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&conn)
        {
            let _ = tx.send(Out::Close);
        }
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    conn: u32,
    mut out: mpsc::UnboundedReceiver<Out>,
    events: Events,
    writers: Writers,
) {
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = events.send(Event::ChannelData(ChannelData { conn, data: buf[..n].to_vec() }));
                }
            },
            next = out.recv() => match next {
                Some(Out::Data(bytes)) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Out::Close) | None => {
                    let _ = writer.shutdown().await;
                    break;
                }
            },
        }
    }
    writers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&conn);
    let _ = events.send(Event::ChannelClosed(conn));
}
