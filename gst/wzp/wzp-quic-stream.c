/* wzp-quic-stream: signal messages on QUIC streams (see wzp-quic.h): one
 * length-prefixed JSON message per stream, each direction; the peer's
 * messages delivered in stream order; stream credit, acknowledgement and
 * closing. Like the rest of the connection, callbacks only record. */
#define G_LOG_DOMAIN "wzp-quic"

#include "wzp-quic-private.h"

#include <string.h>

void
stream_free (Stream *s)
{
  g_clear_pointer (&s->out, g_bytes_unref);
  g_clear_pointer (&s->reader, wzp_frame_reader_free);
  g_clear_pointer (&s->uni_data, g_byte_array_unref);
  g_free (s);
}

/* The stream and ready tables exist only while they hold something: an idle
 * connection (most of a relay's) keeps neither. */
static void
stream_table_insert (WzpConnection *c, Stream *s)
{
  gint64 *key = g_new (gint64, 1);

  if (c->streams == NULL)
    c->streams = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                        (GDestroyNotify) stream_free);
  *key = s->id;
  g_hash_table_insert (c->streams, key, s);
}

GHashTable *
conn_ready_table (WzpConnection *c)
{
  if (c->ready == NULL)
    c->ready = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  return c->ready;
}

static Stream *
stream_get (WzpConnection *c, gint64 id, gboolean create)
{
  Stream *s = c->streams ? g_hash_table_lookup (c->streams, &id) : NULL;

  if (s == NULL && create) {
    s = g_new0 (Stream, 1);
    s->id = id;
    s->opened_us = g_get_monotonic_time ();
    stream_table_insert (c, s);
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
    g_hash_table_replace (conn_ready_table (c), key, msg ? (gpointer) msg : STREAM_FAILED);
    c->ready_changed = TRUE;
  }
}

void
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
    if (g_hash_table_size (c->streams) == 0)
      g_clear_pointer (&c->streams, g_hash_table_destroy);
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

void
free_ready (gpointer key, gpointer value, gpointer data)
{
  if (value != STREAM_FAILED)
    wzp_signal_free (value);
}

void
conn_open_pending (WzpConnection *c)
{
  while (!g_queue_is_empty (&c->pending_open)) {
    Stream *s = g_queue_peek_head (&c->pending_open);
    int64_t id;
    int rv = s->uni ? ngtcp2_conn_open_uni_stream (c->conn, &id, NULL) :
        ngtcp2_conn_open_bidi_stream (c->conn, &id, NULL);

    if (rv != 0)
      break;                    /* no stream credit yet */
    g_queue_pop_head (&c->pending_open);
    s->id = id;
    stream_table_insert (c, s);
    stream_queue_send (c, s);
  }
}

/* Moves ordered signal messages to the event queue. */
void
collect_ready (WzpConnection *c)
{
  gpointer v;

  if (!c->ready_changed)
    return;
  c->ready_changed = FALSE;

  while ((v = g_hash_table_lookup (c->ready, &c->next_remote_bidi)) != NULL) {
    g_hash_table_remove (c->ready, &c->next_remote_bidi);
    if (v != STREAM_FAILED) {
      c->stats.signals_received++;
      push_event (c, EV_SIGNAL, v);
    }
    c->next_remote_bidi += 4;
    c->head_wait_since = 0;
  }
  if (g_hash_table_size (c->ready) == 0)
    g_clear_pointer (&c->ready, g_hash_table_destroy);
  else if (c->head_wait_since == 0)
    c->head_wait_since = g_get_monotonic_time ();
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

void
fill_stream_callbacks (ngtcp2_callbacks *cb)
{
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_stream_data_cb;
  cb->stream_close = stream_close_cb;
  cb->stream_reset = stream_reset_cb;
  cb->extend_max_local_streams_bidi = extend_max_streams_cb;
  cb->extend_max_local_streams_uni = extend_max_streams_cb;
}
