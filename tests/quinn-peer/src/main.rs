//! A WZP-shaped QUIC peer built on quinn/rustls, the stack family upstream WZP
//! uses. It exercises what gst-wzp's endpoint must interoperate with: ALPN
//! "wzp", SNI "_signal", one length-prefixed JSON message per bidi stream in
//! each direction, DATAGRAMs both ways, and an application close.
//!
//!   wzp-quinn-peer server CERT.der KEY.der   prints "LISTEN <port>", serves one connection
//!   wzp-quinn-peer client HOST:PORT SNI      dials, runs the same exchange
//!   wzp-quinn-peer load HOST:PORT LEGS SECONDS ROOM-PREFIX
//!                                            relay load (bench/bench-relay): see load()
//!
//! Prints "OK ..." and exits 0 when everything arrived, else exits 1.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const DATAGRAMS: usize = 100;

struct AcceptAny;

impl rustls::client::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::Certificate,
        _intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp: &[u8],
        _now: std::time::SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::ServerCertVerified::assertion())
    }
}

fn frame(json: &str) -> Vec<u8> {
    let mut v = (json.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(json.as_bytes());
    v
}

fn unframe(data: &[u8]) -> Result<String, String> {
    if data.len() < 4 {
        return Err(format!("frame of {} bytes", data.len()));
    }
    let n = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if data.len() < 4 + n {
        return Err(format!("frame announces {} bytes, has {}", n, data.len() - 4));
    }
    String::from_utf8(data[4..4 + n].to_vec()).map_err(|e| e.to_string())
}

fn transport() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.datagram_receive_buffer_size(Some(65536));
    t.max_idle_timeout(Some(Duration::from_secs(30).try_into().unwrap()));
    t.keep_alive_interval(Some(Duration::from_secs(5)));
    Arc::new(t)
}

/// The exchange both roles run once connected: send our message on a new
/// bidi stream, read the peer's from the stream it opens, datagrams both ways,
/// then a final Hangup each way.
async fn exchange(
    conn: &quinn::Connection,
    is_client: bool,
    ours: &str,
    theirs: &str,
) -> Result<(), String> {
    send_message(conn, ours).await?;
    let got = recv_message(conn).await?;
    if got != theirs {
        return Err(format!("expected {theirs}, got {got}"));
    }

    // A key update (RFC 9001 §6) before the datagrams go both ways, once the
    // peer has had more than a probe timeout since the handshake to derive
    // its next keys: each side then reads the other in the new key phase.
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.force_key_update();

    for i in 0..DATAGRAMS {
        let mut d = vec![0u8; 100];
        d[..8].copy_from_slice(&(i as u64).to_le_bytes());
        conn.send_datagram(bytes::Bytes::from(d)).map_err(|e| e.to_string())?;
    }
    let mut received = 0;
    while received < DATAGRAMS {
        let d = tokio::time::timeout(Duration::from_secs(10), conn.read_datagram())
            .await
            .map_err(|_| format!("only {received} datagrams arrived"))?
            .map_err(|e| e.to_string())?;
        if d.len() != 100 {
            return Err(format!("datagram of {} bytes", d.len()));
        }
        received += 1;
    }
    // Datagrams are unreliable and may still sit in a send queue: each side
    // says on a stream that it has them all. The client speaks first and
    // closes last, so the server has read everything before the close.
    let bye = r#"{"Hangup":{"reason":"Normal"}}"#;
    if is_client {
        send_message(conn, bye).await?;
    }
    let got = recv_message(conn).await?;
    if got != bye {
        return Err(format!("expected the final Hangup, got {got}"));
    }
    if !is_client {
        // quinn's finish() waits for the ACK, which may race the client's
        // close; the close reason checked by server() is what matters.
        let _ = send_message(conn, bye).await;
    }
    Ok(())
}

