/* wzp-quic-conn: one QUIC connection of a WzpEndpoint (see wzp-quic.h):
 * datagrams, the events the application sees and the connection's life
 * (signal messages on streams: wzp-quic-stream.c). ngtcp2 is never re-entered from its own callbacks:
 * callbacks only record events, which are delivered (and packets written)
 * after ngtcp2 returns. */
#define G_LOG_DOMAIN "wzp-quic"

#include "wzp-quic-private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_TYPE (WzpConnection, wzp_connection, G_TYPE_OBJECT)

enum { CONN_SIGNAL_ESTABLISHED, CONN_SIGNAL_CLOSED, CONN_SIGNAL_SIGNAL, CONN_SIGNAL_UNI,
  CONN_SIGNAL_DATAGRAM, CONN_N_SIGNALS };
static guint conn_signals[CONN_N_SIGNALS];

static void conn_close_with (WzpConnection *c, const ngtcp2_ccerr *ccerr, GError *reason);

static Event *
event_new (EventType type, gpointer data, gsize extra)
{
  /* GSlice: per-thread magazines; a batch of datagrams outruns malloc's
   * per-thread cache (seven of a size) into its slow path */
  Event *e = g_slice_alloc (sizeof (Event) + extra);

  e->link.data = e;
  e->link.prev = e->link.next = NULL;
  e->type = type;
  e->data = data;
  e->len = extra;
  return e;
}

void
push_event (WzpConnection *c, EventType type, gpointer data)
{
  g_queue_push_tail_link (&c->events, &event_new (type, data, 0)->link);
}

static Event *
pop_event (WzpConnection *c)
{
  GList *l = g_queue_pop_head_link (&c->events);

  return l ? l->data : NULL;
}

/* ---- ngtcp2 callbacks ------------------------------------------------------ */

