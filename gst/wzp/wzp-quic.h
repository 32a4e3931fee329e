/* wzp-quic: WzpEndpoint, one UDP socket carrying any number of QUIC
 * connections, dialled and accepted at once; WzpConnection, one of them with
 * its signal plane (one SignalMessage per bidi stream) and media plane (QUIC
 * DATAGRAMs). Nothing above this file knows ngtcp2.
 *
 * Threading: an endpoint and its connections live in the GMainContext given
 * to wzp_endpoint_new(); call every function from the thread that runs it.
 * Every signal is emitted from that context, never from inside ngtcp2.
 */
#pragma once

#include <gio/gio.h>
#include <sys/socket.h>

#include "wzp-signal.h"

G_BEGIN_DECLS

#define WZP_QUIC_ERROR (wzp_quic_error_quark ())
GQuark wzp_quic_error_quark (void);

typedef enum {
  WZP_QUIC_ERROR_FAILED,          /* local failure (socket, TLS library) */
  WZP_QUIC_ERROR_CLOSED,          /* closed by us, or the endpoint shut down */
  WZP_QUIC_ERROR_PEER_CLOSED,     /* the peer closed; the message has its reason */
  WZP_QUIC_ERROR_IDLE_TIMEOUT,    /* nothing heard within the idle timeout */
  WZP_QUIC_ERROR_HANDSHAKE_TIMEOUT,
  WZP_QUIC_ERROR_HANDSHAKE,       /* TLS/QUIC handshake refused */
  WZP_QUIC_ERROR_PIN_MISMATCH,    /* the server's certificate is not the pinned one */
  WZP_QUIC_ERROR_TOO_LARGE,       /* datagram or message over the limit */
  WZP_QUIC_ERROR_NOT_READY,       /* e.g. a datagram before the handshake */
  WZP_QUIC_ERROR_PROTOCOL,        /* the peer broke QUIC */
} WzpQuicError;

/* 100 ms, not RFC 9002's 333 ms: a lost first flight is sent again after
 * 0.3 s instead of 1 s, and the back-off doubles from there (docs/quic.md) */
#define WZP_INITIAL_RTT_MS 100
/* a busy endpoint reads its socket at most this often, in µs (docs/quic.md) */
#define WZP_RX_HOLD_US 500

typedef struct {
  guint idle_timeout_ms;        /* 30000 (protocol §1.4) */
  guint keep_alive_ms;          /* 5000; 0 disables */
  guint handshake_timeout_ms;   /* 10000 */
  guint max_half_open;          /* accepted connections still in handshake: 256 */
  guint max_connections;        /* 4096 */
  guint datagram_queue;         /* datagrams queued each way (send: waiting for
                                 * congestion window; receive: no handler): 256 */
  guint stream_timeout_ms;      /* a signal stream must complete within: 10000 */
  guint initial_rtt_ms;         /* RTT assumed before the first sample:
                                 * WZP_INITIAL_RTT_MS; sets when a lost handshake
                                 * packet is first sent again (docs/quic.md) */
  guint ack_hold_ms;            /* 40: while media flows, an established connection
                                 * with nothing queued waits this long past ngtcp2's
                                 * timer, so that an acknowledgement rides on the
                                 * next datagram out instead of a packet of its own;
                                 * 0 disables (docs/quic.md) */
  guint rx_hold_us;             /* WZP_RX_HOLD_US: when packets come often enough that this
                                 * long gathers at least two, a wake-up that read
                                 * the socket empty leaves it alone this long, so
                                 * that the next wake-up reads a batch; 0 reads
                                 * each packet as it comes (docs/quic.md) */
  guint datagram_max_wait_ms;   /* WZP_DATAGRAM_MAX_WAIT_MS, 100: a datagram that waited
                                 * this long for the congestion window is dropped and
                                 * counted (media that late only delays what follows);
                                 * 0 keeps every one (docs/quic.md) */
} WzpEndpointSettings;

void wzp_endpoint_settings_init (WzpEndpointSettings *settings);

typedef struct {
  guint64 packets_received;
  guint64 packets_sent;
  guint64 packets_dropped;        /* undecodable, unroutable, empty, truncated */
  guint64 bytes_received;
  guint64 bytes_sent;
  guint64 send_errors;
  guint64 connections_accepted;
  guint64 initials_refused;       /* over the half-open or connection bound */
  guint64 rx_wakeups;             /* wake-ups that read packets */
  guint64 rx_holds;               /* ... after which the socket was left alone for
                                   * rx_hold_us (WzpEndpointSettings) */
  guint connections;
  guint half_open;
} WzpEndpointStats;

