/**
 * SECTION:element-wzpsrc
 * @title: wzpsrc
 *
 * Receives the other side's audio from a WarzonePhone call (or room).
 * Live; produces nothing until media flows; the streaming thread waits on
 * the call's receive queue with a deadline, and unlock() wakes it at once.
 *
 * Two outputs, whichever downstream takes (Opus first):
 * - audio/x-raw (S16LE, 48 kHz, mono): every codec the peer sends (Opus,
 *   Codec2 3200/1200, comfort noise) decoded, gaps concealed, codec changes
 *   cross-faded;
 * - audio/x-opus: the peer's Opus packets as they came, with GAP events for
 *   what is missing (opusdec plc=true conceals); frames of other codecs are
 *   decoded and encoded to Opus, so a recording or a bridge never meets a
 *   caps change.
 *
 * |[
 * gst-launch-1.0 wzpsrc relay=127.0.0.1:4433 identity=bob.seed auto-answer=true ! \
 *     audioconvert ! autoaudiosink
 * ]|
 */
#include "gstwzpsrc.h"
#include "gstwzpdecoder.h"
#include "wzp-jitter.h"

#include <string.h>

#include <gst/pbutils/pbutils.h>

GST_DEBUG_CATEGORY_STATIC (gst_wzp_src_debug);
#define GST_CAT_DEFAULT gst_wzp_src_debug

/* what the latency query's minimum says: the moment the decoder behind needs
 * after a buffer is pushed; a gap is given up the pipeline's slack (its
 * latency less this) after its play time */
#define PROCESSING_MS 10

struct _GstWzpSrc {
  GstPushSrc parent;
  GstWzpSettings settings;
  guint min_latency_ms, max_latency_ms;
  WzpSession *session;
  gint flushing;
  GMutex lock;                  /* jitter and its stats */
  WzpJitter *jitter;
  gboolean mapped;              /* play times are mapped to running time */
  gint64 base_play_us;          /* ... this play time (monotonic) */
  GstClockTime base_pts;        /* ... is this running time */
  GstClockTime next_pts;
  GstClockTime frame_dur;       /* of the last frame: the unit of a GAP */
  gboolean discont;
  gboolean raw;                 /* audio/x-raw negotiated: decode */
  GstWzpDecoder *decoder;       /* raw output, and other codecs to Opus */
  GstWzpReencoder *reencoder;   /* ... created at the first such frame */
  gboolean reencoding;          /* another codec came: the Opus out is made here */
  gint16 history[GST_WZP_RATE / 25];  /* the last 40 ms, decoded */
  guint8 last_toc;              /* of the last Opus packet passed through */
  guint reencode_gap;           /* 20 ms pieces of concealment still to make Opus */
  gint64 gap_play_us;           /* ... the play time of the next */
  gint slack_us;                /* how late a buffer may be pushed and still play on time */
  WzpJitterStats traced;        /* for GST_LOG: the counters at the last pop */
};

enum { PROP_LATENCY = GST_WZP_PROP_LAST, PROP_STATS, PROP_MIN_LATENCY, PROP_MAX_LATENCY };

G_DEFINE_TYPE_WITH_CODE (GstWzpSrc, gst_wzp_src, GST_TYPE_PUSH_SRC,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_wzp_uri_handler_init))
GST_ELEMENT_REGISTER_DEFINE (wzpsrc, "wzpsrc", GST_RANK_NONE, GST_TYPE_WZP_SRC)

#define RAW_CAPS "audio/x-raw, format = (string) S16LE, rate = (int) 48000, " \
    "channels = (int) 1, layout = (string) interleaved"

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus, rate = (int) 48000, channels = (int) 1, "
                                     "channel-mapping-family = (int) 0; " RAW_CAPS));