static int
recv_datagram_cb (ngtcp2_conn *conn, uint32_t flags, const uint8_t *data, size_t datalen,
                  void *user_data)
{
  WzpConnection *c = user_data;

  Event *e = event_new (EV_DATAGRAM, NULL, datalen);

  c->stats.datagrams_received++;
  memcpy (e->bytes, data, datalen);
  g_queue_push_tail_link (&c->events, &e->link);
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

void
register_cid (WzpConnection *c, const guint8 *data, gsize len)
{
  CidKey k = cid_key (data, len);

  if (c->endpoint == NULL)
    return;
  g_array_append_val (c->cids, k);
  cid_table_insert (&c->endpoint->cids, &k, c);
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
  if (c->endpoint && cid_table_lookup (&c->endpoint->cids, &k) == c)
    cid_table_remove (&c->endpoint->cids, &k);
}

static int
get_new_cid_cb (ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token, size_t cidlen, void *user_data)
{
  WzpConnection *c = user_data;

  wzp_crypto_random (cid->data, cidlen);
  cid->datalen = cidlen;
  if (c->endpoint)
    wzp_crypto_stateless_reset_token (c->endpoint->reset_secret, cid->data, cidlen, token);
  register_cid (c, cid->data, cidlen);
  return 0;
}

static int
remove_cid_cb (ngtcp2_conn *conn, const ngtcp2_cid *cid, void *user_data)
{
  unregister_cid (user_data, cid->data, cid->datalen);
  return 0;
}

void
fill_callbacks (ngtcp2_callbacks *cb, gboolean server)
{
  memset (cb, 0, sizeof *cb);
  wzp_tls_fill_callbacks (cb, server);
  fill_stream_callbacks (cb);
  cb->recv_datagram = recv_datagram_cb;
  cb->lost_datagram = lost_datagram_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->get_new_connection_id = get_new_cid_cb;
  cb->remove_connection_id = remove_cid_cb;
}

/* ---- connection object --------------------------------------------------- */

/* Asks the CPU for the connection's state before its packet is read. A
 * relay's connection is read once every 20 ms, after hundreds of others:
 * its state has left the caches by then. Asked for together while the
 * packets before it are read, the lines come in parallel: our own object,
 * and the head of ngtcp2's connection through its public handle (nothing
 * here knows that structure's size or layout). */
void
conn_prefetch (const WzpConnection *c)
{
  const char *o = (const char *) c;

  for (gsize off = 0; off < sizeof *c; off += 64)
    __builtin_prefetch (o + off);
  __builtin_prefetch (c->conn);
  __builtin_prefetch (c->tls);
}

static void
wzp_connection_init (WzpConnection *c)
{
  c->cids = g_array_new (FALSE, FALSE, sizeof (CidKey));
  c->remote_str = g_strdup ("unknown");
  c->heap_pos = NO_HEAP_POS;
}

static void
event_free (Event *e)
{
  if (e->type == EV_SIGNAL)
    wzp_signal_free (e->data);
  else if (e->data)
    g_bytes_unref (e->data);
  g_slice_free1 (sizeof (Event) + e->len, e);
}

static void
clear_events (WzpConnection *c)
{
  Event *e;

  while ((e = pop_event (c)) != NULL)
    event_free (e);
}

static OutDgram *
peek_out_dgram (WzpConnection *c)
{
  GList *l = g_queue_peek_head_link (&c->out_dgrams);

  return l ? l->data : NULL;
}

static void
drop_out_dgram (WzpConnection *c)
{
  GList *l = g_queue_pop_head_link (&c->out_dgrams);
  OutDgram *dg = l ? l->data : NULL;

  if (dg)
    g_slice_free1 (sizeof (OutDgram) + dg->len, dg);
}

/* Media that waited for the congestion window longer than
 * datagram_max_wait_ms is late already; sent, it would arrive in a burst
 * behind the stall and push the receiver's delay up for what follows (a
 * 1.2 s path whose window BBR's RTT probe cut: docs/quic.md). The oldest
 * wait longest: drop from the head. */
static void
drop_stale_dgrams (WzpConnection *c, gint64 now_us)
{
  gint64 max = (gint64) c->endpoint->settings.datagram_max_wait_ms * 1000;
  OutDgram *dg;

  while (max > 0 && (dg = peek_out_dgram (c)) != NULL && now_us - dg->queued_us > max) {
    drop_out_dgram (c);
    c->stats.datagrams_dropped++;
  }
}

static void
clear_out_dgrams (WzpConnection *c)
{
  while (!g_queue_is_empty (&c->out_dgrams))
    drop_out_dgram (c);
}

static void
conn_release (WzpConnection *c)
{
  if (c->endpoint)
    endpoint_timer_clear (c->endpoint, c);
  while (c->cids->len > 0) {
    CidKey k = g_array_index (c->cids, CidKey, c->cids->len - 1);
    unregister_cid (c, k.data, k.len);
  }
  g_clear_pointer (&c->conn, ngtcp2_conn_del);
  g_clear_pointer (&c->tls, wzp_tls_session_free);
  /* streams waiting for credit are in no table yet */
  g_queue_clear_full (&c->pending_open, (GDestroyNotify) stream_free);
  g_queue_clear (&c->out_streams);
  g_clear_pointer (&c->streams, g_hash_table_destroy);
  clear_out_dgrams (c);
}

static void
wzp_connection_finalize (GObject *object)
{
  WzpConnection *c = WZP_CONNECTION (object);

  conn_release (c);
  g_queue_clear_full (&c->in_dgrams, (GDestroyNotify) g_bytes_unref);
  clear_events (c);
  if (c->ready)
    g_hash_table_foreach (c->ready, free_ready, NULL);
  g_clear_pointer (&c->ready, g_hash_table_destroy);
  g_clear_pointer (&c->streams, g_hash_table_destroy);
  g_array_free (c->cids, TRUE);
  if (c->dgram_destroy)
    c->dgram_destroy (c->dgram_data);
  g_free (c->remote_str);
  g_free (c->sni);
  g_free (c->pin);
  g_clear_error (&c->close_error);
  g_clear_pointer (&c->peer_close_reason, g_free);
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

/* Whether acknowledgements (and other frames that need no packet of their
 * own) may wait for the next datagram out: see conn_schedule(). */
static gboolean
conn_may_hold (WzpConnection *c, gint64 now_us)
{
  gint64 hold;

  if (c->endpoint == NULL || c->endpoint->settings.ack_hold_ms == 0 || c->signalling ||
      c->state != WZP_CONNECTION_ESTABLISHED || !g_queue_is_empty (&c->out_dgrams) ||
      !g_queue_is_empty (&c->out_streams) || !g_queue_is_empty (&c->pending_open) ||
      c->rx_since_tx >= ACK_HOLD_MAX_PACKETS)
    return FALSE;
  /* only while our media flows out, which the acknowledgement can ride on:
   * signalling alone (a call being set up) keeps ngtcp2's timing, so a lost
   * message is sent again as soon as ever, and a side that only listens
   * acknowledges at ngtcp2's pace. (Held there too, its acknowledgements
   * came 65 ms apart; two or three of them lost in a row left the sender's
   * congestion window full of packets it could not yet call lost, and its
   * media waited for the probe timeout: 150-350 ms stalls on LTE-like
   * links, bench/quality.) */
  hold = (gint64) c->endpoint->settings.ack_hold_ms * 1000;
  return now_us - c->last_dgram_tx < hold;
}

/* Arms the connection's deadline from ngtcp2's. When the connection is
 * established and has nothing queued, the deadline is usually only an
 * acknowledgement due (or the pacing slot after the last packet): it waits
 * settings.ack_hold_ms longer, and the acknowledgement rides on the next
 * datagram out instead (media flows both ways every 20 ms). Loss recovery,
 * keep-alive and the idle timeout move by as much. */
static void
conn_schedule (WzpConnection *c)
{
  WzpEndpoint *ep = c->endpoint;
  ngtcp2_tstamp expiry;
  gint64 at;

  if (c->conn == NULL || ep == NULL)
    return;
  expiry = ngtcp2_conn_get_expiry (c->conn);
  if (expiry == UINT64_MAX && !c->held_since) {
    endpoint_timer_clear (ep, c);
    return;
  }
  if (expiry == UINT64_MAX)
    expiry = (guint64) G_MAXINT64 / 2;
  at = (gint64) ((expiry + 999) / 1000);  /* ngtcp2's clock is in ns */
  if (conn_may_hold (c, endpoint_now_us (ep)))
    at += (gint64) ep->settings.ack_hold_ms * 1000;
  /* frames conn_write() held back go out within the hold at the latest */
  if (c->held_since)
    at = MIN (at, c->held_since + (gint64) ep->settings.ack_hold_ms * 1000);
  endpoint_timer_set (ep, c, at);
}

WzpConnection *
conn_new (WzpEndpoint *ep, const struct sockaddr *remote, socklen_t remote_len, gboolean server)
{
  WzpConnection *c = g_object_new (WZP_TYPE_CONNECTION, NULL);

  c->endpoint = ep;
  c->server = server;
  c->next_remote_bidi = server ? 0 : 1;
  /* the endpoint's socket is IPv4 or IPv6: its addresses fit */
  g_assert (remote_len <= sizeof c->remote);
  memcpy (&c->remote, remote, remote_len);
  c->remote_len = remote_len;
  g_free (c->remote_str);
  c->remote_str = sockaddr_to_string (remote);
  g_hash_table_add (ep->conns, c);      /* the endpoint's reference */
  if (server)
    ep->stats.half_open++;
  return c;
}

void
conn_path (WzpConnection *c, ngtcp2_path *path)
{
  path->local.addr = (ngtcp2_sockaddr *) &c->endpoint->local;
  path->local.addrlen = c->endpoint->local_len;
  path->remote.addr = (ngtcp2_sockaddr *) &c->remote;
  path->remote.addrlen = c->remote_len;
  path->user_data = NULL;
}

static GError *
error_from_liberr (int rv, const gchar *what)
{
  return g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PROTOCOL, "%s: %s", what, ngtcp2_strerror (rv));
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
  guint64 ts = endpoint_now_ns (ep);
  GQueue blocked = G_QUEUE_INIT;
  gboolean force = c->force_write, open_pkt = FALSE;
  guint written = 0;

  c->force_write = FALSE;
  drop_stale_dgrams (c, (gint64) (ts / 1000));
  ngtcp2_path_storage_zero (&ps);
  conn_open_pending (c);
  for (guint round = 0; round < 4096; round++) {
    OutDgram *dg = peek_out_dgram (c);
    Stream *s = dg ? NULL : g_queue_peek_head (&c->out_streams);
    ngtcp2_ssize n;

    if (dg) {
      int accepted = 0;

      /* MORE when something else of ours follows, so it can share the
       * packet; the last one closes the packet itself */
      guint32 flags = c->out_dgrams.length > 1 || !g_queue_is_empty (&c->out_streams) ?
          NGTCP2_WRITE_DATAGRAM_FLAG_MORE : 0;

      n = ngtcp2_conn_write_datagram (c->conn, &ps.path, &pi, buf, sizeof buf, &accepted, flags,
                                      c->stats.datagrams_sent, dg->data, dg->len, ts);
      if (accepted) {
        drop_out_dgram (c);
        c->stats.datagrams_sent++;
        c->last_dgram_tx = (gint64) (ts / 1000);
      }
      if (n == NGTCP2_ERR_WRITE_MORE) {
        /* a packet is being filled: until a write returns it, never skip */
        open_pkt = TRUE;
        continue;
      }
      if (n < 0 && !accepted) {
        /* cannot ever fit (path shrank): drop it rather than stall */
        drop_out_dgram (c);
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
      if (n == NGTCP2_ERR_WRITE_MORE) {
        open_pkt = TRUE;
        continue;
      }
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
      /* Nothing of ours to send and none written while media flows out:
       * what ngtcp2 has left (an acknowledgement due, mostly) rides on the
       * next datagram, rarely 20 ms away; conn_schedule() bounds the wait
       * by the hold. */
      if (!force && !open_pkt && written == 0 && conn_may_hold (c, (gint64) (ts / 1000)) &&
          (gint64) (ts / 1000) - c->last_dgram_tx < (gint64) ep->settings.ack_hold_ms * 1000) {
        if (!c->held_since)
          c->held_since = (gint64) (ts / 1000);
        if (round == 0)
          return;               /* nothing was asked of ngtcp2: no pacing to update */
        break;
      }
      n = ngtcp2_conn_write_pkt (c->conn, &ps.path, &pi, buf, sizeof buf, ts);
    }
    if (n < 0) {
      conn_terminate (c, error_from_liberr ((int) n, "cannot write a packet"));
      g_queue_clear (&blocked);
      return;
    }
    open_pkt = FALSE;           /* a packet was closed, or there was none */
    if (n == 0) {
      c->held_since = 0;        /* ngtcp2 has nothing left */
      break;
    }
    send_packet (ep, c, &ps.path, buf, (gsize) n);
    written++;
  }
  /* flow-control blocked streams wait for credit */
  while (!g_queue_is_empty (&blocked))
    g_queue_push_tail (&c->out_streams, g_queue_pop_head (&blocked));
  ngtcp2_conn_update_pkt_tx_time (c->conn, ts);
}

/* ---- events --------------------------------------------------------------- */

static void
deliver_datagram (WzpConnection *c, const guint8 *data, gsize len)
{
  if (c->dgram_func) {
    c->dgram_func (c, data, len, c->dgram_data);
    return;
  }
  if (c->endpoint && g_queue_get_length (&c->in_dgrams) >= c->endpoint->settings.datagram_queue) {
    g_bytes_unref (g_queue_pop_head (&c->in_dgrams));
    c->stats.datagrams_dropped++;
  }
  g_queue_push_tail (&c->in_dgrams, g_bytes_new (data, len));
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

static void
conn_deliver (WzpConnection *c)
{
  WzpEndpoint *ep = c->endpoint ? g_object_ref (c->endpoint) : NULL;
  Event *e;

  /* the caller holds a reference on @c */
  collect_ready (c);
  /* sends from the handlers below are written after delivery, not inside it */
  if (ep)
    ep->processing++;
  while ((e = pop_event (c)) != NULL) {
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
          c->signalling = c->sni && wzp_quic_sni_is_signalling (c->sni, strlen (c->sni));
        } else {
          check_pin (c);
          if (c->state == WZP_CONNECTION_CLOSED)
            break;
        }
        g_signal_emit (c, conn_signals[CONN_SIGNAL_ESTABLISHED], 0);
        if (c->server && c->endpoint && c->state == WZP_CONNECTION_ESTABLISHED)
          wzp_endpoint_emit_incoming (c->endpoint, c);
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
        if (c->state != WZP_CONNECTION_CLOSED)
          deliver_datagram (c, e->bytes, e->len);
        break;
    }
    event_free (e);
  }
  if (ep) {
    ep->processing--;
    g_object_unref (ep);
  }
}

/* The connection is over: forget it, tell the application once. */
void
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
    endpoint_unmark_dirty (ep, c);
    g_hash_table_remove (ep->conns, c);
  }
  clear_events (c);
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
  c->peer_closed = TRUE;
  c->peer_close_application = cc->type == NGTCP2_CCERR_TYPE_APPLICATION;
  c->peer_close_code = cc->error_code;
  g_free (c->peer_close_reason);
  c->peer_close_reason = g_strdup (reason ? reason : "");
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
    n = ngtcp2_conn_write_connection_close (c->conn, &ps.path, &pi, buf, sizeof buf, ccerr,
                                            endpoint_now_ns (c->endpoint));
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
      if (ngtcp2_conn_get_handshake_completed (c->conn))
        conn_close_with (c, &ccerr, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_PROTOCOL,
                         "TLS error from %s: %s", c->remote_str, why ? why : "unknown reason"));
      else
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

