/* wzpsink and wzpsrc in GstHarness, against the real relay: a test client in
 * the same room sees exactly what the sink puts on the wire (header fields,
 * codec id, trailer cadence) and feeds wzpsrc crafted datagrams (reordered,
 * duplicate, lost, late) to check the jitter buffer's output, GAP events,
 * the latency query, caps and stats. */
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>

#include "relay-client.h"
#include "element-stats.h"
#include "wzp-identity.h"

static const gchar *relay_path;

static GstStaticPadTemplate sink_caps = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus"));
static GstStaticPadTemplate src_caps = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

#define SINK_SEED "2121212121212121212121212121212121212121212121212121212121212121"
#define SRC_SEED "3434343434343434343434343434343434343434343434343434343434343434"

/* The element is configured before the harness takes it: the harness
 * starts an element with a sink pad at once. */
static GstHarness *
harness (Relay *r, const gchar *element, const gchar *seed, const gchar *room, const gchar *extra)
{
  GstElement *e = gst_element_factory_make (element, NULL);
  GstHarness *h = gst_harness_new_empty ();
  gboolean sink = g_str_equal (element, "wzpsink");

  g_assert_nonnull (e);
  g_object_set (e, "relay", r->addr, "identity", seed, "room", room,
                "relay-fingerprint", r->tls_fp, NULL);
  if (extra) {
    g_auto (GStrv) kv = g_strsplit (extra, "=", 2);
    gst_util_set_object_arg (G_OBJECT (e), kv[0], kv[1]);
  }
  gst_harness_add_element_full (h, e, sink ? &sink_caps : NULL, sink ? "sink" : NULL,
                                sink ? NULL : &src_caps, sink ? NULL : "src");
  gst_object_unref (e);
  if (sink)
    gst_harness_set_src_caps_str (h, "audio/x-opus, rate=(int)48000, channels=(int)1");
  else
    gst_harness_play (h);
  return h;
}

/* An Opus packet as opusenc makes it: TOC 0xf8 (CELT 20 ms) or 0xf9 (two
 * 20 ms frames = 40 ms), then @tag to tell packets apart. */
static GstBuffer *
opus_buffer (gboolean forty, guint8 tag, GstClockTime pts)
{
  guint8 data[60];
  GstBuffer *b;

  memset (data, tag, sizeof data);
  data[0] = forty ? 0xf9 : 0xf8;
  b = gst_buffer_new_memdup (data, sizeof data);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = (forty ? 40 : 20) * GST_MSECOND;
  return b;
}

static void
parse (GBytes *d, WzpMediaPacket *pkt)
{
  gsize len;
  const guint8 *p = g_bytes_get_data (d, &len);
  g_autoptr (GError) error = NULL;

  g_assert_true (wzp_media_packet_parse (p, len, pkt, &error));
  g_assert_no_error (error);
}

/* The sink's headers: seq +1 per datagram, media clock from 0 in ms
 * following the frame duration, codec id by frame duration or property,
 * a QualityReport trailer on every 50th frame and only there. */