static gboolean
gst_wzp_src_start (GstBaseSrc *bsrc)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);
  g_autoptr (GError) error = NULL;

  self->session = gst_wzp_session_acquire (GST_ELEMENT (self), &self->settings, &error);
  if (self->session == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error->message),
                       ("set relay= to the relay's address and identity= to a seed file"));
    return FALSE;
  }
  g_atomic_int_set (&self->flushing, FALSE);
  g_mutex_lock (&self->lock);
  self->jitter = self->max_latency_ms > self->min_latency_ms ?
      wzp_jitter_new_adaptive (self->min_latency_ms, self->max_latency_ms) :
      wzp_jitter_new (self->min_latency_ms);
  wzp_jitter_set_slack (self->jitter, (guint) g_atomic_int_get (&self->slack_us));
  g_mutex_unlock (&self->lock);
  self->mapped = FALSE;
  self->next_pts = GST_CLOCK_TIME_NONE;
  self->frame_dur = 20 * GST_MSECOND;
  self->discont = TRUE;
  return TRUE;
}

static gboolean
gst_wzp_src_stop (GstBaseSrc *bsrc)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);

  g_clear_pointer (&self->session, gst_wzp_session_release);
  g_mutex_lock (&self->lock);
  g_clear_pointer (&self->jitter, wzp_jitter_free);
  g_clear_pointer (&self->decoder, gst_wzp_decoder_free);
  g_clear_pointer (&self->reencoder, gst_wzp_reencoder_free);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
gst_wzp_src_unlock (GstBaseSrc *bsrc)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);

  g_atomic_int_set (&self->flushing, TRUE);
  if (self->session)
    wzp_session_interrupt (self->session);
  return TRUE;
}

static gboolean
gst_wzp_src_unlock_stop (GstBaseSrc *bsrc)
{
  g_atomic_int_set (&GST_WZP_SRC (bsrc)->flushing, FALSE);
  return TRUE;
}

/* The running time of a play time (the jitter buffer's, on the monotonic
 * clock): the first is mapped through the element's running time now; the
 * others keep their distance from it, so that timestamps are exactly as
 * contiguous as the play times. */
static GstClockTime
play_pts (GstWzpSrc *self, gint64 play_us, gint64 now_us)
{
  GstClockTime pts;

  if (!self->mapped) {
    GstClockTime now = gst_element_get_current_running_time (GST_ELEMENT (self));
    GstClockTimeDiff ahead = (play_us - now_us) * GST_USECOND;

    now = GST_CLOCK_TIME_IS_VALID (now) ? now : 0;
    self->base_play_us = play_us;
    self->base_pts = ahead > 0 || (GstClockTime) -ahead < now ? now + ahead : 0;
    self->mapped = TRUE;
  }
  pts = self->base_pts + (play_us - self->base_play_us) * GST_USECOND;
  /* a new stream (a restarted sender) plays earlier than where we are: remap */
  if (play_us < self->base_play_us ||
      (GST_CLOCK_TIME_IS_VALID (self->next_pts) && pts + 200 * GST_MSECOND < self->next_pts)) {
    self->base_play_us = play_us;
    self->base_pts = self->next_pts;
    pts = self->next_pts;
    self->discont = TRUE;
  }
  return pts;
}

static GstBuffer *
pcm_buffer (const gint16 *pcm, guint samples)
{
  GstBuffer *b = gst_buffer_new_memdup (pcm, samples * sizeof (gint16));

  GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (samples, GST_SECOND, GST_WZP_RATE);
  return b;
}

static void
keep_history (GstWzpSrc *self, const gint16 *pcm, guint n)
{
  guint keep = G_N_ELEMENTS (self->history);

  if (n >= keep) {
    memcpy (self->history, pcm + n - keep, keep * sizeof (gint16));
  } else {
    memmove (self->history, self->history + n, (keep - n) * sizeof (gint16));
    memcpy (self->history + keep - n, pcm, n * sizeof (gint16));
  }
}

/* Decoded audio made Opus again (encoded output), at the bitrate of the
 * Opus profile it came as (24 kbit/s for Codec2 and comfort noise) */
static GstBuffer *
reencode (GstWzpSrc *self, const gint16 *pcm, guint samples, WzpCodecId codec)
{
  GBytes *opus;
  GstBuffer *b;

  if (self->reencoder == NULL)
    self->reencoder = gst_wzp_reencoder_new ();
  opus = gst_wzp_reencoder_encode (self->reencoder, pcm, samples, codec);
  if (opus == NULL)
    return NULL;
  b = gst_buffer_new_wrapped_bytes (opus);
  g_bytes_unref (opus);
  GST_BUFFER_DURATION (b) = gst_util_uint64_scale_int (samples, GST_SECOND, GST_WZP_RATE);
  return b;
}

