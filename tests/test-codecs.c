/* Every codec id of §3.4 into wzpsrc through a real relay, as an upstream
 * peer on a degrading network sends them: Opus24k → Opus6k/40 ms →
 * Codec2_1200 (with FEC repair packets) → Codec2_3200 → Opus24k → comfort
 * noise → Opus24k, paced in real time. Checked on both outputs:
 * - audio/x-raw: the audio is continuous (no hole, nothing beyond one frame
 *   concealed), each Opus segment carries its tone, each Codec2 segment
 *   matches an independent decoding of the same frames (Debian's c2dec)
 *   of speech that an independent encoder (c2enc) made from espeak-ng,
 *   comfort noise is noise at the level sent, and no codec switch clicks;
 * - audio/x-opus: every buffer is an Opus packet, contiguous, and decodes to
 *   the same segments.
 * Needs espeak-ng, c2enc and c2dec (scripts/install-deps installs them);
 * without them it says so and is skipped. */
#include <math.h>
#include <string.h>
#include <glib/gstdio.h>
#include <gst/check/gstharness.h>
#include <opus.h>

#include "relay-client.h"
#include "element-stats.h"
#include "wzp-identity.h"

static const gchar *relay_path;
static gchar *workdir;

static GstStaticPadTemplate any_caps = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

#define SRC_SEED "5656565656565656565656565656565656565656565656565656565656565656"
#define SINK_SEED "5757575757575757575757575757575757575757575757575757575757575757"
#define C2_UP 6

static GstStaticPadTemplate raw_src = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-raw"));
#define RATE 48000
#define MS(x) ((x) * RATE / 1000)

/* the stream, segment by segment */
typedef enum { SEG_OPUS24, SEG_OPUS6, SEG_C2_1200, SEG_C2_3200, SEG_OPUS24_B, SEG_CN, SEG_OPUS24_C,
               N_SEG } Seg;
static const struct {
  const gchar *name;
  guint start_ms, end_ms;
  gdouble tone;                 /* Hz, 0: not a tone */
} segs[N_SEG] = {
  { "opus24k", 0, 1000, 440 },
  { "opus6k/40ms", 1000, 2000, 660 },
  { "codec2-1200", 2000, 3000, 0 },
  { "codec2-3200", 3000, 4000, 0 },
  { "opus24k", 4000, 5000, 440 },
  { "comfort-noise", 5000, 5600, 0 },
  { "opus24k", 5600, 6600, 880 },
};
#define CN_LEVEL 40             /* −40 dBov */
#define REPAIR_EVERY 5          /* Codec2 1200 frames per FEC block */
#define REPAIRS 2               /* repair packets after each block */

typedef struct {
  guint8 *bits;
  gsize len;
  gint16 *ref;                  /* c2dec's decoding, 8 kHz */
  gsize ref_len;
} C2Stream;

static C2Stream c2[2];          /* 1200, 3200 */
static gint16 *speech48, *speech8;      /* the speech, at 48 and 8 kHz */
static gsize speech48_len, speech8_len;

static gboolean
run (const gchar *cmd)
{
  gint status = -1;
  g_autoptr (GError) error = NULL;

  if (!g_spawn_command_line_sync (cmd, NULL, NULL, &status, &error) ||
      !g_spawn_check_wait_status (status, NULL)) {
    g_test_message ("failed: %s", cmd);
    return FALSE;
  }
  return TRUE;
}

/* Speech from espeak-ng at 8 kHz, coded by c2enc and decoded by c2dec: the
 * frames we send and the reference we compare with. */
static gboolean
make_speech (void)
{
  g_autofree gchar *wav = g_build_filename (workdir, "speech.wav", NULL);
  g_autofree gchar *raw = g_build_filename (workdir, "speech8k.raw", NULL);
  g_autofree gchar *cmd = g_strdup_printf ("espeak-ng -s 140 -w %s \"The quick brown fox jumps "
                                           "over the lazy dog, and the call goes on.\"", wav);
  g_autofree gchar *raw48 = g_build_filename (workdir, "speech48k.raw", NULL);
  g_autofree gchar *pipe = g_strdup_printf ("filesrc location=%s ! wavparse ! audioconvert ! "
      "audioresample ! tee name=t ! queue ! audio/x-raw,format=S16LE,rate=8000,channels=1 ! "
      "filesink location=%s t. ! queue ! audioresample ! "
      "audio/x-raw,format=S16LE,rate=48000,channels=1 ! filesink location=%s", wav, raw, raw48);
  g_autoptr (GError) error = NULL;
  GstElement *p;
  GstMessage *m;
  const gchar *modes[2] = { "1200", "3200" };

  for (guint i = 0; i < 3; i++) {
    g_autofree gchar *path = g_find_program_in_path ((const gchar *[]) { "espeak-ng", "c2enc",
                                                                         "c2dec" }[i]);
    if (path == NULL)
      return FALSE;
  }
  g_assert_true (run (cmd));
  p = gst_parse_launch (pipe, &error);
  g_assert_no_error (error);
  gst_element_set_state (p, GST_STATE_PLAYING);
  m = gst_bus_timed_pop_filtered (GST_ELEMENT_BUS (p), 10 * GST_SECOND,
                                  GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  g_assert_nonnull (m);
  g_assert_cmpint (GST_MESSAGE_TYPE (m), ==, GST_MESSAGE_EOS);
  gst_message_unref (m);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
  {
    gsize len;
    g_assert_true (g_file_get_contents (raw48, (gchar **) &speech48, &len, NULL));
    speech48_len = len / 2;
    g_assert_true (g_file_get_contents (raw, (gchar **) &speech8, &len, NULL));
    speech8_len = len / 2;
  }
  for (guint i = 0; i < 2; i++) {
    g_autofree gchar *bit = g_strdup_printf ("%s/c2-%s.bit", workdir, modes[i]);
    g_autofree gchar *dec = g_strdup_printf ("%s/c2-%s.raw", workdir, modes[i]);
    g_autofree gchar *enc_cmd = g_strdup_printf ("c2enc %s %s %s", modes[i], raw, bit);
    g_autofree gchar *dec_cmd = g_strdup_printf ("c2dec %s %s %s", modes[i], bit, dec);
    gsize len;

    g_assert_true (run (enc_cmd) && run (dec_cmd));
    g_assert_true (g_file_get_contents (bit, (gchar **) &c2[i].bits, &c2[i].len, NULL));
    g_assert_true (g_file_get_contents (dec, (gchar **) &c2[i].ref, &len, NULL));
    c2[i].ref_len = len / 2;
  }
  return TRUE;
}

typedef struct {
  Client *c;
  guint16 seq;
  gint64 t0;
} Sender;

/* Sends one packet with @seq at media time @when_ms (µs from t0). */
static void
send_seq_at (Sender *s, WzpCodecId codec, gboolean repair, guint16 seq, guint32 ts, guint32 when_ms,
             const guint8 *payload, gsize len)
{
  guint8 pkt[1500];
  WzpMediaHeader hd = { .codec = codec, .repair = repair, .seq = seq, .timestamp = ts };
  gsize n = wzp_media_packet_write (&hd, payload, len, NULL, pkt, sizeof pkt);

  g_assert_cmpuint (n, >, 0);
  while (g_get_monotonic_time () < s->t0 + (gint64) when_ms * 1000) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (500);
  }
  g_assert_true (wzp_connection_send_datagram (s->c->conn, pkt, n, NULL));
}