typedef enum {
  WZP_CONNECTION_HANDSHAKING,
  WZP_CONNECTION_ESTABLISHED,
  WZP_CONNECTION_CLOSED,
} WzpConnectionState;

typedef struct {
  guint64 rtt_us;                 /* smoothed */
  guint64 min_rtt_us;
  guint64 rttvar_us;
  guint64 cwnd;
  guint64 bytes_sent;             /* UDP payload bytes */
  guint64 bytes_received;
  guint64 packets_sent;
  guint64 packets_received;
  guint64 datagrams_sent;
  guint64 datagrams_received;
  guint64 datagrams_lost;         /* reported lost by QUIC */
  guint64 datagrams_dropped;      /* a queue was full: its oldest dropped; or one
                                   * waited longer than datagram_max_wait_ms */
  guint64 datagrams_queued;       /* waiting to be sent now */
  guint64 signals_sent;
  guint64 signals_received;
  guint64 bad_streams;            /* oversized, malformed, unfinished, reset */
  guint64 unknown_signals;        /* well-formed, unknown variant: skipped */
  guint64 migrations;             /* the peer's address changed (NAT rebinding) */
} WzpConnectionStats;

#define WZP_TYPE_ENDPOINT (wzp_endpoint_get_type ())
G_DECLARE_FINAL_TYPE (WzpEndpoint, wzp_endpoint, WZP, ENDPOINT, GObject)
#define WZP_TYPE_CONNECTION (wzp_connection_get_type ())
G_DECLARE_FINAL_TYPE (WzpConnection, wzp_connection, WZP, CONNECTION, GObject)

/* Binds a UDP socket to @bind (IPv4, IPv6; port 0 = any) and attaches it to
 * @context (NULL = the thread-default context). @settings NULL = defaults. */
WzpEndpoint *wzp_endpoint_new (GSocketAddress *bind, GMainContext *context,
                               const WzpEndpointSettings *settings, GError **error);
/* Accepts connections from now on, with a self-signed Ed25519 certificate made
 * from @tls_seed (32 bytes; NULL: a fresh random key). */
gboolean wzp_endpoint_listen (WzpEndpoint *endpoint, const guint8 *tls_seed, GError **error);
/* A listening endpoint asks a client dialling "call-*" for its certificate
 * (gst-wzp's authenticated direct path). Off by default: relays do not. */
void wzp_endpoint_set_ask_call_certificates (WzpEndpoint *endpoint, gboolean ask);
/* The certificate fingerprint (95-char colon hex) when listening, else NULL. */
const gchar *wzp_endpoint_get_fingerprint (WzpEndpoint *endpoint);
GInetSocketAddress *wzp_endpoint_get_local_address (WzpEndpoint *endpoint);
/* The initial RTT for connections dialled from now on (e.g. a measured RTT
 * to the same relay); 0 restores the default. */
void wzp_endpoint_set_initial_rtt (WzpEndpoint *endpoint, guint rtt_ms);
guint16 wzp_endpoint_get_port (WzpEndpoint *endpoint);
void wzp_endpoint_get_stats (WzpEndpoint *endpoint, WzpEndpointStats *stats);
/* Dials @remote from this endpoint's socket. @sni NULL sends no server name.
 * @pin (a TLS fingerprint, any case, colons optional) makes the handshake fail
 * unless the server presents that certificate. The connection is ready when
 * it emits "established". Returns a new reference. */
WzpConnection *wzp_endpoint_connect (WzpEndpoint *endpoint, GSocketAddress *remote,
                                     const gchar *sni, const gchar *pin, GError **error);
/* Test-only fault injection (off unless set): return TRUE to drop a packet
 * to (@sending) or from @remote. */
/* Whether the endpoint's socket can send to @remote (an IPv6 socket is
 * dual-stack and reaches IPv4 too; an IPv4 socket only IPv4). */
gboolean wzp_endpoint_can_reach (WzpEndpoint *endpoint, GSocketAddress *remote);
/* Sends one 1-byte UDP datagram to @remote from the endpoint's socket: it
 * opens a NAT mapping toward a peer that is about to dial us (hole
 * punching); QUIC stacks drop it. Goes through the test filter. */
gboolean wzp_endpoint_send_punch (WzpEndpoint *endpoint, GSocketAddress *remote);
typedef gboolean (*WzpPacketFilter) (const struct sockaddr *remote, gboolean sending, gpointer data);
void wzp_endpoint_set_test_filter (WzpEndpoint *endpoint, WzpPacketFilter filter, gpointer data);