/* The connection's deadline passed (the endpoint's timer source). */
void
conn_on_timer (WzpConnection *c)
{
  int rv;

  if (c->conn == NULL)
    return;
  rv = ngtcp2_conn_handle_expiry (c->conn, endpoint_now_ns (c->endpoint));
  /* silence before the handshake completed, whichever timer saw it first
   * (an idle timeout may be the shorter): the peer never answered */
  if (rv == NGTCP2_ERR_IDLE_CLOSE && !ngtcp2_conn_get_handshake_completed (c->conn))
    rv = NGTCP2_ERR_HANDSHAKE_TIMEOUT;
  if (rv == NGTCP2_ERR_IDLE_CLOSE) {
    conn_terminate (c, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_IDLE_TIMEOUT,
                                    "nothing heard from %s within the idle timeout", c->remote_str));
    return;
  }
  if (rv == NGTCP2_ERR_HANDSHAKE_TIMEOUT) {
    conn_terminate (c, g_error_new (WZP_QUIC_ERROR, WZP_QUIC_ERROR_HANDSHAKE_TIMEOUT,
                                    "no QUIC handshake with %s within %u ms: is it running and "
                                    "reachable?", c->remote_str,
                                    c->endpoint ? MIN (c->endpoint->settings.handshake_timeout_ms,
                                                       c->endpoint->settings.idle_timeout_ms) : 0));
    return;
  }
  if (rv != 0) {
    conn_fail_read (c, rv);
    return;
  }
  c->force_write = TRUE;
  conn_kick (c);
}

