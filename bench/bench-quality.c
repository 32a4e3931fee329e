/* bench-quality: one leg of the call-quality benchmark (bench/quality runs
 * the whole of it in the network lab, through the WAN emulator).
 *
 * The sender plays a signal whose frequency hops every 20 ms (block k is a
 * tone at 300 + 100 * sym(k) Hz, sym a fixed pseudo-random sequence of 32
 * symbols that never repeats the one before), captured live in real time,
 * and writes when block 0 was captured (CLOCK_MONOTONIC, which every
 * network namespace shares). The receiver keeps what its sink would play,
 * placed at the time it would play it (the buffer's timestamp plus the base
 * time and the pipeline's latency, as a synchronised audio sink plays it),
 * and afterwards finds the blocks again: a block counts as heard only when
 * its own frequency plays at its place in the sequence. Concealment
 * continues the frequency before it, so it cannot fake a block. For every
 * heard block, mouth-to-ear delay is its play time minus its capture time.
 *
 *   bench-quality send --wzp --relay A --identity F --call FP --seconds S --t0-file F
 *   bench-quality send --rtp HOST:PORT --loss P --seconds S --t0-file F
 *   bench-quality recv --wzp --relay A --identity F --measure S --t0-file F --total S
 *   bench-quality recv --rtp PORT --latency MS[,MS...] --measure S --t0-file F --total S
 *   bench-quality forward --listen ADDR:PORT --to ADDR:PORT
 *
 * The receiver prints one JSON line per playout it measured. Both senders
 * encode with opusenc alike (24 kbit/s, 20 ms, voice, complexity 7, in-band
 * FEC tuned to the links' loss), so what differs is transport and playout;
 * wzpsink passes the Opus on. The RTP receiver plays through
 * rtpjitterbuffer (do-lost, so opusdec conceals and uses the FEC), one
 * pipeline per latency, all fed from one socket. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <gio/gio.h>
#include <gst/gst.h>
#include <gst/app/gstappsrc.h>
#include <gst/app/gstappsink.h>

#include "bench-util.h"

#define RATE 48000
#define BLOCK (RATE / 50)          /* 20 ms */
#define BLOCK_NS (20 * GST_MSECOND)
#define SYMBOLS 32
#define WIN 720                    /* the 15 ms in the middle of a block */
#define WIN_AT 120
/* what a wzpsrc pipeline's latency adds to the playout delay: wzpsrc's
 * 10 ms for the decoder and the sink's 20 ms processing deadline */
#define WZP_PIPELINE_MARGIN_MS 30
#define ALIGNMENT_THRESHOLD (RATE / 25)

static guint8 *symbols;            /* sym(k) for every block sent */
static guint n_symbols;