/* Sends one packet at its media time (real-time pacing, as a peer does). */
static void
send_at (Sender *s, WzpCodecId codec, gboolean repair, guint32 ts, const guint8 *payload, gsize len)
{
  send_seq_at (s, codec, repair, s->seq++, ts, ts, payload, len);
}

static void
send_tone (Sender *s, WzpCodecId codec, guint bitrate, guint frame_ms, const guint seg_i)
{
  int err;
  OpusEncoder *enc = opus_encoder_create (RATE, 1, OPUS_APPLICATION_VOIP, &err);
  guint n = MS (frame_ms);

  opus_encoder_ctl (enc, OPUS_SET_BITRATE ((opus_int32) bitrate));
  for (guint ts = segs[seg_i].start_ms; ts < segs[seg_i].end_ms; ts += frame_ms) {
    gint16 pcm[MS (40)];
    guint8 out[1276];
    opus_int32 len;

    for (guint i = 0; i < n; i++)
      pcm[i] = (gint16) (8000 * sin (2 * G_PI * segs[seg_i].tone * (MS (ts) + i) / RATE));
    len = opus_encode (enc, pcm, (int) n, out, sizeof out);
    g_assert_cmpint (len, >, 0);
    send_at (s, codec, FALSE, ts, out, (gsize) len);
  }
  opus_encoder_destroy (enc);
}

static void
send_stream (Client *c)
{
  Sender s = { c, 100, g_get_monotonic_time () + 200000 };
  guint8 junk[256];

  memset (junk, 0xa5, sizeof junk);
  send_tone (&s, WZP_CODEC_OPUS24K, 24000, 20, SEG_OPUS24);
  send_tone (&s, WZP_CODEC_OPUS6K, 6000, 40, SEG_OPUS6);
  for (guint k = 0; k < 25; k++) {
    send_at (&s, WZP_CODEC_CODEC2_1200, FALSE, 2000 + k * 40, c2[0].bits + k * 6, 6);
    if (k % REPAIR_EVERY == REPAIR_EVERY - 1)
      for (guint r = 0; r < REPAIRS; r++)
        send_at (&s, WZP_CODEC_CODEC2_1200, TRUE, 2000 + (k + 1) * 40, junk, sizeof junk);
  }
  for (guint k = 0; k < 50; k++)
    send_at (&s, WZP_CODEC_CODEC2_3200, FALSE, 3000 + k * 20, c2[1].bits + k * 8, 8);
  send_tone (&s, WZP_CODEC_OPUS24K, 24000, 20, SEG_OPUS24_B);
  /* silence suppressed: one comfort-noise packet every 10th frame */
  for (guint ts = 5000; ts < 5600; ts += 200) {
    guint8 level = CN_LEVEL;
    send_at (&s, WZP_CODEC_COMFORT_NOISE, FALSE, ts, &level, 1);
  }
  send_tone (&s, WZP_CODEC_OPUS24K, 24000, 20, SEG_OPUS24_C);
}

/* ---- analysis ---------------------------------------------------------- */

