/* wzp-quic: the QUIC endpoint over ngtcp2 (see wzp-quic.h).
 *
 * One socket, many connections: every datagram is routed by its destination
 * connection ID; an unknown Initial becomes an accepted connection. ngtcp2 is
 * never re-entered from its own callbacks: callbacks only record events, which
 * are delivered (and packets written) after ngtcp2 returns.
 */
#define G_LOG_DOMAIN "wzp-quic"
#define _GNU_SOURCE             /* recvmmsg */

#include "wzp-quic.h"
#include "wzp-tls.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <ngtcp2/ngtcp2.h>

G_DEFINE_QUARK (wzp-quic-error-quark, wzp_quic_error)

#define CID_LEN 16
#define MAX_PKT 1500
#define RECV_BATCH 32
#define SEND_BATCH 64
#define UNI_MAX (64 * 1024)
#define MAX_PENDING_STREAMS 1024
#define SOCKET_BUFFER (4 * 1024 * 1024)

static guint64
now_ns (void)
{
  return (guint64) g_get_monotonic_time () * 1000;
}

/* ---- connection ID keys -------------------------------------------------- */

typedef struct {
  guint8 len;
  guint8 data[NGTCP2_MAX_CIDLEN];
} CidKey;

static guint
cid_hash (gconstpointer p)
{
  const CidKey *k = p;
  guint h = 2166136261u;

  for (guint i = 0; i < k->len; i++)
    h = (h ^ k->data[i]) * 16777619u;
  return h;
}

static gboolean
cid_equal (gconstpointer a, gconstpointer b)
{
  const CidKey *x = a, *y = b;

  return x->len == y->len && memcmp (x->data, y->data, x->len) == 0;
}

static CidKey
cid_key (const guint8 *data, gsize len)
{
  CidKey k = { (guint8) MIN (len, NGTCP2_MAX_CIDLEN) };

  memcpy (k.data, data, k.len);
  return k;
}

/* ---- types ------------------------------------------------------------------- */

typedef enum {
  EV_ESTABLISHED,
  EV_SIGNAL,
  EV_UNI,
  EV_DATAGRAM,
} EventType;

typedef struct {
  EventType type;
  gpointer data;                /* WzpSignal* or GBytes* */
} Event;

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

struct _WzpEndpoint {
  GObject parent;
  GMainContext *context;
  GSocket *socket;
  int fd;
  GSource *source;
  GSource *tick;
  struct sockaddr_storage local;
  socklen_t local_len;
  WzpEndpointSettings settings;
  WzpTlsContext *client_tls;
  WzpTlsContext *server_tls;
  GHashTable *cids;             /* CidKey* -> WzpConnection* (borrowed) */
  GHashTable *conns;            /* WzpConnection* -> owned reference */
  GHashTable *dirty;            /* WzpConnection* set, flushed after a batch */
  guint8 reset_secret[32];
  guint processing;
  gboolean shut_down;
  WzpEndpointStats stats;
  /* packets written during a receive cycle leave in one sendmmsg() */
  gboolean batching;
  guint ntx;
  struct TxBatch *tx;
};

struct TxBatch {
  struct mmsghdr msg[SEND_BATCH];
  struct iovec iov[SEND_BATCH];
  struct sockaddr_storage addr[SEND_BATCH];
  guint8 buf[SEND_BATCH][MAX_PKT];
};

struct _WzpConnection {
  GObject parent;
  WzpEndpoint *endpoint;        /* not owned; cleared when the endpoint goes */
  ngtcp2_conn *conn;
  WzpTlsSession *tls;
  gboolean server;
  WzpConnectionState state;
  struct sockaddr_storage remote;
  socklen_t remote_len;
  gchar *remote_str;
  gchar *sni;
  gchar *pin;
  GSource *timer;
  GHashTable *streams;          /* gint64* id -> Stream* */
  GQueue pending_open;          /* Stream* waiting for stream credit */
  GQueue out_streams;           /* Stream* with data or FIN to send */
  GQueue out_dgrams;            /* GBytes* */
  GQueue in_dgrams;             /* GBytes* when no handler */
  GQueue events;                /* Event* */
  GHashTable *ready;            /* stream id -> WzpSignal* or STREAM_FAILED */
  gint64 next_remote_bidi;
  gint64 head_wait_since;
  GArray *cids;                 /* CidKey registered in the endpoint */
  WzpDatagramFunc dgram_func;
  gpointer dgram_data;
  GDestroyNotify dgram_destroy;
  GError *close_error;
  gboolean terminating;
  WzpConnectionStats stats;
};

G_DEFINE_TYPE (WzpEndpoint, wzp_endpoint, G_TYPE_OBJECT)
G_DEFINE_TYPE (WzpConnection, wzp_connection, G_TYPE_OBJECT)

enum { EP_SIGNAL_INCOMING, EP_N_SIGNALS };
enum { CONN_SIGNAL_ESTABLISHED, CONN_SIGNAL_CLOSED, CONN_SIGNAL_SIGNAL, CONN_SIGNAL_UNI,
  CONN_SIGNAL_DATAGRAM, CONN_N_SIGNALS };
static guint ep_signals[EP_N_SIGNALS];
static guint conn_signals[CONN_N_SIGNALS];

static void conn_flush (WzpConnection *c);
static void conn_terminate (WzpConnection *c, GError *reason);
static void conn_close_with (WzpConnection *c, const ngtcp2_ccerr *ccerr, GError *reason);
static void endpoint_mark_dirty (WzpEndpoint *ep, WzpConnection *c);

void
wzp_endpoint_settings_init (WzpEndpointSettings *s)
{
  s->idle_timeout_ms = 30000;
  s->keep_alive_ms = 5000;
  s->handshake_timeout_ms = 10000;
  s->max_half_open = 256;
  s->max_connections = 4096;
  s->datagram_queue = 256;
  s->stream_timeout_ms = 10000;
}

/* ---- addresses ---------------------------------------------------------------- */

static gchar *
sockaddr_to_string (const struct sockaddr *sa)
{
  gchar host[INET6_ADDRSTRLEN];

  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *) sa;
    inet_ntop (AF_INET, &in->sin_addr, host, sizeof host);
    return g_strdup_printf ("%s:%u", host, ntohs (in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) sa;
    if (IN6_IS_ADDR_V4MAPPED (&in6->sin6_addr)) {
      inet_ntop (AF_INET, &in6->sin6_addr.s6_addr[12], host, sizeof host);
      return g_strdup_printf ("%s:%u", host, ntohs (in6->sin6_port));
    }
    inet_ntop (AF_INET6, &in6->sin6_addr, host, sizeof host);
    return g_strdup_printf ("[%s]:%u", host, ntohs (in6->sin6_port));
  }
  return g_strdup ("unknown");
}

gchar *
wzp_socket_address_to_string (GSocketAddress *address)
{
  struct sockaddr_storage ss;

  if (!g_socket_address_to_native (address, &ss, sizeof ss, NULL))
    return g_strdup ("unknown");
  return sockaddr_to_string ((struct sockaddr *) &ss);
}

GSocketAddress *
wzp_socket_address_parse (const gchar *text, GError **error)
{
  g_autofree gchar *host = NULL;
  const gchar *colon;
  guint64 port;
  g_autoptr (GInetAddress) addr = NULL;

  if (text == NULL)
    goto bad;
  if (text[0] == '[') {
    const gchar *end = strchr (text, ']');
    if (end == NULL || end[1] != ':')
      goto bad;
    host = g_strndup (text + 1, (gsize) (end - text - 1));
    colon = end + 1;
  } else {
    colon = strrchr (text, ':');
    if (colon == NULL)
      goto bad;
    host = g_strndup (text, (gsize) (colon - text));
  }
  if (!g_ascii_string_to_unsigned (colon + 1, 10, 0, 65535, &port, NULL))
    goto bad;
  addr = g_inet_address_new_from_string (host);
  if (addr == NULL)
    goto bad;
  return g_inet_socket_address_new (addr, (guint16) port);
bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "\"%s\" is not an address: use a.b.c.d:port or [v6]:port", text ? text : "");
  return NULL;
}

