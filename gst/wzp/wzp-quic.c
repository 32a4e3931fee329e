/* wzp-quic: the QUIC endpoint over ngtcp2 (see wzp-quic.h): one UDP socket,
 * every datagram routed by its destination connection ID, an unknown Initial
 * becoming an accepted connection. Connections are in wzp-quic-conn.c. */
#define G_LOG_DOMAIN "wzp-quic"
#define _GNU_SOURCE             /* recvmmsg, sendmmsg */

#include "wzp-quic-private.h"

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/timerfd.h>
#include <unistd.h>

G_DEFINE_QUARK (wzp-quic-error-quark, wzp_quic_error)

G_DEFINE_TYPE (WzpEndpoint, wzp_endpoint, G_TYPE_OBJECT)

struct RxBatch {
  struct mmsghdr msg[RECV_BATCH];
  struct iovec iov[RECV_BATCH];
  struct sockaddr_storage addr[RECV_BATCH];
  guint8 buf[RECV_BATCH][RX_BUF_SIZE];
};

struct TxBatch {
  struct mmsghdr msg[SEND_BATCH];
  struct iovec iov[SEND_BATCH];
  struct sockaddr_storage addr[SEND_BATCH];
  guint8 buf[SEND_BATCH][MAX_PKT];
};

enum { EP_SIGNAL_INCOMING, EP_N_SIGNALS };
static guint ep_signals[EP_N_SIGNALS];

void
wzp_endpoint_emit_incoming (WzpEndpoint *ep, WzpConnection *c)
{
  g_signal_emit (ep, ep_signals[EP_SIGNAL_INCOMING], 0, c);
}

CidKey
cid_key (const guint8 *data, gsize len)
{
  CidKey k = { (guint8) MIN (len, NGTCP2_MAX_CIDLEN) };

  memcpy (k.data, data, k.len);
  return k;
}

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
  s->initial_rtt_ms = WZP_INITIAL_RTT_MS;
  s->ack_hold_ms = 40;
  s->rx_hold_us = WZP_RX_HOLD_US;
  s->datagram_max_wait_ms = 100;
  {
    const gchar *v = g_getenv ("WZP_DATAGRAM_MAX_WAIT_MS");

    if (v && *v)
      s->datagram_max_wait_ms = (guint) g_ascii_strtoull (v, NULL, 10);
  }
}

static void
quic_log (void *user_data, const char *fmt, ...)
{
  va_list ap;
  g_autofree gchar *msg = NULL;

  va_start (ap, fmt);
  msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_printerr ("ngtcp2[%d]: %s\n", (int) getpid (), msg);
}

/* BBR unless WZP_QUIC_CC says cubic or reno (docs/quic.md): a call's
 * media is application-limited, so a loss-based window never grows back
 * after the losses of a long call, and on a path of 600 ms RTT it ends
 * below what 50 datagrams a second need */
static ngtcp2_cc_algo
quic_cc_algo (void)
{
  static gsize once;
  static ngtcp2_cc_algo algo;

  if (g_once_init_enter (&once)) {
    const gchar *v = g_getenv ("WZP_QUIC_CC");

    algo = g_strcmp0 (v, "cubic") == 0 ? NGTCP2_CC_ALGO_CUBIC :
           g_strcmp0 (v, "reno") == 0 ? NGTCP2_CC_ALGO_RENO : NGTCP2_CC_ALGO_BBR;
    g_once_init_leave (&once, 1);
  }
  return algo;
}

static void
fill_settings (WzpEndpoint *ep, ngtcp2_settings *settings, ngtcp2_transport_params *params)
{
  ngtcp2_settings_default (settings);
  settings->initial_ts = endpoint_now_ns (ep);
  settings->handshake_timeout = (guint64) ep->settings.handshake_timeout_ms * NGTCP2_MILLISECONDS;
  settings->max_tx_udp_payload_size = 1452;
  if (ep->settings.initial_rtt_ms)
    settings->initial_rtt = (ngtcp2_duration) ep->settings.initial_rtt_ms * NGTCP2_MILLISECONDS;
  /* with the hold, an acknowledgement is sent at once only after this many
   * packets (ngtcp2's default, 2, sends one for every other media datagram
   * before it could ride on one of ours) */
  if (ep->settings.ack_hold_ms)
    settings->ack_thresh = ACK_HOLD_MAX_PACKETS;
  if (g_getenv ("WZP_QUIC_TRACE"))
    settings->log_printf = quic_log;
  settings->cc_algo = quic_cc_algo ();
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
  /* what the peer must allow for: ngtcp2's own delay (at most the default
   * 25 ms) plus the hold (see conn_schedule); signalling connections keep
   * the default (wzp_quic_sni_is_signalling) */
  params->max_ack_delay = (NGTCP2_DEFAULT_MAX_ACK_DELAY / NGTCP2_MILLISECONDS +
                           ep->settings.ack_hold_ms) * NGTCP2_MILLISECONDS;
}