static gdouble
goertzel (const gint16 *x, guint n, gdouble f)
{
  gdouble w = 2 * G_PI * f / RATE, c = 2 * cos (w), s1 = 0, s2 = 0;

  for (guint i = 0; i < n; i++) {
    gdouble s0 = x[i] + c * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - c * s1 * s2;
}

static gdouble
energy (const gint16 *x, guint n)
{
  gdouble e = 0;

  for (guint i = 0; i < n; i++)
    e += (gdouble) x[i] * x[i];
  return e;
}

/* 20 ms blocks of @seg (edges left out) whose energy is mostly the tone */
static gdouble
tone_share (const gint16 *pcm, gsize len, gsize origin, Seg seg)
{
  guint good = 0, total = 0;

  for (guint ms = segs[seg].start_ms + 40; ms + 40 <= segs[seg].end_ms; ms += 20, total++) {
    gsize at = origin + MS (ms);
    gdouble e;

    if (at + MS (20) > len)
      break;
    e = energy (pcm + at, MS (20));
    /* Goertzel power vs. block energy: a pure tone gives e × n / 2 */
    if (e > 0 && goertzel (pcm + at, MS (20), segs[seg].tone) / (e * MS (20) / 2.0) > 0.8)
      good++;
  }
  return total ? (gdouble) good / total : 0;
}

/* The best normalised correlation of @seg's audio, taken down to 8 kHz,
 * with c2dec's decoding of the same frames, over lags of ±10 ms. */
static gdouble
c2_match (const gint16 *pcm, gsize len, gsize origin, Seg seg, const C2Stream *ref)
{
  guint n8 = (segs[seg].end_ms - segs[seg].start_ms - 80) * 8;
  gdouble best = 0;

  for (gint lag = -480; lag <= 480; lag++) {
    gdouble xy = 0, xx = 0, yy = 0;

    for (guint i = 0; i < n8; i++) {
      gssize at = (gssize) origin + MS (segs[seg].start_ms + 40) + ((gssize) i * 6) + lag;
      gdouble x, y;

      if (at < 0 || (gsize) at >= len || 40 * 8 + i >= ref->ref_len)
        continue;
      x = pcm[at];
      y = ref->ref[40 * 8 + i];
      xy += x * y;
      xx += x * x;
      yy += y * y;
    }
    if (xx > 0 && yy > 0)
      best = MAX (best, xy / sqrt (xx * yy));
  }
  return best;
}

/* The same for the loudness: per 20 ms block from @start_ms to @end_ms of
 * media time, the correlation of log energies with @ref from the same time
 * on (what survives a transcoding to Opus, or a vocoder: the speech, not
 * its waveform), best over lags of ±40 ms. */
static gdouble
envelope_match (const gint16 *pcm, gsize len, gsize origin, guint start_ms, guint end_ms,
                guint segs_start_ms, const C2Stream *ref)
{
  guint blocks = (end_ms - start_ms) / 20;
  g_autofree gdouble *a = g_new0 (gdouble, blocks), *b = g_new0 (gdouble, blocks);
  gdouble best = -1;

  for (gint lag = -MS (40); lag <= MS (40); lag += MS (1)) {
    gdouble ma = 0, mb = 0, ab = 0, aa = 0, bb = 0;

    for (guint k = 0; k < blocks; k++) {
      gdouble ea = 0, eb = 0;

      for (guint i = 0; i < 160; i++) {
        gssize at = (gssize) origin + MS (start_ms) + (gssize) (k * 160 + i) * 6 + lag;
        gsize r = (gsize) (start_ms - segs_start_ms) * 8 + k * 160 + i;
        gdouble x = at >= 0 && (gsize) at < len ? pcm[at] : 0, y = r < ref->ref_len ? ref->ref[r] : 0;

        ea += x * x;
        eb += y * y;
      }
      a[k] = 10 * log10 (ea + 160);
      b[k] = 10 * log10 (eb + 160);
      ma += a[k] / blocks;
      mb += b[k] / blocks;
    }
    for (guint k = 0; k < blocks; k++) {
      ab += (a[k] - ma) * (b[k] - mb);
      aa += (a[k] - ma) * (a[k] - ma);
      bb += (b[k] - mb) * (b[k] - mb);
    }
    if (aa > 0 && bb > 0)
      best = MAX (best, ab / sqrt (aa * bb));
  }
  return best;
}

static gdouble
c2_envelope_match (const gint16 *pcm, gsize len, gsize origin, Seg seg, const C2Stream *ref)
{
  return envelope_match (pcm, len, origin, segs[seg].start_ms + 40, segs[seg].end_ms - 40,
                         segs[seg].start_ms, ref);
}

/* The largest sample-to-sample step in [@from, @to) */
static gint
max_step (const gint16 *pcm, gsize len, gsize from, gsize to)
{
  gint m = 0;

  for (gsize i = MAX (from, (gsize) 1); i < MIN (to, len); i++)
    m = MAX (m, ABS (pcm[i] - pcm[i - 1]));
  return m;
}

/* ---- the test ---------------------------------------------------------- */

static GstHarness *
src_harness (Relay *r, const gchar *room, const gchar *caps)
{
  GstElement *e = gst_element_factory_make ("wzpsrc", NULL);
  GstHarness *h = gst_harness_new_empty ();

  g_assert_nonnull (e);
  g_object_set (e, "relay", r->addr, "identity", SRC_SEED, "room", room, "relay-fingerprint",
                r->tls_fp, "latency", 100, NULL);
  gst_harness_add_element_full (h, e, NULL, NULL, &any_caps, "src");
  gst_object_unref (e);
  gst_harness_set_sink_caps_str (h, caps);
  gst_harness_play (h);
  return h;
}

/* Everything the source put out, as 48 kHz samples from the first buffer's
 * PTS; @origin is where the stream's media time 0 lies in them. */
typedef struct {
  GArray *pcm;
  gsize origin;
  guint buffers, holes, gap_events;
  gboolean opus_ok;
} Output;

static void
collect (GstHarness *h, gboolean raw, Output *o)
{
  gint64 end = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  GstClockTime first = GST_CLOCK_TIME_NONE, next = GST_CLOCK_TIME_NONE;
  OpusDecoder *dec = NULL;
  int err;
  GstEvent *ev;

  o->pcm = g_array_new (FALSE, TRUE, sizeof (gint16));
  o->opus_ok = TRUE;
  if (!raw)
    dec = opus_decoder_create (RATE, 1, &err);
  for (;;) {
    GstBuffer *b = gst_harness_try_pull (h);
    GstMapInfo map;

    if (b == NULL) {
      if (g_get_monotonic_time () > end)
        break;
      g_usleep (2000);
      continue;
    }
    end = g_get_monotonic_time () + G_USEC_PER_SEC;
    if (!GST_CLOCK_TIME_IS_VALID (first))
      first = GST_BUFFER_PTS (b);
    /* a GAP event would be concealment by opusdec: there should be none
     * (a fixed delay, no loss on loopback) */
    while ((ev = gst_harness_try_pull_event (h))) {
      if (GST_EVENT_TYPE (ev) == GST_EVENT_GAP)
        o->gap_events++;
      gst_event_unref (ev);
    }
    if (GST_CLOCK_TIME_IS_VALID (next) && GST_BUFFER_PTS (b) != next) {
      g_test_message ("hole of %" G_GINT64_FORMAT " µs at %" GST_TIME_FORMAT,
                      GST_CLOCK_DIFF (next, GST_BUFFER_PTS (b)) / 1000,
                      GST_TIME_ARGS (GST_BUFFER_PTS (b) - first));
      o->holes++;
      /* as silence, so that what follows stays in its place */
      for (GstClockTime t = next; t < GST_BUFFER_PTS (b); t += GST_SECOND / RATE) {
        gint16 zero = 0;
        g_array_append_val (o->pcm, zero);
      }
    }
    next = GST_BUFFER_PTS (b) + GST_BUFFER_DURATION (b);
    gst_buffer_map (b, &map, GST_MAP_READ);
    if (raw) {
      g_array_append_vals (o->pcm, map.data, map.size / 2);
    } else {
      gint16 out[5760];
      int n = opus_decode (dec, map.data, (opus_int32) map.size, out, 5760, 0);

      if (n <= 0 || (GstClockTime) n * GST_SECOND / RATE != GST_BUFFER_DURATION (b))
        o->opus_ok = FALSE;
      else
        g_array_append_vals (o->pcm, out, (guint) n);
    }
    gst_buffer_unmap (b, &map);
    gst_buffer_unref (b);
    o->buffers++;
  }
  if (dec)
    opus_decoder_destroy (dec);
}

/* Where media time 0 lies: the first Opus segment's tone starts it; the
 * output's first sample is the first frame's (nothing is played before). */
static void
check_output (const Output *o, gboolean raw, GstElement *src)
{
  const gint16 *pcm = (const gint16 *) o->pcm->data;
  gsize len = o->pcm->len;
  gdouble m1200, m3200, e1200, e3200, noise_rms;
  gint steady[N_SEG];

  g_test_message ("%s output: %u buffers, %.2f s of audio, %u holes", raw ? "raw" : "opus",
                  o->buffers, (gdouble) len / RATE, o->holes);
  g_assert_cmpuint (o->holes, ==, 0);
  g_assert_cmpuint (o->gap_events, ==, 0);
  g_assert_true (o->opus_ok);
  /* 6.6 s sent; at most one frame concealed beyond that, none missing */
  g_assert_cmpuint (len, >=, MS (6600));
  g_assert_cmpuint (len, <=, MS (6600 + 80));
  for (Seg s = 0; s < N_SEG; s++)
    if (segs[s].tone > 0) {
      gdouble share = tone_share (pcm, len, o->origin, s);
      g_test_message ("%s: %.0f %% of its 20 ms blocks carry the %.0f Hz tone", segs[s].name,
                      share * 100, segs[s].tone);
      g_assert_cmpfloat (share, >=, 0.95);
    }
  m1200 = c2_match (pcm, len, o->origin, SEG_C2_1200, &c2[0]);
  m3200 = c2_match (pcm, len, o->origin, SEG_C2_3200, &c2[1]);
  e1200 = c2_envelope_match (pcm, len, o->origin, SEG_C2_1200, &c2[0]);
  e3200 = c2_envelope_match (pcm, len, o->origin, SEG_C2_3200, &c2[1]);
  g_test_message ("codec2 segments vs c2dec's decoding: waveform correlation %.3f (1200), %.3f "
                  "(3200); loudness per 20 ms %.3f, %.3f", m1200, m3200, e1200, e3200);
  /* decoded here: the same waveform; made Opus: the same speech */
  if (raw) {
    g_assert_cmpfloat (m1200, >=, 0.9);
    g_assert_cmpfloat (m3200, >=, 0.9);
  }
  g_assert_cmpfloat (e1200, >=, 0.9);
  g_assert_cmpfloat (e3200, >=, 0.9);
  /* comfort noise: noise at −40 dBov (RMS 328), not silence, in the middle */
  noise_rms = sqrt (energy (pcm + o->origin + MS (5100), MS (400)) / MS (400));
  g_test_message ("comfort noise: RMS %.0f (%.1f dBov)", noise_rms,
                  20 * log10 (noise_rms / 32767.0));
  g_assert_cmpfloat (noise_rms, >, 328 / 2.0);
  g_assert_cmpfloat (noise_rms, <, 328 * 2.0);
  /* no click at a switch: the steps there are no larger than within the
   * two segments it joins (a click is a step of up to full scale) */
  for (Seg s = 0; s < N_SEG; s++)
    steady[s] = max_step (pcm, len, o->origin + MS (segs[s].start_ms + 20),
                          o->origin + MS (segs[s].end_ms - 20));
  for (Seg s = 1; s < N_SEG; s++) {
    gsize at = o->origin + MS (segs[s].start_ms);
    gint step = max_step (pcm, len, at - MS (20), at + MS (20));
    gint around = MAX (steady[s - 1], steady[s]);

    g_test_message ("switch to %s: largest step %d (within the two segments: %d)", segs[s].name,
                    step, around);
    g_assert_cmpint (step, <=, around * 3 / 2);
  }
  if (raw) {
    g_assert_cmpuint (stat_u64 (src, "frames-decoded-opus"), ==, 50 + 25 + 50 + 50);
    g_assert_cmpuint (stat_u64 (src, "codec-switches"), ==, 5);
  }
  g_assert_cmpuint (stat_u64 (src, "frames-decoded-codec2-1200"), ==, 25);
  g_assert_cmpuint (stat_u64 (src, "frames-decoded-codec2-3200"), ==, 50);
  g_assert_cmpuint (stat_u64 (src, "frames-comfort-noise"), ==, 3);
  g_assert_cmpuint (stat_u64 (src, "frames-undecodable"), ==, 0);
  g_assert_cmpuint (stat_u64 (src, "packets-repair"), ==, 25 / REPAIR_EVERY * REPAIRS);
  g_assert_cmpuint (stat_u64 (src, "packets-lost"), ==, 0);
}

static void
check_switching (gconstpointer data)
{
  gboolean raw = GPOINTER_TO_INT (data);
  Relay *r;
  Client *c;
  GstHarness *h;
  Output o = { 0 };
  g_autofree gchar *room = g_strdup_printf ("codecs-%s", raw ? "raw" : "opus");

  if (c2[0].bits == NULL) {
    g_test_skip ("needs espeak-ng, c2enc and c2dec (scripts/install-deps installs them)");
    return;
  }
  r = relay_start (relay_path, NULL);
  c = client_new (raw ? 0x61 : 0x62);
  join_room (c, r, room);
  h = src_harness (r, room, raw ? "audio/x-raw" : "audio/x-opus");
  g_assert_true (spin (element_active, h->element, 5000));
  settle (300);
  send_stream (c);
  collect (h, raw, &o);
  {
    GstCaps *caps = gst_pad_get_current_caps (h->sinkpad);
    g_assert_true (gst_structure_has_name (gst_caps_get_structure (caps, 0),
                                           raw ? "audio/x-raw" : "audio/x-opus"));
    gst_caps_unref (caps);
  }
  g_assert_cmpstr (raw ? "raw" : "opus", ==, ({
    GstStructure *st = NULL;
    g_object_get (h->element, "stats", &st, NULL);
    const gchar *v = g_intern_string (gst_structure_get_string (st, "output"));
    gst_structure_free (st);
    v;
  }));
  o.origin = 0;
  check_output (&o, raw, h->element);
  g_array_unref (o.pcm);
  gst_harness_teardown (h);
  client_free (c);
  relay_stop (r);
}

/* ---- wzpsink with raw audio ---------------------------------------------- */

static GstHarness *
sink_harness (Relay *r, const gchar *room, const gchar *profile)
{
  GstElement *e = gst_element_factory_make ("wzpsink", NULL);
  GstHarness *h = gst_harness_new_empty ();

  g_assert_nonnull (e);
  g_object_set (e, "relay", r->addr, "identity", SINK_SEED, "room", room, "relay-fingerprint",
                r->tls_fp, NULL);
  gst_util_set_object_arg (G_OBJECT (e), "profile", profile);
  gst_harness_add_element_full (h, e, &raw_src, "sink", NULL, NULL);
  gst_object_unref (e);
  gst_harness_set_src_caps_str (h, "audio/x-raw, format=(string)S16LE, rate=(int)48000, "
                                "channels=(int)1, layout=(string)interleaved");
  return h;
}

/* 20 ms of @pcm from sample @at (looped), as a buffer at @pts */
static GstBuffer *
pcm20 (const gint16 *pcm, gsize len, gsize at, GstClockTime pts)
{
  gint16 block[MS (20)];
  GstBuffer *b;

  for (guint i = 0; i < MS (20); i++)
    block[i] = pcm[(at + i) % len];
  b = gst_buffer_new_memdup (block, sizeof block);
  GST_BUFFER_PTS (b) = pts;
  GST_BUFFER_DURATION (b) = 20 * GST_MSECOND;
  return b;
}

/* profile=catastrophic and codec2-3200: the sink's Codec2 frames of the
 * speech, decoded by Debian's c2dec (a decoder that is not ours), have the
 * speech's loudness contour. */
static void
check_sink_codec2 (gconstpointer data)
{
  gboolean c1200 = GPOINTER_TO_INT (data);
  const gchar *mode = c1200 ? "1200" : "3200";
  g_autofree gchar *room = g_strdup_printf ("sink-codec2-%s", mode);
  g_autofree gchar *bitfile = g_strdup_printf ("%s/sink-%s.bit", workdir, mode);
  g_autofree gchar *decfile = g_strdup_printf ("%s/sink-%s.raw", workdir, mode);
  g_autofree gchar *cmd = g_strdup_printf ("c2dec %s %s %s", mode, bitfile, decfile);
  guint frames = (guint) (speech48_len / MS (20));
  guint want;
  GByteArray *bits = g_byte_array_new ();
  C2Stream ours = { 0 };
  Relay *r;
  Client *c;
  GstHarness *h;
  gdouble m;
  gsize len;

  if (speech48 == NULL) {
    g_test_skip ("needs espeak-ng, c2enc and c2dec (scripts/install-deps installs them)");
    return;
  }
  r = relay_start (relay_path, NULL);
  c = client_new (c1200 ? 0x63 : 0x64);
  c->keep_datagrams = TRUE;
  join_room (c, r, room);
  h = sink_harness (r, room, c1200 ? "catastrophic" : "codec2-3200");
  g_assert_true (spin (element_active, h->element, 5000));
  for (guint k = 0; k < frames; k++)
    g_assert_cmpint (gst_harness_push (h, pcm20 (speech48, speech48_len, k * MS (20),
                                                   k * 20 * GST_MSECOND)), ==, GST_FLOW_OK);
  want = frames * 20 / (c1200 ? 40 : 20);
  client_wait_datagrams (c, want, 5000);
  g_assert_cmpuint (c->datagram_log->len, ==, want);
  for (guint i = 0; i < c->datagram_log->len; i++) {
    WzpMediaPacket pkt;
    gsize dlen;
    const guint8 *d = g_bytes_get_data (g_ptr_array_index (c->datagram_log, i), &dlen);

    g_assert_true (wzp_media_packet_parse (d, dlen, &pkt, NULL));
    g_assert_cmpint (pkt.header.codec, ==, c1200 ? WZP_CODEC_CODEC2_1200 : WZP_CODEC_CODEC2_3200);
    g_assert_cmpuint (pkt.header.timestamp, ==, i * (c1200 ? 40 : 20));
    g_assert_cmpuint (pkt.payload_len, ==, c1200 ? 6 : 8);
    g_byte_array_append (bits, pkt.payload, (guint) pkt.payload_len);
  }
  g_assert_true (g_file_set_contents (bitfile, (const gchar *) bits->data, bits->len, NULL));
  g_assert_true (run (cmd));
  g_assert_true (g_file_get_contents (decfile, (gchar **) &ours.ref, &len, NULL));
  ours.ref_len = len / 2;
  /* the speech itself (8 kHz) against c2dec's decoding of our frames: the
   * envelope measure of the receive test, with the roles swapped */
  {
    /* the measure reads 48 kHz audio, every 6th sample */
    GArray *sent = g_array_new (FALSE, TRUE, sizeof (gint16));

    for (gsize i = 0; i < speech8_len; i++)
      for (guint k = 0; k < C2_UP; k++)
        g_array_append_val (sent, speech8[i]);
    m = envelope_match ((const gint16 *) sent->data, sent->len, 0, 40,
                        (guint) (speech8_len / 8) - 40, 0, &ours);
    g_array_unref (sent);
  }
  g_test_message ("Codec2 %s: %u frames from wzpsink, decoded by c2dec: loudness per 20 ms "
                  "against the speech sent %.3f; stats %" G_GUINT64_FORMAT " frames", mode,
                  c->datagram_log->len, m,
                  stat_u64 (h->element, c1200 ? "frames-encoded-codec2-1200" : "frames-encoded-codec2-3200"));
  g_assert_cmpfloat (m, >=, 0.85);
  g_free (ours.ref);
  g_byte_array_unref (bits);
  gst_harness_teardown (h);
  client_free (c);
  relay_stop (r);
}

/* A room whose other member reports loss: the relay's QualityDirective
 * moves a raw-audio wzpsink GOOD → CATASTROPHIC (Codec2 1200) → DEGRADED
 * (Opus6k/40 ms) → GOOD, with Opus FEC on while loss is reported; the
 * media clock runs on through every switch. */
static void
test_sink_adapts (void)
{
  static const struct { guint loss; guint frames; } phases[] = {
    { 0, 40 }, { 20, 60 }, { 7, 60 }, { 0, 60 },
  };
  Relay *r = relay_start (relay_path, NULL);
  Client *c = client_new (0x65);
  GstHarness *h;
  guint k = 0, seq = 0;
  gint16 tone[MS (20) * 50];
  gboolean fec_seen = FALSE;
  GArray *codecs = g_array_new (FALSE, FALSE, sizeof (gint));

  for (guint i = 0; i < G_N_ELEMENTS (tone); i++)
    tone[i] = (gint16) (8000 * sin (2 * G_PI * 440 * i / RATE));
  c->keep_datagrams = TRUE;
  join_room (c, r, "sink-adapts");
  h = sink_harness (r, "sink-adapts", "auto");
  g_assert_true (spin (element_active, h->element, 5000));
  for (guint p = 0; p < G_N_ELEMENTS (phases); p++) {
    for (guint i = 0; i < phases[p].frames; i++, k++) {
      gint64 until = g_get_monotonic_time () + 20000;
      guint8 junk[20] = { 0xf8 }, pkt[64];
      WzpMediaHeader hd = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) seq++,
                            .timestamp = k * 20, .has_quality = TRUE };
      WzpQualityReport qr = wzp_quality_report_from_stats (phases[p].loss, 20, 2);
      gsize n = wzp_media_packet_write (&hd, junk, sizeof junk, &qr, pkt, sizeof pkt);

      /* the other member's media, each packet with its report */
      g_assert_true (wzp_connection_send_datagram (c->conn, pkt, n, NULL));
      g_assert_cmpint (gst_harness_push (h, pcm20 (tone, G_N_ELEMENTS (tone), k * MS (20),
                                                     k * 20 * GST_MSECOND)), ==, GST_FLOW_OK);
      while (g_get_monotonic_time () < until) {
        g_main_context_iteration (NULL, FALSE);
        g_usleep (1000);
      }
      {
        GstStructure *st = NULL;
        gboolean fec = FALSE;
        g_object_get (h->element, "stats", &st, NULL);
        g_assert_true (gst_structure_get_boolean (st, "fec", &fec));
        gst_structure_free (st);
        fec_seen |= fec && phases[p].loss > 0;
        if (p == G_N_ELEMENTS (phases) - 1 && i == phases[p].frames - 1)
          g_assert_false (fec);             /* the loss is gone: FEC off */
      }
    }
  }
  settle (200);
  /* the sink's datagrams: their codecs in order, the media clock contiguous */
  {
    guint32 next_ts = 0;
    gint last = -1;
    GString *seen = g_string_new (NULL);

    for (guint i = 0; i < c->datagram_log->len; i++) {
      WzpMediaPacket pkt;
      gsize dlen;
      const guint8 *d = g_bytes_get_data (g_ptr_array_index (c->datagram_log, i), &dlen);

      g_assert_true (wzp_media_packet_parse (d, dlen, &pkt, NULL));
      g_assert_cmpuint (pkt.header.timestamp, ==, next_ts);
      next_ts += wzp_codec_id_frame_ms (pkt.header.codec);
      if ((gint) pkt.header.codec != last) {
        gint cid = pkt.header.codec;
        g_array_append_val (codecs, cid);
        g_string_append_printf (seen, "%s%s", seen->len ? " -> " : "",
                                wzp_codec_id_to_string (pkt.header.codec));
        last = pkt.header.codec;
      }
    }
    g_test_message ("the sink sent %u datagrams: %s; FEC on under loss: %s; switches %"
                    G_GUINT64_FORMAT, c->datagram_log->len, seen->str, fec_seen ? "yes" : "no",
                    stat_u64 (h->element, "codec-switches"));
    g_string_free (seen, TRUE);
  }
  g_assert_cmpuint (codecs->len, ==, 4);
  g_assert_cmpint (g_array_index (codecs, gint, 0), ==, WZP_CODEC_OPUS24K);
  g_assert_cmpint (g_array_index (codecs, gint, 1), ==, WZP_CODEC_CODEC2_1200);
  g_assert_cmpint (g_array_index (codecs, gint, 2), ==, WZP_CODEC_OPUS6K);
  g_assert_cmpint (g_array_index (codecs, gint, 3), ==, WZP_CODEC_OPUS24K);
  g_assert_true (fec_seen);
  g_array_unref (codecs);
  gst_harness_teardown (h);
  client_free (c);
  relay_stop (r);
}