/* ---- streams --------------------------------------------------------------- */

static void
stream_free (Stream *s)
{
  g_clear_pointer (&s->out, g_bytes_unref);
  g_clear_pointer (&s->reader, wzp_frame_reader_free);
  g_clear_pointer (&s->uni_data, g_byte_array_unref);
  g_free (s);
}

static Stream *
stream_get (WzpConnection *c, gint64 id, gboolean create)
{
  Stream *s = g_hash_table_lookup (c->streams, &id);

  if (s == NULL && create) {
    gint64 *key = g_new (gint64, 1);
    s = g_new0 (Stream, 1);
    s->id = id;
    s->opened_us = g_get_monotonic_time ();
    *key = id;
    g_hash_table_insert (c->streams, key, s);
  }
  return s;
}

static void
stream_queue_send (WzpConnection *c, Stream *s)
{
  if (!s->queued) {
    s->queued = TRUE;
    g_queue_push_tail (&c->out_streams, s);
  }
}

static void
push_event (WzpConnection *c, EventType type, gpointer data)
{
  Event *e = g_new (Event, 1);

  e->type = type;
  e->data = data;
  g_queue_push_tail (&c->events, e);
}

/* A peer stream whose message is complete, failed or abandoned. */
static void
stream_finish_rx (WzpConnection *c, Stream *s, WzpSignal *msg)
{
  gint64 *key;

  if (s->rx_done)
    return;
  s->rx_done = TRUE;
  g_clear_pointer (&s->reader, wzp_frame_reader_free);
  if (!s->uni) {
    key = g_new (gint64, 1);
    *key = s->id;
    g_hash_table_replace (c->ready, key, msg ? (gpointer) msg : STREAM_FAILED);
  }
}

static void
stream_reject (WzpConnection *c, Stream *s, const gchar *why)
{
  g_debug ("%s: stream %" G_GINT64_FORMAT " dropped: %s", c->remote_str, s->id, why);
  c->stats.bad_streams++;
  ngtcp2_conn_shutdown_stream (c->conn, 0, s->id, 1);
  stream_finish_rx (c, s, NULL);
}

static void
stream_rx_signal (WzpConnection *c, Stream *s, const uint8_t *data, size_t len, gboolean fin)
{
  g_autoptr (GError) error = NULL;

  if (s->rx_done)
    return;                     /* bytes after the frame are ignored */
  if (s->reader == NULL)
    s->reader = wzp_frame_reader_new (0);
  while (len > 0) {
    gsize used = 0;
    WzpFrameStatus st = wzp_frame_reader_feed (s->reader, data, len, &used, &error);

    if (st == WZP_FRAME_ERROR) {
      stream_reject (c, s, error->message);
      return;
    }
    data += used;
    len -= used;
    if (st == WZP_FRAME_READY) {
      g_autoptr (GBytes) body = wzp_frame_reader_take (s->reader);
      gsize blen;
      const gchar *json = g_bytes_get_data (body, &blen);
      WzpSignal *msg = wzp_signal_from_json (json, blen, &error);

      if (msg == NULL) {
        if (g_error_matches (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_UNKNOWN_VARIANT)) {
          c->stats.unknown_signals++;
          stream_finish_rx (c, s, NULL);
        } else {
          stream_reject (c, s, error->message);
        }
        return;
      }
      stream_finish_rx (c, s, msg);
      return;
    }
  }
  if (fin) {
    if (wzp_frame_reader_in_frame (s->reader))
      stream_reject (c, s, "stream ended inside a message");
    else
      stream_finish_rx (c, s, NULL);    /* an empty stream */
  }
}

static void
stream_rx_uni (WzpConnection *c, Stream *s, const uint8_t *data, size_t len, gboolean fin)
{
  if (s->rx_done)
    return;
  if (s->uni_data == NULL)
    s->uni_data = g_byte_array_new ();
  if (s->uni_data->len + len > UNI_MAX) {
    stream_reject (c, s, "unidirectional stream over 64 KiB");
    return;
  }
  g_byte_array_append (s->uni_data, data, (guint) len);
  if (fin) {
    push_event (c, EV_UNI, g_byte_array_free_to_bytes (g_steal_pointer (&s->uni_data)));
    stream_finish_rx (c, s, NULL);
  }
}

/* ---- ngtcp2 callbacks ------------------------------------------------------ */

static int
recv_stream_data_cb (ngtcp2_conn *conn, uint32_t flags, int64_t stream_id, uint64_t offset,
                     const uint8_t *data, size_t datalen, void *user_data, void *stream_user_data)
{
  WzpConnection *c = user_data;
  gboolean fin = (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0;
  Stream *s;

  ngtcp2_conn_extend_max_stream_offset (conn, stream_id, datalen);
  ngtcp2_conn_extend_max_offset (conn, datalen);
  if (ngtcp2_conn_is_local_stream (conn, stream_id))
    return 0;                   /* the peer's (empty) half of our own stream */
  s = stream_get (c, stream_id, TRUE);
  if ((stream_id & 0x2) != 0) {
    s->uni = TRUE;
    stream_rx_uni (c, s, data, datalen, fin);
    return 0;
  }
  stream_rx_signal (c, s, data, datalen, fin);
  if (fin && !s->want_fin) {
    /* close our half with an empty FIN, as upstream's dropped sender does */
    s->want_fin = TRUE;
    stream_queue_send (c, s);
  }
  return 0;
}

static int
acked_stream_data_cb (ngtcp2_conn *conn, int64_t stream_id, uint64_t offset, uint64_t datalen,
                      void *user_data, void *stream_user_data)
{
  WzpConnection *c = user_data;
  Stream *s = stream_get (c, stream_id, FALSE);

  if (s && s->out && offset + datalen >= g_bytes_get_size (s->out) && s->fin_sent) {
    g_clear_pointer (&s->out, g_bytes_unref);
    /* like upstream, the sender never reads its own stream */
    if (ngtcp2_conn_is_local_stream (conn, stream_id))
      ngtcp2_conn_shutdown_stream_read (conn, 0, stream_id, 0);
  }
  return 0;
}

static int
stream_close_cb (ngtcp2_conn *conn, uint32_t flags, int64_t stream_id, uint64_t app_error_code,
                 void *user_data, void *stream_user_data)
{
  WzpConnection *c = user_data;
  Stream *s = stream_get (c, stream_id, FALSE);

  if (s) {
    if (!ngtcp2_conn_is_local_stream (conn, stream_id) && !s->rx_done) {
      c->stats.bad_streams++;
      stream_finish_rx (c, s, NULL);
    }
    if (s->queued)
      g_queue_remove (&c->out_streams, s);
    g_hash_table_remove (c->streams, &stream_id);
  }
  if (!ngtcp2_conn_is_local_stream (conn, stream_id)) {
    if (stream_id & 0x2)
      ngtcp2_conn_extend_max_streams_uni (conn, 1);
    else
      ngtcp2_conn_extend_max_streams_bidi (conn, 1);
  }
  return 0;
}

static int
stream_reset_cb (ngtcp2_conn *conn, int64_t stream_id, uint64_t final_size,
                 uint64_t app_error_code, void *user_data, void *stream_user_data)
{
  WzpConnection *c = user_data;
  Stream *s = stream_get (c, stream_id, FALSE);

  if (s && !ngtcp2_conn_is_local_stream (conn, stream_id) && !s->rx_done) {
    c->stats.bad_streams++;
    stream_finish_rx (c, s, NULL);
  }
  return 0;
}

static int
extend_max_streams_cb (ngtcp2_conn *conn, uint64_t max_streams, void *user_data)
{
  return 0;                     /* conn_flush() retries pending opens */
}

static int
recv_datagram_cb (ngtcp2_conn *conn, uint32_t flags, const uint8_t *data, size_t datalen,
                  void *user_data)
{
  WzpConnection *c = user_data;

  c->stats.datagrams_received++;
  push_event (c, EV_DATAGRAM, g_bytes_new (data, datalen));
  return 0;
}

static int
lost_datagram_cb (ngtcp2_conn *conn, uint64_t dgram_id, void *user_data)
{
  ((WzpConnection *) user_data)->stats.datagrams_lost++;
  return 0;
}

static int
handshake_completed_cb (ngtcp2_conn *conn, void *user_data)
{
  WzpConnection *c = user_data;

  push_event (c, EV_ESTABLISHED, NULL);
  return 0;
}

static void
register_cid (WzpConnection *c, const guint8 *data, gsize len)
{
  CidKey k = cid_key (data, len);

  if (c->endpoint == NULL)
    return;
  g_array_append_val (c->cids, k);
  g_hash_table_insert (c->endpoint->cids, g_memdup2 (&k, sizeof k), c);
}

static void
unregister_cid (WzpConnection *c, const guint8 *data, gsize len)
{
  CidKey k = cid_key (data, len);

  for (guint i = 0; i < c->cids->len; i++) {
    if (cid_equal (&g_array_index (c->cids, CidKey, i), &k)) {
      g_array_remove_index_fast (c->cids, i);
      break;
    }
  }
  if (c->endpoint && g_hash_table_lookup (c->endpoint->cids, &k) == c)
    g_hash_table_remove (c->endpoint->cids, &k);
}

static int
get_new_cid_cb (ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *user_data)
{
  WzpConnection *c = user_data;

  wzp_tls_random (cid->data, cidlen);
  cid->datalen = cidlen;
  if (c->endpoint)
    wzp_tls_stateless_reset_token (c->endpoint->reset_secret, cid->data, cidlen, token);
  register_cid (c, cid->data, cidlen);
  return 0;
}

static int
remove_cid_cb (ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data)
{
  unregister_cid (user_data, cid->data, cid->datalen);
  return 0;
}

static void
fill_callbacks (ngtcp2_callbacks *cb, gboolean server)
{
  memset (cb, 0, sizeof *cb);
  wzp_tls_fill_callbacks (cb, server);
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_stream_data_cb;
  cb->stream_close = stream_close_cb;
  cb->stream_reset = stream_reset_cb;
  cb->extend_max_local_streams_bidi = extend_max_streams_cb;
  cb->extend_max_local_streams_uni = extend_max_streams_cb;
  cb->recv_datagram = recv_datagram_cb;
  cb->lost_datagram = lost_datagram_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->get_new_connection_id = get_new_cid_cb;
  cb->remove_connection_id = remove_cid_cb;
}

static void
quic_log (void *user_data, const char *fmt, ...)
{
  va_list ap;
  g_autofree gchar *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_debug ("ngtcp2: %s", msg);
}

static void
fill_settings (WzpEndpoint *ep, ngtcp2_settings *settings, ngtcp2_transport_params *params)
{
  ngtcp2_settings_default (settings);
  settings->initial_ts = now_ns ();
  settings->handshake_timeout = (guint64) ep->settings.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  settings->max_tx_udp_payload_size = 1452;
  if (g_getenv ("WZP_QUIC_TRACE"))
    settings->log_printf = quic_log;
  ngtcp2_transport_params_default (params);
  params->initial_max_stream_data_bidi_local = 256 * 1024;
  params->initial_max_stream_data_bidi_remote = 256 * 1024;
  params->initial_max_stream_data_uni = 64 * 1024;
  params->initial_max_data = 1024 * 1024;
  params->initial_max_streams_bidi = 100;
  params->initial_max_streams_uni = 100;
  params->max_idle_timeout = (guint64) ep->settings.idle_timeout_ms * NGTCP2_MILLISECONDS;
  params->max_datagram_frame_size = 65535;
  params->active_connection_id_limit = 4;
}

/* ---- connection object --------------------------------------------------- */

static void
wzp_connection_init (WzpConnection *c)
{
  c->streams = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                      (GDestroyNotify) stream_free);
  c->ready = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  c->cids = g_array_new (FALSE, FALSE, sizeof (CidKey));
  c->remote_str = g_strdup ("unknown");
}