async fn send_message(conn: &quinn::Connection, json: &str) -> Result<(), String> {
    let (mut send, _recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    send.write_all(&frame(json)).await.map_err(|e| e.to_string())?;
    send.finish().await.map_err(|e| e.to_string())
}

async fn recv_message(conn: &quinn::Connection) -> Result<String, String> {
    let (_send, recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
    let data = recv.read_to_end(1 << 20).await.map_err(|e| e.to_string())?;
    unframe(&data)
}

async fn server(cert: Vec<u8>, key: Vec<u8>) -> Result<String, String> {
    let mut crypto = rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(vec![rustls::Certificate(cert)], rustls::PrivateKey(key))
        .map_err(|e| e.to_string())?;
    crypto.alpn_protocols = vec![b"wzp".to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport = transport();
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap())
        .map_err(|e| e.to_string())?;
    println!("LISTEN {}", endpoint.local_addr().unwrap().port());

    let connecting = tokio::time::timeout(Duration::from_secs(20), endpoint.accept())
        .await
        .map_err(|_| "no connection came".to_string())?
        .ok_or("endpoint closed")?;
    let conn = connecting.await.map_err(|e| e.to_string())?;
    let hd = conn
        .handshake_data()
        .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .ok_or("no handshake data")?;
    let sni = hd.server_name.clone().unwrap_or_default();
    let alpn = hd.protocol.clone().unwrap_or_default();
    if alpn != b"wzp" {
        return Err(format!("ALPN {:?}", alpn));
    }
    exchange(&conn, false, r#"{"Pong":{"timestamp_ms":2}}"#, r#"{"Ping":{"timestamp_ms":1}}"#).await?;
    let reason = match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(c) => {
            String::from_utf8_lossy(&c.reason).to_string()
        }
        e => return Err(format!("closed with {e}")),
    };
    Ok(format!("sni={sni} close={reason}"))
}

async fn client(addr: SocketAddr, sni: String) -> Result<String, String> {
    let mut crypto = rustls::ClientConfig::builder()
        .with_safe_defaults()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"wzp".to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    endpoint.set_default_client_config(config);
    let conn = endpoint
        .connect(addr, &sni)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    exchange(&conn, true, r#"{"Ping":{"timestamp_ms":1}}"#, r#"{"Pong":{"timestamp_ms":2}}"#).await?;
    conn.close(0u32.into(), b"done");
    endpoint.wait_idle().await;
    Ok("client exchange complete".to_string())
}

/// Relay load as upstream's quinn clients make it: LEGS connections (on
/// endpoints of 50 connections each), legs 2i and 2i+1 in room
/// ROOM-PREFIX-i, each joining with the CallOffer read from stdin (one JSON
/// line), then sending a 92-byte media datagram every 20 ms at a phase of its
/// own for SECONDS. Prints "READY" once every leg is in its room and
/// "DONE <sent> <received>" 300 ms after the last datagram was sent.
async fn load(addr: SocketAddr, legs: usize, secs: u64, prefix: String) -> Result<String, String> {
    let mut offer = String::new();
    std::io::stdin().read_line(&mut offer).map_err(|e| e.to_string())?;
    let offer = offer.trim().to_string();
    let mut crypto = rustls::ClientConfig::builder()
        .with_safe_defaults()
        .with_custom_certificate_verifier(Arc::new(AcceptAny))
        .with_no_client_auth();
    crypto.alpn_protocols = vec![b"wzp".to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport());
    let mut endpoints = Vec::new();
    let mut joins = Vec::new();
    for i in 0..legs {
        if i % 50 == 0 {
            let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap())
                .map_err(|e| e.to_string())?;
            ep.set_default_client_config(config.clone());
            endpoints.push(ep);
        }
        let ep = endpoints.last().unwrap().clone();
        let room = format!("{prefix}-{}", i / 2);
        let offer = offer.clone();
        joins.push(tokio::spawn(async move {
            let conn = ep.connect(addr, &room).map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
            send_message(&conn, &offer).await?;
            let answer = recv_message(&conn).await?;
            if !answer.contains("CallAnswer") {
                return Err(format!("expected CallAnswer, got {answer}"));
            }
            Ok::<quinn::Connection, String>(conn)
        }));
        if i % 32 == 31 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let mut conns = Vec::new();
    for j in joins {
        conns.push(j.await.map_err(|e| e.to_string())??);
    }
    println!("READY");
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = tokio::time::Instant::now();
    let end = t0 + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let c = conn.clone();
        let got = received.clone();
        tasks.push(tokio::spawn(async move {
            while let Ok(_d) = c.read_datagram().await {
                got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        let c = conn.clone();
        let n = sent.clone();
        let phase = Duration::from_micros(20_000 * i as u64 / legs as u64);
        tasks.push(tokio::spawn(async move {
            let mut due = t0 + phase;
            let mut seq: u16 = 0;
            while due < end {
                tokio::time::sleep_until(due).await;
                let mut d = vec![0u8; 92];
                // media header (protocol §3): version 0, Opus24k, seq, timestamp
                d[1] = 0x00;
                d[2..4].copy_from_slice(&seq.to_be_bytes());
                d[4..8].copy_from_slice(&(seq as u32 * 20).to_be_bytes());
                if c.send_datagram(bytes::Bytes::from(d)).is_ok() {
                    n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                seq = seq.wrapping_add(1);
                due += Duration::from_millis(20);
            }
        }));
    }
    tokio::time::sleep_until(end + Duration::from_millis(300)).await;
    let (s, r) = (sent.load(std::sync::atomic::Ordering::Relaxed), received.load(std::sync::atomic::Ordering::Relaxed));
    println!("DONE {s} {r}");
    for c in &conns {
        c.close(0u32.into(), b"bench");
    }
    for t in tasks {
        t.abort();
    }
    Ok(format!("load sent={s} received={r}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("server") if args.len() == 4 => {
            let cert = std::fs::read(&args[2]).expect("certificate file");
            let key = std::fs::read(&args[3]).expect("key file");
            server(cert, key).await
        }
        Some("client") if args.len() == 4 => {
            client(args[2].parse().expect("HOST:PORT"), args[3].clone()).await
        }
        Some("load") if args.len() == 6 => {
            load(
                args[2].parse().expect("HOST:PORT"),
                args[3].parse().expect("LEGS"),
                args[4].parse().expect("SECONDS"),
                args[5].clone(),
            )
            .await
        }
        _ => {
            eprintln!(
                "usage: wzp-quinn-peer server CERT.der KEY.der | client HOST:PORT SNI | \
                 load HOST:PORT LEGS SECONDS ROOM-PREFIX"
            );
            std::process::exit(2);
        }
    };
    match result {
        Ok(msg) => println!("OK {msg}"),
        Err(e) => {
            println!("FAIL {e}");
            std::process::exit(1);
        }
    }
}
