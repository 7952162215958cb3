//! Replicas hear each other's changes: a write that others act on (learned
//! rules, the classifier) is announced with `NOTIFY` on [`CHANNEL`], and each
//! store listens on a connection of its own.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{NoTls, Socket};

use super::super::StoreError;
use super::{CHANNEL, Pg};

impl Pg {
    /// Tells every replica listening that `tree` changed.
    pub(in crate::store) fn notify(&self, tree: &str) -> Result<(), StoreError> {
        self.with(|c| async move {
            c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &tree])
                .await
                .map(|_| ())
        })
    }

    /// Listens on [`CHANNEL`] on a connection of its own and forwards each
    /// payload (a tree's name) to `tx`, reconnecting after a lost
    /// connection, for as long as the store's runtime lives.
    pub(in crate::store) fn listen(self: &Arc<Self>, tx: tokio::sync::broadcast::Sender<String>) {
        let Some(handle) = self.runtime.handle() else {
            return;
        };
        let config = self.config.clone();
        let tls = self.tls.clone();
        let shown = self.shown.clone();
        handle.spawn(async move {
            let mut failures = 0u32;
            loop {
                let once = match &tls {
                    Some(t) => listen_once(&config, t.clone(), &tx).await,
                    None => listen_once(&config, NoTls, &tx).await,
                };
                match once {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!("listening for changes on {shown}: {e}");
                        let wait = crate::backoff::exponential(500, failures.min(6), 6);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                }
            }
        });
    }
}

/// One listening connection's life: `Ok` when the server closed it.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    tx: &tokio::sync::broadcast::Sender<String>,
) -> Result<(), tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket> + Send,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (msgs_tx, mut msgs) = tokio::sync::mpsc::unbounded_channel();
    // The connection delivers notifications only to whoever polls it.
    let driver = tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    let _ = msgs_tx.send(Ok(n.payload().to_string()));
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = msgs_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Changes made while the connection was down are not heard: tell
    // listeners to re-read everything. (Nobody listening is no error.)
    let _ = tx.send(String::new());
    let result = loop {
        match msgs.recv().await {
            Some(Ok(tree)) => {
                let _ = tx.send(tree);
            }
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    driver.abort();
    result
}
