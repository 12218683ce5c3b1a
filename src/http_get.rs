//! A plain-HTTP GET with a deadline, for `secretwire status` and
//! `secretwire healthcheck` (the controller serves `/status` and `/healthz`
//! over HTTP; the image has no curl).

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};

/// What a GET answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// GETs `url` (`http://HOST:PORT/PATH`); an error says why it could not.
pub async fn get(url: &str, timeout: std::time::Duration) -> Result<Answer, String> {
    if !url.starts_with("http://") {
        return Err(format!("{url}: only http:// URLs (the controller serves plain HTTP)"));
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let req = hyper::Request::get(url)
        .header("user-agent", concat!("secretwire/", env!("CARGO_PKG_VERSION")))
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let call = async {
        let res = client.request(req).await.map_err(|e| format!("{url}: {e}"))?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.map_err(|e| format!("{url}: {e}"))?.to_bytes();
        Ok(Answer { status, body: String::from_utf8_lossy(&body).into_owned() })
    };
    tokio::time::timeout(timeout, call).await.map_err(|_| format!("{url}: no answer within {} s", timeout.as_secs()))?
}
