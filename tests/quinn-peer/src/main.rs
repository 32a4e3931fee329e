//! A WZP-shaped QUIC peer built on quinn/rustls, the stack family upstream WZP
//! uses. It exercises what gst-wzp's endpoint must interoperate with: ALPN
//! "wzp", SNI "_signal", one length-prefixed JSON message per bidi stream in
//! each direction, DATAGRAMs both ways, and an application close.
//!
//!   wzp-quinn-peer server CERT.der KEY.der   prints "LISTEN <port>", serves one connection
//!   wzp-quinn-peer client HOST:PORT SNI      dials, runs the same exchange
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
        _ => {
            eprintln!("usage: wzp-quinn-peer server CERT.der KEY.der | client HOST:PORT SNI");
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