/* In-band FEC, end to end: a raw-audio wzpsink told of 10 % loss (a room
 * member's reports) sends Opus with FEC; its frames, replayed to a wzpsrc
 * with every 10th one missing, are recovered from the frame after each
 * hole. The signal changes frequency every 20 ms at random, so concealment
 * cannot guess a lost frame: it is counted as recovered only when its
 * block has the frequency that was sent. The same without FEC for the
 * difference. */
#define HOP_N 8
static const gdouble hop_hz[HOP_N] = { 400, 700, 1000, 1300, 1600, 1900, 2200, 2500 };
#define FEC_FRAMES 200
#define FEC_LOST_EVERY 10

/* frame k's frequency: never the one before it, else at random */
static guint
hop_of (guint k)
{
  guint h = 0;

  for (guint i = 1; i <= k; i++) {
    guint32 x = i * 2654435761u;

    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    x ^= x >> 12;
    h = (h + 1 + x % (HOP_N - 1)) % HOP_N;
  }
  return h;
}

/* The sink's frames of the hopping signal, with the loss it is told of */
static GPtrArray *
record_sink (Relay *r, guint loss, const gchar *room)
{
  Client *c = client_new (loss ? 0x66 : 0x67);
  GstHarness *h;
  GPtrArray *out;
  gint16 pcm[MS (20)];
  gdouble phase = 0;
  gboolean fec = FALSE;

  c->keep_datagrams = TRUE;
  join_room (c, r, room);
  h = sink_harness (r, room, "good");
  g_assert_true (spin (element_active, h->element, 5000));
  for (guint k = 0; k < FEC_FRAMES + 10; k++) {
    guint8 junk[20] = { 0xf8 }, pkt[64];
    WzpMediaHeader hd = { .codec = WZP_CODEC_OPUS24K, .seq = (guint16) k, .timestamp = k * 20,
                          .has_quality = TRUE };
    WzpQualityReport qr = wzp_quality_report_from_stats (loss, 20, 2);
    gsize n = wzp_media_packet_write (&hd, junk, sizeof junk, &qr, pkt, sizeof pkt);
    GstBuffer *b;

    /* the report first, so that the frame is encoded knowing it */
    g_assert_true (wzp_connection_send_datagram (c->conn, pkt, n, NULL));
    settle (k < 10 ? 20 : 2);
    for (guint i = 0; i < MS (20); i++) {
      pcm[i] = (gint16) (8000 * sin (phase));
      phase += 2 * G_PI * hop_hz[hop_of (k)] / RATE;
    }
    b = gst_buffer_new_memdup (pcm, sizeof pcm);
    GST_BUFFER_PTS (b) = k * 20 * GST_MSECOND;
    g_assert_cmpint (gst_harness_push (h, b), ==, GST_FLOW_OK);
  }
  client_wait_datagrams (c, FEC_FRAMES + 10, 5000);
  {
    GstStructure *st = NULL;
    g_object_get (h->element, "stats", &st, NULL);
    g_assert_true (gst_structure_get_boolean (st, "fec", &fec));
    gst_structure_free (st);
  }
  g_assert_cmpint (fec, ==, loss > 0);
  out = g_ptr_array_ref (c->datagram_log);
  gst_harness_teardown (h);
  client_free (c);
  return out;
}