/* One received frame as the negotiated output: decoded; or, encoded, the
 * Opus packet itself, or another codec's frame decoded and made Opus.
 * NULL when it cannot be (counted). */
static GstBuffer *
frame_buffer (GstWzpSrc *self, const WzpMediaFrame *f)
{
  gsize len;
  const guint8 *data = g_bytes_get_data (f->payload, &len);
  guint ms = wzp_codec_id_frame_ms (f->codec);
  gint16 pcm[GST_WZP_MAX_FRAME_SAMPLES];
  GstBuffer *b;
  guint n;

  if (!self->raw && !self->reencoding && !wzp_codec_id_is_opus (f->codec)) {
    /* the first frame of another codec: from now on the encoded output is
     * made here, primed with the Opus that came before, so that opusdec
     * meets one change of encoder in the call, not one per codec switch */
    self->reencoding = TRUE;
    if (self->reencoder == NULL)
      self->reencoder = gst_wzp_reencoder_new ();
    gst_wzp_reencoder_prime (self->reencoder, self->history, G_N_ELEMENTS (self->history),
                             self->last_toc);
  }
  if (!self->raw && !self->reencoding) {
    guint us = wzp_opus_packet_duration_us (data, len);

    b = gst_buffer_new_memdup (data, len);
    GST_BUFFER_DURATION (b) = us ? us * GST_USECOND : ms * GST_MSECOND;
    /* decoded too, for the history a switch primes with */
    g_mutex_lock (&self->lock);
    n = gst_wzp_decoder_decode (self->decoder, f->codec, data, len, 0, pcm);
    g_mutex_unlock (&self->lock);
    keep_history (self, pcm, n);
    self->last_toc = len ? data[0] : 0;
    return b;
  }
  g_mutex_lock (&self->lock);
  n = gst_wzp_decoder_decode (self->decoder, f->codec, data, len,
                              (ms ? ms : 20) * (GST_WZP_RATE / 1000), pcm);
  g_mutex_unlock (&self->lock);
  return self->raw ? pcm_buffer (pcm, n) : reencode (self, pcm, n, f->codec);
}

/* @dur of concealment, decoded; when the frame after the gap is already
 * here, the gap's last frame is taken from its in-band FEC */
static GstBuffer *
conceal_buffer (GstWzpSrc *self, GstClockTime dur)
{
  guint samples = (guint) gst_util_uint64_scale_int (dur, GST_WZP_RATE, GST_SECOND);
  guint frame = (guint) gst_util_uint64_scale_int (self->frame_dur, GST_WZP_RATE, GST_SECOND);
  GstBuffer *b = gst_buffer_new_allocate (NULL, samples * sizeof (gint16), NULL);
  const WzpMediaFrame *next;
  GstMapInfo map;

  gst_buffer_map (b, &map, GST_MAP_WRITE);
  g_mutex_lock (&self->lock);
  next = wzp_jitter_peek_next (self->jitter);
  if (next && samples <= GST_WZP_MAX_FRAME_SAMPLES) {
    gsize len;
    const guint8 *data = g_bytes_get_data (next->payload, &len);

    gst_wzp_decoder_conceal_fec (self->decoder, samples, frame, next->codec, data, len,
                                 (gint16 *) map.data);
  } else {
    for (guint done = 0; done < samples;) {
      guint step = MIN (samples - done, (guint) GST_WZP_MAX_FRAME_SAMPLES);

      gst_wzp_decoder_conceal (self->decoder, step, (gint16 *) map.data + done);
      done += step;
    }
  }
  g_mutex_unlock (&self->lock);
  gst_buffer_unmap (b, &map);
  GST_BUFFER_DURATION (b) = dur;
  return b;
}

/* @f (if any) and every frame already received, into the jitter buffer */
static void
take_arrivals (GstWzpSrc *self, WzpMediaFrame *f)
{
  for (; f; f = wzp_session_recv_media (self->session, 0)) {
    g_mutex_lock (&self->lock);
    wzp_jitter_push (self->jitter, f);
    g_mutex_unlock (&self->lock);
  }
}

