//! A fault-injecting HTTP proxy between secretwire and moto (test utility).
//!
//! Every request is identified (service from the SigV4 credential scope,
//! operation from `X-Amz-Target` or the query `Action`), recorded, and then,
//! as drawn from a seeded generator, either forwarded or answered with a
//! fault: a protocol-correct throttling error (JSON `__type`
//! ThrottlingException; IAM/STS query XML `Throttling`), a 500 or 503, added
//! latency, a connection closed before moto saw the request (reset), or —
//! the nasty one — the request forwarded, applied by moto, and the answer
//! lost (the connection closed without a response).
//!
//! It runs on its own thread and runtime, so a test blocked on a child
//! process does not stall it. Request bodies are never kept or printed: they
//! carry values.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::awsshape::{Shape, ShapeState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Throttle,
    ServerError,
    Unavailable,
    Latency,
    Reset,
    LostAnswer,
}

/// Shares of calls that get each fault (drawn in this order), and which
/// operations are spared.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub throttle: f64,
    pub server_error: f64,
    pub unavailable: f64,
    pub latency: f64,
    pub latency_by: Duration,
    pub reset: f64,
    pub lost_answer: f64,
    /// The first answer to each of these operations is always lost (so the
    /// nasty path runs every time, not only when the dice say so).
    pub lose_first: Vec<&'static str>,
    /// Operations never faulted.
    pub spare: Vec<&'static str>,
    /// When not empty: the only operations faulted.
    pub only: Vec<&'static str>,
    /// Operations whose answer is never lost (other faults still apply).
    pub never_lose: Vec<&'static str>,
}

/// One call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: String,
    pub operation: String,
    pub fault: Option<Fault>,
    /// Moto answered 2xx (whether or not the answer reached the caller).
    pub applied: bool,
    /// For ECS UpdateService with forceNewDeployment: the service.
    pub forced_service: Option<String>,
}

struct State {
    upstream: SocketAddr,
    /// Answers rewritten to AWS's shape (`awsshape`), if set.
    shape: Option<Shape>,
    shape_state: Mutex<ShapeState>,
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    calls: Mutex<Vec<Call>>,
    lost_once: Mutex<BTreeSet<String>>,
}

pub struct FaultProxy {
    pub url: String,
    state: Arc<State>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. moto's `http://127.0.0.1:PORT`).
    /// The seed comes from `SECRETWIRE_FAULT_SEED` when set, else `seed`.
    pub fn start(upstream: &str, faults: Faults, seed: u64) -> Self {
        Self::start_shaped(upstream, faults, seed, None)
    }