/* Replays @frames (from the 10th on, renumbered from 0) to a wzpsrc with
 * raw output, every FEC_LOST_EVERY-th missing; returns the share of the
 * missing frames played with the frequency that was sent. */
static gdouble
replay_lossy (Relay *r, GPtrArray *frames, const gchar *room, guint64 *fec_frames)
{
  Client *c = client_new (0x68);
  GstHarness *h;
  Sender snd;
  Output o = { 0 };
  guint right = 0, lost = 0;

  join_room (c, r, room);
  h = src_harness (r, room, "audio/x-raw");
  g_assert_true (spin (element_active, h->element, 5000));
  settle (300);
  snd = (Sender) { c, 0, g_get_monotonic_time () + 100000 };
  for (guint k = 0; k < FEC_FRAMES; k++) {
    WzpMediaPacket pkt;
    gsize len;
    const guint8 *d = g_bytes_get_data (g_ptr_array_index (frames, k + 10), &len);

    g_assert_true (wzp_media_packet_parse (d, len, &pkt, NULL));
    snd.seq = (guint16) k;
    if (k % FEC_LOST_EVERY == FEC_LOST_EVERY / 2) {
      snd.seq++;
      continue;                 /* lost on the way */
    }
    send_at (&snd, pkt.header.codec, FALSE, k * 20, pkt.payload, pkt.payload_len);
  }
  collect (h, TRUE, &o);
  *fec_frames = stat_u64 (h->element, "frames-fec");
  for (guint k = 0; k < FEC_FRAMES; k++) {
    const gint16 *blk = (const gint16 *) o.pcm->data + k * MS (20) + 400;
    guint best = 0;
    gdouble best_p = -1;

    if (k % FEC_LOST_EVERY != FEC_LOST_EVERY / 2 || (k + 1) * MS (20) + 400 > o.pcm->len)
      continue;
    /* the block of the lost frame, past the codec's delay */
    for (guint f = 0; f < HOP_N; f++) {
      gdouble p = goertzel (blk, 500, hop_hz[f]);
      if (p > best_p) {
        best_p = p;
        best = f;
      }
    }
    lost++;
    right += best == hop_of (k + 10);
  }
  g_array_unref (o.pcm);
  gst_harness_teardown (h);
  client_free (c);
  return lost ? (gdouble) right / lost : 0;
}