/* Closes every connection with @code/@reason and stops reading the socket. */
void wzp_endpoint_shutdown (WzpEndpoint *endpoint, guint64 code, const gchar *reason);

typedef void (*WzpDatagramFunc) (WzpConnection *connection, const guint8 *data, gsize len,
                                 gpointer user_data);

gboolean wzp_connection_send_signal (WzpConnection *connection, const WzpSignal *msg,
                                     GError **error);
/* Sends bytes that are already a frame (length prefix + JSON) on a new bidi
 * stream, unchanged: for forwarding what a peer sent. */
gboolean wzp_connection_send_frame (WzpConnection *connection, GBytes *frame, GError **error);
/* Opens a unidirectional stream, writes @data and finishes it. */
gboolean wzp_connection_send_uni (WzpConnection *connection, GBytes *data, GError **error);
/* Queues one DATAGRAM; refused (not truncated) when over
 * wzp_connection_get_max_datagram_size(). */
gboolean wzp_connection_send_datagram (WzpConnection *connection, const guint8 *data, gsize len,
                                       GError **error);
/* Largest datagram payload the peer and the path take now; 0 before the
 * handshake or when the peer has no DATAGRAM support. */
gsize wzp_connection_get_max_datagram_size (WzpConnection *connection);
/* Received datagrams go to @func (called in the endpoint's context) instead
 * of the queue read by wzp_connection_pop_datagram(). */
void wzp_connection_set_datagram_handler (WzpConnection *connection, WzpDatagramFunc func,
                                          gpointer user_data, GDestroyNotify destroy);
/* The oldest queued datagram, or NULL. */
GBytes *wzp_connection_pop_datagram (WzpConnection *connection);
/* Closes with application error @code and @reason (protocol §1.8). */
void wzp_connection_close (WzpConnection *connection, guint64 code, const gchar *reason);
/* Starts a QUIC key update (RFC 9001 §6): packets from now on use the next
 * keys. Refused (WZP_QUIC_ERROR_NOT_READY) before the handshake is confirmed
 * and while the previous update is not yet confirmed by the peer. */
gboolean wzp_connection_update_keys (WzpConnection *connection, GError **error);
/* Test only: sends @data as TLS handshake bytes at the 1-RTT level, as a
 * post-handshake message would be (RFC 9001 §4.1.3). */
gboolean wzp_connection_test_send_tls (WzpConnection *connection, const guint8 *data, gsize len);

WzpConnectionState wzp_connection_get_state (WzpConnection *connection);
gboolean wzp_connection_is_server (WzpConnection *connection);
WzpEndpoint *wzp_connection_get_endpoint (WzpConnection *connection);
/* Server side: the SNI the client sent; NULL when it sent none. Client side:
 * the SNI we sent. */
const gchar *wzp_connection_get_sni (WzpConnection *connection);
/* The peer's certificate fingerprint (client side, and server side when the
 * client showed one), once established. */
const gchar *wzp_connection_get_peer_fingerprint (WzpConnection *connection);
/* The peer certificate's raw Ed25519 public key; FALSE without one. */
gboolean wzp_connection_get_peer_public_key (WzpConnection *connection, guint8 out[32]);
/* "a.b.c.d:port" or "[v6]:port" (IPv4-mapped addresses print as IPv4). */
const gchar *wzp_connection_get_remote_address (WzpConnection *connection);
void wzp_connection_get_stats (WzpConnection *connection, WzpConnectionStats *stats);
/* Why it closed, once closed. */
const GError *wzp_connection_get_close_error (WzpConnection *connection);
/* When the peer closed the connection: the reason phrase of its
 * CONNECTION_CLOSE ("" when it gave none), its error code and whether it was
 * an application close. NULL when the peer did not close it (a timeout, or
 * we closed it). Close reasons are matched on this, never on messages. */
const gchar *wzp_connection_get_peer_close (WzpConnection *connection, guint64 *code,
                                            gboolean *application);

/* Formats a socket address the way WZP does (protocol: "address string"). */
gchar *wzp_socket_address_to_string (GSocketAddress *address);
/* Parses "a.b.c.d:port" / "[v6]:port": numeric addresses only (what peers
 * send is parsed with this, never resolved). The error quotes @text. */
GSocketAddress *wzp_socket_address_parse (const gchar *text, GError **error);
/* The same, and a host name resolved with GResolver (blocking): for
 * addresses a user gives. The error quotes @text and says why. */
GSocketAddress *wzp_socket_address_resolve (const gchar *text, GError **error);
/* Whether @text has the shape host:port / [v6]:port, without resolving. */
gboolean wzp_socket_address_check (const gchar *text, GError **error);

G_END_DECLS