/* Delivers pending events, then writes, then re-arms the timer. */
void
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

/* After a call from the application: write now unless a batch is running. */
void
conn_kick (WzpConnection *c)
{
  if (c->endpoint && c->endpoint->processing)
    endpoint_mark_dirty (c->endpoint, c);
  else
    conn_flush (c);
}

/* ---- receiving -------------------------------------------------------------- */

/* The path ngtcp2 sends on moves when the peer's address does (a NAT
 * rebinding: same connection IDs, new source port); follow it. */
static void
conn_follow_path (WzpConnection *c)
{
  const ngtcp2_path *cur = ngtcp2_conn_get_path (c->conn);

  if (cur->remote.addrlen == 0 || cur->remote.addrlen > sizeof c->remote ||
      (cur->remote.addrlen == c->remote_len && memcmp (cur->remote.addr, &c->remote, c->remote_len) == 0))
    return;
  memcpy (&c->remote, cur->remote.addr, cur->remote.addrlen);
  c->remote_len = cur->remote.addrlen;
  g_free (c->remote_str);
  c->remote_str = sockaddr_to_string ((const struct sockaddr *) &c->remote);
  c->stats.migrations++;
  c->max_dgram = 0;
  g_debug ("the peer moved to %s", c->remote_str);
}

void
conn_read (WzpConnection *c, const struct sockaddr *from, socklen_t fromlen, const guint8 *data,
           gsize len)
{
  ngtcp2_path path;
  ngtcp2_pkt_info pi = { 0 };
  guint64 dgrams, ts;
  int rv;

  conn_path (c, &path);
  /* the address the packet came from, so that ngtcp2 sees a rebinding */
  path.remote.addr = (ngtcp2_sockaddr *) from;
  path.remote.addrlen = fromlen;
  c->stats.packets_received++;
  c->stats.bytes_received += len;
  c->rx_since_tx++;
  dgrams = c->stats.datagrams_received;
  ts = endpoint_now_ns (c->endpoint);
  rv = ngtcp2_conn_read_pkt (c->conn, &path, &pi, data, len, ts);
  if (rv != 0) {
    conn_fail_read (c, rv);
    return;
  }
  if (c->stats.datagrams_received != dgrams)
    c->last_dgram_rx = (gint64) (ts / 1000);
  conn_follow_path (c);
  endpoint_mark_dirty (c->endpoint, c);
}

