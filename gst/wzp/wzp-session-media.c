/* The session's media plane: frames out through the send queue to the
 * path in use (with a QualityReport every 50th), frames in from either path
 * to the receive queue, the peer's media watched, and the application's
 * side of both queues (wzp_session_send_media(), wzp_session_recv_media()). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"
#include "wzp-quality.h"

#include <string.h>

/* pushed to wake a reader of the receive queue (wzp_session_interrupt) */
static WzpMediaFrame interrupt_marker;

G_DEFINE_BOXED_TYPE (WzpMediaFrame, wzp_media_frame, wzp_media_frame_copy, wzp_media_frame_free)

WzpMediaFrame *
wzp_media_frame_copy (const WzpMediaFrame *f)
{
  WzpMediaFrame *c = g_memdup2 (f, sizeof *f);

  if (c->payload)
    g_bytes_ref (c->payload);
  return c;
}

void
wzp_media_frame_free (WzpMediaFrame *f)
{
  if (f == NULL || f == &interrupt_marker)
    return;
  g_bytes_unref (f->payload);
  g_free (f);
}

static WzpConnection *
media_conn (WzpSession *s)
{
  if (s->send_path == WZP_MEDIA_PATH_DIRECT)
    return s->direct_conn;
  if (s->send_path == WZP_MEDIA_PATH_RELAY)
    return s->relay_admitted ? s->relay_conn : NULL;
  return NULL;
}

/* A QualityReport from the peer: in a call, its loss and RTT move the tier
 * our sender should use (upstream's controller and hysteresis, §5.3.4, with
 * loss deciding how far down: wzp_tier_classify_call()); in a room the
 * relay does that and sends a QualityDirective. */
static void
take_peer_report (WzpSession *s, const WzpQualityReport *qr)
{
  gdouble loss = wzp_quality_report_loss_percent (qr);
  guint rtt = wzp_quality_report_rtt_ms (qr);
  WzpTier seen = wzp_tier_classify_call (loss, rtt);

  g_mutex_lock (&s->lock);
  s->stats.reports_received++;
  g_mutex_unlock (&s->lock);
  g_debug ("the peer's report: loss %.1f %%, RTT %u ms: %s", loss, rtt, wzp_tier_name (seen));

  g_atomic_int_set (&s->advice_loss_permille,
                    MAX ((gint) (loss * 10), g_atomic_int_get (&s->own_loss_permille)));
  if (g_strcmp0 (s->mode, "room") == 0 || !wzp_tier_controller_feed_tier (&s->tier, seen))
    return;
  g_atomic_int_set (&s->advice_codec, wzp_tier_profile (s->tier.tier)->codec);
  call_event (s, "quality:tier", "tier", g_variant_new_string (wzp_tier_name (s->tier.tier)),
              "codec", g_variant_new_string (wzp_codec_id_to_string (wzp_tier_profile (s->tier.tier)->codec)),
              "loss_percent", g_variant_new_double (loss), "rtt_ms", g_variant_new_uint32 (rtt), NULL);
}

/* what wzpsink with raw input should send now (any thread) */
WzpCodecId
wzp_session_get_send_advice (WzpSession *s, guint *loss_permille)
{
  if (loss_permille)
    *loss_permille = (guint) MAX (g_atomic_int_get (&s->advice_loss_permille),
                                  g_atomic_int_get (&s->own_loss_permille));
  return (WzpCodecId) g_atomic_int_get (&s->advice_codec);
}