static void
free_ready (gpointer key, gpointer value, gpointer data)
{
  if (value != STREAM_FAILED)
    wzp_signal_free (value);
}

static void
event_free (Event *e)
{
  if (e->type == EV_SIGNAL)
    wzp_signal_free (e->data);
  else if (e->data)
    g_bytes_unref (e->data);
  g_free (e);
}

static void
conn_release (WzpConnection *c)
{
  if (c->timer) {
    g_source_destroy (c->timer);
    g_source_unref (c->timer);
    c->timer = NULL;
  }
  while (c->cids->len > 0) {
    CidKey k = g_array_index (c->cids, CidKey, c->cids->len - 1);
    unregister_cid (c, k.data, k.len);
  }
  g_clear_pointer (&c->conn, ngtcp2_conn_del);
  g_clear_pointer (&c->tls, wzp_tls_session_free);
  /* streams waiting for credit are in no table yet */
  g_queue_clear_full (&c->pending_open, (GDestroyNotify) stream_free);
  g_queue_clear (&c->out_streams);
  g_hash_table_remove_all (c->streams);
  g_queue_clear_full (&c->out_dgrams, (GDestroyNotify) g_bytes_unref);
}

static void
wzp_connection_finalize (GObject *object)
{
  WzpConnection *c = WZP_CONNECTION (object);

  conn_release (c);
  g_queue_clear_full (&c->in_dgrams, (GDestroyNotify) g_bytes_unref);
  g_queue_clear_full (&c->events, (GDestroyNotify) event_free);
  g_hash_table_foreach (c->ready, free_ready, NULL);
  g_hash_table_destroy (c->ready);
  g_hash_table_destroy (c->streams);
  g_array_free (c->cids, TRUE);
  if (c->dgram_destroy)
    c->dgram_destroy (c->dgram_data);
  g_free (c->remote_str);
  g_free (c->sni);
  g_free (c->pin);
  g_clear_error (&c->close_error);
  G_OBJECT_CLASS (wzp_connection_parent_class)->finalize (object);
}