/* ---- connection API ---------------------------------------------------------- */

gboolean
conn_check_open (WzpConnection *c, GError **error)
{
  if (c->state == WZP_CONNECTION_CLOSED || c->conn == NULL || c->terminating) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED, "the connection to %s is closed",
                 c->remote_str);
    return FALSE;
  }
  return TRUE;
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
wzp_connection_update_keys (WzpConnection *c, GError **error)
{
  int rv;

  if (!conn_check_open (c, error))
    return FALSE;
  rv = c->state == WZP_CONNECTION_ESTABLISHED ?
      ngtcp2_conn_initiate_key_update (c->conn, endpoint_now_ns (c->endpoint)) : NGTCP2_ERR_INVALID_STATE;
  if (rv != 0) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_NOT_READY,
                 "the connection to %s cannot update its keys now: %s", c->remote_str,
                 ngtcp2_strerror (rv));
    return FALSE;
  }
  return TRUE;
}

gboolean
wzp_connection_test_send_tls (WzpConnection *c, const guint8 *data, gsize len)
{
  if (c->conn == NULL || c->state != WZP_CONNECTION_ESTABLISHED ||
      ngtcp2_conn_submit_crypto_data (c->conn, NGTCP2_ENCRYPTION_LEVEL_1RTT, data, len) != 0)
    return FALSE;
  endpoint_mark_dirty (c->endpoint, c);
  return TRUE;
}