gboolean
flush_tx (gpointer data)
{
  WzpSession *s = data;
  GBytes *pkt;

  while ((pkt = g_async_queue_try_pop (s->tx)) != NULL) {
    WzpConnection *c = media_conn (s);
    gsize len;
    const guint8 *d = g_bytes_get_data (pkt, &len);

    /* a QualityReport on every 50th frame (protocol §3.3), from what this
     * connection measured: datagram loss, smoothed RTT, interarrival jitter */
    if (c && ++s->frames_since_report >= QUALITY_REPORT_EVERY && len >= WZP_MEDIA_HEADER_SIZE && !(d[0] & 0x02)) {
      WzpConnectionStats cs;
      WzpQualityReport qr;
      WzpMediaPacket parsed;
      guint8 *withqr = g_malloc (len + WZP_QUALITY_REPORT_SIZE);

      wzp_connection_get_stats (c, &cs);
      qr = wzp_quality_report_from_stats (cs.datagrams_sent ? 100.0 * cs.datagrams_lost / cs.datagrams_sent : 0,
                                          (guint) (cs.rtt_us / 1000), (guint) (s->jitter_us / 1000));
      g_atomic_int_set (&s->own_loss_permille,
                        cs.datagrams_sent ? (gint) (1000 * cs.datagrams_lost / cs.datagrams_sent) : 0);
      if (wzp_media_packet_parse (d, len, &parsed, NULL)) {
        gsize n = wzp_media_packet_write (&parsed.header, parsed.payload, parsed.payload_len, &qr,
                                          withqr, len + WZP_QUALITY_REPORT_SIZE);
        g_bytes_unref (pkt);
        pkt = g_bytes_new_take (withqr, n);
        d = g_bytes_get_data (pkt, &len);
        s->frames_since_report = 0;
        g_mutex_lock (&s->lock);
        s->stats.reports_sent++;
        s->stats.rtt_us = cs.rtt_us;
        g_mutex_unlock (&s->lock);
      } else {
        g_free (withqr);
      }
    }

    /* sealed end to end last: the trailer (and the header's Q bit) are its
     * associated data */
    if (c && s->e2e_on && len >= WZP_MEDIA_HEADER_SIZE) {
      guint8 *sealed = g_malloc (len + WZP_E2E_TAG_SIZE);
      gsize n = wzp_e2e_seal (&s->e2e, d, len, sealed);

      g_bytes_unref (pkt);
      pkt = g_bytes_new_take (sealed, n);
      d = g_bytes_get_data (pkt, &len);
    }
    if (c && len > 0 && wzp_connection_send_datagram (c, d, len, NULL)) {
      g_mutex_lock (&s->lock);
      s->stats.frames_sent++;
      s->stats.bytes_sent += len;
      g_mutex_unlock (&s->lock);
      if (!s->first_send) {
        s->first_send = TRUE;
        call_event (s, "media:first_send", "path", g_variant_new_string (wzp_media_path_name (s->send_path)), NULL);
      }
    } else {
      g_mutex_lock (&s->lock);
      s->stats.frames_dropped++;
      g_mutex_unlock (&s->lock);
    }
    g_bytes_unref (pkt);
  }
  return G_SOURCE_REMOVE;
}