static void
make_symbols (guint n)
{
  guint64 x = 0x9e3779b97f4a7c15ull;

  symbols = g_new (guint8, n);
  n_symbols = n;
  for (guint k = 0; k < n; k++) {
    guint64 z = (x += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    symbols[k] = k == 0 ? z % SYMBOLS : (symbols[k - 1] + 1 + z % (SYMBOLS - 1)) % SYMBOLS;
  }
}

static gdouble
symbol_hz (guint s)
{
  return 300.0 + 100.0 * s;
}

/* ------------------------------------------------------------------ send */

typedef struct {
  GstElement *pipeline;
  GstAppSrc *src;
  guint blocks;
  const gchar *t0_file;
} Sender;

static gpointer
send_thread (gpointer data)
{
  Sender *s = data;
  GstClock *clock = gst_pipeline_get_clock (GST_PIPELINE (s->pipeline));
  GstClockTime base = gst_element_get_base_time (s->pipeline);
  GstClockTime t0 = gst_clock_get_time (clock) + 50 * GST_MSECOND;
  gdouble phase = 0;
  g_autofree gchar *line = g_strdup_printf ("%" G_GUINT64_FORMAT "\n", (guint64) t0);

  g_file_set_contents (s->t0_file, line, -1, NULL);
  for (guint k = 0; k < s->blocks; k++) {
    GstBuffer *buf = gst_buffer_new_allocate (NULL, BLOCK * 2, NULL);
    GstMapInfo map;
    gint16 *pcm;
    gdouble step = 2 * G_PI * symbol_hz (symbols[k]) / RATE;
    GstClockID id;

    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    pcm = (gint16 *) map.data;
    for (guint i = 0; i < BLOCK; i++) {
      pcm[i] = (gint16) (9000 * sin (phase));
      phase = fmod (phase + step, 2 * G_PI);
    }
    gst_buffer_unmap (buf, &map);
    GST_BUFFER_PTS (buf) = t0 - base + k * BLOCK_NS;
    GST_BUFFER_DURATION (buf) = BLOCK_NS;
    /* a microphone delivers a block when its last sample is captured */
    id = gst_clock_new_single_shot_id (clock, t0 + (k + 1) * BLOCK_NS);
    gst_clock_id_wait (id, NULL);
    gst_clock_id_unref (id);
    if (gst_app_src_push_buffer (s->src, buf) != GST_FLOW_OK)
      break;
  }
  gst_app_src_end_of_stream (s->src);
  gst_object_unref (clock);
  return NULL;
}

/* Runs @pipeline until EOS or an error; FALSE on an error. */
static gboolean
run_until_eos (GstElement *pipeline, guint timeout_s)
{
  GstBus *bus = gst_element_get_bus (pipeline);
  GstMessage *m = gst_bus_timed_pop_filtered (bus, timeout_s * GST_SECOND,
                                              GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  gboolean ok = m && GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS;

  if (m && !ok) {
    g_autoptr (GError) e = NULL;
    g_autofree gchar *dbg = NULL;

    gst_message_parse_error (m, &e, &dbg);
    g_printerr ("bench-quality: %s (%s)\n", e->message, dbg ? dbg : "");
  }
  if (m)
    gst_message_unref (m);
  gst_object_unref (bus);
  return ok;
}

static int
do_send (const gchar *desc, guint seconds, const gchar *t0_file)
{
  g_autoptr (GError) error = NULL;
  Sender s = { 0 };
  GThread *t;
  gboolean ok;

  s.pipeline = gst_parse_launch (desc, &error);
  if (!s.pipeline) {
    g_printerr ("bench-quality: %s\n", error->message);
    return 1;
  }
  s.src = GST_APP_SRC (gst_bin_get_by_name (GST_BIN (s.pipeline), "src"));
  s.blocks = seconds * 50;
  s.t0_file = t0_file;
  gst_element_set_state (s.pipeline, GST_STATE_PLAYING);
  gst_element_get_state (s.pipeline, NULL, NULL, 10 * GST_SECOND);
  t = g_thread_new ("send", send_thread, &s);
  ok = run_until_eos (s.pipeline, seconds + 30);
  g_thread_join (t);
  gst_element_set_state (s.pipeline, GST_STATE_NULL);
  gst_object_unref (s.src);
  gst_object_unref (s.pipeline);
  return ok ? 0 : 1;
}

/* ------------------------------------------------------------------ receive */

typedef struct {
  gchar *name;
  guint latency_ms;                /* the setting, for the report */
  GstElement *pipeline;
  GstElement *stats_from;          /* wzpsrc, or the rtpjitterbuffer */
  GMutex lock;
  GArray *pcm;                     /* gint16, index 0 plays at t_first */
  GstClockTime t_first;
  gint64 next_at;                  /* where the next sample goes, if contiguous */
  GstStructure *last_stats;
} Playout;

static GstFlowReturn
on_sample (GstAppSink *sink, gpointer data)
{
  Playout *p = data;
  GstSample *sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buf = gst_sample_get_buffer (sample);
  GstClockTime pts = GST_BUFFER_PTS (buf);
  GstMapInfo map;

  if (GST_CLOCK_TIME_IS_VALID (pts) && gst_buffer_map (buf, &map, GST_MAP_READ)) {
    GstClockTime play = gst_element_get_base_time (p->pipeline) + pts +
        gst_base_sink_get_latency (GST_BASE_SINK (sink));
    guint n = map.size / 2;
    gint64 at;

    g_mutex_lock (&p->lock);
    if (g_getenv ("BQ_DEBUG") && p->pcm->len < RATE)
      g_printerr ("%s: pts %" GST_TIME_FORMAT " lat %" GST_TIME_FORMAT " play-now %.1f ms\n", p->name,
                  GST_TIME_ARGS (pts), GST_TIME_ARGS (gst_base_sink_get_latency (GST_BASE_SINK (sink))),
                  ((gdouble) play - (gdouble) g_get_monotonic_time () * 1000) / 1e6);
    if (!GST_CLOCK_TIME_IS_VALID (p->t_first))
      p->t_first = play;
    at = (gint64) gst_util_uint64_scale_round (play - MIN (play, p->t_first), RATE, GST_SECOND);
    /* as an audio sink plays: contiguous with what came before unless the
     * timestamp is further off than its alignment threshold (GstAudioBaseSink's
     * default, 40 ms) */
    if (p->next_at >= 0 && ABS (at - p->next_at) <= ALIGNMENT_THRESHOLD)
      at = p->next_at;
    if (play >= p->t_first) {
      if (p->pcm->len < at + n)
        g_array_set_size (p->pcm, at + n);
      memcpy (&g_array_index (p->pcm, gint16, at), map.data, n * 2);
      p->next_at = at + n;
    }
    g_mutex_unlock (&p->lock);
    gst_buffer_unmap (buf, &map);
  }
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

static Playout *
playout_new (const gchar *name, guint latency_ms, const gchar *desc)
{
  g_autoptr (GError) error = NULL;
  Playout *p = g_new0 (Playout, 1);
  GstElement *sink;
  GstAppSinkCallbacks cb = { .new_sample = on_sample };

  p->name = g_strdup (name);
  p->latency_ms = latency_ms;
  p->pipeline = gst_parse_launch (desc, &error);
  if (!p->pipeline)
    g_error ("bench-quality: %s", error->message);
  g_mutex_init (&p->lock);
  p->pcm = g_array_new (FALSE, TRUE, sizeof (gint16));
  p->t_first = GST_CLOCK_TIME_NONE;
  p->next_at = -1;
  sink = gst_bin_get_by_name (GST_BIN (p->pipeline), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, p, NULL);
  gst_object_unref (sink);
  p->stats_from = gst_bin_get_by_name (GST_BIN (p->pipeline), "stats");
  return p;
}

static void
playout_poll_stats (Playout *p)
{
  GstStructure *st = NULL;

  if (!p->stats_from)
    return;
  g_object_get (p->stats_from, "stats", &st, NULL);
  if (st) {
    if (p->last_stats)
      gst_structure_free (p->last_stats);
    p->last_stats = st;
  }
}

static gdouble dbg_ratio, dbg_purity;
static gint dbg_sym;

/* The tone in block @j's window: its symbol, or -1 when none stands out. */
static gint
decode_block (const gint16 *x, gsize len, gsize at)
{
  static gdouble win[WIN], coef[SYMBOLS];
  static gsize once;
  gdouble y[WIN], energy = 0, best = 0, second = 0;
  gint sym = -1;

  if (g_once_init_enter (&once)) {
    for (guint i = 0; i < WIN; i++)
      win[i] = 0.5 - 0.5 * cos (2 * G_PI * i / (WIN - 1));
    for (guint s = 0; s < SYMBOLS; s++)
      coef[s] = 2 * cos (2 * G_PI * symbol_hz (s) / RATE);
    g_once_init_leave (&once, 1);
  }
  if (at + WIN_AT + WIN > len)
    return -1;
  for (guint i = 0; i < WIN; i++) {
    y[i] = x[at + WIN_AT + i] * win[i];
    energy += y[i] * y[i];
  }
  if (energy < WIN * 0.375 * 300.0 * 300.0)         /* below an RMS of ~300 */
    return -1;
  for (guint s = 0; s < SYMBOLS; s++) {
    gdouble s1 = 0, s2 = 0, p;

    for (guint i = 0; i < WIN; i++) {
      gdouble s0 = y[i] + coef[s] * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    p = s1 * s1 + s2 * s2 - coef[s] * s1 * s2;
    if (p > best) {
      second = best;
      best = p;
      sym = s;
    } else if (p > second)
      second = p;
  }
  dbg_ratio = second > 0 ? best / second : 999;
  dbg_purity = 3 * best / (WIN * energy);
  dbg_sym = sym;
  /* a pure tone puts a third of WIN * energy into its bin (Hann window) */
  if (best < 4 * second || 3 * best < 0.5 * WIN * energy)
    return -1;
  return sym;
}

typedef struct {
  guint window_from, window_blocks;
  guint heard;
  gdouble m2e_p50, m2e_p95, m2e_min;
  gdouble first_heard_ms;          /* play time of the first block heard after its capture */
} Analysis;

static gint
cmp_double (gconstpointer a, gconstpointer b)
{
  gdouble x = *(const gdouble *) a, y = *(const gdouble *) b;

  return x < y ? -1 : x > y;
}

static void
analyse (Playout *p, GstClockTime t0, guint sent_blocks, guint measure_blocks, Analysis *a)
{
  const gint16 *x = (const gint16 *) p->pcm->data;
  gsize len = p->pcm->len, start = 0, off = 0, nblocks;
  guint best_score = 0;
  gint *sym;
  gdouble *m2e = g_new (gdouble, sent_blocks);
  gint64 last_k = -1;
  gsize last_j = 0;
  GArray *in_window = g_array_new (FALSE, FALSE, sizeof (gdouble));
  gint64 first_k = -1;
  FILE *dbg = NULL;

  memset (a, 0, sizeof *a);
  for (guint k = 0; k < sent_blocks; k++)
    m2e[k] = NAN;
  while (start < len && ABS (x[start]) < 1000)
    start++;
  /* the block grid: the offset where most blocks decode */
  for (gsize o = 0; o < BLOCK; o += 48) {
    guint score = 0;

    for (gsize j = 0; j < 100; j++)
      score += decode_block (x, len, start + o + j * BLOCK) >= 0;
    if (score > best_score) {
      best_score = score;
      off = start + o;
    }
  }
  off %= BLOCK;
  if (g_getenv ("BQ_DEBUG")) {
    g_autofree gchar *f = g_strdup_printf ("/tmp/bq-%s.raw", p->name);

    g_file_set_contents (f, (const gchar *) x, len * 2, NULL);
    g_printerr ("%s: %zu samples, signal from %zu, grid offset %zu (score %u of 100)\n", p->name, len,
                start, off, best_score);
  }
  nblocks = len > off ? (len - off) / BLOCK : 0;
  sym = g_new (gint, nblocks + 3);
  for (gsize j = 0; j < nblocks; j++) {
    sym[j] = decode_block (x, len, off + j * BLOCK);
    if (sym[j] < 0 && g_getenv ("BQ_DEBUG"))
      g_printerr ("block %zu: top %d ratio %.1f purity %.2f\n", j, dbg_sym, dbg_ratio, dbg_purity);
  }
  sym[nblocks] = sym[nblocks + 1] = sym[nblocks + 2] = -1;

  if (g_getenv ("BQ_DEBUG")) {
    g_autofree gchar *f = g_strdup_printf ("/tmp/bq-%s.txt", p->name);
    dbg = fopen (f, "w");
  }
  for (gsize j = 0; j < nblocks; j++) {
    GstClockTime play = p->t_first + gst_util_uint64_scale_round (off + j * BLOCK, GST_SECOND, RATE);
    gint64 got = -1;

    if (sym[j] < 0)
      continue;
    if (last_k >= 0 && j - last_j < 25) {
      /* in step: the next block, or one a block or two away (a frame
       * stretched, shrunk or lost); away from the expected one, the block
       * after must agree too */
      gint64 expect = last_k + (gint64) (j - last_j);
      static const gint tries[] = { 0, -1, 1, -2, 2, 3 };

      for (guint t = 0; t < G_N_ELEMENTS (tries) && got < 0; t++) {
        gint64 c = expect + tries[t];

        if (c <= last_k || c + 1 >= sent_blocks || symbols[c] != sym[j])
          continue;
        if (tries[t] == 0 || symbols[c + 1] == sym[j + 1])
          got = c;
      }
    } else {
      /* (re)lock: three blocks in a row, captured less than 3 s before */
      for (gint64 c = 0; c + 2 < sent_blocks && got < 0; c++) {
        GstClockTime cap = t0 + c * BLOCK_NS;

        if (cap > play || play - cap > 3 * GST_SECOND)
          continue;
        if (symbols[c] == sym[j] && symbols[c + 1] == sym[j + 1] && symbols[c + 2] == sym[j + 2])
          got = c;
      }
    }
    if (dbg)
      fprintf (dbg, "%zu sym %d got %" G_GINT64_FORMAT " last %" G_GINT64_FORMAT " exp-sym %d\n", j, sym[j], got,
               last_k, last_k >= 0 && last_k + 1 < sent_blocks ? symbols[last_k + 1] : -1);
    if (got < 0)
      continue;
    if (isnan (m2e[got]))
      m2e[got] = (gdouble) ((gint64) play - (gint64) (t0 + got * BLOCK_NS)) / GST_MSECOND;
    if (first_k < 0) {
      first_k = got;
    }
    last_k = got;
    last_j = j;
  }
  if (first_k >= 0) {
    /* from one second after the first block heard */
    a->window_from = first_k + 50;
    a->window_blocks = MIN (measure_blocks, sent_blocks > a->window_from + 50 ?
                                            sent_blocks - a->window_from - 50 : 0);
    for (guint k = a->window_from; k < a->window_from + a->window_blocks; k++)
      if (!isnan (m2e[k]))
        g_array_append_val (in_window, m2e[k]);
    a->heard = in_window->len;
    a->first_heard_ms = m2e[first_k];
    if (in_window->len) {
      g_array_sort (in_window, cmp_double);
      a->m2e_min = g_array_index (in_window, gdouble, 0);
      a->m2e_p50 = g_array_index (in_window, gdouble, in_window->len / 2);
      a->m2e_p95 = g_array_index (in_window, gdouble, MIN (in_window->len - 1, in_window->len * 95 / 100));
    }
  }
  if (dbg)
    fclose (dbg);
  g_array_free (in_window, TRUE);
  g_free (sym);
  g_free (m2e);
}

static guint64
stat_u64 (const GstStructure *st, const gchar *field)
{
  guint64 v = 0;
  guint u = 0;

  if (!st)
    return 0;
  if (gst_structure_get_uint64 (st, field, &v))
    return v;
  if (gst_structure_get_uint (st, field, &u))
    return u;
  return 0;
}

static void
report (Playout *p, const Analysis *a, const gchar *extra)
{
  g_autoptr (GString) out = g_string_new (NULL);

  g_string_append_printf (out, "{\"playout\":\"%s\",\"latency_ms\":%u,\"blocks\":%u,\"heard\":%u,"
      "\"missed_pct\":%.2f,\"m2e_min_ms\":%.1f,\"m2e_p50_ms\":%.1f,\"m2e_p95_ms\":%.1f,"
      "\"first_heard_m2e_ms\":%.1f%s}",
      p->name, p->latency_ms, a->window_blocks, a->heard,
      a->window_blocks ? 100.0 * (a->window_blocks - a->heard) / a->window_blocks : 100.0,
      a->m2e_min, a->m2e_p50, a->m2e_p95, a->first_heard_ms, extra);
  g_print ("%s\n", out->str);
}

/* RTP: the arrivals seen on the socket */
typedef struct {
  GPtrArray *playouts;
  GHashTable *seen;                /* extended sequence numbers */
  guint64 packets;
  GstClockTime last_arrival;
  gint64 min_transit_ns;           /* arrival minus the capture end of the packet's block */
  GstClockTime t0;
  guint16 last_seq;
  gint64 ext_seq;
  GMutex lock;
} RtpIn;

static GstFlowReturn
on_rtp (GstAppSink *sink, gpointer data)
{
  RtpIn *in = data;
  GstSample *sample = gst_app_sink_pull_sample (sink);
  GstBuffer *buf = gst_sample_get_buffer (sample);
  GstMapInfo map;
  GstClockTime now = g_get_monotonic_time () * GST_USECOND;

  if (gst_buffer_map (buf, &map, GST_MAP_READ)) {
    if (map.size >= 12) {
      guint16 seq = GST_READ_UINT16_BE (map.data + 2);

      g_mutex_lock (&in->lock);
      if (in->packets == 0)
        in->ext_seq = (gint16) seq;
      else
        in->ext_seq += (gint16) (seq - in->last_seq);
      in->last_seq = seq;
      in->packets++;
      in->last_arrival = now;
      g_hash_table_add (in->seen, GINT_TO_POINTER ((gint) in->ext_seq));
      /* one packet per block, numbered from 0 (seqnum-offset=0): the
       * path's fastest transit is the least arrival time after the block's
       * capture ended (the sender's encoder included) */
      if (in->t0) {
        gint64 k = in->ext_seq;
        gint64 transit = (gint64) now - (gint64) (in->t0 + (k + 1) * BLOCK_NS);

        if (in->min_transit_ns == 0 || transit < in->min_transit_ns)
          in->min_transit_ns = transit;
      }
      g_mutex_unlock (&in->lock);
    }
    for (guint i = 0; i < in->playouts->len; i++) {
      Playout *p = g_ptr_array_index (in->playouts, i);
      GstElement *src = gst_bin_get_by_name (GST_BIN (p->pipeline), "src");

      gst_app_src_push_buffer (GST_APP_SRC (src), gst_buffer_copy (buf));
      gst_object_unref (src);
    }
    gst_buffer_unmap (buf, &map);
  }
  gst_sample_unref (sample);
  return GST_FLOW_OK;
}

/* The sender's capture time of block 0 (CLOCK_MONOTONIC ns); 0 if it never came */
static GstClockTime
read_t0 (const gchar *file, guint wait_s)
{
  for (guint i = 0; i < wait_s * 20; i++) {
    g_autofree gchar *text = NULL;

    if (g_file_get_contents (file, &text, NULL, NULL) && strchr (text, '\n'))
      return g_ascii_strtoull (text, NULL, 10);
    g_usleep (50000);
  }
  return 0;
}

static int
do_recv_rtp (guint port, const gchar *latencies, guint total_s, guint measure_s, const gchar *t0_file)
{
  g_autofree gchar *desc = g_strdup_printf ("udpsrc port=%u buffer-size=1048576 "
      "! appsink name=sink sync=false async=false emit-signals=false", port);
  g_autoptr (GError) error = NULL;
  GstElement *in_pipe = gst_parse_launch (desc, &error);
  g_auto (GStrv) lat = g_strsplit (latencies, ",", -1);
  RtpIn in = { 0 };
  GstAppSinkCallbacks cb = { .new_sample = on_rtp };
  GstElement *sink;
  gint64 until;

  if (!in_pipe) {
    g_printerr ("bench-quality: %s\n", error->message);
    return 1;
  }
  in.playouts = g_ptr_array_new ();
  in.seen = g_hash_table_new (NULL, NULL);
  g_mutex_init (&in.lock);
  for (guint i = 0; lat[i]; i++) {
    guint ms = (guint) g_ascii_strtoull (lat[i], NULL, 10);
    g_autofree gchar *name = g_strdup_printf ("rtpjitterbuffer-%u", ms);
    g_autofree gchar *pd = g_strdup_printf ("appsrc name=src is-live=true do-timestamp=true "
        "format=time caps=\"application/x-rtp,media=audio,clock-rate=48000,encoding-name=OPUS,payload=96\" "
        "! rtpjitterbuffer name=stats latency=%u do-lost=true ! rtpopusdepay "
        "! opusdec plc=true use-inband-fec=true "
        "! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=sink sync=true", ms);
    Playout *p = playout_new (name, ms, pd);

    /* opusdec reserves 120 ms of latency (the longest Opus packet); the
     * packets here are 20 ms and decode at once, so the pipeline gets the
     * jitter buffer's latency plus the margin wzpsrc's pipeline has: the
     * comparison is of the jitter buffers, not of that reservation */
    gst_pipeline_set_latency (GST_PIPELINE (p->pipeline), (ms + WZP_PIPELINE_MARGIN_MS) * GST_MSECOND);
    gst_element_set_state (p->pipeline, GST_STATE_PLAYING);
    g_ptr_array_add (in.playouts, p);
  }
  sink = gst_bin_get_by_name (GST_BIN (in_pipe), "sink");
  gst_app_sink_set_callbacks (GST_APP_SINK (sink), &cb, &in, NULL);
  gst_object_unref (sink);
  gst_element_set_state (in_pipe, GST_STATE_PLAYING);
  {
    GstClockTime t0 = read_t0 (t0_file, 30);

    g_mutex_lock (&in.lock);
    in.t0 = t0;
    g_mutex_unlock (&in.lock);
  }
  /* until the stream has stopped for 2 s, or the run's time is up */
  until = g_get_monotonic_time () + (total_s + 30) * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < until) {
    gboolean quiet;

    g_usleep (200000);
    g_mutex_lock (&in.lock);
    quiet = in.packets && gst_util_get_timestamp () - in.last_arrival > 2 * GST_SECOND;
    g_mutex_unlock (&in.lock);
    for (guint i = 0; i < in.playouts->len; i++)
      playout_poll_stats (g_ptr_array_index (in.playouts, i));
    if (quiet)
      break;
  }
  gst_element_set_state (in_pipe, GST_STATE_NULL);
  for (guint i = 0; i < in.playouts->len; i++) {
    Playout *p = g_ptr_array_index (in.playouts, i);
    Analysis a;
    g_autofree gchar *extra = NULL;

    gst_element_set_state (p->pipeline, GST_STATE_NULL);
    analyse (p, in.t0, total_s * 50, measure_s * 50, &a);
    extra = g_strdup_printf (",\"system\":\"rtp\",\"packets\":%" G_GUINT64_FORMAT ",\"unique\":%u,"
        "\"path_min_ms\":%.1f,\"jb_lost\":%" G_GUINT64_FORMAT ",\"jb_late\":%" G_GUINT64_FORMAT
        ",\"jb_pushed\":%" G_GUINT64_FORMAT,
        in.packets, g_hash_table_size (in.seen), in.min_transit_ns / 1e6,
        stat_u64 (p->last_stats, "num-lost"), stat_u64 (p->last_stats, "num-late"),
        stat_u64 (p->last_stats, "num-pushed"));
    report (p, &a, extra);
  }
  return 0;
}

static gboolean
wzp_ended (GstBus *bus)
{
  GstMessage *m;
  gboolean ended = FALSE;

  while ((m = gst_bus_pop (bus)) != NULL) {
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS || GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      ended = TRUE;
    gst_message_unref (m);
  }
  return ended;
}

static int
do_recv_wzp (const gchar *relay, const gchar *identity, const gchar *extra_props, guint total_s,
             guint measure_s, const gchar *t0_file)
{
  g_autofree gchar *desc = g_strdup_printf ("wzpsrc name=stats relay=%s identity=%s auto-answer=true %s "
      "! audio/x-raw,format=S16LE,rate=48000,channels=1 ! appsink name=sink sync=true",
      relay, identity, extra_props ? extra_props : "");
  Playout *p = playout_new ("wzpsrc", 0, desc);
  GstBus *bus = gst_element_get_bus (p->pipeline);
  gint64 until = g_get_monotonic_time () + (total_s + 40) * G_USEC_PER_SEC;
  GstClockTime t0;
  Analysis a;
  g_autofree gchar *extra = NULL;
  guint min_ms = 0;
  const GstStructure *st;

  g_object_get (p->stats_from, "min-latency", &min_ms, NULL);
  p->latency_ms = min_ms;
  gst_element_set_state (p->pipeline, GST_STATE_PLAYING);
  while (g_get_monotonic_time () < until && !wzp_ended (bus)) {
    g_usleep (200000);
    playout_poll_stats (p);
  }
  gst_element_set_state (p->pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  t0 = read_t0 (t0_file, 1);
  analyse (p, t0, total_s * 50, measure_s * 50, &a);
  st = p->last_stats;
  extra = g_strdup_printf (",\"system\":\"wzp\",\"path\":\"%s\",\"setup_ms\":%.1f,"
      "\"received\":%" G_GUINT64_FORMAT ",\"lost\":%" G_GUINT64_FORMAT ",\"late\":%" G_GUINT64_FORMAT
      ",\"concealed\":%" G_GUINT64_FORMAT ",\"fec\":%" G_GUINT64_FORMAT ",\"stretched\":%" G_GUINT64_FORMAT
      ",\"shrunk\":%" G_GUINT64_FORMAT ",\"target_ms\":%" G_GUINT64_FORMAT,
      st && gst_structure_get_string (st, "path") ? gst_structure_get_string (st, "path") : "none",
      ({ gdouble d = 0; if (st) gst_structure_get_double (st, "setup-ms", &d); d; }),
      stat_u64 (st, "packets-received"), stat_u64 (st, "packets-lost"), stat_u64 (st, "packets-late"),
      stat_u64 (st, "packets-concealed"), stat_u64 (st, "frames-fec"), stat_u64 (st, "frames-stretched"),
      stat_u64 (st, "frames-shrunk"), stat_u64 (st, "target-delay-ms"));
  report (p, &a, extra);
  return 0;
}

/* ------------------------------------------------------------------ forward */

static int
do_forward (const gchar *listen, const gchar *to)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) la = NULL, ta = NULL;
  g_autoptr (GSocket) sock = NULL;
  g_autoptr (GInetSocketAddress) l = NULL;
  g_autoptr (GSocketConnectable) lc = g_network_address_parse (listen, 0, &error);
  g_autoptr (GSocketConnectable) tc = lc ? g_network_address_parse (to, 0, &error) : NULL;
  guint8 buf[2048];

  if (!tc) {
    g_printerr ("bench-quality: %s\n", error->message);
    return 1;
  }
  la = g_inet_socket_address_new_from_string (g_network_address_get_hostname (G_NETWORK_ADDRESS (lc)),
                                              g_network_address_get_port (G_NETWORK_ADDRESS (lc)));
  ta = g_inet_socket_address_new_from_string (g_network_address_get_hostname (G_NETWORK_ADDRESS (tc)),
                                              g_network_address_get_port (G_NETWORK_ADDRESS (tc)));
  if (!la || !ta) {
    g_printerr ("bench-quality: forward needs numeric addresses\n");
    return 1;
  }
  sock = g_socket_new (g_socket_address_get_family (la), G_SOCKET_TYPE_DATAGRAM, 0, &error);
  if (!sock || !g_socket_bind (sock, la, TRUE, &error)) {
    g_printerr ("bench-quality: %s\n", error->message);
    return 1;
  }
  for (;;) {
    gssize n = g_socket_receive (sock, (gchar *) buf, sizeof buf, NULL, NULL);

    if (n > 0)
      g_socket_send_to (sock, ta, (const gchar *) buf, n, NULL, NULL);
  }
  return 0;
}

int
main (int argc, char **argv)
{
  gboolean wzp = FALSE, raw = FALSE;
  gchar *rtp = NULL, *relay = NULL, *identity = NULL, *call = NULL, *t0_file = NULL;
  gchar *latencies = NULL, *listen = NULL, *to = NULL, *props = NULL;
  gint seconds = 60, measure = 60, total = 70, loss = 0;
  GOptionEntry entries[] = {
    { "wzp", 0, 0, G_OPTION_ARG_NONE, &wzp, "a WarzonePhone call (wzpsink / wzpsrc)", NULL },
    { "raw", 0, 0, G_OPTION_ARG_NONE, &raw, "send: wzpsink takes the raw audio and encodes itself", NULL },
    { "rtp", 0, 0, G_OPTION_ARG_STRING, &rtp, "RTP to HOST:PORT (send) or on PORT (recv)", "DEST" },
    { "relay", 0, 0, G_OPTION_ARG_STRING, &relay, "the relay", "ADDR" },
    { "identity", 0, 0, G_OPTION_ARG_STRING, &identity, "the identity seed file", "FILE" },
    { "call", 0, 0, G_OPTION_ARG_STRING, &call, "the callee's fingerprint", "FP" },
    { "props", 0, 0, G_OPTION_ARG_STRING, &props, "more properties of wzpsink / wzpsrc", "P=V ..." },
    { "seconds", 0, 0, G_OPTION_ARG_INT, &seconds, "how long to send", "S" },
    { "loss", 0, 0, G_OPTION_ARG_INT, &loss, "the loss opusenc's FEC is tuned to (RTP)", "PCT" },
    { "latency", 0, 0, G_OPTION_ARG_STRING, &latencies, "rtpjitterbuffer latencies", "MS,..." },
    { "measure", 0, 0, G_OPTION_ARG_INT, &measure, "seconds measured", "S" },
    { "total", 0, 0, G_OPTION_ARG_INT, &total, "seconds the sender sends", "S" },
    { "t0-file", 0, 0, G_OPTION_ARG_FILENAME, &t0_file, "where the sender writes block 0's capture time", "FILE" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "forward: the address to listen on", "ADDR:PORT" },
    { "to", 0, 0, G_OPTION_ARG_STRING, &to, "forward: where to", "ADDR:PORT" },
    { NULL }
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("send|recv|forward");
  g_autoptr (GError) error = NULL;
  const gchar *mode;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2) {
    g_printerr ("bench-quality: %s\n", error ? error->message : "say send, recv or forward");
    return 2;
  }
  mode = argv[1];
  if (strcmp (mode, "forward") == 0)
    return listen && to ? do_forward (listen, to) : 2;
  if (!t0_file) {
    g_printerr ("bench-quality: --t0-file is needed\n");
    return 2;
  }
  make_symbols (MAX (seconds, total) * 50 + 50);
  if (strcmp (mode, "send") == 0) {
    g_autofree gchar *desc = NULL;
    const gchar *src = "appsrc name=src is-live=true format=time "
        "caps=audio/x-raw,format=S16LE,rate=48000,channels=1,layout=interleaved";

    /* both carry the same Opus (what a GStreamer user's opusenc makes): the
     * comparison is of transport and playout */
    g_autofree gchar *enc = g_strdup_printf ("%s ! opusenc bitrate=24000 frame-size=20 audio-type=voice "
        "complexity=7 inband-fec=%s packet-loss-percentage=%d", src, loss > 0 ? "true" : "false", loss);

    if (wzp)
      desc = g_strdup_printf ("%s ! wzpsink relay=%s identity=%s call=%s %s", raw ? src : enc, relay,
                              identity, call, props ? props : "");
    else if (rtp) {
      g_auto (GStrv) hp = g_strsplit (rtp, ":", 2);

      desc = g_strdup_printf ("%s ! rtpopuspay pt=96 timestamp-offset=0 seqnum-offset=0 "
          "! udpsink host=%s port=%s sync=false async=false", enc, hp[0], hp[1] ? hp[1] : "5004");
    } else
      return 2;
    return do_send (desc, seconds, t0_file);
  }
  if (strcmp (mode, "recv") == 0) {
    if (wzp)
      return do_recv_wzp (relay, identity, props, total, measure, t0_file);
    if (rtp)
      return do_recv_rtp ((guint) g_ascii_strtoull (rtp, NULL, 10), latencies ? latencies : "200",
                          total, measure, t0_file);
  }
  return 2;
}
