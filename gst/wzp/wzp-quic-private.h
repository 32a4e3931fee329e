/* Private to wzp-quic.c (the endpoint: socket, routing, accepting) and
 * wzp-quic-conn.c (a connection: streams, datagrams, events, life cycle). */
#pragma once

#include <sys/socket.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>

#include "wzp-cid-table.h"
#include "wzp-quic.h"
#include "wzp-quic-crypto.h"
#include "wzp-tls.h"

G_BEGIN_DECLS

/* our connection IDs: 8 random bytes, as quinn's, RFC 9000's minimum for a
 * client's first one; every packet sent to us carries one (8 bytes less
 * than 16, per packet, on links where a call's bytes count) */
#define CID_LEN 8
#define MAX_PKT 1500
/* a receive buffer: larger than any packet we send or expect (MAX_PKT), so
 * that a larger datagram is read whole, seen as such and dropped */
#define RX_BUF_SIZE 2048
#define RECV_BATCH 32
#define SEND_BATCH 64
#define UNI_MAX (64 * 1024)
#define MAX_PENDING_STREAMS 1024
#define SOCKET_BUFFER (4 * 1024 * 1024)
/* an acknowledgement is held (settings.ack_hold_ms) only while fewer packets
 * than this arrived since the connection last sent one */
#define ACK_HOLD_MAX_PACKETS 8
#define NO_HEAP_POS G_MAXUINT

typedef enum {
  EV_ESTABLISHED,
  EV_SIGNAL,
  EV_UNI,
  EV_DATAGRAM,
} EventType;

/* One allocation per event: the queue link and a datagram's bytes inline. */
typedef struct {
  GList link;
  EventType type;
  gpointer data;                /* WzpSignal* or GBytes* */
  gsize len;                    /* EV_DATAGRAM: bytes[] */
  guint8 bytes[];
} Event;

/* A datagram waiting to be sent, in one allocation with its queue link. */
typedef struct {
  GList link;
  gint64 queued_us;             /* endpoint clock when the application sent it */
  gsize len;
  guint8 data[];
} OutDgram;

typedef struct {
  gint64 id;                    /* -1 until opened */
  gboolean uni;
  /* send side */
  GBytes *out;
  gsize sent;
  gboolean want_fin;
  gboolean fin_sent;
  gboolean queued;
  /* receive side */
  WzpFrameReader *reader;
  GByteArray *uni_data;
  gboolean rx_done;
  gint64 opened_us;
} Stream;

#define STREAM_FAILED ((gpointer) 1)

/* receive and send batch buffers, in wzp-quic.c */
struct RxBatch;
struct TxBatch;

struct _WzpEndpoint {
  GObject parent;
  GMainContext *context;
  GSocket *socket;
  int fd;
  GSource *source;
  GSource *tick;
  GSource *timer;               /* fires the earliest connection deadline */
  GArray *timers;               /* binary min-heap of (deadline, WzpConnection*) */
  struct sockaddr_storage local;
  socklen_t local_len;
  WzpEndpointSettings settings;
  WzpTlsContext *client_tls;
  WzpTlsContext *server_tls;
  CidTable cids;
  GHashTable *conns;            /* WzpConnection* -> owned reference */
  GPtrArray *dirty_list;        /* connections to flush after a batch (c->dirty) */
  guint8 reset_secret[32];
  guint processing;
  gint64 clock_us;              /* the time of the batch being processed, or 0 */
  gboolean reading;             /* in on_socket_readable() */
  gboolean shut_down;
  WzpEndpointStats stats;
  /* packets written during a receive cycle leave in one sendmmsg() */
  gboolean batching;
  guint ntx;
  struct TxBatch *tx;
  WzpPacketFilter filter;
  gpointer filter_data;
  struct RxBatch *rx;
};

/* The clock for ngtcp2 and the ACK hold (monotonic µs): read once per
 * received batch and once per flush rather than once per packet. */
static inline gint64
endpoint_now_us (const WzpEndpoint *ep)
{
  return ep && ep->clock_us ? ep->clock_us : g_get_monotonic_time ();
}

/* ngtcp2's clock: the same, in ns. It must never go back for a connection. */
static inline guint64
endpoint_now_ns (const WzpEndpoint *ep)
{
  return (guint64) endpoint_now_us (ep) * 1000;
}