static void
test_fec (void)
{
  Relay *r = relay_start (relay_path, NULL);
  GPtrArray *with = record_sink (r, 10, "fec-rec-on");
  GPtrArray *without = record_sink (r, 0, "fec-rec-off");
  guint64 fec_on = 0, fec_off = 0;
  gdouble on = replay_lossy (r, with, "fec-play-on", &fec_on);
  gdouble off = replay_lossy (r, without, "fec-play-off", &fec_off);

  g_test_message ("every %uth of %u frames lost: with FEC (10 %% loss reported) %.0f %% of the "
                  "lost frames played with the frequency sent (%" G_GUINT64_FORMAT
                  " decoded from FEC); without FEC %.0f %%", FEC_LOST_EVERY, FEC_FRAMES, on * 100,
                  fec_on, off * 100);
  g_assert_cmpuint (fec_on, ==, FEC_FRAMES / FEC_LOST_EVERY);
  g_assert_cmpfloat (on, >=, 0.75);
  g_assert_cmpfloat (off, <=, 0.35);
  g_ptr_array_unref (with);
  g_ptr_array_unref (without);
  relay_stop (r);
}

/* Frames no decoder can take (a Codec2 frame of the wrong size, an empty
 * one, Opus packets that are not Opus) are concealed in their place and
 * counted; the audio around them stays continuous and in place. */