static gboolean
on_media_watch (gpointer data)
{
  WzpSession *s = data;

  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ACTIVE &&
      g_get_monotonic_time () - s->last_arrival_us > (gint64) s->media_timeout_ms * 1000) {
    g_clear_pointer (&s->media_watch, g_source_unref);
    end_call (s, g_error_new (WZP_SESSION_ERROR, WZP_SESSION_ERROR_PEER_LOST,
                              "no media from the other side for %.1f s: it is gone or its "
                              "network dropped", s->media_timeout_ms / 1000.0));
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

void
on_media (WzpConnection *c, const guint8 *data, gsize len, gpointer user_data)
{
  WzpSession *s = user_data;
  WzpMediaPacket pkt;
  WzpMediaFrame *f;
  WzpMediaPath via = c == s->direct_conn ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY;
  guint8 opened[RX_DATAGRAM_MAX];

  if (s->e2e_on) {
    WzpE2eResult r = len <= sizeof opened ? wzp_e2e_open (&s->e2e, data, len, opened, &len) :
        WZP_E2E_MALFORMED;

    if (r != WZP_E2E_OK) {
      g_mutex_lock (&s->lock);
      if (r == WZP_E2E_REPLAY)
        s->stats.frames_replayed++;
      else
        s->stats.frames_auth_failed++;
      g_mutex_unlock (&s->lock);
      return;
    }
    data = opened;
  }
  if (!wzp_media_packet_parse (data, len, &pkt, NULL))
    return;
  if (via == WZP_MEDIA_PATH_DIRECT)
    s->heard_direct = TRUE;
  /* the peer's media arriving on the direct path means the peer decided
   * direct: follow it there (never away from it), so that a split decision
   * (an old peer, a late report) converges instead of going silent. A peer
   * that decided relay closes its direct connection, which moves us back. */
  if (s->neg == NEG_DECIDED && via == WZP_MEDIA_PATH_DIRECT && s->send_path != WZP_MEDIA_PATH_DIRECT) {
    call_event (s, "media:follow_peer", "path", g_variant_new_string ("direct"), NULL);
    s->send_path = WZP_MEDIA_PATH_DIRECT;
    set_path (s, WZP_MEDIA_PATH_DIRECT);
  }
  if (pkt.header.repair) {
    /* a Codec2 FEC repair symbol (§3.6): never for a decoder; its seq is a
     * hole the next source frame's timestamp shows to be empty */
    g_mutex_lock (&s->lock);
    s->stats.frames_repair++;
    g_mutex_unlock (&s->lock);
    return;
  }
  if (pkt.header.has_quality)
    take_peer_report (s, &pkt.quality);
  f = g_new0 (WzpMediaFrame, 1);
  f->seq = pkt.header.seq;
  f->timestamp = pkt.header.timestamp;
  f->codec = pkt.header.codec;
  f->received_us = g_get_monotonic_time ();
  f->path = via;
  f->has_quality = pkt.header.has_quality;
  f->quality = pkt.quality;
  f->payload = g_bytes_new (pkt.payload, pkt.payload_len);
  /* RFC 3550 interarrival jitter against the sender's media clock */
  if (s->last_arrival_us) {
    gdouble d = (gdouble) (f->received_us - s->last_arrival_us) -
        (gdouble) (guint32) (f->timestamp - s->last_arrival_ts) * 1000.0;
    s->jitter_us += (ABS (d) - s->jitter_us) / 16.0;
  }
  s->last_arrival_us = f->received_us;
  s->last_arrival_ts = f->timestamp;
  g_mutex_lock (&s->lock);
  s->stats.frames_received++;
  s->stats.bytes_received += len;
  s->stats.jitter_us = (guint64) s->jitter_us;
  if (!s->first_recv && s->call_started_us)
    s->stats.setup_us = f->received_us - s->call_started_us;
  if (g_async_queue_length (s->rx) >= RX_QUEUE_MAX) {
    wzp_media_frame_free (g_async_queue_try_pop (s->rx));
    s->stats.frames_dropped++;
  }
  g_mutex_unlock (&s->lock);
  g_async_queue_push (s->rx, f);
  if (!s->first_recv) {
    s->first_recv = TRUE;
    call_event (s, "media:first_recv", "path", g_variant_new_string (wzp_media_path_name (via)), NULL);
    /* from now on silence from the peer ends a call (not a room: members
     * come and go there) */
    if (s->media_timeout_ms && g_strcmp0 (s->mode, "room") != 0 && s->media_watch == NULL)
      s->media_watch = session_timeout (s, MAX (s->media_timeout_ms / 4, MEDIA_WATCH_MIN_MS), on_media_watch, s, NULL);
  }
}

gboolean
wzp_session_send_media (WzpSession *s, const guint8 *frame, gsize len, WzpCodecId codec,
                        guint32 timestamp_ms)
{
  WzpMediaHeader h = { .codec = codec, .timestamp = timestamp_ms };
  guint8 *buf;
  gsize n;
  WzpSessionState st;

  g_mutex_lock (&s->lock);
  st = s->state;
  h.seq = s->seq++;
  if (st != WZP_SESSION_STATE_ACTIVE) {
    s->stats.frames_dropped++;
    g_mutex_unlock (&s->lock);
    return FALSE;
  }
  g_mutex_unlock (&s->lock);
  buf = g_malloc (wzp_media_packet_size (len, FALSE));
  n = wzp_media_packet_write (&h, frame, len, NULL, buf, wzp_media_packet_size (len, FALSE));
  g_async_queue_push (s->tx, g_bytes_new_take (buf, n));
  g_main_context_invoke_full (s->ctx, G_PRIORITY_HIGH, flush_tx, g_object_ref (s), g_object_unref);
  return TRUE;
}

WzpMediaFrame *
wzp_session_recv_media (WzpSession *s, gint64 deadline_us)
{
  WzpMediaFrame *f;

  if (deadline_us < 0)
    f = g_async_queue_pop (s->rx);
  else {
    gint64 wait = deadline_us - g_get_monotonic_time ();
    f = g_async_queue_timeout_pop (s->rx, wait > 0 ? (guint64) wait : 0);
  }
  return f == &interrupt_marker ? NULL : f;
}

void
wzp_session_interrupt (WzpSession *s)
{
  g_async_queue_push (s->rx, &interrupt_marker);
}