static void
wzp_connection_class_init (WzpConnectionClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = wzp_connection_finalize;
  /* "established": the handshake is complete. */
  conn_signals[CONN_SIGNAL_ESTABLISHED] = g_signal_new ("established", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
  /* "closed" (const GError *why): emitted once; the connection is dead. */
  conn_signals[CONN_SIGNAL_CLOSED] = g_signal_new ("closed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* "signal" (const WzpSignal *msg): one message, in the peer's stream order;
   * valid during the emission only. */
  conn_signals[CONN_SIGNAL_SIGNAL] = g_signal_new ("signal", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_POINTER);
  /* "uni-stream" (GBytes *data): a finished unidirectional stream. */
  conn_signals[CONN_SIGNAL_UNI] = g_signal_new ("uni-stream", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
  /* "datagram": a datagram was queued for wzp_connection_pop_datagram(). */
  conn_signals[CONN_SIGNAL_DATAGRAM] = g_signal_new ("datagram", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  return callback (user_data);
}

static GSourceFuncs timer_funcs = { NULL, NULL, timer_dispatch, NULL, NULL, NULL };

static gboolean conn_on_timer (gpointer data);

static void
conn_schedule (WzpConnection *c)
{
  ngtcp2_tstamp expiry;
  guint64 now;

  if (c->conn == NULL || c->timer == NULL)
    return;
  expiry = ngtcp2_conn_get_expiry (c->conn);
  if (expiry == UINT64_MAX) {
    g_source_set_ready_time (c->timer, -1);
    return;
  }
  now = now_ns ();
  g_source_set_ready_time (c->timer, g_get_monotonic_time () +
                           (gint64) (expiry > now ? (expiry - now + 999) / 1000 : 0));
}

static WzpConnection *
conn_new (WzpEndpoint *ep, const struct sockaddr *remote, socklen_t remote_len, gboolean server)
{
  WzpConnection *c = g_object_new (WZP_TYPE_CONNECTION, NULL);

  c->endpoint = ep;
  c->server = server;
  c->next_remote_bidi = server ? 0 : 1;
  memcpy (&c->remote, remote, remote_len);
  c->remote_len = remote_len;
  g_free (c->remote_str);
  c->remote_str = sockaddr_to_string (remote);
  c->timer = g_source_new (&timer_funcs, sizeof (GSource));
  g_source_set_callback (c->timer, conn_on_timer, c, NULL);
  g_source_attach (c->timer, ep->context);
  g_hash_table_add (ep->conns, c);      /* the endpoint's reference */
  if (server)
    ep->stats.half_open++;
  return c;
}

static void
conn_path (WzpConnection *c, ngtcp2_path *path)
{
  path->local.addr = (ngtcp2_sockaddr *) &c->endpoint->local;
  path->local.addrlen = c->endpoint->local_len;
  path->remote.addr = (ngtcp2_sockaddr *) &c->remote;
  path->remote.addrlen = c->remote_len;
  path->user_data = NULL;
}

/* ---- sending -------------------------------------------------------------- */

static void
endpoint_send_batch (WzpEndpoint *ep)
{
  guint done = 0;

  while (done < ep->ntx) {
    int r = sendmmsg (ep->fd, ep->tx->msg + done, ep->ntx - done, 0);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      /* drop this one (QUIC recovers from a lost packet) and go on */
      ep->stats.send_errors++;
      done++;
      continue;
    }
    for (int i = 0; i < r; i++) {
      ep->stats.packets_sent++;
      ep->stats.bytes_sent += ep->tx->iov[done + i].iov_len;
    }
    done += (guint) r;
  }
  ep->ntx = 0;
}

static void
send_packet (WzpEndpoint *ep, WzpConnection *c, const ngtcp2_path *path, const guint8 *buf, gsize n)
{
  gssize r;

  if (c) {
    c->stats.packets_sent++;
    c->stats.bytes_sent += n;
  }
  if (ep->batching && n <= MAX_PKT && path->remote.addrlen <= sizeof (struct sockaddr_storage)) {
    struct TxBatch *t = ep->tx;
    guint i = ep->ntx++;

    memcpy (t->buf[i], buf, n);
    memcpy (&t->addr[i], path->remote.addr, path->remote.addrlen);
    t->iov[i].iov_base = t->buf[i];
    t->iov[i].iov_len = n;
    memset (&t->msg[i].msg_hdr, 0, sizeof t->msg[i].msg_hdr);
    t->msg[i].msg_hdr.msg_name = &t->addr[i];
    t->msg[i].msg_hdr.msg_namelen = path->remote.addrlen;
    t->msg[i].msg_hdr.msg_iov = &t->iov[i];
    t->msg[i].msg_hdr.msg_iovlen = 1;
    if (ep->ntx == SEND_BATCH)
      endpoint_send_batch (ep);
    return;
  }
  do
    r = sendto (ep->fd, buf, n, 0, (const struct sockaddr *) path->remote.addr, path->remote.addrlen);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    ep->stats.send_errors++;    /* QUIC recovers from a lost packet */
    return;
  }
  ep->stats.packets_sent++;
  ep->stats.bytes_sent += n;
}

static GError *
error_from_liberr (int rv, const gchar *what)
{
  return g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PROTOCOL, "%s: %s", what, ngtcp2_strerror (rv));
}

static void
conn_open_pending (WzpConnection *c)
{
  while (!g_queue_is_empty (&c->pending_open)) {
    Stream *s = g_queue_peek_head (&c->pending_open);
    int64_t id;
    int rv = s->uni ? ngtcp2_conn_open_uni_stream (c->conn, &id, NULL) :
        ngtcp2_conn_open_bidi_stream (c->conn, &id, NULL);
    gint64 *key;

    if (rv != 0)
      break;                    /* no stream credit yet */
    g_queue_pop_head (&c->pending_open);
    s->id = id;
    key = g_new (gint64, 1);
    *key = id;
    g_hash_table_insert (c->streams, key, s);
    stream_queue_send (c, s);
  }
}

/* Writes every packet ngtcp2 wants to send now: datagrams first (media is
 * late once it waits), then stream data, then acks and control frames. */
static void
conn_write (WzpConnection *c)
{
  WzpEndpoint *ep = c->endpoint;
  guint8 buf[MAX_PKT];
  ngtcp2_path_storage ps;
  ngtcp2_pkt_info pi;
  guint64 ts = now_ns ();
  GQueue blocked = G_QUEUE_INIT;

  ngtcp2_path_storage_zero (&ps);
  conn_open_pending (c);
  for (guint round = 0; round < 4096; round++) {
    GBytes *dg = g_queue_peek_head (&c->out_dgrams);
    Stream *s = dg ? NULL : g_queue_peek_head (&c->out_streams);
    ngtcp2_ssize n;

    if (dg) {
      gsize len;
      const guint8 *d = g_bytes_get_data (dg, &len);
      int accepted = 0;

      n = ngtcp2_conn_write_datagram (c->conn, &ps.path, &pi, buf, sizeof buf, &accepted,
                                      NGTCP2_WRITE_DATAGRAM_FLAG_MORE, c->stats.datagrams_sent,
                                      d, len, ts);
      if (accepted) {
        g_bytes_unref (g_queue_pop_head (&c->out_dgrams));
        c->stats.datagrams_sent++;
      }
      if (n == NGTCP2_ERR_WRITE_MORE)
        continue;
      if (n < 0 && !accepted) {
        /* cannot ever fit (path shrank): drop it rather than stall */
        g_bytes_unref (g_queue_pop_head (&c->out_dgrams));
        c->stats.datagrams_lost++;
        if (n == NGTCP2_ERR_INVALID_ARGUMENT)
          continue;
      }
    } else if (s) {
      ngtcp2_vec vec;
      ngtcp2_ssize taken = -1;
      gsize total = s->out ? g_bytes_get_size (s->out) : 0;
      guint32 flags = NGTCP2_WRITE_STREAM_FLAG_MORE;

      vec.base = s->out ? (guint8 *) g_bytes_get_data (s->out, NULL) + s->sent : NULL;
      vec.len = total - s->sent;
      if (s->want_fin)
        flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
      n = ngtcp2_conn_writev_stream (c->conn, &ps.path, &pi, buf, sizeof buf, &taken, flags,
                                     s->id, &vec, vec.len ? 1 : 0, ts);
      if (taken >= 0) {
        s->sent += (gsize) taken;
        if (s->sent == total && s->want_fin)
          s->fin_sent = TRUE;
      }
      if (s->sent == total && (s->fin_sent || !s->want_fin)) {
        g_queue_pop_head (&c->out_streams);
        s->queued = FALSE;
      }
      if (n == NGTCP2_ERR_WRITE_MORE)
        continue;
      if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
          n == NGTCP2_ERR_STREAM_NOT_FOUND) {
        if (s->queued) {
          g_queue_pop_head (&c->out_streams);
          if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED)
            g_queue_push_tail (&blocked, s);
          else
            s->queued = FALSE;
        }
        continue;
      }
    } else {
      n = ngtcp2_conn_write_pkt (c->conn, &ps.path, &pi, buf, sizeof buf, ts);
    }
    if (n < 0) {
      conn_terminate (c, error_from_liberr ((int) n, "cannot write a packet"));
      g_queue_clear (&blocked);
      return;
    }
    if (n == 0)
      break;
    send_packet (ep, c, &ps.path, buf, (gsize) n);
  }
  /* flow-control blocked streams wait for credit */
  while (!g_queue_is_empty (&blocked))
    g_queue_push_tail (&c->out_streams, g_queue_pop_head (&blocked));
  ngtcp2_conn_update_pkt_tx_time (c->conn, ts);
}

/* ---- events --------------------------------------------------------------- */

static void
deliver_datagram (WzpConnection *c, GBytes *b)
{
  if (c->dgram_func) {
    gsize len;
    const guint8 *d = g_bytes_get_data (b, &len);
    c->dgram_func (c, d, len, c->dgram_data);
    g_bytes_unref (b);
    return;
  }
  if (c->endpoint && g_queue_get_length (&c->in_dgrams) >= c->endpoint->settings.datagram_queue) {
    g_bytes_unref (g_queue_pop_head (&c->in_dgrams));
    c->stats.datagrams_dropped++;
  }
  g_queue_push_tail (&c->in_dgrams, b);
  g_signal_emit (c, conn_signals[CONN_SIGNAL_DATAGRAM], 0);
}