static void
test_sink_packing (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *c = client_new (0x51);
  GstHarness *h;
  guint n20 = 120, n40 = 30, trailers = 0, first_trailer = 0, last_trailer = 0;
  WzpMediaPacket pkt, prev = { 0 };

  c->keep_datagrams = TRUE;
  join_room (c, r, "harness-sink");
  h = harness (r, "wzpsink", SINK_SEED, "harness-sink", NULL);
  g_assert_true (spin (element_on_relay, h->element, 5000));

  /* frames start at running time 5 s: the media clock still starts at 0 */
  for (guint i = 0; i < n20; i++)
    g_assert_cmpint (gst_harness_push (h, opus_buffer (FALSE, 1, 5 * GST_SECOND + i * 20 * GST_MSECOND)),
                     ==, GST_FLOW_OK);
  for (guint i = 0; i < n40; i++)
    g_assert_cmpint (gst_harness_push (h, opus_buffer (TRUE, 2, 5 * GST_SECOND + (n20 * 20 + i * 40) * GST_MSECOND)),
                     ==, GST_FLOW_OK);
  /* not Opus: dropped by the sink, never sent */
  g_assert_cmpint (gst_harness_push (h, gst_buffer_new ()), ==, GST_FLOW_OK);
  client_wait_datagrams (c, n20 + n40, 5000);
  g_test_message ("received %u, stats sent %" G_GUINT64_FORMAT " dropped %" G_GUINT64_FORMAT,
                  c->datagram_log->len, stat_u64 (h->element, "packets-sent"),
                  stat_u64 (h->element, "packets-dropped"));
  settle (200);
  g_assert_cmpuint (c->datagram_log->len, ==, n20 + n40);

  for (guint i = 0; i < c->datagram_log->len; i++) {
    parse (g_ptr_array_index (c->datagram_log, i), &pkt);
    g_assert_cmpuint (pkt.payload_len, ==, 60);
    if (i < n20) {
      g_assert_cmpint (pkt.header.codec, ==, WZP_CODEC_OPUS24K);
      g_assert_cmpuint (pkt.header.timestamp, ==, i * 20);
      g_assert_cmpuint (pkt.payload[1], ==, 1);
    } else {
      g_assert_cmpint (pkt.header.codec, ==, WZP_CODEC_OPUS6K);
      g_assert_cmpuint (pkt.header.timestamp, ==, n20 * 20 + (i - n20) * 40);
      g_assert_cmpuint (pkt.payload[1], ==, 2);
    }
    if (i > 0)
      g_assert_cmpuint (pkt.header.seq, ==, (guint16) (prev.header.seq + 1));
    if (pkt.header.has_quality) {
      if (trailers == 0)
        first_trailer = i;
      else
        g_assert_cmpuint (i - last_trailer, ==, 50);
      last_trailer = i;
      trailers++;
    }
    g_assert_false (pkt.header.repair);
    g_assert_cmpuint (pkt.header.fec_ratio, ==, 0);
    prev = pkt;
  }
  g_test_message ("%u datagrams, trailers on frames %u..%u every 50", c->datagram_log->len,
                  first_trailer, last_trailer);
  g_assert_cmpuint (trailers, ==, (n20 + n40) / 50);
  g_assert_cmpuint (first_trailer, <, 50);
  g_assert_cmpuint (stat_u64 (h->element, "packets-sent"), ==, n20 + n40);
  g_assert_cmpuint (stat_u64 (h->element, "quality-reports-sent"), ==, trailers);
  g_assert_cmpuint (stat_u64 (h->element, "bytes-sent"), >=, (n20 + n40) * (12 + 60));
  gst_harness_teardown (h);

  /* codec=opus48k: its id on 20 ms frames; 40 ms frames cannot be Opus48k */
  g_ptr_array_set_size (c->datagram_log, 0);
  h = harness (r, "wzpsink", SINK_SEED, "harness-sink", "codec=opus48k");
  g_assert_true (spin (element_on_relay, h->element, 5000));
  gst_harness_push (h, opus_buffer (FALSE, 3, 0));
  gst_harness_push (h, opus_buffer (TRUE, 3, 20 * GST_MSECOND));
  g_assert_true (client_wait_datagrams (c, 2, 5000));
  parse (g_ptr_array_index (c->datagram_log, 0), &pkt);
  g_assert_cmpint (pkt.header.codec, ==, WZP_CODEC_OPUS48K);
  g_assert_cmpuint (pkt.header.timestamp, ==, 0);
  parse (g_ptr_array_index (c->datagram_log, 1), &pkt);
  g_assert_cmpint (pkt.header.codec, ==, WZP_CODEC_OPUS6K);
  g_assert_cmpuint (pkt.header.timestamp, ==, 20);
  gst_harness_teardown (h);

  client_free (c);
  relay_stop (r);
}

static void
send_frame (Client *c, guint16 seq, guint32 ts, gboolean forty)
{
  guint8 payload[40], pkt[12 + sizeof payload];
  WzpMediaHeader hd = { .codec = forty ? WZP_CODEC_OPUS6K : WZP_CODEC_OPUS24K,
                        .seq = seq, .timestamp = ts };

  memset (payload, (guint8) seq, sizeof payload);
  payload[0] = forty ? 0xf9 : 0xf8;
  wzp_media_packet_write (&hd, payload, sizeof payload, NULL, pkt, sizeof pkt);
  g_assert_true (wzp_connection_send_datagram (c->conn, pkt, sizeof pkt, NULL));
}

/* Pulls the next buffer, spinning the client's context meanwhile. */
static GstBuffer *
pull (GstHarness *h)
{
  gint64 end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  GstBuffer *b;

  while ((b = gst_harness_try_pull (h)) == NULL && g_get_monotonic_time () < end) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (1000);
  }
  g_assert_nonnull (b);
  return b;
}

