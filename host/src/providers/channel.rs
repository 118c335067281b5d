//! The data channel's TCP server: accepts connections and moves bytes between them and
//! the component, which owns the protocol. Bounded in connections, read size and bytes in
//! flight: a connection stops being read while more than [`MAX_UNREAD`] of its bytes wait
//! for the component, so a fast sender cannot fill the host's queues.

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

/// Most connections kept open at once. Above the component's own cap (which closes the
/// oldest idle connection to make room), so the component, not this, decides who stays.
const MAX_CONNECTIONS: usize = 16;
/// Largest read handed to the component at once.
const READ_CHUNK: usize = 4096;
/// Bytes of one connection read but not yet handed to the component, at most.
const MAX_UNREAD: usize = 64 * 1024;

/// One connection's bytes in flight to the component.
#[derive(Default)]
struct Unread {
    bytes: std::sync::atomic::AtomicUsize,
    drained: tokio::sync::Notify,
}

type Budgets = Arc<Mutex<HashMap<u32, Arc<Unread>>>>;

enum Out {
    Data(Vec<u8>),
    Close,
}

type Writers = Arc<Mutex<HashMap<u32, mpsc::UnboundedSender<Out>>>>;

/// The listening server.
pub struct ChannelServer {
    addr: SocketAddr,
    writers: Writers,
    budgets: Budgets,
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
        let budgets: Budgets = Arc::default();
        let accepted = writers.clone();
        let budgeted = budgets.clone();
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
                let unread = Arc::new(Unread::default());
                budgeted
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(conn, unread.clone());
                let _ = events.send(Event::ChannelOpened(ChannelOpen {
                    conn,
                    peer: peer.to_string(),
                }));
                let ends = Ends {
                    conn,
                    writers: accepted.clone(),
                    budgets: budgeted.clone(),
                };
                tokio::spawn(serve(stream, rx, events.clone(), unread, ends));
            }
        });
        tracing::info!(%addr, "data channel listening");
        Ok(Self {
            addr,
            writers,
            budgets,
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

    /// The component has taken `n` bytes of `conn`: its reader may go on.
    pub fn consumed(&self, conn: u32, n: usize) {
        let unread = self
            .budgets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&conn)
            .cloned();
        if let Some(unread) = unread {
            unread.bytes.fetch_sub(n, Ordering::AcqRel);
            unread.drained.notify_one();
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

/// What a connection's task removes when it ends.
struct Ends {
    conn: u32,
    writers: Writers,
    budgets: Budgets,
}

async fn serve(
    stream: tokio::net::TcpStream,
    mut out: mpsc::UnboundedReceiver<Out>,
    events: Events,
    unread: Arc<Unread>,
    ends: Ends,
) {
    let conn = ends.conn;
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let room = unread.bytes.load(Ordering::Acquire) < MAX_UNREAD;
        tokio::select! {
            read = reader.read(&mut buf), if room => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    unread.bytes.fetch_add(n, Ordering::AcqRel);
                    let _ = events.send(Event::ChannelData(ChannelData { conn, data: buf[..n].to_vec() }));
                }
            },
            () = unread.drained.notified(), if !room => {}
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
    ends.writers
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&conn);
    ends.budgets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&conn);
    let _ = events.send(Event::ChannelClosed(conn));
}