static void
check_pin (WzpConnection *c)
{
  const gchar *fp = wzp_tls_session_get_peer_fingerprint (c->tls);

  if (c->pin && !wzp_tls_fingerprint_equal (c->pin, fp)) {
    ngtcp2_ccerr ccerr;

    ngtcp2_ccerr_default (&ccerr);
    ngtcp2_ccerr_set_application_error (&ccerr, 0, (const guint8 *) "pin-mismatch", 12);
    conn_close_with (c, &ccerr, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PIN_MISMATCH,
                     "the server at %s presented certificate %s, not the pinned %s: "
                     "check the relay fingerprint setting", c->remote_str,
                     fp ? fp : "(none)", c->pin));
  }
}

/* Moves ordered signal messages to the event queue. */
static void
collect_ready (WzpConnection *c)
{
  gpointer v;

  while ((v = g_hash_table_lookup (c->ready, &c->next_remote_bidi)) != NULL) {
    g_hash_table_remove (c->ready, &c->next_remote_bidi);
    if (v != STREAM_FAILED) {
      c->stats.signals_received++;
      push_event (c, EV_SIGNAL, v);
    }
    c->next_remote_bidi += 4;
    c->head_wait_since = 0;
  }
  if (g_hash_table_size (c->ready) > 0 && c->head_wait_since == 0)
    c->head_wait_since = g_get_monotonic_time ();
}

static void
conn_deliver (WzpConnection *c)
{
  WzpEndpoint *ep = c->endpoint ? g_object_ref (c->endpoint) : NULL;
  Event *e;

  collect_ready (c);
  g_object_ref (c);
  /* sends from the handlers below are written after delivery, not inside it */
  if (ep)
    ep->processing++;
  while ((e = g_queue_pop_head (&c->events)) != NULL) {
    switch (e->type) {
      case EV_ESTABLISHED:
        if (c->state != WZP_CONNECTION_HANDSHAKING)
          break;
        c->state = WZP_CONNECTION_ESTABLISHED;
        if (c->server && c->endpoint) {
          c->endpoint->stats.half_open--;
          c->endpoint->stats.connections_accepted++;
          g_free (c->sni);
          c->sni = g_strdup (wzp_tls_session_get_sni (c->tls));
          if (c->sni && *c->sni == '\0')
            g_clear_pointer (&c->sni, g_free);
        } else {
          check_pin (c);
          if (c->state == WZP_CONNECTION_CLOSED)
            break;
        }
        g_signal_emit (c, conn_signals[CONN_SIGNAL_ESTABLISHED], 0);
        if (c->server && c->endpoint && c->state == WZP_CONNECTION_ESTABLISHED)
          g_signal_emit (c->endpoint, ep_signals[EP_SIGNAL_INCOMING], 0, c);
        break;
      case EV_SIGNAL:
        if (c->state != WZP_CONNECTION_CLOSED)
          g_signal_emit (c, conn_signals[CONN_SIGNAL_SIGNAL], 0, e->data);
        break;
      case EV_UNI:
        if (c->state != WZP_CONNECTION_CLOSED)
          g_signal_emit (c, conn_signals[CONN_SIGNAL_UNI], 0, e->data);
        break;
      case EV_DATAGRAM:
        if (c->state != WZP_CONNECTION_CLOSED) {
          deliver_datagram (c, e->data);
          e->data = NULL;
        }
        break;
    }
    event_free (e);
  }
  if (ep) {
    ep->processing--;
    g_object_unref (ep);
  }
  g_object_unref (c);
}

/* ---- life and death -------------------------------------------------------- */

/* The connection is over: forget it, tell the application once. */
static void
conn_terminate (WzpConnection *c, GError *reason)
{
  WzpEndpoint *ep = c->endpoint;

  if (c->state == WZP_CONNECTION_CLOSED || c->terminating) {
    g_clear_error (&reason);
    return;
  }
  /* what arrived before the close still counts: deliver it first */
  c->terminating = TRUE;
  g_object_ref (c);
  conn_deliver (c);
  g_object_unref (c);
  if (c->state == WZP_CONNECTION_HANDSHAKING && c->server && ep)
    ep->stats.half_open--;
  c->state = WZP_CONNECTION_CLOSED;
  if (c->close_error == NULL)
    c->close_error = reason;
  else
    g_clear_error (&reason);
  g_debug ("%s: closed: %s", c->remote_str, c->close_error->message);
  conn_release (c);
  g_object_ref (c);
  if (ep) {
    g_hash_table_remove (ep->dirty, c);
    g_hash_table_remove (ep->conns, c);
  }
  g_queue_clear_full (&c->events, (GDestroyNotify) event_free);
  g_signal_emit (c, conn_signals[CONN_SIGNAL_CLOSED], 0, c->close_error);
  c->endpoint = NULL;
  g_object_unref (c);
}

static GError *
error_from_ccerr (WzpConnection *c)
{
  const ngtcp2_ccerr *cc = ngtcp2_conn_get_ccerr (c->conn);
  g_autofree gchar *reason = NULL;

  if (cc->reasonlen > 0)
    reason = g_utf8_make_valid ((const gchar *) cc->reason, (gssize) cc->reasonlen);
  if (cc->type == NGTCP2_CCERR_TYPE_APPLICATION)
    return g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PEER_CLOSED,
                        "the peer closed the connection (code %" G_GUINT64_FORMAT ", reason \"%s\")",
                        cc->error_code, reason ? reason : "");
  return g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PEER_CLOSED,
                      "the peer closed the connection with transport error 0x%" G_GINT64_MODIFIER
                      "x%s%s", cc->error_code, reason ? ": " : "", reason ? reason : "");
}

/* Sends CONNECTION_CLOSE built from @ccerr, then terminates. */
static void
conn_close_with (WzpConnection *c, const ngtcp2_ccerr *ccerr, GError *reason)
{
  if (c->conn && c->endpoint && !ngtcp2_conn_in_closing_period (c->conn) &&
      !ngtcp2_conn_in_draining_period (c->conn)) {
    guint8 buf[MAX_PKT];
    ngtcp2_path_storage ps;
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n;

    ngtcp2_path_storage_zero (&ps);
    n = ngtcp2_conn_write_connection_close (c->conn, &ps.path, &pi, buf, sizeof buf, ccerr, now_ns ());
    if (n > 0)
      send_packet (c->endpoint, c, &ps.path, buf, (gsize) n);
  }
  conn_terminate (c, reason);
}

static void
conn_fail_read (WzpConnection *c, int rv)
{
  ngtcp2_ccerr ccerr;

  ngtcp2_ccerr_default (&ccerr);
  switch (rv) {
    case NGTCP2_ERR_DRAINING:
      conn_terminate (c, error_from_ccerr (c));
      return;
    case NGTCP2_ERR_DROP_CONN:
      conn_terminate (c, g_error_new_literal (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PROTOCOL,
                                              "connection dropped"));
      return;
    case NGTCP2_ERR_CRYPTO: {
      const gchar *why = c->tls ? wzp_tls_session_get_error (c->tls) : NULL;
      ngtcp2_ccerr_set_tls_alert (&ccerr, ngtcp2_conn_get_tls_alert (c->conn), NULL, 0);
      conn_close_with (c, &ccerr, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_HANDSHAKE,
                       "the TLS handshake with %s failed: %s", c->remote_str,
                       why ? why : "unknown reason"));
      return;
    }
    default:
      ngtcp2_ccerr_set_liberr (&ccerr, rv, NULL, 0);
      conn_close_with (c, &ccerr, error_from_liberr (rv, "QUIC protocol error"));
  }
}

static gboolean
conn_on_timer (gpointer data)
{
  WzpConnection *c = data;
  int rv;

  if (c->conn == NULL)
    return G_SOURCE_CONTINUE;
  g_source_set_ready_time (c->timer, -1);
  rv = ngtcp2_conn_handle_expiry (c->conn, now_ns ());
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    conn_terminate (c, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_IDLE_TIMEOUT,
                                    "nothing heard from %s within the idle timeout", c->remote_str));
    return G_SOURCE_CONTINUE;
  }
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    conn_terminate (c, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_HANDSHAKE_TIMEOUT,
                                    "no QUIC handshake with %s within %u ms: is it running and "
                                    "reachable?", c->remote_str,
                                    c->endpoint ? c->endpoint->settings.handshake_timeout_ms : 0));
    return G_SOURCE_CONTINUE;
  }
  if (rv != 0) {
    conn_fail_read (c, rv);
    return G_SOURCE_CONTINUE;
  }
  conn_flush (c);
  return G_SOURCE_CONTINUE;
}