static void
expect_frame (GstHarness *h, guint8 seq, GstClockTime pts, GstClockTime dur, gboolean discont)
{
  GstBuffer *b = pull (h);
  GstMapInfo map;

  g_assert_true (gst_buffer_map (b, &map, GST_MAP_READ));
  g_assert_cmpuint (map.size, ==, 40);
  g_assert_cmpuint (map.data[1], ==, seq);
  gst_buffer_unmap (b, &map);
  g_assert_cmpuint (GST_BUFFER_PTS (b), ==, pts);
  g_assert_cmpuint (GST_BUFFER_DURATION (b), ==, dur);
  g_assert_cmpint (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT), ==, discont);
  gst_buffer_unref (b);
}

/* The GAP events the source pushed so far, as (start, duration) pairs. */
static GArray *
gaps (GstHarness *h)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (GstClockTime));
  GstEvent *e;

  while ((e = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (e) == GST_EVENT_GAP) {
      GstClockTime ts, dur;
      gst_event_parse_gap (e, &ts, &dur);
      g_array_append_val (out, ts);
      g_array_append_val (out, dur);
    }
    gst_event_unref (e);
  }
  return out;
}

static void
test_src_jitter (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *c = client_new (0x52);
  GstHarness *h;
  GstCaps *caps;
  GstStructure *s;
  GstClockTime base, min_lat, max_lat;
  gboolean live;
  GArray *g;
  GstBuffer *b;

  join_room (c, r, "harness-src");
  h = harness (r, "wzpsrc", SRC_SEED, "harness-src", "latency=40");
  g_assert_true (spin (element_on_relay, h->element, 5000));

  /* caps: mono 48 kHz Opus with the stream header muxers want */
  caps = gst_pad_get_current_caps (h->sinkpad);
  g_assert_nonnull (caps);
  s = gst_caps_get_structure (caps, 0);
  g_assert_cmpstr (gst_structure_get_name (s), ==, "audio/x-opus");
  {
    gint rate = 0, channels = 0, family = -1;
    g_assert_true (gst_structure_get_int (s, "rate", &rate) && rate == 48000);
    g_assert_true (gst_structure_get_int (s, "channels", &channels) && channels == 1);
    g_assert_true (gst_structure_get_int (s, "channel-mapping-family", &family) && family == 0);
    g_assert_true (gst_structure_has_field (s, "streamheader"));
  }
  gst_caps_unref (caps);

  /* the latency query: the playout delay is in the timestamps; what is
   * left is the decoder's moment after a gap is given up at its play time */
  {
    GstQuery *q = gst_query_new_latency ();
    g_assert_true (gst_pad_peer_query (h->sinkpad, q));
    gst_query_parse_latency (q, &live, &min_lat, &max_lat);
    gst_query_unref (q);
    g_assert_true (live);
    g_assert_cmpuint (min_lat, ==, 10 * GST_MSECOND);
    g_assert_cmpuint (max_lat, >=, 40 * GST_MSECOND);
  }

  /* 0-4 in order; 6 before 5; 7 twice; 9 lost; then 10-12 */
  for (guint i = 0; i <= 4; i++)
    send_frame (c, i, 1000 + i * 20, FALSE);
  send_frame (c, 6, 1000 + 6 * 20, FALSE);
  send_frame (c, 5, 1000 + 5 * 20, FALSE);
  send_frame (c, 7, 1000 + 7 * 20, FALSE);
  send_frame (c, 7, 1000 + 7 * 20, FALSE);
  send_frame (c, 8, 1000 + 8 * 20, FALSE);
  for (guint i = 10; i <= 12; i++)
    send_frame (c, i, 1000 + i * 20, FALSE);

  b = pull (h);
  g_assert_true (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DISCONT));
  base = GST_BUFFER_PTS (b);
  gst_buffer_unref (b);
  for (guint i = 1; i <= 8; i++)
    expect_frame (h, i, base + i * 20 * GST_MSECOND, 20 * GST_MSECOND, FALSE);
  /* 9 never comes: at its play time a GAP in its place, DISCONT on 10 */
  expect_frame (h, 10, base + 10 * 20 * GST_MSECOND, 20 * GST_MSECOND, TRUE);
  expect_frame (h, 11, base + 11 * 20 * GST_MSECOND, 20 * GST_MSECOND, FALSE);
  expect_frame (h, 12, base + 12 * 20 * GST_MSECOND, 20 * GST_MSECOND, FALSE);
  g = gaps (h);
  g_assert_cmpuint (g->len, ==, 2);
  g_assert_cmpuint (g_array_index (g, GstClockTime, 0), ==, base + 9 * 20 * GST_MSECOND);
  g_assert_cmpuint (g_array_index (g, GstClockTime, 1), ==, 20 * GST_MSECOND);
  g_array_unref (g);

  /* 9 after all: too late, dropped; then 40 ms frames with one lost */
  send_frame (c, 9, 1000 + 9 * 20, FALSE);
  send_frame (c, 13, 1260, TRUE);
  send_frame (c, 15, 1340, TRUE);
  expect_frame (h, 13, base + 13 * 20 * GST_MSECOND, 40 * GST_MSECOND, FALSE);
  expect_frame (h, 15, base + 340 * GST_MSECOND, 40 * GST_MSECOND, TRUE);
  g = gaps (h);
  g_assert_cmpuint (g->len, ==, 2);
  g_assert_cmpuint (g_array_index (g, GstClockTime, 0), ==, base + 300 * GST_MSECOND);
  g_assert_cmpuint (g_array_index (g, GstClockTime, 1), ==, 40 * GST_MSECOND);
  g_array_unref (g);

  /* stats: 16 datagrams arrived; what the jitter buffer made of them */
  g_assert_cmpuint (stat_u64 (h->element, "packets-received"), ==, 16);
  g_assert_cmpuint (stat_u64 (h->element, "packets-duplicate"), ==, 1);
  g_assert_cmpuint (stat_u64 (h->element, "packets-reordered"), >=, 1);
  g_assert_cmpuint (stat_u64 (h->element, "packets-late"), ==, 1);
  g_assert_cmpuint (stat_u64 (h->element, "packets-lost"), ==, 2);
  g_assert_cmpuint (stat_u64 (h->element, "bytes-received"), >=, 16 * 40);
  {
    GstStructure *st = NULL;
    guint level = G_MAXUINT;
    g_object_get (h->element, "stats", &st, NULL);
    g_assert_true (gst_structure_get_uint (st, "jitter-buffer-level", &level));
    g_assert_cmpuint (level, ==, 0);
    g_assert_true (gst_structure_has_field (st, "rtt-ms"));
    g_assert_true (gst_structure_has_field (st, "jitter-ms"));
    g_assert_true (gst_structure_has_field (st, "setup-ms"));
    gst_structure_free (st);
  }
  gst_harness_teardown (h);
  client_free (c);
  relay_stop (r);
}