static void
test_bad_frames (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *c = client_new (0x69);
  GstHarness *h;
  Sender snd;
  Output o = { 0 };
  guint8 junk[200];
  int err;
  OpusEncoder *enc = opus_encoder_create (RATE, 1, OPUS_APPLICATION_VOIP, &err);

  for (guint i = 0; i < sizeof junk; i++)
    junk[i] = (guint8) (i * 37 + 11);
  join_room (c, r, "bad-frames");
  h = src_harness (r, "bad-frames", "audio/x-raw");
  g_assert_true (spin (element_active, h->element, 5000));
  settle (300);
  snd = (Sender) { c, 0, g_get_monotonic_time () + 100000 };
  for (guint k = 0; k < 50; k++) {
    gint16 pcm[MS (20)];
    guint8 out[1276];
    opus_int32 len;

    for (guint i = 0; i < MS (20); i++)
      pcm[i] = (gint16) (8000 * sin (2 * G_PI * 440 * (MS (k * 20) + i) / RATE));
    len = opus_encode (enc, pcm, MS (20), out, sizeof out);
    switch (k) {
      case 10: send_at (&snd, WZP_CODEC_CODEC2_1200, FALSE, k * 20, junk, 5); break;
      case 20: send_at (&snd, WZP_CODEC_CODEC2_3200, FALSE, k * 20, junk, 0); break;
      case 30: send_at (&snd, WZP_CODEC_OPUS24K, FALSE, k * 20, (const guint8 *) "\xff\xff\xff", 3); break;
      case 40: send_at (&snd, WZP_CODEC_OPUS24K, FALSE, k * 20, junk, 0); break;
      default: send_at (&snd, WZP_CODEC_OPUS24K, FALSE, k * 20, out, (gsize) len); break;
    }
  }
  opus_encoder_destroy (enc);
  collect (h, TRUE, &o);
  g_test_message ("4 undecodable frames among 50: %.2f s of audio, %u holes, %" G_GUINT64_FORMAT
                  " counted undecodable", (gdouble) o.pcm->len / RATE, o.holes,
                  stat_u64 (h->element, "frames-undecodable"));
  g_assert_cmpuint (o.holes, ==, 0);
  /* (the Codec2 1200 id says 40 ms: its slot is 40 ms) */
  g_assert_cmpuint (o.pcm->len, >=, MS (1000));
  g_assert_cmpuint (o.pcm->len, <=, MS (1040));
  g_assert_cmpuint (stat_u64 (h->element, "frames-undecodable"), ==, 4);
  /* the tone goes on around them */
  for (guint k = 1; k < 50; k++) {
    const gint16 *blk = (const gint16 *) o.pcm->data + k * MS (20);
    gdouble e = energy (blk, MS (20));

    if (k % 10 == 0 || k % 10 == 1)
      continue;                 /* the bad frame and the one after it */
    g_assert_cmpfloat (goertzel (blk, MS (20), 440) / (e * MS (20) / 2.0), >, 0.8);
  }
  g_array_unref (o.pcm);
  gst_harness_teardown (h);
  client_free (c);
  relay_stop (r);
}

