//! The accept loop of every host server, and HTTP/1 serving on it.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tracing::{debug, info, warn};

use crate::endpoint::{Listener, Stream};

/// How long to wait after a failed accept (out of file descriptors, ...) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown` completes, each served by `connection`
/// on a task of its own. A failed accept is logged and retried.
pub async fn accept_loop<F, Fut>(
    listener: &Listener,
    shutdown: impl Future<Output = ()>,
    connection: F,
) where
    F: Fn(Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("shutting down");
                return;
            }
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    tokio::spawn(connection(stream));
                }
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

/// Serves HTTP/1 on `listener` until `shutdown` completes: `handler` answers each request.
/// With `header_read_timeout`, a client that does not finish its request head in time is
/// disconnected.
pub async fn serve_http<H, Fut>(
    listener: &Listener,
    header_read_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    accept_loop(listener, shutdown, |stream| {
        let handler = handler.clone();
        async move {
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let mut builder = http1::Builder::new();
            if let Some(timeout) = header_read_timeout {
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(timeout);
            }
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "http connection ended");
            }
        }
    })
    .await;
}

/// Serves HTTP/1 over TLS (`tls`) on `listener` until `shutdown` completes. A handshake that
/// fails or does not finish within `handshake_timeout` ends the connection.
pub async fn serve_https<H, Fut>(
    listener: &Listener,
    tls: std::sync::Arc<rustls::ServerConfig>,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()>,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    accept_loop(listener, shutdown, |stream| {
        let handler = handler.clone();
        let acceptor = acceptor.clone();
        async move {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        debug!(error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => {
                        debug!("tls handshake timed out");
                        return;
                    }
                };
            let service = service_fn(move |request| {
                let answer = handler(request);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                debug!(error = %e, "https connection ended");
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use protocol::Endpoint;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn serves_http_until_shutdown() {
        let listener = Listener::bind(&Endpoint::Tcp("127.0.0.1:0".into()))
            .await
            .unwrap();
        let bound = listener.local_endpoint().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            serve_http(
                &listener,
                Some(Duration::from_secs(5)),
                async {
                    let _ = stopped.await;
                },
                |request: Request<Incoming>| async move {
                    Response::new(Full::new(Bytes::from(request.uri().path().to_string())))
                },
            )
            .await;
        });
        let mut s = crate::connect(&bound).await.unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("/ping"), "{answer}");
        stop.send(()).unwrap();
        server.await.unwrap();
    }
}