/* ---- how calls end, as an application sees it on the bus ------------------ */

#define CALLEE_SEED "5656565656565656565656565656565656565656565656565656565656565656"
#define CALLER_SEED "7878787878787878787878787878787878787878787878787878787878787878"

/* A gst-launch-style pipeline and what its bus said, from the streaming
 * threads (sync handler), with the time of each. */
typedef struct {
  GstElement *pipeline;
  GMutex lock;
  gboolean reject;              /* emit "reject" on wzp-incoming-call */
  gboolean eos, incoming;
  GError *error;                /* the first ERROR */
  gchar *ended;                 /* the wzp-call-ended reason */
  gchar *warning;               /* the first WARNING's text */
  gint64 error_us, eos_us;
} Run;

static GstBusSyncReply
run_bus (GstBus *bus, GstMessage *m, gpointer data)
{
  Run *run = data;
  const GstStructure *st = gst_message_get_structure (m);
  gboolean incoming = FALSE;

  g_mutex_lock (&run->lock);
  switch (GST_MESSAGE_TYPE (m)) {
    case GST_MESSAGE_ERROR:
      if (run->error == NULL) {
        gst_message_parse_error (m, &run->error, NULL);
        run->error_us = g_get_monotonic_time ();
      }
      break;
    case GST_MESSAGE_WARNING:
      if (run->warning == NULL) {
        g_autoptr (GError) w = NULL;
        gst_message_parse_warning (m, &w, NULL);
        run->warning = g_strdup (w->message);
      }
      break;
    case GST_MESSAGE_EOS:
      run->eos = TRUE;
      run->eos_us = g_get_monotonic_time ();
      break;
    case GST_MESSAGE_ELEMENT:
      if (gst_structure_has_name (st, "wzp-call-ended") && run->ended == NULL)
        run->ended = g_strdup (gst_structure_get_string (st, "reason"));
      else if (gst_structure_has_name (st, "wzp-incoming-call"))
        incoming = run->incoming = TRUE;
      break;
    default:
      break;
  }
  g_mutex_unlock (&run->lock);
  if (incoming && run->reject)
    g_signal_emit_by_name (GST_MESSAGE_SRC (m), "reject");
  return GST_BUS_DROP;
}