/* GST_LOG: what the jitter buffer did since the last pop (lock held) */
static void
trace_pop (GstWzpSrc *self, gint64 now)
{
  static const struct { const gchar *name; gsize at; } counters[] = {
    { "lost", G_STRUCT_OFFSET (WzpJitterStats, lost) },
    { "late", G_STRUCT_OFFSET (WzpJitterStats, late) },
    { "stretched", G_STRUCT_OFFSET (WzpJitterStats, stretched) },
    { "shrunk", G_STRUCT_OFFSET (WzpJitterStats, shrunk) },
  };
  WzpJitterStats js;

  wzp_jitter_get_stats (self->jitter, &js);
  for (guint i = 0; i < G_N_ELEMENTS (counters); i++) {
    guint64 was = G_STRUCT_MEMBER (guint64, &self->traced, counters[i].at);
    guint64 is = G_STRUCT_MEMBER (guint64, &js, counters[i].at);

    if (is != was)
      GST_LOG_OBJECT (self, "%s +%" G_GUINT64_FORMAT " (target %u ms, delay %u ms, %u held, now %"
                      G_GINT64_FORMAT ")", counters[i].name, is - was, js.target_ms, js.delay_ms,
                      js.level, now);
  }
  self->traced = js;
}

static GstFlowReturn
gst_wzp_src_create (GstPushSrc *psrc, GstBuffer **outbuf)
{
  GstWzpSrc *self = GST_WZP_SRC (psrc);

  for (;;) {
    WzpMediaFrame *f = NULL;
    guint gap = 0;
    /* the play schedule's "now": the pipeline renders a buffer its latency
     * after its timestamp, so a buffer may be pushed that much (less what
     * the decoder and the sink need) after its play time. A sink that
     * waits for the clock (sync=true) gives the thread back only then, so
     * without this slack every frame would look late */
    gint64 slack = g_atomic_int_get (&self->slack_us);
    gint64 wake, now = g_get_monotonic_time () - slack;
    WzpJitterOutput out;

    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    gint64 play;

    if (self->reencode_gap > 0) {
      gint16 pcm[GST_WZP_RATE / 50];

      g_mutex_lock (&self->lock);
      gst_wzp_decoder_conceal (self->decoder, G_N_ELEMENTS (pcm), pcm);
      g_mutex_unlock (&self->lock);
      self->reencode_gap--;
      *outbuf = reencode (self, pcm, G_N_ELEMENTS (pcm), WZP_CODEC_COMFORT_NOISE);
      if (*outbuf == NULL)
        continue;
      GST_BUFFER_PTS (*outbuf) = play_pts (self, self->gap_play_us, now);
      self->gap_play_us += 20000;
      self->next_pts = GST_BUFFER_PTS (*outbuf) + GST_BUFFER_DURATION (*outbuf);
      return GST_FLOW_OK;
    }

    /* what came while downstream had the thread (a sink waiting for the
     * clock holds it until the buffer's play time) goes in first: a hole
     * is only given up when its frame is not here */
    take_arrivals (self, wzp_session_recv_media (self->session, 0));
    g_mutex_lock (&self->lock);
    if (G_UNLIKELY (gst_debug_category_get_threshold (GST_CAT_DEFAULT) >= GST_LEVEL_LOG))
      trace_pop (self, now);
    out = wzp_jitter_pop (self->jitter, now, &f, &gap, &wake);
    play = wzp_jitter_get_play_us (self->jitter);
    g_mutex_unlock (&self->lock);
    if (out == WZP_JITTER_FRAME) {
      *outbuf = frame_buffer (self, f);
      wzp_media_frame_free (f);
      if (*outbuf == NULL)
        continue;
      GST_BUFFER_PTS (*outbuf) = play_pts (self, play, now);
      if (self->discont) {
        GST_BUFFER_FLAG_SET (*outbuf, GST_BUFFER_FLAG_DISCONT);
        self->discont = FALSE;
      }
      self->next_pts = GST_BUFFER_PTS (*outbuf) + GST_BUFFER_DURATION (*outbuf);
      if (GST_BUFFER_DURATION (*outbuf))
        self->frame_dur = GST_BUFFER_DURATION (*outbuf);
      return GST_FLOW_OK;
    }
    if (out == WZP_JITTER_GAP && self->reencoding) {
      /* a gap after Codec2 or comfort noise made Opus: opusdec could only
       * conceal it as Opus, so it is concealed here (more comfort noise, the
       * last Codec2 frame fading) and made Opus too, 20 ms at a time */
      self->reencode_gap = (guint) (gap * self->frame_dur / (20 * GST_MSECOND));
      self->gap_play_us = play;
      continue;
    }
    if (out == WZP_JITTER_GAP) {
      GstClockTime dur = gap * self->frame_dur;

      if (self->raw && GST_CLOCK_TIME_IS_VALID (self->next_pts)) {
        /* raw: the decoder conceals (or goes on with comfort noise) */
        *outbuf = conceal_buffer (self, dur);
        GST_BUFFER_PTS (*outbuf) = play_pts (self, play, now);
        self->next_pts = GST_BUFFER_PTS (*outbuf) + GST_BUFFER_DURATION (*outbuf);
        return GST_FLOW_OK;
      }
      /* lost frames, or delay added: a GAP lets opusdec plc=true conceal
       * them (and keeps a recording's timestamps contiguous) */
      if (GST_CLOCK_TIME_IS_VALID (self->next_pts)) {
        GstClockTime pts = play_pts (self, play, now);
        gst_pad_push_event (GST_BASE_SRC_PAD (self), gst_event_new_gap (pts, dur));
        self->next_pts = pts + dur;
      }
      self->discont = TRUE;
      continue;
    }
    /* the call ended: EOS (an error, if it was one, is on the bus already) */
    if (gst_wzp_session_end_flow (self->session) != GST_FLOW_OK)
      return GST_FLOW_EOS;
    /* wait for media, but not past the moment a hole must be given up */
    take_arrivals (self, wzp_session_recv_media (self->session,
                                                 (wake >= 0 ? MIN (wake, now + 100000) : now + 100000) + slack));
  }
}