/* Delivers pending events, then writes, then re-arms the timer. */
static void
conn_flush (WzpConnection *c)
{
  if (c->state == WZP_CONNECTION_CLOSED || c->terminating)
    return;
  g_object_ref (c);
  conn_deliver (c);
  if (c->conn && c->state != WZP_CONNECTION_CLOSED) {
    conn_write (c);
    conn_schedule (c);
  }
  g_object_unref (c);
}

static void
endpoint_mark_dirty (WzpEndpoint *ep, WzpConnection *c)
{
  g_hash_table_add (ep->dirty, c);
}

/* After a call from the application: write now unless a batch is running. */
static void
conn_kick (WzpConnection *c)
{
  if (c->endpoint && c->endpoint->processing)
    endpoint_mark_dirty (c->endpoint, c);
  else
    conn_flush (c);
}

static void
endpoint_flush_dirty (WzpEndpoint *ep)
{
  gboolean outer = !ep->batching;

  ep->batching = TRUE;
  while (g_hash_table_size (ep->dirty) > 0) {
    GHashTableIter it;
    gpointer key;
    WzpConnection *c;

    g_hash_table_iter_init (&it, ep->dirty);
    g_hash_table_iter_next (&it, &key, NULL);
    c = g_object_ref (key);
    g_hash_table_iter_remove (&it);
    conn_flush (c);
    g_object_unref (c);
  }
  if (outer) {
    endpoint_send_batch (ep);
    ep->batching = FALSE;
  }
}

/* ---- receiving -------------------------------------------------------------- */

static void
conn_read (WzpConnection *c, const guint8 *data, gsize len)
{
  ngtcp2_path path;
  ngtcp2_pkt_info pi = { 0 };
  int rv;

  conn_path (c, &path);
  c->stats.packets_received++;
  c->stats.bytes_received += len;
  rv = ngtcp2_conn_read_pkt (c->conn, &path, &pi, data, len, now_ns ());
  if (rv != 0) {
    conn_fail_read (c, rv);
    return;
  }
  endpoint_mark_dirty (c->endpoint, c);
}

static WzpConnection *
accept_conn (WzpEndpoint *ep, const guint8 *data, gsize len, const struct sockaddr *from,
             socklen_t fromlen)
{
  ngtcp2_pkt_hd hd;
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid scid;
  ngtcp2_path path;
  WzpConnection *c;
  g_autoptr (GError) error = NULL;
  int rv;

  if (ep->server_tls == NULL || ep->shut_down || ngtcp2_accept (&hd, data, len) != 0)
    return NULL;
  if (ep->stats.half_open >= ep->settings.max_half_open ||
      g_hash_table_size (ep->conns) >= ep->settings.max_connections) {
    ep->stats.initials_refused++;
    return NULL;
  }
  c = conn_new (ep, from, fromlen, TRUE);
  fill_callbacks (&cb, TRUE);
  fill_settings (ep, &settings, &params);
  params.original_dcid = hd.dcid;
  params.original_dcid_present = 1;
  scid.datalen = CID_LEN;
  wzp_tls_random (scid.data, CID_LEN);
  params.stateless_reset_token_present = 1;
  wzp_tls_stateless_reset_token (ep->reset_secret, scid.data, CID_LEN, params.stateless_reset_token);
  conn_path (c, &path);
  rv = ngtcp2_conn_server_new (&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                               &params, NULL, c);
  if (rv == 0)
    c->tls = wzp_tls_session_new (ep->server_tls, c->conn, TRUE, NULL, &error);
  if (rv != 0 || c->tls == NULL) {
    conn_terminate (c, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_FAILED,
                                    "cannot accept a connection: %s",
                                    error ? error->message : ngtcp2_strerror (rv)));
    return NULL;
  }
  if (ep->settings.keep_alive_ms)
    ngtcp2_conn_set_keep_alive_timeout (c->conn, (guint64) ep->settings.keep_alive_ms * NGTCP2_MILLISECONDS);
  register_cid (c, scid.data, scid.datalen);
  register_cid (c, hd.dcid.data, hd.dcid.datalen);
  return c;
}

static void
send_version_negotiation (WzpEndpoint *ep, const ngtcp2_version_cid *vc, const struct sockaddr *to,
                          socklen_t tolen)
{
  static const uint32_t versions[] = { NGTCP2_PROTO_VER_V1 };
  guint8 buf[256], unused;
  ngtcp2_ssize n;
  ngtcp2_path path = { 0 };

  wzp_tls_random (&unused, 1);
  n = ngtcp2_pkt_write_version_negotiation (buf, sizeof buf, unused, vc->scid, vc->scidlen,
                                            vc->dcid, vc->dcidlen, versions, G_N_ELEMENTS (versions));
  if (n <= 0)
    return;
  path.remote.addr = (ngtcp2_sockaddr *) to;
  path.remote.addrlen = tolen;
  send_packet (ep, NULL, &path, buf, (gsize) n);
}