static Run *
run_start (const gchar *desc, gboolean reject)
{
  Run *run = g_new0 (Run, 1);
  g_autoptr (GError) error = NULL;
  g_autoptr (GstBus) bus = NULL;

  g_mutex_init (&run->lock);
  run->reject = reject;
  run->pipeline = gst_parse_launch (desc, &error);
  g_assert_no_error (error);
  bus = gst_element_get_bus (run->pipeline);
  gst_bus_set_sync_handler (bus, run_bus, run, NULL);
  gst_element_set_state (run->pipeline, GST_STATE_PLAYING);
  return run;
}

static void
run_free (Run *run)
{
  gst_element_set_state (run->pipeline, GST_STATE_NULL);
  gst_object_unref (run->pipeline);
  g_clear_error (&run->error);
  g_free (run->ended);
  g_free (run->warning);
  g_mutex_clear (&run->lock);
  g_free (run);
}

static gboolean
run_ended (Run *run)
{
  return run->error != NULL || run->eos;
}

static gboolean
run_incoming (Run *run)
{
  return run->incoming;
}

static gboolean
run_warned (Run *run)
{
  return run->warning != NULL;
}

/* until @done (read under the lock) holds, at most @seconds; the default
 * main context runs meanwhile (an auth stub may live there) */
static gboolean
run_wait (Run *run, gboolean (*done) (Run *), guint seconds)
{
  gint64 end = g_get_monotonic_time () + seconds * G_USEC_PER_SEC;
  gboolean yes = FALSE;

  while (!yes && g_get_monotonic_time () < end) {
    g_mutex_lock (&run->lock);
    yes = done (run);
    g_mutex_unlock (&run->lock);
    if (!yes) {
      while (g_main_context_iteration (NULL, FALSE))
        ;
      g_usleep (10000);
    }
  }
  return yes;
}

/* until the pipeline has ended (ERROR or EOS), at most @seconds */
static gboolean
run_wait_end (Run *run, guint seconds)
{
  return run_wait (run, run_ended, seconds);
}

static gchar *
fingerprint_of (const gchar *hex)
{
  g_autoptr (WzpIdentity) id = wzp_identity_new_from_hex (hex, NULL);

  return g_strdup (wzp_identity_get_fingerprint (id));
}

static gchar *
callee_desc (Relay *r, const gchar *extra)
{
  return g_strdup_printf ("wzpsrc name=e relay=%s relay-fingerprint=%s identity=" CALLEE_SEED " %s "
                          "! fakesink", r->addr, r->tls_fp, extra);
}

static gchar *
caller_desc (Relay *r, const gchar *target, const gchar *extra)
{
  return g_strdup_printf ("audiotestsrc is-live=true samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 "
                          "! opusenc frame-size=20 ! wzpsink name=e relay=%s relay-fingerprint=%s identity="
                          CALLER_SEED " call=%s %s", r->addr, r->tls_fp, target, extra);
}

/* A caller of @target with @extra properties ends with an ERROR of @code
 * and the wzp-call-ended @reason. */
static void
expect_end (Relay *r, const gchar *target, const gchar *extra, const gchar *reason, gint code)
{
  g_autofree gchar *desc = caller_desc (r, target, extra);
  Run *caller = run_start (desc, FALSE);

  g_assert_true (run_wait_end (caller, 10));
  g_assert_cmpstr (caller->ended, ==, reason);
  g_assert_true (g_error_matches (caller->error, GST_RESOURCE_ERROR, code));
  run_free (caller);
}

/* Each way a call ends that the application can tell apart: the ERROR's
 * code, the wzp-call-ended reason, how soon. */