/* A sink that waits for the clock (sync=true) holds wzpsrc's thread until
 * each buffer's play time. What arrives meanwhile must still play: every
 * 10th frame here comes 50 ms after its neighbours, inside the fixed 60 ms
 * playout delay, so none is lost, none late and nothing concealed. (Before
 * wzpsrc allowed for the pipeline's latency, a thread given back a frame
 * after the play time took the stream for stalled: 41 of the 100 frames
 * decoded, 800 ms concealed.) */
static void
test_clocked_sink (void)
{
  Relay *r = relay_start (relay_path, NULL);
  Client *c = client_new (0x6a);
  g_autofree gchar *desc = g_strdup_printf ("wzpsrc name=src relay=%s identity=%s room=clocked "
      "relay-fingerprint=%s latency=60 ! audio/x-raw,rate=48000,channels=1 ! fakesink sync=true",
      r->addr, SRC_SEED, r->tls_fp);
  g_autoptr (GError) error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);
  GstElement *src;
  OpusEncoder *enc;
  Sender snd;
  int err;

  g_assert_no_error (error);
  src = gst_bin_get_by_name (GST_BIN (p), "src");
  join_room (c, r, "clocked");
  gst_element_set_state (p, GST_STATE_PLAYING);
  g_assert_true (spin (element_active, src, 5000));
  settle (300);
  enc = opus_encoder_create (RATE, 1, OPUS_APPLICATION_VOIP, &err);
  snd = (Sender) { c, 0, g_get_monotonic_time () + 100000 };
  for (guint k = 0; k < 100; k++) {
    gint16 pcm[MS (20)];
    guint8 out[1276];
    opus_int32 len;

    for (guint i = 0; i < MS (20); i++)
      pcm[i] = (gint16) (8000 * sin (2 * G_PI * 440 * (MS (k * 20) + i) / RATE));
    len = opus_encode (enc, pcm, MS (20), out, sizeof out);
    g_assert_cmpint (len, >, 0);
    /* frame 5 of every ten goes 50 ms late, after frames 6 and 7 */
    send_seq_at (&snd, WZP_CODEC_OPUS24K, FALSE, (guint16) k, k * 20, k * 20 + (k % 10 == 5 ? 50 : 0),
                 out, (gsize) len);
  }
  opus_encoder_destroy (enc);
  settle (500);
  g_test_message ("100 frames, 10 of them 50 ms late, into a 60 ms playout and a clocked sink: "
                  "%" G_GUINT64_FORMAT " decoded, %" G_GUINT64_FORMAT " lost, %" G_GUINT64_FORMAT
                  " late, %" G_GUINT64_FORMAT " ms concealed", stat_u64 (src, "frames-decoded-opus"),
                  stat_u64 (src, "packets-lost"), stat_u64 (src, "packets-late"),
                  stat_u64 (src, "concealed-ms"));
  g_assert_cmpuint (stat_u64 (src, "packets-lost"), ==, 0);
  g_assert_cmpuint (stat_u64 (src, "packets-late"), ==, 0);
  g_assert_cmpuint (stat_u64 (src, "frames-decoded-opus"), ==, 100);
  g_assert_cmpuint (stat_u64 (src, "concealed-ms"), ==, 0);
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (src);
  gst_object_unref (p);
  client_free (c);
  relay_stop (r);
}

int
main (int argc, char **argv)
{
  int rc;

  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  relay_path = g_getenv ("WZP_RELAY");
  g_assert_nonnull (relay_path);
  workdir = g_dir_make_tmp ("wzp-codecs-XXXXXX", NULL);
  if (!make_speech ())
    g_test_message ("espeak-ng, c2enc or c2dec missing: the codec tests are skipped");
  g_test_add_data_func ("/codecs/switching-raw", GINT_TO_POINTER (TRUE), check_switching);
  g_test_add_data_func ("/codecs/switching-opus", GINT_TO_POINTER (FALSE), check_switching);
  g_test_add_data_func ("/codecs/sink-codec2-1200", GINT_TO_POINTER (TRUE), check_sink_codec2);
  g_test_add_data_func ("/codecs/sink-codec2-3200", GINT_TO_POINTER (FALSE), check_sink_codec2);
  g_test_add_func ("/codecs/sink-adapts", test_sink_adapts);
  g_test_add_func ("/codecs/fec", test_fec);
  g_test_add_func ("/codecs/bad-frames", test_bad_frames);
  g_test_add_func ("/codecs/clocked-sink", test_clocked_sink);
  rc = g_test_run ();
  {
    g_autofree gchar *cmd = g_strdup_printf ("rm -rf %s", workdir);
    run (cmd);
  }
  return rc;
}