/* What downstream takes first of the template: Opus (mono 48 kHz, with an
 * OpusHead stream header, so muxers and payloaders take the stream as it
 * is), or raw audio, decoded here. */
static gboolean
gst_wzp_src_negotiate (GstBaseSrc *bsrc)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);
  GstCaps *tmpl = gst_pad_get_pad_template_caps (GST_BASE_SRC_PAD (bsrc));
  GstCaps *peer = gst_pad_peer_query_caps (GST_BASE_SRC_PAD (bsrc), tmpl);
  GstCaps *caps = NULL;
  gboolean ok;

  gst_caps_unref (tmpl);
  if (peer == NULL || gst_caps_is_empty (peer)) {
    g_clear_pointer (&peer, gst_caps_unref);
    return FALSE;
  }
  self->raw = gst_structure_has_name (gst_caps_get_structure (peer, 0), "audio/x-raw");
  gst_caps_unref (peer);
  if (self->raw) {
    caps = gst_caps_from_string (RAW_CAPS);
  } else {
    GstBuffer *head = gst_codec_utils_opus_create_header (48000, 1, 0, 1, 0, NULL, 0, 0);

    caps = gst_codec_utils_opus_create_caps_from_header (head, NULL);
    gst_buffer_unref (head);
    if (caps == NULL)
      caps = gst_caps_from_string ("audio/x-opus, rate=(int)48000, channels=(int)1, "
                                   "channel-mapping-family=(int)0");
  }
  g_mutex_lock (&self->lock);
  if (self->decoder == NULL)
    self->decoder = gst_wzp_decoder_new ();
  g_mutex_unlock (&self->lock);
  GST_DEBUG_OBJECT (self, "output: %" GST_PTR_FORMAT, caps);
  ok = gst_base_src_set_caps (bsrc, caps);
  gst_caps_unref (caps);
  return ok;
}

static gboolean
gst_wzp_src_query (GstBaseSrc *bsrc, GstQuery *query)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);

  if (GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    /* live. The playout delay (min-latency..max-latency) is in the
     * timestamps already: a buffer is pushed at the latest at its
     * timestamp (a gap given up), so the minimum is the time the decoder
     * behind needs; frames wait up to max-latency, and the call's receive
     * queue can hold WZP_SESSION_RX_QUEUE_MAX 20 ms frames more while
     * downstream is busy: that is how much latency we can absorb */
    gst_query_set_latency (query, TRUE, PROCESSING_MS * GST_MSECOND,
                           (self->max_latency_ms + PROCESSING_MS) * GST_MSECOND +
                           WZP_SESSION_RX_QUEUE_MAX * 20 * GST_MSECOND);
    return TRUE;
  }
  return GST_BASE_SRC_CLASS (gst_wzp_src_parent_class)->query (bsrc, query);
}