static void
test_call_end_codes (void)
{
  Relay *r = relay_start (relay_path, NULL);
  g_autofree gchar *callee_fp = fingerprint_of (CALLEE_SEED);
  g_autofree gchar *nobody_fp = fingerprint_of ("9090909090909090909090909090909090909090909090909090909090909090");
  gchar *d1, *d2;
  Run *callee, *caller, *second;
  gint64 t0;

  /* declined: the callee's application rejects the incoming call */
  d1 = callee_desc (r, "");
  callee = run_start (d1, TRUE);
  g_usleep (700000);
  d2 = caller_desc (r, callee_fp, "");
  caller = run_start (d2, FALSE);
  g_assert_true (run_wait_end (caller, 10));
  g_assert_true (callee->incoming);
  g_assert_nonnull (caller->error);
  g_assert_cmpstr (caller->ended, ==, "declined");
  g_assert_true (g_error_matches (caller->error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_FAILED));
  g_assert_nonnull (strstr (caller->error->message, "declined"));
  run_free (caller);
  g_free (d2);

  /* no answer: the callee's application does nothing; ring-timeout=1200 */
  callee->reject = FALSE;
  d2 = caller_desc (r, callee_fp, "ring-timeout=1200");
  t0 = g_get_monotonic_time ();
  caller = run_start (d2, FALSE);
  g_assert_true (run_wait_end (caller, 10));
  g_assert_cmpstr (caller->ended, ==, "no-answer");
  g_assert_nonnull (caller->error);
  g_assert_nonnull (strstr (caller->error->message, "within 1200 ms"));
  g_test_message ("no answer after %.2f s (ring-timeout 1.2 s)", (caller->error_us - t0) / 1e6);
  g_assert_cmpint (caller->error_us - t0, >=, 1200000);
  g_assert_cmpint (caller->error_us - t0, <, 4000000);
  run_free (caller);
  g_free (d2);
  run_free (callee);
  g_free (d1);

  /* an unknown callee: NOT_FOUND */
  expect_end (r, nobody_fp, "", "not-found", GST_RESOURCE_ERROR_NOT_FOUND);

  /* encryption=required against a callee with encryption=off: NOT_AUTHORIZED */
  d1 = callee_desc (r, "auto-answer=true encryption=off");
  callee = run_start (d1, FALSE);
  g_usleep (700000);
  expect_end (r, callee_fp, "encryption=required", "not-encrypted", GST_RESOURCE_ERROR_NOT_AUTHORIZED);
  run_free (callee);
  g_free (d1);

  /* a hang-up: the callee's pipeline stops; the caller's ends with EOS within 1 s */
  d1 = callee_desc (r, "auto-answer=true");
  callee = run_start (d1, FALSE);
  g_usleep (700000);
  d2 = caller_desc (r, callee_fp, "");
  caller = run_start (d2, FALSE);
  g_usleep (2000000);
  g_assert_null (caller->error);
  {
    /* stats name the call and the other side */
    GstElement *e = gst_bin_get_by_name (GST_BIN (caller->pipeline), "e");
    GstStructure *st = NULL;

    g_object_get (e, "stats", &st, NULL);
    g_assert_cmpstr (gst_structure_get_string (st, "peer-fingerprint"), ==, callee_fp);
    g_assert_cmpuint (strlen (gst_structure_get_string (st, "call-id")), ==, 16);
    gst_structure_free (st);
    gst_object_unref (e);
  }
  t0 = g_get_monotonic_time ();
  gst_element_set_state (callee->pipeline, GST_STATE_NULL);
  g_assert_true (run_wait_end (caller, 5));
  g_assert_true (caller->eos);
  g_assert_null (caller->error);
  g_assert_cmpstr (caller->ended, ==, "hung-up");
  g_test_message ("EOS %.0f ms after the callee stopped", (caller->eos_us - t0) / 1e3);
  g_assert_cmpint (caller->eos_us - t0, <, 1000000);
  run_free (caller);
  g_free (d2);

  /* the same identity registered again elsewhere: the first is warned, and
   * its pipeline keeps running */
  gst_element_set_state (callee->pipeline, GST_STATE_PLAYING);
  g_usleep (700000);
  second = run_start (d1, FALSE);
  g_assert_true (run_wait (callee, run_warned, 5));
  g_assert_nonnull (strstr (callee->warning, "registered this identity"));
  g_assert_null (callee->error);
  g_assert_false (callee->eos);
  g_assert_null (second->warning);
  /* and a call now reaches the second */
  g_mutex_lock (&callee->lock);
  callee->incoming = FALSE;
  g_mutex_unlock (&callee->lock);
  d2 = caller_desc (r, callee_fp, "");
  caller = run_start (d2, FALSE);
  g_assert_true (run_wait (second, run_incoming, 10));
  g_assert_false (callee->incoming);
  run_free (caller);
  g_free (d2);
  run_free (second);
  run_free (callee);
  g_free (d1);
  relay_stop (r);
}