    /// A proxy that also answers as AWS does where moto does not (`awsshape`).
    pub fn start_shaped(upstream: &str, faults: Faults, seed: u64, shape: Option<Shape>) -> Self {
        let seed = std::env::var("SECRETWIRE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(seed);
        eprintln!("fault proxy seed {seed} (set SECRETWIRE_FAULT_SEED to replay)");
        let upstream: SocketAddr = upstream.trim_start_matches("http://").trim_end_matches('/').parse().unwrap();
        let state = Arc::new(State {
            upstream,
            shape,
            shape_state: Mutex::new(ShapeState::default()),
            faults: Mutex::new(faults),
            rng: Mutex::new(seed ^ 0x9E37_79B9_7F4A_7C15),
            calls: Mutex::new(Vec::new()),
            lost_once: Mutex::new(BTreeSet::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else { continue };
                        let st = st.clone();
                        tokio::spawn(async move {
                            let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                            let _ = hyper::server::conn::http1::Builder::new()
                                .keep_alive(true)
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).expect("proxy started");
        Self { url: format!("http://{addr}"), state, stop: Some(stop_tx) }
    }

    /// From now on, the deployments of `service` go as `script` says (needs a shaped proxy).
    pub fn script(&self, service: &str, script: crate::awsshape::Script) {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        self.script_since(service, script, since);
    }

    /// The deployments of `service` created since `since` (epoch seconds) go as `script` says.
    pub fn script_since(&self, service: &str, script: crate::awsshape::Script, since: f64) {
        assert!(self.state.shape.is_some(), "rollout scripts need a shaped proxy");
        self.state.shape_state.lock().unwrap().scripts.insert(service.to_string(), (script, since));
    }

    /// The deployments of `service` go as moto (or the shape) says again.
    pub fn unscript(&self, service: &str) {
        self.state.shape_state.lock().unwrap().scripts.remove(service);
    }

    /// The rotation configuration the shaped proxy holds for a secret (by name).
    pub fn rotation(&self, secret: &str) -> Option<crate::awsshape::Rotation> {
        self.state.shape_state.lock().unwrap().rotations.get(secret).cloned()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// How many calls got `fault`.
    pub fn count(&self, fault: Fault) -> usize {
        self.calls().iter().filter(|c| c.fault == Some(fault)).count()
    }

    /// Forced deployments moto actually started for `service`.
    pub fn deployments_started(&self, service: &str) -> usize {
        self.calls().iter().filter(|c| c.applied && c.forced_service.as_deref() == Some(service)).count()
    }

    /// Writes that reached moto and whose answer was lost, as `Service:Operation`.
    pub fn lost_writes(&self) -> BTreeSet<String> {
        self.calls()
            .iter()
            .filter(|c| c.applied && c.fault == Some(Fault::LostAnswer) && is_write(&c.operation))
            .map(|c| format!("{}:{}", c.service, c.operation))
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn is_write(op: &str) -> bool {
    !["Describe", "List", "Get", "Receive"].iter().any(|p| op.starts_with(p))
}

impl State {
    fn draw(&self) -> f64 {
        // splitmix64
        let mut s = self.rng.lock().unwrap();
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick(&self, op: &str) -> Option<Fault> {
        let f = self.faults.lock().unwrap().clone();
        if f.spare.contains(&op) || (!f.only.is_empty() && !f.only.contains(&op)) {
            return None;
        }
        let lost = if f.never_lose.contains(&op) { 0.0 } else { f.lost_answer };
        let x = self.draw();
        let mut edge = 0.0;
        for (share, fault) in [
            (f.throttle, Fault::Throttle),
            (f.server_error, Fault::ServerError),
            (f.unavailable, Fault::Unavailable),
            (f.latency, Fault::Latency),
            (f.reset, Fault::Reset),
            (lost, Fault::LostAnswer),
        ] {
            edge += share;
            if x < edge {
                return Some(fault);
            }
        }
        None
    }
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    let json = parts.headers.contains_key("x-amz-target");
    let scope = |i: usize| {
        parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|a| a.split("Credential=").nth(1))
            .and_then(|c| c.split('/').nth(i))
            .unwrap_or("?")
            .to_string()
    };
    let (region, service) = (scope(2), scope(3));
    let operation = if json {
        let t = parts.headers["x-amz-target"].to_str().unwrap_or_default();
        t.rsplit('.').next().unwrap_or_default().to_string()
    } else {
        String::from_utf8_lossy(&body).split('&').find_map(|kv| kv.strip_prefix("Action=")).unwrap_or("?").to_string()
    };
    let forced_service = (operation == "UpdateService")
        .then(|| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .flatten()
        .filter(|v| v["forceNewDeployment"] == serde_json::json!(true))
        .and_then(|v| v["service"].as_str().map(|s| s.rsplit('/').next().unwrap_or(s).to_string()));
    let fault = st.pick(&operation);
    let sqs = service == "sqs";
    let index = {
        let mut calls = st.calls.lock().unwrap();
        calls.push(Call { service, operation: operation.clone(), fault, applied: false, forced_service });
        calls.len() - 1
    };
    match fault {
        Some(Fault::Throttle) => {
            return Ok(error(sqs, json, 400, "Throttling", "ThrottlingException", "Rate exceeded"));
        }
        Some(Fault::ServerError) => {
            return Ok(error(sqs, json, 500, "InternalFailure", "InternalFailure", "We encountered an internal error"));
        }
        Some(Fault::Unavailable) => {
            return Ok(error(
                sqs,
                json,
                503,
                "ServiceUnavailable",
                "ServiceUnavailableException",
                "Service unavailable",
            ));
        }
        Some(Fault::Reset) => return Err(std::io::Error::other("injected: connection reset")),
        Some(Fault::Latency) => {
            let by = st.faults.lock().unwrap().latency_by;
            tokio::time::sleep(by).await;
        }
        _ => {}
    }
    let shaped = st.shape.is_some().then(|| st.calls.lock().unwrap()[index].service.clone());
    let mut body = body;
    if let (Some(shape), Some(service)) = (&st.shape, &shaped) {
        let before = shape.before(&mut st.shape_state.lock().unwrap(), service, &operation, body.to_vec());
        match before {
            crate::awsshape::Before::Answer(b) => {
                let answer = Response::builder()
                    .status(200)
                    .header("content-type", "application/x-amz-json-1.1")
                    .header("x-amzn-requestid", "aws-shape")
                    .body(Full::new(Bytes::from(b)))
                    .unwrap();
                st.calls.lock().unwrap()[index].applied = true;
                return Ok(answer);
            }
            crate::awsshape::Before::Forward(b) => body = Bytes::from(b),
        }
    }
    let mut parts = parts;
    parts.headers.insert("content-length", body.len().to_string().parse().unwrap());
    let (mut answer, mut answer_body) = forward(st.upstream, parts, body).await?;
    if answer.status.is_success() {
        st.calls.lock().unwrap()[index].applied = true;
        if let (Some(shape), Some(service)) = (&st.shape, shaped) {
            let mut ss = st.shape_state.lock().unwrap();
            answer_body = Bytes::from(shape.rewrite(&mut ss, &service, &operation, &region, answer_body.to_vec()));
            answer.headers.insert("content-length", answer_body.len().to_string().parse().unwrap());
        }
    }
    // The first answer to a `lose_first` operation that did something (for
    // ReceiveMessage: that carried a message) is lost.
    let fault = match fault {
        None | Some(Fault::Latency)
            if answer.status.is_success()
                && st.faults.lock().unwrap().lose_first.contains(&operation.as_str())
                && (operation != "ReceiveMessage" || answer_body.windows(13).any(|w| w == b"ReceiptHandle"))
                && st.lost_once.lock().unwrap().insert(operation.clone()) =>
        {
            st.calls.lock().unwrap()[index].fault = Some(Fault::LostAnswer);
            Some(Fault::LostAnswer)
        }
        f => f,
    };
    if fault == Some(Fault::LostAnswer) {
        return Err(std::io::Error::other("injected: answer lost after the upstream applied the call"));
    }
    Ok(Response::from_parts(answer, Full::new(answer_body)))
}

fn error(
    sqs: bool,
    json: bool,
    status: u16,
    query_code: &str,
    json_type: &str,
    message: &str,
) -> Response<Full<Bytes>> {
    let (ctype, body) = if json {
        ("application/x-amz-json-1.1", serde_json::json!({"__type": json_type, "message": message}).to_string())
    } else {
        let kind = if status < 500 { "Sender" } else { "Receiver" };
        (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{query_code}</Code><Message>{message}</Message></Error>\
                 <RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        )
    };
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", ctype)
        .header("x-amzn-requestid", "fault-proxy");
    if json && sqs {
        // SQS's JSON protocol reads the query-compatible code from this header.
        b = b
            .header("x-amzn-query-error", format!("{query_code};{}", if status < 500 { "Sender" } else { "Receiver" }));
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

async fn forward(
    upstream: SocketAddr,
    parts: hyper::http::request::Parts,
    body: Bytes,
) -> Result<(hyper::http::response::Parts, Bytes), std::io::Error> {
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let mut req = Request::from_parts(parts, Full::new(body));
    req.headers_mut().insert("connection", "close".parse().unwrap());
    let res = sender.send_request(req).await.map_err(std::io::Error::other)?;
    let (mut parts, body) = res.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?.to_bytes();
    parts.headers.remove("transfer-encoding");
    parts.headers.remove("connection");
    parts.headers.insert("content-length", body.len().to_string().parse().unwrap());
    Ok((parts, body))
}