struct _WzpConnection {
  GObject parent;
  WzpEndpoint *endpoint;        /* not owned; cleared when the endpoint goes */
  ngtcp2_conn *conn;
  WzpTlsSession *tls;
  gboolean server;
  WzpConnectionState state;
  /* the peer's address: IPv4 or IPv6 only, so not a sockaddr_storage (100
   * bytes less per connection) */
  union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
  } remote;
  socklen_t remote_len;
  gchar *remote_str;
  gchar *sni;
  gchar *pin;
  gint64 want;                  /* when it is due (monotonic µs); later than its key
                                 * in the endpoint's heap when it moved */
  guint heap_pos;               /* NO_HEAP_POS when not in the heap */
  guint rx_since_tx;            /* packets received since one was sent */
  gint64 last_dgram_tx;         /* monotonic µs of the last datagram sent */
  gint64 last_dgram_rx;         /* ... and received */
  gboolean force_write;         /* the next conn_write() may not hold back */
  gboolean signalling;          /* its SNI carries no media: never holds (docs/quic.md) */
  gint64 held_since;            /* monotonic µs since frames wait for a packet out, or 0 */
  GHashTable *streams;          /* gint64* id -> Stream*; NULL while empty */
  GQueue pending_open;          /* Stream* waiting for stream credit */
  GQueue out_streams;           /* Stream* with data or FIN to send */
  GQueue out_dgrams;            /* OutDgram* (links inside) */
  GQueue in_dgrams;             /* GBytes* when no handler */
  GQueue events;                /* Event* (links inside) */
  gboolean dirty;               /* in the endpoint's dirty_list */
  GHashTable *ready;            /* stream id -> WzpSignal* or STREAM_FAILED; NULL while empty */
  gboolean ready_changed;       /* an entry was added since collect_ready() */
  gsize max_dgram;              /* wzp_connection_get_max_datagram_size(), cached; 0 unknown */
  gint64 next_remote_bidi;
  gint64 head_wait_since;
  GArray *cids;                 /* CidKey registered in the endpoint */
  WzpDatagramFunc dgram_func;
  gpointer dgram_data;
  GDestroyNotify dgram_destroy;
  GError *close_error;
  /* the peer's CONNECTION_CLOSE, when it sent one */
  gboolean peer_closed, peer_close_application;
  guint64 peer_close_code;
  gchar *peer_close_reason;
  gboolean terminating;
  WzpConnectionStats stats;
};

G_GNUC_INTERNAL gchar * sockaddr_to_string (const struct sockaddr *sa);
G_GNUC_INTERNAL void send_packet (WzpEndpoint *ep, WzpConnection *c, const ngtcp2_path *path, const guint8 *buf, gsize n);
G_GNUC_INTERNAL void endpoint_mark_dirty (WzpEndpoint *ep, WzpConnection *c);
G_GNUC_INTERNAL void endpoint_unmark_dirty (WzpEndpoint *ep, WzpConnection *c);
/* Sets @c's one deadline (monotonic µs), when conn_on_timer (@c) runs; a
 * deadline later than the current one is taken lazily (see wzp-quic.c). */
G_GNUC_INTERNAL void endpoint_timer_set (WzpEndpoint *ep, WzpConnection *c, gint64 deadline);
G_GNUC_INTERNAL void endpoint_timer_clear (WzpEndpoint *ep, WzpConnection *c);
G_GNUC_INTERNAL void conn_on_timer (WzpConnection *c);
G_STATIC_ASSERT (CID_KEY_MAX == NGTCP2_MAX_CIDLEN);
G_GNUC_INTERNAL CidKey cid_key (const guint8 *data, gsize len);

G_GNUC_INTERNAL void fill_callbacks (ngtcp2_callbacks *cb, gboolean server);
G_GNUC_INTERNAL void push_event (WzpConnection *c, EventType type, gpointer data);
G_GNUC_INTERNAL gboolean conn_check_open (WzpConnection *c, GError **error);

/* wzp-quic-stream.c */
G_GNUC_INTERNAL void fill_stream_callbacks (ngtcp2_callbacks *cb);
G_GNUC_INTERNAL void stream_free (Stream *s);
G_GNUC_INTERNAL void free_ready (gpointer key, gpointer value, gpointer data);
/* Opens the streams waiting for credit, as far as the peer grants it. */
G_GNUC_INTERNAL void conn_open_pending (WzpConnection *c);
/* Moves the peer's messages that are complete, in stream order, to the events. */
G_GNUC_INTERNAL void collect_ready (WzpConnection *c);
G_GNUC_INTERNAL WzpConnection * conn_new (WzpEndpoint *ep, const struct sockaddr *remote, socklen_t remote_len, gboolean server);
G_GNUC_INTERNAL void conn_path (WzpConnection *c, ngtcp2_path *path);
G_GNUC_INTERNAL void conn_terminate (WzpConnection *c, GError *reason);
G_GNUC_INTERNAL void register_cid (WzpConnection *c, const guint8 *data, gsize len);
G_GNUC_INTERNAL void conn_read (WzpConnection *c, const struct sockaddr *from, socklen_t fromlen,
                                const guint8 *data, gsize len);
G_GNUC_INTERNAL void conn_flush (WzpConnection *c);
G_GNUC_INTERNAL void conn_prefetch (const WzpConnection *c);
/* Whether a connection with this server name carries signalling only, never
 * media (`_signal`, `_probe`, `ping`, `version`; any case): such a connection
 * announces ngtcp2's default max_ack_delay and never holds acknowledgements
 * back (docs/quic.md), so a lost message is sent again sooner. */
G_GNUC_INTERNAL gboolean wzp_quic_sni_is_signalling (const gchar *sni, gsize len);
/* stream id -> finished message; created when first needed, freed when empty */
G_GNUC_INTERNAL GHashTable * conn_ready_table (WzpConnection *c);
G_GNUC_INTERNAL void conn_kick (WzpConnection *c);
G_GNUC_INTERNAL void stream_reject (WzpConnection *c, Stream *s, const gchar *why);
/* Emits the endpoint's "incoming" for an accepted connection. */
G_GNUC_INTERNAL void wzp_endpoint_emit_incoming (WzpEndpoint *ep, WzpConnection *c);

G_END_DECLS