/* The pipeline's latency: what it adds beyond our own minimum (the sink's
 * processing deadline, queues, an audio sink's buffer) is slack for the
 * play schedule */
static gboolean
gst_wzp_src_event (GstBaseSrc *bsrc, GstEvent *event)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);

  if (GST_EVENT_TYPE (event) == GST_EVENT_LATENCY) {
    GstClockTime latency = 0;
    gint slack;

    gst_event_parse_latency (event, &latency);
    slack = (gint) CLAMP ((gint64) (latency / GST_USECOND) - PROCESSING_MS * 1000, 0, G_MAXINT);
    g_atomic_int_set (&self->slack_us, slack);
    g_mutex_lock (&self->lock);
    if (self->jitter)
      wzp_jitter_set_slack (self->jitter, (guint) slack);
    g_mutex_unlock (&self->lock);
    GST_DEBUG_OBJECT (self, "pipeline latency %" GST_TIME_FORMAT ": play schedule slack %d us",
                      GST_TIME_ARGS (latency), slack);
  }
  return GST_BASE_SRC_CLASS (gst_wzp_src_parent_class)->event (bsrc, event);
}

static GstStructure *
src_stats (GstWzpSrc *self)
{
  WzpJitterStats js = { 0 };
  GstWzpDecoderStats ds = { { 0 } };
  GstStructure *st;
  guint64 opus = 0;

  g_mutex_lock (&self->lock);
  if (self->jitter)
    wzp_jitter_get_stats (self->jitter, &js);
  if (self->decoder)
    gst_wzp_decoder_get_stats (self->decoder, &ds);
  g_mutex_unlock (&self->lock);
  st = gst_wzp_stats_new (self->session, &js);
  for (guint c = 0; c < WZP_CODEC_COUNT; c++)
    opus += wzp_codec_id_is_opus (c) ? ds.decoded[c] : 0;
  /* what the decoder did (raw output, or other codecs made Opus) */
  gst_structure_set (st, "output", G_TYPE_STRING, self->raw ? "raw" : "opus",
      "frames-decoded-opus", G_TYPE_UINT64, opus,
      "frames-decoded-codec2-3200", G_TYPE_UINT64, ds.decoded[WZP_CODEC_CODEC2_3200],
      "frames-decoded-codec2-1200", G_TYPE_UINT64, ds.decoded[WZP_CODEC_CODEC2_1200],
      "frames-comfort-noise", G_TYPE_UINT64, ds.decoded[WZP_CODEC_COMFORT_NOISE],
      "frames-undecodable", G_TYPE_UINT64, ds.undecodable,
      "codec-switches", G_TYPE_UINT64, ds.switches,
      "frames-fec", G_TYPE_UINT64, ds.fec,
      "concealed-ms", G_TYPE_UINT64, ds.concealed_ms, NULL);
  return st;
}

static GstStateChangeReturn
gst_wzp_src_change_state (GstElement *element, GstStateChange transition)
{
  if (!gst_wzp_element_change_state (element, GST_WZP_SRC (element)->session, transition))
    return GST_STATE_CHANGE_FAILURE;
  return GST_ELEMENT_CLASS (gst_wzp_src_parent_class)->change_state (element, transition);
}