/* Errors before any call: a relay that never answers (handshake-timeout),
 * a refused token, a wrong pin, a malformed fingerprint. */
static void
test_setup_error_codes (void)
{
  g_autofree gchar *auth_url = NULL;
  AuthStub *stub = auth_stub_start (&auth_url);
  const gchar *flags[] = { "--auth-url", auth_url, NULL };
  Relay *r = relay_start (relay_path, flags);
  g_autofree gchar *fp = fingerprint_of (CALLEE_SEED);
  struct {
    const gchar *what, *props, *reason;
    gint code;
    gdouble max_s;
  } cases[] = {
    { "unreachable relay", "relay=127.0.0.1:9 handshake-timeout=1000", "relay-unreachable",
      GST_RESOURCE_ERROR_OPEN_READ_WRITE, 3.0 },
    { "refused token", "token=bad", "not-authorized", GST_RESOURCE_ERROR_NOT_AUTHORIZED, 5.0 },
    { "wrong pin", "token=good-x relay-fingerprint=00:11", "not-authorized",
      GST_RESOURCE_ERROR_NOT_AUTHORIZED, 5.0 },
    /* refused when the call starts (PAUSED→PLAYING): no call, so no wzp-call-ended */
    { "malformed fingerprint", "call=abcd", NULL, GST_RESOURCE_ERROR_SETTINGS, 1.0 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    /* later properties win: relay= and call= given again override the defaults */
    g_autofree gchar *desc = g_strdup_printf (
        "audiotestsrc is-live=true samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 "
        "! opusenc frame-size=20 ! wzpsink relay=%s identity=" CALLER_SEED " call=%s %s",
        r->addr, fp, cases[i].props);
    gint64 t0 = g_get_monotonic_time ();
    Run *run = run_start (desc, FALSE);

    g_assert_true (run_wait_end (run, 10));
    g_test_message ("%s: %s after %.2f s: %s", cases[i].what, run->ended,
                    (run->error_us - t0) / 1e6, run->error ? run->error->message : "(no error)");
    g_assert_nonnull (run->error);
    g_assert_true (g_error_matches (run->error, GST_RESOURCE_ERROR, cases[i].code));
    g_assert_cmpstr (run->ended, ==, cases[i].reason);
    g_assert_cmpfloat ((run->error_us - t0) / 1e6, <, cases[i].max_s);
    run_free (run);
  }
  relay_stop (r);
  auth_stub_stop (stub);
}

/* identity= that is neither a seed file nor 64 hex digits is a SETTINGS
 * error naming it; with create-identity=true the file is made */
static void
test_identity_typo (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-id-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "typo.seed", NULL);
  g_autofree gchar *d1 = g_strdup_printf ("wzpsrc relay=127.0.0.1:9 identity=%s ! fakesink", path);
  g_autofree gchar *d2 = g_strdup_printf ("wzpsrc relay=127.0.0.1:9 identity=%s create-identity=true "
                                          "! fakesink", path);
  Run *run = run_start (d1, FALSE);

  g_assert_true (run_wait_end (run, 5));
  g_assert_true (g_error_matches (run->error, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
  g_assert_nonnull (strstr (run->error->message, path));
  g_assert_nonnull (strstr (run->error->message, "create-identity=true"));
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  run_free (run);

  run = run_start (d2, FALSE);
  g_usleep (300000);
  g_assert_null (run->error);
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  run_free (run);
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  relay_path = g_getenv ("WZP_RELAY");
  if (relay_path == NULL) {
    g_test_message ("WZP_RELAY is not set");
    return 1;
  }
  g_test_add_func ("/harness/sink-packing", test_sink_packing);
  g_test_add_func ("/harness/src-jitter", test_src_jitter);
  g_test_add_func ("/harness/call-end-codes", test_call_end_codes);
  g_test_add_func ("/harness/identity-typo", test_identity_typo);
  g_test_add_func ("/harness/setup-error-codes", test_setup_error_codes);
  return g_test_run ();
}