static void
endpoint_dispatch (WzpEndpoint *ep, const guint8 *data, gsize len, const struct sockaddr *from,
                   socklen_t fromlen)
{
  ngtcp2_version_cid vc;
  WzpConnection *c;
  CidKey k;
  int rv;

  ep->stats.packets_received++;
  ep->stats.bytes_received += len;
  if (len == 0) {
    ep->stats.packets_dropped++;
    return;
  }
  rv = ngtcp2_pkt_decode_version_cid (&vc, data, len, CID_LEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (ep->server_tls && len >= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
      send_version_negotiation (ep, &vc, from, fromlen);
    else
      ep->stats.packets_dropped++;
    return;
  }
  if (rv != 0) {
    ep->stats.packets_dropped++;
    return;
  }
  k = cid_key (vc.dcid, vc.dcidlen);
  c = g_hash_table_lookup (ep->cids, &k);
  if (c == NULL) {
    c = accept_conn (ep, data, len, from, fromlen);
    if (c == NULL) {
      ep->stats.packets_dropped++;
      return;
    }
  }
  if (c->conn == NULL) {
    ep->stats.packets_dropped++;
    return;
  }
  conn_read (c, data, len);
}

static gboolean
on_socket_readable (GSocket *socket, GIOCondition cond, gpointer data)
{
  WzpEndpoint *ep = data;
  static guint8 bufs[RECV_BATCH][2048];
  struct mmsghdr msgs[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct sockaddr_storage addrs[RECV_BATCH];

  g_object_ref (ep);
  ep->processing++;
  for (guint rounds = 0; rounds < 16; rounds++) {
    int n;

    for (guint i = 0; i < RECV_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      memset (&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &addrs[i];
      msgs[i].msg_hdr.msg_namelen = sizeof addrs[i];
    }
    n = recvmmsg (ep->fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0)
      break;
    for (int i = 0; i < n && !ep->shut_down; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        ep->stats.packets_received++;
        ep->stats.packets_dropped++;
        continue;
      }
      endpoint_dispatch (ep, bufs[i], msgs[i].msg_len, (struct sockaddr *) &addrs[i],
                         msgs[i].msg_hdr.msg_namelen);
    }
    if (n < RECV_BATCH)
      break;
  }
  ep->processing--;
  endpoint_flush_dirty (ep);
  g_object_unref (ep);
  return G_SOURCE_CONTINUE;
}

/* A snapshot of the endpoint's connections, each referenced. */
static GPtrArray *
conn_list (WzpEndpoint *ep)
{
  GPtrArray *a = g_ptr_array_new_with_free_func (g_object_unref);
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, ep->conns);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (a, g_object_ref (key));
  return a;
}

/* Abandons signal streams that never complete, and stops waiting for a
 * stream-order gap that never fills. */
static gboolean
on_tick (gpointer data)
{
  WzpEndpoint *ep = data;
  gint64 now = g_get_monotonic_time ();
  gint64 limit = (gint64) ep->settings.stream_timeout_ms * 1000;
  g_autoptr (GPtrArray) conns = conn_list (ep);

  ep->processing++;
  for (guint i = 0; i < conns->len; i++) {
    WzpConnection *c = g_ptr_array_index (conns, i);
    GHashTableIter it;
    gpointer v;

    if (c->conn == NULL)
      continue;
    g_hash_table_iter_init (&it, c->streams);
    while (g_hash_table_iter_next (&it, NULL, &v)) {
      Stream *s = v;
      if (!s->rx_done && !ngtcp2_conn_is_local_stream (c->conn, s->id) && s->id >= 0 &&
          now - s->opened_us > limit) {
        stream_reject (c, s, "message not finished in time");
        endpoint_mark_dirty (ep, c);
      }
    }
    if (c->head_wait_since && now - c->head_wait_since > limit) {
      gint64 *key = g_new (gint64, 1);
      *key = c->next_remote_bidi;
      g_hash_table_insert (c->ready, key, STREAM_FAILED);
      c->head_wait_since = 0;
      endpoint_mark_dirty (ep, c);
    }
  }
  ep->processing--;
  endpoint_flush_dirty (ep);
  return G_SOURCE_CONTINUE;
}

/* ---- endpoint object -------------------------------------------------------- */

static void
wzp_endpoint_init (WzpEndpoint *ep)
{
  ep->cids = g_hash_table_new_full (cid_hash, cid_equal, g_free, NULL);
  ep->conns = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  ep->dirty = g_hash_table_new (NULL, NULL);
  wzp_endpoint_settings_init (&ep->settings);
  wzp_tls_random (ep->reset_secret, sizeof ep->reset_secret);
  ep->tx = g_new (struct TxBatch, 1);
}

static void
wzp_endpoint_dispose (GObject *object)
{
  WzpEndpoint *ep = WZP_ENDPOINT (object);

  if (!ep->shut_down)
    wzp_endpoint_shutdown (ep, 0, "shutdown");
  G_OBJECT_CLASS (wzp_endpoint_parent_class)->dispose (object);
}

static void
wzp_endpoint_finalize (GObject *object)
{
  WzpEndpoint *ep = WZP_ENDPOINT (object);

  g_hash_table_destroy (ep->conns);
  g_hash_table_destroy (ep->cids);
  g_hash_table_destroy (ep->dirty);
  g_free (ep->tx);
  g_clear_pointer (&ep->client_tls, wzp_tls_context_unref);
  g_clear_pointer (&ep->server_tls, wzp_tls_context_unref);
  g_clear_object (&ep->socket);
  if (ep->context)
    g_main_context_unref (ep->context);
  G_OBJECT_CLASS (wzp_endpoint_parent_class)->finalize (object);
}

static void
wzp_endpoint_class_init (WzpEndpointClass *klass)
{
  G_OBJECT_CLASS (klass)->dispose = wzp_endpoint_dispose;
  G_OBJECT_CLASS (klass)->finalize = wzp_endpoint_finalize;
  /* "incoming" (WzpConnection *conn): an accepted connection finished its
   * handshake; its SNI is known. Connect to its signals here. */
  ep_signals[EP_SIGNAL_INCOMING] = g_signal_new ("incoming", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, WZP_TYPE_CONNECTION);
}

WzpEndpoint *
wzp_endpoint_new (GSocketAddress *bind, GMainContext *context, const WzpEndpointSettings *settings,
                  GError **error)
{
  g_autoptr (WzpEndpoint) ep = g_object_new (WZP_TYPE_ENDPOINT, NULL);
  g_autoptr (GSocketAddress) local = NULL;
  int size = SOCKET_BUFFER;

  if (settings)
    ep->settings = *settings;
  ep->context = context ? g_main_context_ref (context) : g_main_context_ref_thread_default ();
  ep->socket = g_socket_new (g_socket_address_get_family (bind), G_SOCKET_TYPE_DATAGRAM,
                             G_SOCKET_PROTOCOL_UDP, error);
  if (ep->socket == NULL)
    return NULL;
  if (!g_socket_bind (ep->socket, bind, FALSE, error))
    return NULL;
  ep->fd = g_socket_get_fd (ep->socket);
  setsockopt (ep->fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt (ep->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  local = g_socket_get_local_address (ep->socket, error);
  if (local == NULL)
    return NULL;
  ep->local_len = (socklen_t) g_socket_address_get_native_size (local);
  if (!g_socket_address_to_native (local, &ep->local, sizeof ep->local, error))
    return NULL;
  ep->client_tls = wzp_tls_context_new_client (error);
  if (ep->client_tls == NULL)
    return NULL;
  ep->source = g_socket_create_source (ep->socket, G_IO_IN, NULL);
  g_source_set_callback (ep->source, (GSourceFunc) (void (*)(void)) on_socket_readable, ep, NULL);
  g_source_attach (ep->source, ep->context);
  ep->tick = g_timeout_source_new (1000);
  g_source_set_callback (ep->tick, on_tick, ep, NULL);
  g_source_attach (ep->tick, ep->context);
  return g_steal_pointer (&ep);
}

gboolean
wzp_endpoint_listen (WzpEndpoint *ep, const guint8 *tls_seed, GError **error)
{
  WzpTlsContext *tls = wzp_tls_context_new_server (tls_seed, error);

  if (tls == NULL)
    return FALSE;
  g_clear_pointer (&ep->server_tls, wzp_tls_context_unref);
  ep->server_tls = tls;
  return TRUE;
}

const gchar *
wzp_endpoint_get_fingerprint (WzpEndpoint *ep)
{
  return ep->server_tls ? wzp_tls_context_get_fingerprint (ep->server_tls) : NULL;
}

GInetSocketAddress *
wzp_endpoint_get_local_address (WzpEndpoint *ep)
{
  return G_INET_SOCKET_ADDRESS (g_socket_address_new_from_native (&ep->local, ep->local_len));
}

guint16
wzp_endpoint_get_port (WzpEndpoint *ep)
{
  if (ep->local.ss_family == AF_INET)
    return ntohs (((struct sockaddr_in *) &ep->local)->sin_port);
  return ntohs (((struct sockaddr_in6 *) &ep->local)->sin6_port);
}

void
wzp_endpoint_get_stats (WzpEndpoint *ep, WzpEndpointStats *stats)
{
  *stats = ep->stats;
  stats->connections = g_hash_table_size (ep->conns);
}

WzpConnection *
wzp_endpoint_connect (WzpEndpoint *ep, GSocketAddress *remote, const gchar *sni, const gchar *pin,
                      GError **error)
{
  struct sockaddr_storage ss;
  ngtcp2_callbacks cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  ngtcp2_cid dcid, scid;
  ngtcp2_path path;
  WzpConnection *c;
  GError *local = NULL;
  int rv;

  if (ep->shut_down) {
    g_set_error_literal (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED, "the endpoint is shut down");
    return NULL;
  }
  if (!g_socket_address_to_native (remote, &ss, sizeof ss, error))
    return NULL;
  c = conn_new (ep, (struct sockaddr *) &ss, (socklen_t) g_socket_address_get_native_size (remote),
                FALSE);
  c->sni = g_strdup (sni);
  c->pin = g_strdup (pin);
  fill_callbacks (&cb, FALSE);
  fill_settings (ep, &settings, &params);
  dcid.datalen = CID_LEN;
  wzp_tls_random (dcid.data, CID_LEN);
  scid.datalen = CID_LEN;
  wzp_tls_random (scid.data, CID_LEN);
  conn_path (c, &path);
  rv = ngtcp2_conn_client_new (&c->conn, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1, &cb, &settings,
                               &params, NULL, c);
  if (rv == 0 && !wzp_tls_setup_client_conn (c->conn))
    rv = NGTCP2_ERR_CALLBACK_FAILURE;
  if (rv == 0)
    c->tls = wzp_tls_session_new (ep->client_tls, c->conn, FALSE, sni, &local);
  if (rv != 0 || c->tls == NULL) {
    GError *e = g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_FAILED, "cannot start a connection: %s",
                             local ? local->message : ngtcp2_strerror (rv));
    g_clear_error (&local);
    if (error)
      *error = g_error_copy (e);
    conn_terminate (c, e);      /* drops the endpoint's (only) reference */
    return NULL;
  }
  if (ep->settings.keep_alive_ms)
    ngtcp2_conn_set_keep_alive_timeout (c->conn, (guint64) ep->settings.keep_alive_ms * NGTCP2_MILLISECONDS);
  register_cid (c, scid.data, scid.datalen);
  conn_kick (c);
  return g_object_ref (c);
}

void
wzp_endpoint_shutdown (WzpEndpoint *ep, guint64 code, const gchar *reason)
{
  g_autoptr (GPtrArray) conns = NULL;

  if (ep->shut_down)
    return;
  conns = conn_list (ep);
  for (guint i = 0; i < conns->len; i++)
    wzp_connection_close (g_ptr_array_index (conns, i), code, reason);
  ep->shut_down = TRUE;
  if (ep->source) {
    g_source_destroy (ep->source);
    g_clear_pointer (&ep->source, g_source_unref);
  }
  if (ep->tick) {
    g_source_destroy (ep->tick);
    g_clear_pointer (&ep->tick, g_source_unref);
  }
  if (ep->socket)
    g_socket_close (ep->socket, NULL);
}

/* ---- connection API ---------------------------------------------------------- */

static gboolean
conn_check_open (WzpConnection *c, GError **error)
{
  if (c->state == WZP_CONNECTION_CLOSED || c->conn == NULL || c->terminating) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED, "the connection to %s is closed",
                 c->remote_str);
    return FALSE;
  }
  return TRUE;
}