static void
gst_wzp_src_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  GstWzpSrc *self = GST_WZP_SRC (object);

  if (id == PROP_LATENCY)
    self->min_latency_ms = self->max_latency_ms = g_value_get_uint (value);
  else if (id == PROP_MIN_LATENCY) {
    self->min_latency_ms = g_value_get_uint (value);
    self->max_latency_ms = MAX (self->max_latency_ms, self->min_latency_ms);
  } else if (id == PROP_MAX_LATENCY) {
    self->max_latency_ms = g_value_get_uint (value);
    self->min_latency_ms = MIN (self->max_latency_ms, self->min_latency_ms);
  } else if (!gst_wzp_set_property (&GST_WZP_SRC (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_src_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  if (id == PROP_LATENCY || id == PROP_MIN_LATENCY)
    g_value_set_uint (value, GST_WZP_SRC (object)->min_latency_ms);
  else if (id == PROP_MAX_LATENCY)
    g_value_set_uint (value, GST_WZP_SRC (object)->max_latency_ms);
  else if (id == PROP_STATS)
    g_value_take_boxed (value, src_stats (GST_WZP_SRC (object)));
  else if (id == GST_WZP_PROP_FINGERPRINT)
    g_value_take_string (value, gst_wzp_fingerprint (GST_WZP_SRC (object)->session,
                                                     &GST_WZP_SRC (object)->settings));
  else if (!gst_wzp_get_property (&GST_WZP_SRC (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_src_finalize (GObject *object)
{
  GstWzpSrc *self = GST_WZP_SRC (object);

  g_clear_pointer (&self->session, gst_wzp_session_release);
  g_clear_pointer (&self->jitter, wzp_jitter_free);
  g_clear_pointer (&self->decoder, gst_wzp_decoder_free);
  g_clear_pointer (&self->reencoder, gst_wzp_reencoder_free);
  g_mutex_clear (&self->lock);
  gst_wzp_settings_clear (&self->settings);
  G_OBJECT_CLASS (gst_wzp_src_parent_class)->finalize (object);
}

static void
gst_wzp_src_class_init (GstWzpSrcClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);
  GstBaseSrcClass *bc = GST_BASE_SRC_CLASS (klass);

  oc->set_property = gst_wzp_src_set_property;
  oc->get_property = gst_wzp_src_get_property;
  oc->finalize = gst_wzp_src_finalize;
  gst_wzp_install_properties (oc);
  gst_wzp_install_actions (oc, G_STRUCT_OFFSET (GstWzpSrc, session));
  ec->change_state = gst_wzp_src_change_state;
  bc->event = gst_wzp_src_event;
  g_object_class_install_property (oc, PROP_MIN_LATENCY,
      g_param_spec_uint ("min-latency", "Minimum latency", "The least playout delay in ms, beyond "
                         "the path's fastest arrivals; the delay adapts between this and max-latency",
                         0, 2000, GST_WZP_MIN_LATENCY_DEFAULT_MS,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (oc, PROP_MAX_LATENCY,
      g_param_spec_uint ("max-latency", "Maximum latency", "The most playout delay in ms; a frame "
                         "later than that is concealed", 0, 2000, GST_WZP_MAX_LATENCY_DEFAULT_MS,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (oc, PROP_LATENCY,
      g_param_spec_uint ("latency", "Latency", "A fixed playout delay in ms (sets min-latency and "
                         "max-latency both; reads as min-latency)", 0, 2000,
                         GST_WZP_MIN_LATENCY_DEFAULT_MS,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  gst_wzp_install_stats (oc, PROP_STATS);
  gst_element_class_add_static_pad_template (ec, &src_template);
  gst_element_class_set_static_metadata (ec, "WarzonePhone source", "Source/Network/Audio",
      "Receives audio from a WarzonePhone call: decoded, or as Opus", "gst-wzp");
  bc->start = gst_wzp_src_start;
  bc->stop = gst_wzp_src_stop;
  bc->unlock = gst_wzp_src_unlock;
  bc->unlock_stop = gst_wzp_src_unlock_stop;
  bc->query = gst_wzp_src_query;
  bc->negotiate = gst_wzp_src_negotiate;
  GST_PUSH_SRC_CLASS (klass)->create = gst_wzp_src_create;
  GST_DEBUG_CATEGORY_INIT (gst_wzp_src_debug, "wzpsrc", 0, "WarzonePhone source");
}

static void
gst_wzp_src_init (GstWzpSrc *self)
{
  gst_wzp_settings_init (&self->settings);
  g_mutex_init (&self->lock);
  self->min_latency_ms = GST_WZP_MIN_LATENCY_DEFAULT_MS;
  self->max_latency_ms = GST_WZP_MAX_LATENCY_DEFAULT_MS;
  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}