static void endpoint_flush_dirty (WzpEndpoint *ep);

/* ---- connection timers ---------------------------------------------------
 * One source per endpoint over a binary min-heap of connection deadlines: a
 * GSource per connection would make GLib scan every connection on every loop
 * iteration and signal its own wakeup fd on every change of a deadline. */

/* the heap keeps each deadline next to its connection, so that sifting
 * compares within the array instead of reading the connections */
typedef struct {
  gint64 deadline;
  WzpConnection *c;
} TimerEntry;

static inline TimerEntry *
heap_entry (GArray *h, guint i)
{
  return &g_array_index (h, TimerEntry, i);
}

static inline gint64
heap_deadline (GArray *h, guint i)
{
  return heap_entry (h, i)->deadline;
}

static void
heap_swap (GArray *h, guint i, guint j)
{
  TimerEntry t = *heap_entry (h, i);

  *heap_entry (h, i) = *heap_entry (h, j);
  *heap_entry (h, j) = t;
  heap_entry (h, i)->c->heap_pos = i;
  heap_entry (h, j)->c->heap_pos = j;
}

static void
heap_up (GArray *h, guint i)
{
  while (i > 0 && heap_deadline (h, i) < heap_deadline (h, (i - 1) / 2)) {
    heap_swap (h, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void
heap_down (GArray *h, guint i)
{
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;

    if (l < h->len && heap_deadline (h, l) < heap_deadline (h, m))
      m = l;
    if (r < h->len && heap_deadline (h, r) < heap_deadline (h, m))
      m = r;
    if (m == i)
      return;
    heap_swap (h, i, m);
    i = m;
  }
}

/* Lazy: a deadline that moves later (each packet moves most of them) only
 * records where it wants to be; the heap entry stays early, and when it
 * comes up, the dispatch puts it back at the wanted time. */
void
endpoint_timer_set (WzpEndpoint *ep, WzpConnection *c, gint64 deadline)
{
  GArray *h = ep->timers;

  c->want = deadline;
  if (c->heap_pos == NO_HEAP_POS) {
    TimerEntry e = { deadline, c };

    c->heap_pos = h->len;
    g_array_append_val (h, e);
    heap_up (h, c->heap_pos);
  } else if (deadline < heap_entry (h, c->heap_pos)->deadline) {
    heap_entry (h, c->heap_pos)->deadline = deadline;
    heap_up (h, c->heap_pos);
  } else {
    return;
  }
  /* a thread blocked in this context's poll learns of an earlier deadline */
  if (c->heap_pos == 0 && !ep->processing && !g_main_context_is_owner (ep->context))
    g_main_context_wakeup (ep->context);
}

void
endpoint_timer_clear (WzpEndpoint *ep, WzpConnection *c)
{
  GArray *h = ep->timers;
  guint i = c->heap_pos;

  if (i == NO_HEAP_POS)
    return;
  if (i != h->len - 1)
    heap_swap (h, i, h->len - 1);
  g_array_set_size (h, h->len - 1);
  c->heap_pos = NO_HEAP_POS;
  if (i < h->len) {
    heap_down (h, i);
    heap_up (h, i);
  }
}

typedef struct {
  GSource source;
  WzpEndpoint *ep;
} TimerSource;

static gboolean
timer_prepare (GSource *source, gint *timeout)
{
  GArray *h = ((TimerSource *) source)->ep->timers;
  gint64 now, first;

  if (h->len == 0) {
    *timeout = -1;
    return FALSE;
  }
  now = g_source_get_time (source);
  first = heap_deadline (h, 0);
  if (first <= now) {
    *timeout = 0;
    return TRUE;
  }
  *timeout = (gint) MIN ((first - now + 999) / 1000, G_MAXINT);
  return FALSE;
}

static gboolean
timer_check (GSource *source)
{
  GArray *h = ((TimerSource *) source)->ep->timers;

  return h->len > 0 && heap_deadline (h, 0) <= g_source_get_time (source);
}

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  WzpEndpoint *ep = ((TimerSource *) source)->ep;
  GArray *h = ep->timers;
  gint64 now = g_get_monotonic_time (), saved_clock;
  g_autoptr (GPtrArray) due = g_ptr_array_new_with_free_func (g_object_unref);

  g_object_ref (ep);
  while (h->len > 0 && heap_deadline (h, 0) <= now) {
    WzpConnection *c = heap_entry (h, 0)->c;

    if (c->want > now) {
      heap_entry (h, 0)->deadline = c->want;   /* moved later since: wait again */
      heap_down (h, 0);
      continue;
    }
    endpoint_timer_clear (ep, c);
    g_ptr_array_add (due, g_object_ref (c));
  }
  /* packets the timers write leave together, as after a receive */
  ep->processing++;
  saved_clock = ep->clock_us;
  ep->clock_us = now;
  for (guint i = 0; i < due->len; i++)
    conn_on_timer (g_ptr_array_index (due, i));
  ep->processing--;
  endpoint_flush_dirty (ep);
  if (saved_clock == 0)         /* outermost: back to reading the clock */
    ep->clock_us = 0;
  g_object_unref (ep);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_funcs = { timer_prepare, timer_check, timer_dispatch, NULL, NULL, NULL };

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

void
wzp_endpoint_set_initial_rtt (WzpEndpoint *ep, guint rtt_ms)
{
  ep->settings.initial_rtt_ms = rtt_ms ? rtt_ms : WZP_INITIAL_RTT_MS;
}

void
wzp_endpoint_set_test_filter (WzpEndpoint *ep, WzpPacketFilter filter, gpointer data)
{
  ep->filter = filter;
  ep->filter_data = data;
}

void
send_packet (WzpEndpoint *ep, WzpConnection *c, const ngtcp2_path *path, const guint8 *buf, gsize n)
{
  gssize r;

  if (ep->filter && ep->filter ((const struct sockaddr *) path->remote.addr, TRUE, ep->filter_data))
    return;

  if (c) {
    c->stats.packets_sent++;
    c->stats.bytes_sent += n;
    c->rx_since_tx = 0;
    c->held_since = 0;
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

void
endpoint_mark_dirty (WzpEndpoint *ep, WzpConnection *c)
{
  if (!c->dirty) {
    c->dirty = TRUE;
    g_ptr_array_add (ep->dirty_list, c);
  }
}

void
endpoint_unmark_dirty (WzpEndpoint *ep, WzpConnection *c)
{
  if (c->dirty) {
    c->dirty = FALSE;
    g_ptr_array_remove (ep->dirty_list, c);
  }
}

static void
endpoint_flush_dirty (WzpEndpoint *ep)
{
  gboolean outer = !ep->batching;

  ep->batching = TRUE;
  while (ep->dirty_list->len > 0) {
    WzpConnection *c = g_ptr_array_steal_index (ep->dirty_list, ep->dirty_list->len - 1);

    c->dirty = FALSE;
    g_object_ref (c);
    conn_flush (c);
    g_object_unref (c);
  }
  if (outer) {
    endpoint_send_batch (ep);
    ep->batching = FALSE;
  }
}

/* A server connection learns its server name from the ClientHello: one that
 * carries signalling only announces ngtcp2's usual acknowledgement delay. */
static void
client_hello (ngtcp2_conn *conn, const gchar *sni, gsize len, gpointer data)
{
  ngtcp2_transport_params p;

  if (!wzp_quic_sni_is_signalling (sni, len))
    return;
  p = *ngtcp2_conn_get_local_transport_params (conn);
  p.max_ack_delay = NGTCP2_DEFAULT_MAX_ACK_DELAY;
  ngtcp2_conn_set_local_transport_params (conn, &p);
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
  wzp_crypto_random (scid.data, CID_LEN);
  params.stateless_reset_token_present = 1;
  wzp_crypto_stateless_reset_token (ep->reset_secret, scid.data, CID_LEN, params.stateless_reset_token);
  conn_path (c, &path);
  rv = ngtcp2_conn_server_new (&c->conn, &hd.scid, &scid, &path, hd.version, &cb, &settings,
                               &params, NULL, c);
  if (rv == 0)
    c->tls = wzp_tls_session_new (ep->server_tls, c->conn, TRUE, NULL, &error);
  if (c->tls)
    wzp_tls_session_set_client_hello_func (c->tls, client_hello, c);
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

  wzp_crypto_random (&unused, 1);
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
  if (ep->filter && ep->filter (from, FALSE, ep->filter_data))
    return;
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
  c = cid_table_lookup (&ep->cids, &k);
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
  conn_read (c, from, fromlen, data, len);
}

gboolean
wzp_quic_sni_is_signalling (const gchar *sni, gsize len)
{
  static const gchar *const names[] = { "_signal", "_probe", "ping", "version" };

  for (guint i = 0; sni && i < G_N_ELEMENTS (names); i++)
    if (len == strlen (names[i]) && g_ascii_strncasecmp (sni, names[i], len) == 0)
      return TRUE;
  return FALSE;
}

/* Asks the CPU for the connections of a received batch before any packet
 * of it is read (conn_prefetch), in four rounds whose misses overlap: the
 * table slots of the packets' connection IDs, the line of each connection
 * object that points to ngtcp2's, then the rest of it with the heads of
 * ngtcp2's connection and of our TLS session, then the session's packet
 * protection state for reading. Long-header packets are left
 * alone. */
static void
prefetch_batch (WzpEndpoint *ep, const struct mmsghdr *msgs, guint8 (*bufs)[RX_BUF_SIZE], int n)
{
  CidKey keys[RECV_BATCH];
  WzpConnection *conns[RECV_BATCH];

  for (int i = 0; i < n; i++) {
    keys[i].len = 0;
    if (msgs[i].msg_len > 1 + CID_LEN && !(bufs[i][0] & 0x80)) {
      keys[i] = cid_key (bufs[i] + 1, CID_LEN);
      cid_table_prefetch (&ep->cids, &keys[i]);
    }
  }
  for (int i = 0; i < n; i++) {
    conns[i] = keys[i].len ? cid_table_lookup (&ep->cids, &keys[i]) : NULL;
    if (conns[i])
      __builtin_prefetch (&conns[i]->conn);
  }
  for (int i = 0; i < n; i++)
    if (conns[i] && conns[i]->conn)
      conn_prefetch (conns[i]);
  for (int i = 0; i < n; i++)
    if (conns[i] && conns[i]->tls)
      wzp_tls_session_prefetch (conns[i]->tls);
}

/* Reads and handles what the socket holds, in batches: at most 16 of them
 * before the loop gets its turn again. Returns how many packets it read;
 * *drained says whether the socket was read empty. */
static guint
endpoint_read (WzpEndpoint *ep, gboolean *drained)
{
  /* per endpoint: endpoints may run in different threads */
  guint8 (*bufs)[RX_BUF_SIZE] = ep->rx->buf;
  struct mmsghdr *msgs = ep->rx->msg;
  struct iovec *iov = ep->rx->iov;
  struct sockaddr_storage *addrs = ep->rx->addr;
  gint64 saved_clock;
  guint total = 0;

  *drained = FALSE;
  /* the source may recurse (see wzp_endpoint_new): a nested main loop in a
   * handler must not reuse the buffers being read */
  if (ep->reading)
    return 0;
  ep->reading = TRUE;
  g_object_ref (ep);
  ep->processing++;
  saved_clock = ep->clock_us;
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
    if (n <= 0) {
      *drained = TRUE;
      break;
    }
    total += (guint) n;
    ep->clock_us = g_get_monotonic_time ();
    prefetch_batch (ep, msgs, bufs, n);
    for (int i = 0; i < n && !ep->shut_down; i++) {
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        ep->stats.packets_received++;
        ep->stats.packets_dropped++;
        continue;
      }
      endpoint_dispatch (ep, bufs[i], msgs[i].msg_len, (struct sockaddr *) &addrs[i],
                         msgs[i].msg_hdr.msg_namelen);
    }
    /* what the batch made to send goes now, while the connections that
     * send it are still in the caches, and a forwarded datagram waits for
     * one batch rather than for the whole burst */
    endpoint_flush_dirty (ep);
    if (n < RECV_BATCH) {
      *drained = TRUE;
      break;
    }
  }
  ep->processing--;
  ep->clock_us = g_get_monotonic_time ();
  endpoint_flush_dirty (ep);
  if (saved_clock == 0)         /* outermost: back to reading the clock */
    ep->clock_us = 0;
  ep->reading = FALSE;
  g_object_unref (ep);
  return total;
}

/* The socket's source. Under load, a wake-up that read the socket empty
 * can leave it alone for rx_hold_us (a timerfd wakes the source again):
 * the packets that come meanwhile are read in one batch, instead of one
 * wake-up each, with the poll, the two context switches and the two system
 * calls each of those costs. It holds only while the packets of the last
 * tenth of a second came often enough to gather at least two in that time,
 * so a quiet endpoint answers each packet at once (docs/quic.md). */
typedef struct {
  GSource source;
  WzpEndpoint *ep;
  /* our own poll records (g_source_add_poll), whose events dispatch may
   * change directly: g_source_modify_unix_fd() would wake the loop again */
  GPollFD sock, hold;
  int hold_fd;                  /* a timerfd; -1 without one */
  gint64 window_start;          /* monotonic µs */
  guint window_packets, rate;   /* packets in this window; per second in the last */
} RxSource;

#define RX_WINDOW_US 100000
#define RX_ERRORS (G_IO_ERR | G_IO_HUP | G_IO_NVAL)

static gboolean
rx_check (GSource *source)
{
  RxSource *rx = (RxSource *) source;

  /* poll reports errors on a socket even while it is not asked for input:
   * those end a hold, so that the loop does not spin on them */
  return (rx->sock.revents & (rx->sock.events | RX_ERRORS)) || (rx->hold.revents & rx->hold.events);
}

static gboolean
rx_dispatch (GSource *source, GSourceFunc callback, gpointer user_data)
{
  RxSource *rx = (RxSource *) source;
  WzpEndpoint *ep = rx->ep;
  guint hold_us = ep->settings.rx_hold_us;
  gboolean held = rx->hold.events != 0, drained;
  gint64 now;
  guint n;

  if (held) {
    /* the hold is over (the timer's count is reset when it is set again) */
    if (!(rx->hold.revents & G_IO_IN) && !(rx->sock.revents & RX_ERRORS))
      return G_SOURCE_CONTINUE;
    rx->hold.events = 0;
    rx->sock.events = G_IO_IN;
  }
  rx->sock.revents = rx->hold.revents = 0;
  n = endpoint_read (ep, &drained);
  ep->stats.rx_wakeups += n > 0;
  /* nothing came during a hold: the load is over, wait for the socket */
  if (held && n == 0)
    return G_SOURCE_CONTINUE;
  if (ep->shut_down || rx->hold_fd < 0 || hold_us == 0)
    return G_SOURCE_CONTINUE;
  now = g_get_monotonic_time ();
  rx->window_packets += n;
  if (now - rx->window_start >= RX_WINDOW_US) {
    rx->rate = now - rx->window_start < 2 * RX_WINDOW_US ?
        (guint) ((guint64) rx->window_packets * G_USEC_PER_SEC / (guint64) (now - rx->window_start)) : 0;
    rx->window_start = now;
    rx->window_packets = 0;
  }
  if (drained && (guint64) rx->rate * hold_us >= 2 * G_USEC_PER_SEC) {
    struct itimerspec its = { .it_value = { hold_us / G_USEC_PER_SEC, (hold_us % G_USEC_PER_SEC) * 1000 } };

    if (timerfd_settime (rx->hold_fd, 0, &its, NULL) == 0) {
      rx->sock.events = 0;
      rx->hold.events = G_IO_IN;
      ep->stats.rx_holds++;
    }
  }
  return G_SOURCE_CONTINUE;
}

static void
rx_finalize (GSource *source)
{
  RxSource *rx = (RxSource *) source;

  if (rx->hold_fd >= 0)
    close (rx->hold_fd);
}

static GSourceFuncs rx_funcs = { NULL, rx_check, rx_dispatch, rx_finalize, NULL, NULL };

static GSource *
rx_source_new (WzpEndpoint *ep)
{
  GSource *source = g_source_new (&rx_funcs, sizeof (RxSource));
  RxSource *rx = (RxSource *) source;

  rx->ep = ep;
  rx->sock.fd = ep->fd;
  rx->sock.events = G_IO_IN;
  g_source_add_poll (source, &rx->sock);
  rx->hold_fd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (rx->hold_fd >= 0) {
    rx->hold.fd = rx->hold_fd;
    g_source_add_poll (source, &rx->hold);
  }
  rx->window_start = g_get_monotonic_time ();
  return source;
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
    if (c->streams) {
      g_hash_table_iter_init (&it, c->streams);
      while (g_hash_table_iter_next (&it, NULL, &v)) {
        Stream *s = v;
        if (!s->rx_done && !ngtcp2_conn_is_local_stream (c->conn, s->id) && s->id >= 0 &&
            now - s->opened_us > limit) {
          stream_reject (c, s, "message not finished in time");
          endpoint_mark_dirty (ep, c);
        }
      }
    }
    if (c->head_wait_since && now - c->head_wait_since > limit) {
      gint64 *key = g_new (gint64, 1);
      *key = c->next_remote_bidi;
      g_hash_table_insert (conn_ready_table (c), key, STREAM_FAILED);
      c->ready_changed = TRUE;
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
  guint32 seed;

  wzp_crypto_random ((guint8 *) &seed, sizeof seed);
  cid_table_init (&ep->cids, seed);
  ep->conns = g_hash_table_new_full (NULL, NULL, g_object_unref, NULL);
  ep->dirty_list = g_ptr_array_new ();
  ep->timers = g_array_new (FALSE, FALSE, sizeof (TimerEntry));
  wzp_endpoint_settings_init (&ep->settings);
  wzp_crypto_random (ep->reset_secret, sizeof ep->reset_secret);
  ep->tx = g_new (struct TxBatch, 1);
  ep->rx = g_new (struct RxBatch, 1);
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
  cid_table_clear (&ep->cids);
  g_ptr_array_unref (ep->dirty_list);
  g_array_unref (ep->timers);
  g_free (ep->tx);
  g_free (ep->rx);
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

/* RFC 9000 §14: a QUIC packet is never fragmented; in IPv4 the DF bit is
 * set where possible. Linux's default (IP_PMTUDISC_WANT) sets DF but still
 * fragments a packet larger than the route's MTU on this host (a tunnel's,
 * say) into pieces without DF. PROBE sets DF, never fragments (a packet too large fails to
 * send and counts as lost, which is what ngtcp2's path MTU discovery
 * expects) and does not make the kernel's cached path MTU a limit. An IPv6
 * socket gets both options, the IPv4 one for IPv4-mapped peers. */
static void
socket_no_fragments (int fd, GSocketFamily family)
{
  int v4 = IP_PMTUDISC_PROBE, v6 = IPV6_PMTUDISC_PROBE;

  if (setsockopt (fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof v4) != 0)
    g_debug ("cannot set IP_MTU_DISCOVER: %s", g_strerror (errno));
  if (family == G_SOCKET_FAMILY_IPV6 &&
      setsockopt (fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof v6) != 0)
    g_debug ("cannot set IPV6_MTU_DISCOVER: %s", g_strerror (errno));
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
  socket_no_fragments (ep->fd, g_socket_address_get_family (bind));
  local = g_socket_get_local_address (ep->socket, error);
  if (local == NULL)
    return NULL;
  ep->local_len = (socklen_t) g_socket_address_get_native_size (local);
  if (!g_socket_address_to_native (local, &ep->local, sizeof ep->local, error))
    return NULL;
  ep->client_tls = wzp_tls_context_new_client (error);
  if (ep->client_tls == NULL)
    return NULL;
  ep->source = rx_source_new (ep);
  /* GLib would otherwise take the socket out of its poll set and put it
   * back around every dispatch, waking its own loop twice each time
   * (endpoint_read() refuses to nest) */
  g_source_set_can_recurse (ep->source, TRUE);
  g_source_attach (ep->source, ep->context);
  ep->timer = g_source_new (&timer_funcs, sizeof (TimerSource));
  ((TimerSource *) ep->timer)->ep = ep;
  g_source_attach (ep->timer, ep->context);
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
  /* our dials show the same certificate to a server that asks (federation) */
  wzp_tls_context_use_identity_of (ep->client_tls, tls);
  return TRUE;
}

void
wzp_endpoint_set_ask_call_certificates (WzpEndpoint *ep, gboolean ask)
{
  g_return_if_fail (ep->server_tls != NULL);
  wzp_tls_context_set_ask_call_certificates (ep->server_tls, ask);
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

/* @remote as the socket wants it: an IPv4 address becomes ::ffff:a.b.c.d on
 * a dual-stack (IPv6) socket, so one socket reaches both families. */
static gboolean
endpoint_native_address (WzpEndpoint *ep, GSocketAddress *remote, struct sockaddr_storage *ss,
                         socklen_t *len, GError **error)
{
  if (!g_socket_address_to_native (remote, ss, sizeof *ss, error))
    return FALSE;
  *len = (socklen_t) g_socket_address_get_native_size (remote);
  if (ss->ss_family == AF_INET && ep->local.ss_family == AF_INET6) {
    struct sockaddr_in in = *(struct sockaddr_in *) ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;

    memset (in6, 0, sizeof *in6);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = in.sin_port;
    in6->sin6_addr.s6_addr[10] = 0xff;
    in6->sin6_addr.s6_addr[11] = 0xff;
    memcpy (&in6->sin6_addr.s6_addr[12], &in.sin_addr, 4);
    *len = sizeof *in6;
  } else if (ss->ss_family == AF_INET6 && ep->local.ss_family == AF_INET) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                 "an IPv6 address cannot be reached from an IPv4 socket");
    return FALSE;
  }
  return TRUE;
}

gboolean
wzp_endpoint_can_reach (WzpEndpoint *ep, GSocketAddress *remote)
{
  struct sockaddr_storage ss;
  socklen_t len;

  return endpoint_native_address (ep, remote, &ss, &len, NULL);
}

gboolean
wzp_endpoint_send_punch (WzpEndpoint *ep, GSocketAddress *remote)
{
  /* one zero byte: no QUIC version can parse it, so a peer's stack drops it */
  static const guint8 punch[1] = { 0 };
  struct sockaddr_storage ss;
  socklen_t len;
  gssize r;

  if (ep->shut_down || !endpoint_native_address (ep, remote, &ss, &len, NULL))
    return FALSE;
  if (ep->filter && ep->filter ((const struct sockaddr *) &ss, TRUE, ep->filter_data))
    return TRUE;
  do
    r = sendto (ep->fd, punch, sizeof punch, 0, (const struct sockaddr *) &ss, len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    ep->stats.send_errors++;
    return FALSE;
  }
  ep->stats.packets_sent++;
  ep->stats.bytes_sent += sizeof punch;
  return TRUE;
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
  socklen_t sslen;
  int rv;

  if (ep->shut_down) {
    g_set_error_literal (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED, "the endpoint is shut down");
    return NULL;
  }
  if (!endpoint_native_address (ep, remote, &ss, &sslen, error))
    return NULL;
  c = conn_new (ep, (struct sockaddr *) &ss, sslen, FALSE);
  c->sni = g_strdup (sni);
  c->pin = g_strdup (pin);
  c->signalling = sni && wzp_quic_sni_is_signalling (sni, strlen (sni));
  fill_callbacks (&cb, FALSE);
  fill_settings (ep, &settings, &params);
  if (c->signalling)
    params.max_ack_delay = NGTCP2_DEFAULT_MAX_ACK_DELAY;
  dcid.datalen = CID_LEN;
  wzp_crypto_random (dcid.data, CID_LEN);
  scid.datalen = CID_LEN;
  wzp_crypto_random (scid.data, CID_LEN);
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
  if (ep->timer) {
    g_source_destroy (ep->timer);
    g_clear_pointer (&ep->timer, g_source_unref);
  }
  if (ep->socket)
    g_socket_close (ep->socket, NULL);
}