static gboolean
queue_stream (WzpConnection *c, GBytes *data, gboolean uni, GError **error)
{
  Stream *s;

  if (!conn_check_open (c, error))
    return FALSE;
  /* a peer that grants no stream credit must not make us hoard messages */
  if (g_queue_get_length (&c->pending_open) >= MAX_PENDING_STREAMS) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_TOO_LARGE,
                 "%u messages to %s are already waiting for the peer to accept streams",
                 MAX_PENDING_STREAMS, c->remote_str);
    return FALSE;
  }
  s = g_new0 (Stream, 1);
  s->id = -1;
  s->uni = uni;
  s->out = g_bytes_ref (data);
  s->want_fin = TRUE;
  s->rx_done = TRUE;
  s->opened_us = g_get_monotonic_time ();
  g_queue_push_tail (&c->pending_open, s);
  conn_kick (c);
  return TRUE;
}

gboolean
wzp_connection_send_signal (WzpConnection *c, const WzpSignal *msg, GError **error)
{
  g_autoptr (GBytes) frame = wzp_signal_to_frame (msg, error);

  if (frame == NULL || !queue_stream (c, frame, FALSE, error))
    return FALSE;
  c->stats.signals_sent++;
  return TRUE;
}

gboolean
wzp_connection_send_frame (WzpConnection *c, GBytes *frame, GError **error)
{
  if (!queue_stream (c, frame, FALSE, error))
    return FALSE;
  c->stats.signals_sent++;
  return TRUE;
}

gboolean
wzp_connection_send_uni (WzpConnection *c, GBytes *data, GError **error)
{
  return queue_stream (c, data, TRUE, error);
}

gsize
wzp_connection_get_max_datagram_size (WzpConnection *c)
{
  const ngtcp2_transport_params *rp;
  gsize frame_max, path_max, overhead;

  if (c->conn == NULL || c->state != WZP_CONNECTION_ESTABLISHED)
    return 0;
  rp = ngtcp2_conn_get_remote_transport_params (c->conn);
  if (rp == NULL || rp->max_datagram_frame_size < 4)
    return 0;
  frame_max = (gsize) MIN (rp->max_datagram_frame_size, 65535) - 3;
  /* short header: flags, DCID, packet number (up to 4), AEAD tag; frame
   * type and length */
  overhead = 1 + ngtcp2_conn_get_dcid (c->conn)->datalen + 4 + 16 + 3;
  path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size (c->conn);
  return MIN (frame_max, path_max > overhead ? path_max - overhead : 0);
}

gboolean
wzp_connection_send_datagram (WzpConnection *c, const guint8 *data, gsize len, GError **error)
{
  gsize max;

  if (!conn_check_open (c, error))
    return FALSE;
  if (c->state != WZP_CONNECTION_ESTABLISHED) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_NOT_READY,
                 "the connection to %s is not established yet", c->remote_str);
    return FALSE;
  }
  max = wzp_connection_get_max_datagram_size (c);
  if (len > max) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_TOO_LARGE,
                 "a datagram of %" G_GSIZE_FORMAT " bytes is over the %" G_GSIZE_FORMAT
                 " bytes the path to %s takes", len, max, c->remote_str);
    return FALSE;
  }
  /* media waiting behind congestion control is late: keep the newest */
  if (g_queue_get_length (&c->out_dgrams) >= c->endpoint->settings.datagram_queue) {
    g_bytes_unref (g_queue_pop_head (&c->out_dgrams));
    c->stats.datagrams_dropped++;
  }
  g_queue_push_tail (&c->out_dgrams, g_bytes_new (data, len));
  conn_kick (c);
  return TRUE;
}

void
wzp_connection_set_datagram_handler (WzpConnection *c, WzpDatagramFunc func, gpointer user_data,
                                     GDestroyNotify destroy)
{
  if (c->dgram_destroy)
    c->dgram_destroy (c->dgram_data);
  c->dgram_func = func;
  c->dgram_data = user_data;
  c->dgram_destroy = destroy;
}

GBytes *
wzp_connection_pop_datagram (WzpConnection *c)
{
  return g_queue_pop_head (&c->in_dgrams);
}

void
wzp_connection_close (WzpConnection *c, guint64 code, const gchar *reason)
{
  ngtcp2_ccerr ccerr;

  if (c->state == WZP_CONNECTION_CLOSED || c->terminating)
    return;
  /* what the application queued before closing (a refusal, a last Hangup)
   * goes out ahead of the CONNECTION_CLOSE */
  if (c->conn && c->state == WZP_CONNECTION_ESTABLISHED)
    conn_write (c);
  if (c->state == WZP_CONNECTION_CLOSED)
    return;
  ngtcp2_ccerr_default (&ccerr);
  ngtcp2_ccerr_set_application_error (&ccerr, code, (const guint8 *) reason,
                                      reason ? strlen (reason) : 0);
  conn_close_with (c, &ccerr, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED,
                                           "closed locally (%s)", reason ? reason : ""));
}

WzpConnectionState
wzp_connection_get_state (WzpConnection *c)
{
  return c->state;
}

gboolean
wzp_connection_is_server (WzpConnection *c)
{
  return c->server;
}

WzpEndpoint *
wzp_connection_get_endpoint (WzpConnection *c)
{
  return c->endpoint;
}

const gchar *
wzp_connection_get_sni (WzpConnection *c)
{
  return c->sni;
}

const gchar *
wzp_connection_get_peer_fingerprint (WzpConnection *c)
{
  return c->tls ? wzp_tls_session_get_peer_fingerprint (c->tls) : NULL;
}

const gchar *
wzp_connection_get_remote_address (WzpConnection *c)
{
  return c->remote_str;
}

void
wzp_connection_get_stats (WzpConnection *c, WzpConnectionStats *stats)
{
  *stats = c->stats;
  stats->datagrams_queued = g_queue_get_length (&c->out_dgrams);
  if (c->conn) {
    ngtcp2_conn_info ci;
    ngtcp2_conn_get_conn_info (c->conn, &ci);
    stats->rtt_us = ci.smoothed_rtt / NGTCP2_MICROSECONDS;
    stats->min_rtt_us = ci.min_rtt / NGTCP2_MICROSECONDS;
    stats->rttvar_us = ci.rttvar / NGTCP2_MICROSECONDS;
    stats->cwnd = ci.cwnd;
  }
}

const GError *
wzp_connection_get_close_error (WzpConnection *c)
{
  return c->close_error;
}