gboolean
wzp_connection_send_datagram (WzpConnection *c, const guint8 *data, gsize len, GError **error)
{
  OutDgram *dg;
  gsize max;

  if (!conn_check_open (c, error))
    return FALSE;
  if (c->state != WZP_CONNECTION_ESTABLISHED) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_NOT_READY,
                 "the connection to %s is not established yet", c->remote_str);
    return FALSE;
  }
  /* cached: it asks ngtcp2 three things; a path that shrinks later makes
   * ngtcp2 refuse the datagram, which is then dropped and counted */
  if (len > c->max_dgram)
    c->max_dgram = wzp_connection_get_max_datagram_size (c);
  max = c->max_dgram;
  if (len > max) {
    g_set_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_TOO_LARGE,
                 "a datagram of %" G_GSIZE_FORMAT " bytes is over the %" G_GSIZE_FORMAT
                 " bytes the path to %s takes", len, max, c->remote_str);
    return FALSE;
  }
  /* media waiting behind congestion control is late: keep the newest */
  if (g_queue_get_length (&c->out_dgrams) >= c->endpoint->settings.datagram_queue) {
    drop_out_dgram (c);
    c->stats.datagrams_dropped++;
  }
  dg = g_slice_alloc (sizeof (OutDgram) + len);
  dg->link.data = dg;
  dg->link.prev = dg->link.next = NULL;
  dg->queued_us = endpoint_now_us (c->endpoint);
  dg->len = len;
  memcpy (dg->data, data, len);
  g_queue_push_tail_link (&c->out_dgrams, &dg->link);
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

gboolean
wzp_connection_get_peer_public_key (WzpConnection *c, guint8 out[32])
{
  return c->tls && wzp_tls_session_get_peer_public_key (c->tls, out);
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

const gchar *
wzp_connection_get_peer_close (WzpConnection *c, guint64 *code, gboolean *application)
{
  if (!c->peer_closed)
    return NULL;
  if (code)
    *code = c->peer_close_code;
  if (application)
    *application = c->peer_close_application;
  return c->peer_close_reason;
}
