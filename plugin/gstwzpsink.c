/**
 * SECTION:element-wzpsink
 * @title: wzpsink
 *
 * Sends audio into a WarzonePhone call: registers on the relay, places the
 * call given by `call` (or answers one with `auto-answer`, or joins `room`),
 * and sends each frame as one media datagram on the negotiated path.
 * Takes Opus as stock elements produce it (opusenc at any rate,
 * rtpopusdepay, oggdemux), each buffer one datagram; or raw audio (S16LE,
 * 48 kHz, mono), which it encodes itself and adapts as upstream peers do:
 * the profile follows the relay's QualityDirective in rooms and the peer's
 * QualityReports in calls (Opus 6-64 kbit/s, Codec2 1200 when the network
 * is catastrophic), with Opus in-band FEC from the measured loss; `profile`
 * pins one.
 *
 * A live source's frames go as they come: before the call carries media they
 * are dropped and counted, as a live call's would be. A non-live source (a
 * file) is held until the call carries media, at most `connect-timeout` ms
 * (then an error says so), and then paced by the clock in real time.
 * The pipeline ends within a frame of the call ending: EOS when either side
 * hung up, an ERROR (and a wzp-call-ended message) for anything else.
 *
 * |[
 * gst-launch-1.0 audiotestsrc is-live=true ! opusenc frame-size=20 ! \
 *     wzpsink relay=127.0.0.1:4433 identity=alice.seed call=<fingerprint>
 * ]|
 */
#include "gstwzpsink.h"
#include "gstwzpencoder.h"
#include <gst/base/gstbasesrc.h>

GST_DEBUG_CATEGORY_STATIC (gst_wzp_sink_debug);
#define GST_CAT_DEFAULT gst_wzp_sink_debug

struct _GstWzpSink {
  GstBaseSink parent;
  GstWzpSettings settings;
  gint codec;                   /* GstWzpCodec: AUTO or a WzpCodecId */
  WzpSession *session;
  /* the media clock (§3.5): 0 at the first frame, then media time in ms */
  GstClockTime first_pts;
  guint32 next_ts;
  gboolean warned_duration;
  guint connect_timeout_ms;
  /* a non-live stream waits in render() for the call; unlock() ends that */
  GMutex lock;
  GCond cond;
  gboolean unlocked;
  gint live;                    /* -1 not known yet, else whether upstream is live */
  gint profile;                 /* GstWzpProfile: AUTO or the codec id pinned */
  gboolean raw;                 /* raw audio in: encoded here */
  GstWzpEncoder *encoder;
  gint told_codec;              /* the codec the log last named (-1: none) */
  GMutex encoder_lock;          /* the encoder and its stats */
};

enum { PROP_CODEC = GST_WZP_PROP_LAST, PROP_STATS, PROP_CONNECT_TIMEOUT, PROP_PROFILE };

#define CONNECT_TIMEOUT_DEFAULT_MS 60000
#define HOLD_POLL_MS 10

#define GST_WZP_CODEC_AUTO (-1)

/**
 * GstWzpCodec:
 * @GST_WZP_CODEC_AUTO: by frame duration: Opus6k for 40 ms frames, Opus24k otherwise
 *
 * The codec id written into each media header. Receivers pick their decoder
 * and frame duration by it; the Opus payload is the same either way.
 */
static GType
gst_wzp_codec_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GST_WZP_CODEC_AUTO, "By frame duration: Opus6k for 40 ms frames, Opus24k otherwise", "auto" },
    { WZP_CODEC_OPUS24K, "Opus24k (20 ms)", "opus24k" },
    { WZP_CODEC_OPUS16K, "Opus16k (20 ms)", "opus16k" },
    { WZP_CODEC_OPUS32K, "Opus32k (20 ms)", "opus32k" },
    { WZP_CODEC_OPUS48K, "Opus48k (20 ms)", "opus48k" },
    { WZP_CODEC_OPUS64K, "Opus64k (20 ms)", "opus64k" },
    { WZP_CODEC_OPUS6K, "Opus6k (40 ms)", "opus6k" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWzpCodec", values));
  return type;
}

#define GST_WZP_PROFILE_AUTO (-1)

/**
 * GstWzpProfile:
 * @GST_WZP_PROFILE_AUTO: follow the relay's QualityDirective (rooms) or the
 *   peer's QualityReports (calls)
 *
 * What wzpsink sends when it encodes raw audio itself: upstream's profiles
 * (protocol §2.3, §5.3.4), each by its codec.
 */
static GType
gst_wzp_profile_get_type (void)
{
  static gsize type = 0;
  static const GEnumValue values[] = {
    { GST_WZP_PROFILE_AUTO, "Follow the relay's directive (rooms) or the peer's reports (calls)",
      "auto" },
    { WZP_CODEC_OPUS24K, "GOOD: Opus 24 kbit/s, 20 ms", "good" },
    { WZP_CODEC_OPUS6K, "DEGRADED: Opus 6 kbit/s, 40 ms", "degraded" },
    { WZP_CODEC_CODEC2_1200, "CATASTROPHIC: Codec2 1200, 40 ms", "catastrophic" },
    { WZP_CODEC_OPUS32K, "STUDIO_32K: Opus 32 kbit/s, 20 ms", "studio-32k" },
    { WZP_CODEC_OPUS48K, "STUDIO_48K: Opus 48 kbit/s, 20 ms", "studio-48k" },
    { WZP_CODEC_OPUS64K, "STUDIO_64K: Opus 64 kbit/s, 20 ms", "studio-64k" },
    { WZP_CODEC_CODEC2_3200, "Codec2 3200, 20 ms", "codec2-3200" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWzpProfile", values));
  return type;
}

G_DEFINE_TYPE_WITH_CODE (GstWzpSink, gst_wzp_sink, GST_TYPE_BASE_SINK,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_wzp_uri_handler_init))
GST_ELEMENT_REGISTER_DEFINE (wzpsink, "wzpsink", GST_RANK_NONE, GST_TYPE_WZP_SINK)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus, channels = (int) [ 1, 2 ]; "
                                     "audio/x-raw, format = (string) S16LE, rate = (int) 48000, "
                                     "channels = (int) 1, layout = (string) interleaved"));

/* A streaming thread that is not ours: the call ended while upstream may be
 * sending nothing (an RTP source gone quiet), so EOS goes into our own pad
 * as if upstream had sent it, and the pipeline ends. */
static void
send_eos (GstElement *element, gpointer data)
{
  gst_pad_send_event (GST_BASE_SINK_PAD (element), gst_event_new_eos ());
}

/* Session thread. */
static void
on_session_state (WzpSession *session, gint state, GstWzpSink *self)
{
  if (state == WZP_SESSION_STATE_ENDED)
    gst_element_call_async (GST_ELEMENT (self), send_eos, NULL, NULL);
}

static gboolean
gst_wzp_sink_start (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);
  g_autoptr (GError) error = NULL;

  /* the session starts its own thread: nothing here waits for the network */
  self->first_pts = GST_CLOCK_TIME_NONE;
  self->next_ts = 0;
  self->warned_duration = FALSE;
  self->live = -1;
  self->told_codec = -1;
  self->unlocked = FALSE;
  self->session = gst_wzp_session_acquire (GST_ELEMENT (self), &self->settings, &error);
  if (self->session == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error->message),
                       ("set relay= to the relay's address and identity= to a seed file"));
    return FALSE;
  }
  g_signal_connect_object (self->session, "state-changed", G_CALLBACK (on_session_state), self, 0);
  return TRUE;
}

static gboolean
gst_wzp_sink_stop (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);

  if (self->session)
    g_signal_handlers_disconnect_by_data (self->session, self);
  g_clear_pointer (&self->session, gst_wzp_session_release);
  g_mutex_lock (&self->encoder_lock);
  g_clear_pointer (&self->encoder, gst_wzp_encoder_free);
  g_mutex_unlock (&self->encoder_lock);
  self->raw = FALSE;
  return TRUE;
}

/* The header's codec id for a packet of @us: the chosen one when its frame
 * duration matches, else by duration (a mismatch is warned about once). */
static WzpCodecId
sink_codec (GstWzpSink *self, guint us)
{
  WzpCodecId by_duration = wzp_codec_id_for_opus_duration (us);

  if ((us != 20000 && us != 40000) && !self->warned_duration) {
    self->warned_duration = TRUE;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Opus frames of %u.%u ms: WarzonePhone peers "
                         "expect 20 or 40 ms frames", us / 1000, us % 1000 / 100),
                         ("set frame-size=20 (or 40) on opusenc"));
  }
  if (self->codec != GST_WZP_CODEC_AUTO &&
      wzp_codec_id_frame_ms ((WzpCodecId) self->codec) * 1000 == us)
    return (WzpCodecId) self->codec;
  return by_duration;
}

/* Whether upstream is live (a latency query), asked once. */
static gboolean
upstream_is_live (GstWzpSink *self)
{
  if (self->live < 0) {
    GstQuery *q = gst_query_new_latency ();
    gboolean live = FALSE;

    if (gst_pad_peer_query (GST_BASE_SINK_PAD (self), q))
      gst_query_parse_latency (q, &live, NULL, NULL);
    gst_query_unref (q);
    self->live = live;
    /* a file is sent in real time, by the clock */
    gst_base_sink_set_sync (GST_BASE_SINK (self), !live);
    GST_DEBUG_OBJECT (self, "upstream is %slive", live ? "" : "not ");
  }
  return self->live;
}

/* A non-live stream waits here until the call carries media, then is paced
 * by the clock from that moment (the wait shifts ts-offset). */
static GstFlowReturn
hold_for_call (GstWzpSink *self)
{
  gint64 start = g_get_monotonic_time ();
  gint64 end = start + (gint64) self->connect_timeout_ms * 1000;
  WzpSessionState st;

  while ((st = wzp_session_get_state (self->session)) != WZP_SESSION_STATE_ACTIVE) {
    if (st == WZP_SESSION_STATE_ENDED)
      return GST_FLOW_EOS;
    g_mutex_lock (&self->lock);
    if (!self->unlocked)
      g_cond_wait_until (&self->cond, &self->lock,
                         MIN (end, g_get_monotonic_time () + HOLD_POLL_MS * 1000));
    if (self->unlocked) {
      g_mutex_unlock (&self->lock);
      return GST_FLOW_FLUSHING;
    }
    g_mutex_unlock (&self->lock);
    if (g_get_monotonic_time () >= end) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE,
          ("the call did not carry media within %u ms (state %s)", self->connect_timeout_ms,
           wzp_session_state_name (wzp_session_get_state (self->session))),
          ("raise connect-timeout, or check that the other side answers"));
      return GST_FLOW_ERROR;
    }
  }
  if (g_get_monotonic_time () - start > HOLD_POLL_MS * 1000) {
    GstClockTimeDiff waited = (g_get_monotonic_time () - start) * GST_USECOND;

    gst_base_sink_set_ts_offset (GST_BASE_SINK (self),
                                 gst_base_sink_get_ts_offset (GST_BASE_SINK (self)) + waited);
    GST_DEBUG_OBJECT (self, "held the stream %" GST_TIME_FORMAT " for the call",
                      GST_TIME_ARGS (waited));
  }
  return GST_FLOW_OK;
}

static gboolean
gst_wzp_sink_unlock (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);

  g_mutex_lock (&self->lock);
  self->unlocked = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

static gboolean
gst_wzp_sink_unlock_stop (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);

  g_mutex_lock (&self->lock);
  self->unlocked = FALSE;
  g_mutex_unlock (&self->lock);
  return TRUE;
}

/* Opus in a single stream: rtpopusdepay says stereo and no rate, opusenc
 * any rate; the packets are sent as they are. Multistream Opus is not. */
static gboolean
gst_wzp_sink_set_caps (GstBaseSink *bsink, GstCaps *caps)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);
  const GstStructure *st = gst_caps_get_structure (caps, 0);
  gint family = 0;

  self->raw = gst_structure_has_name (st, "audio/x-raw");
  if (self->raw) {
    g_mutex_lock (&self->encoder_lock);
    if (self->encoder == NULL)
      self->encoder = gst_wzp_encoder_new ();
    g_mutex_unlock (&self->encoder_lock);
    return TRUE;
  }

  if (gst_structure_get_int (st, "channel-mapping-family", &family) && family != 0) {
    GST_ELEMENT_ERROR (bsink, STREAM, FORMAT, ("multistream Opus (channel mapping family %d) "
                       "cannot go into a call", family), ("encode mono or stereo Opus"));
    return FALSE;
  }
  return TRUE;
}

/* Raw audio: encoded in frames of the profile the call should have now,
 * each sent with its codec id; the media clock counts the frames. */
static void
encode_and_send (GstWzpSink *self, const gint16 *pcm, gsize samples)
{
  guint loss_permille = 0;
  WzpCodecId advice = wzp_session_get_send_advice (self->session, &loss_permille);
  WzpCodecId codec;
  guint ms;
  GBytes *frame;

  WzpCodecId want = self->profile == GST_WZP_PROFILE_AUTO ? advice : (WzpCodecId) self->profile;

  g_mutex_lock (&self->encoder_lock);
  if ((gint) want != self->told_codec) {
    GST_INFO_OBJECT (self, "sending %s from now on (%s)", wzp_codec_id_to_string (want),
                     self->profile == GST_WZP_PROFILE_AUTO ? "advised" : "pinned");
    self->told_codec = want;
  }
  gst_wzp_encoder_set_codec (self->encoder, want);
  gst_wzp_encoder_set_loss (self->encoder, (loss_permille + 5) / 10);
  gst_wzp_encoder_push (self->encoder, pcm, samples);
  while ((frame = gst_wzp_encoder_pull (self->encoder, &codec, &ms)) != NULL) {
    gsize len;
    const guint8 *data = g_bytes_get_data (frame, &len);

    wzp_session_send_media (self->session, data, len, codec, self->next_ts);
    self->next_ts += ms;
    g_bytes_unref (frame);
  }
  g_mutex_unlock (&self->encoder_lock);
}

static GstFlowReturn
gst_wzp_sink_render (GstBaseSink *bsink, GstBuffer *buf)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);
  GstMapInfo map;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  GstFlowReturn ret;
  guint us;
  guint32 ts;

  /* the call ended: EOS upstream, so that the pipeline ends too */
  if ((ret = gst_wzp_session_end_flow (self->session)) != GST_FLOW_OK)
    return ret;
  if (!upstream_is_live (self) && (ret = hold_for_call (self)) != GST_FLOW_OK)
    return ret;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ))
    return GST_FLOW_ERROR;
  if (self->raw) {
    encode_and_send (self, (const gint16 *) map.data, map.size / sizeof (gint16));
    gst_buffer_unmap (buf, &map);
    return GST_FLOW_OK;
  }
  us = wzp_opus_packet_duration_us (map.data, map.size);
  if (us == 0) {
    /* not an Opus packet: nothing a receiver could decode */
    GST_WARNING_OBJECT (self, "dropping a %" G_GSIZE_FORMAT "-byte buffer that is not Opus",
                        map.size);
    gst_buffer_unmap (buf, &map);
    return GST_FLOW_OK;
  }
  /* media time since the first frame; without timestamps, frame by frame */
  if (GST_CLOCK_TIME_IS_VALID (pts) && !GST_CLOCK_TIME_IS_VALID (self->first_pts))
    self->first_pts = pts;
  if (GST_CLOCK_TIME_IS_VALID (pts) && pts >= self->first_pts)
    ts = (guint32) ((pts - self->first_pts + GST_MSECOND / 2) / GST_MSECOND);
  else
    ts = self->next_ts;
  self->next_ts = ts + us / 1000;
  /* a live stream's frames before the call is up are dropped and counted,
   * as a live call's would be */
  wzp_session_send_media (self->session, map.data, map.size, sink_codec (self, us), ts);
  gst_buffer_unmap (buf, &map);
  return GST_FLOW_OK;
}

/* What feeds a pad, by following links upstream. A live source anywhere
 * upstream wins; then a pad not linked yet (decodebin's, a demuxer's: it
 * prerolls itself); a source of a kind we cannot tell counts as live. */
typedef enum { FEED_NOT_LIVE, FEED_UNLINKED, FEED_LIVE } Feed;

#define FEED_MAX_DEPTH 64

static Feed feed_of_sink_pad (GstPad *pad, guint depth);

static Feed
feed_of_src_pad (GstPad *src, guint depth)
{
  g_autoptr (GstPad) pad = gst_object_ref (src);
  g_autoptr (GstElement) element = NULL;
  GstIterator *it;
  GValue v = G_VALUE_INIT;
  Feed feed = FEED_NOT_LIVE;
  gboolean done = FALSE;

  /* a bin's ghost pad: the element inside that makes the data */
  while (GST_IS_GHOST_PAD (pad)) {
    GstPad *target = gst_ghost_pad_get_target (GST_GHOST_PAD (pad));

    if (target == NULL)
      return FEED_UNLINKED;
    gst_object_unref (pad);
    pad = target;
  }
  element = gst_pad_get_parent_element (pad);
  if (element == NULL || depth > FEED_MAX_DEPTH)
    return FEED_LIVE;
  if (GST_IS_BASE_SRC (element))
    return gst_base_src_is_live (GST_BASE_SRC (element)) ? FEED_LIVE : FEED_NOT_LIVE;
  if (element->numsinkpads == 0)
    return FEED_LIVE;
  it = gst_element_iterate_sink_pads (element);
  while (!done && feed != FEED_LIVE) {
    switch (gst_iterator_next (it, &v)) {
      case GST_ITERATOR_OK:
        feed = MAX (feed, feed_of_sink_pad (g_value_get_object (&v), depth + 1));
        g_value_reset (&v);
        break;
      case GST_ITERATOR_RESYNC:
        gst_iterator_resync (it);
        feed = FEED_NOT_LIVE;
        break;
      default:
        done = TRUE;
        break;
    }
  }
  g_value_unset (&v);
  gst_iterator_free (it);
  return feed;
}

static Feed
feed_of_sink_pad (GstPad *pad, guint depth)
{
  g_autoptr (GstPad) peer = gst_pad_get_peer (pad);

  return peer ? feed_of_src_pad (peer, depth) : FEED_UNLINKED;
}

static GstStateChangeReturn
gst_wzp_sink_change_state (GstElement *element, GstStateChange transition)
{
  /* Behind a live source the sink does not preroll: it reaches PLAYING with
   * the pipeline, and the call starts then. Behind a file (or a pad not
   * linked yet, as behind decodebin) it prerolls as sinks do, and the
   * pipeline commits PAUSED under the sink's preroll lock: with a sink that
   * does not preroll, GStreamer 1.22 can lose the pipeline's EOS when an
   * application (gst-launch-1.0) sets PLAYING the moment a streaming
   * thread commits PAUSED (docs/elements.md). */
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
    gst_base_sink_set_async_enabled (GST_BASE_SINK (element),
        feed_of_sink_pad (GST_BASE_SINK_PAD (element), 0) != FEED_LIVE);
  if (!gst_wzp_element_change_state (element, GST_WZP_SINK (element)->session, transition))
    return GST_STATE_CHANGE_FAILURE;
  return GST_ELEMENT_CLASS (gst_wzp_sink_parent_class)->change_state (element, transition);
}

static GstStructure *
sink_stats (GstWzpSink *self)
{
  GstStructure *st = gst_wzp_stats_new (self->session, NULL);
  GstWzpEncoderStats es = { { 0 } };
  WzpCodecId codec = WZP_CODEC_OPUS24K;
  guint64 opus = 0;

  g_mutex_lock (&self->encoder_lock);
  if (self->encoder) {
    gst_wzp_encoder_get_stats (self->encoder, &es);
    codec = gst_wzp_encoder_get_codec (self->encoder);
  }
  g_mutex_unlock (&self->encoder_lock);
  for (guint c = 0; c < WZP_CODEC_COUNT; c++)
    opus += wzp_codec_id_is_opus (c) ? es.frames[c] : 0;
  /* the encoder's (raw input) */
  gst_structure_set (st, "input", G_TYPE_STRING, self->raw ? "raw" : "opus",
      "codec", G_TYPE_STRING, self->raw ? wzp_codec_id_to_string (codec) : "",
      "frames-encoded-opus", G_TYPE_UINT64, opus,
      "frames-encoded-codec2-3200", G_TYPE_UINT64, es.frames[WZP_CODEC_CODEC2_3200],
      "frames-encoded-codec2-1200", G_TYPE_UINT64, es.frames[WZP_CODEC_CODEC2_1200],
      "codec-switches", G_TYPE_UINT64, es.switches,
      "fec", G_TYPE_BOOLEAN, es.fec,
      "loss-hint-percent", G_TYPE_UINT, es.loss_percent, NULL);
  return st;
}

static void
gst_wzp_sink_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  if (id == PROP_CODEC)
    GST_WZP_SINK (object)->codec = g_value_get_enum (value);
  else if (id == PROP_CONNECT_TIMEOUT)
    GST_WZP_SINK (object)->connect_timeout_ms = g_value_get_uint (value);
  else if (id == PROP_PROFILE)
    GST_WZP_SINK (object)->profile = g_value_get_enum (value);
  else if (!gst_wzp_set_property (&GST_WZP_SINK (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_sink_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  GstWzpSink *self = GST_WZP_SINK (object);

  if (id == PROP_CODEC)
    g_value_set_enum (value, self->codec);
  else if (id == PROP_CONNECT_TIMEOUT)
    g_value_set_uint (value, self->connect_timeout_ms);
  else if (id == PROP_PROFILE)
    g_value_set_enum (value, self->profile);
  else if (id == PROP_STATS)
    g_value_take_boxed (value, sink_stats (self));
  else if (id == GST_WZP_PROP_FINGERPRINT)
    g_value_take_string (value, gst_wzp_fingerprint (self->session, &self->settings));
  else if (!gst_wzp_get_property (&GST_WZP_SINK (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_sink_finalize (GObject *object)
{
  GstWzpSink *self = GST_WZP_SINK (object);

  g_clear_pointer (&self->session, gst_wzp_session_release);
  gst_wzp_settings_clear (&self->settings);
  g_clear_pointer (&self->encoder, gst_wzp_encoder_free);
  g_mutex_clear (&self->encoder_lock);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  G_OBJECT_CLASS (gst_wzp_sink_parent_class)->finalize (object);
}

static void
gst_wzp_sink_class_init (GstWzpSinkClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GstElementClass *ec = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *bc = GST_BASE_SINK_CLASS (klass);

  oc->set_property = gst_wzp_sink_set_property;
  oc->get_property = gst_wzp_sink_get_property;
  oc->finalize = gst_wzp_sink_finalize;
  gst_wzp_install_properties (oc);
  gst_wzp_install_actions (oc, G_STRUCT_OFFSET (GstWzpSink, session));
  g_object_class_install_property (oc, PROP_CODEC,
      g_param_spec_enum ("codec", "Codec", "Codec id written into each media header",
                         gst_wzp_codec_get_type (), GST_WZP_CODEC_AUTO,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (oc, PROP_CONNECT_TIMEOUT,
      g_param_spec_uint ("connect-timeout", "Connect timeout", "How long a non-live stream (a "
                         "file) is held for the call to carry media before an error, in ms",
                         0, G_MAXUINT, CONNECT_TIMEOUT_DEFAULT_MS,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY));
  g_object_class_install_property (oc, PROP_PROFILE,
      g_param_spec_enum ("profile", "Profile", "What to send when wzpsink encodes raw audio: "
                         "auto follows the relay (rooms) or the peer's reports (calls)",
                         gst_wzp_profile_get_type (), GST_WZP_PROFILE_AUTO,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING));
  gst_wzp_install_stats (oc, PROP_STATS);
  gst_type_mark_as_plugin_api (gst_wzp_codec_get_type (), 0);
  gst_type_mark_as_plugin_api (gst_wzp_profile_get_type (), 0);
  ec->change_state = gst_wzp_sink_change_state;
  gst_element_class_add_static_pad_template (ec, &sink_template);
  gst_element_class_set_static_metadata (ec, "WarzonePhone sink", "Sink/Network/Audio",
      "Sends audio into a WarzonePhone call: Opus, or raw audio it encodes", "gst-wzp");
  bc->start = gst_wzp_sink_start;
  bc->stop = gst_wzp_sink_stop;
  bc->render = gst_wzp_sink_render;
  bc->set_caps = gst_wzp_sink_set_caps;
  bc->unlock = gst_wzp_sink_unlock;
  bc->unlock_stop = gst_wzp_sink_unlock_stop;
  GST_DEBUG_CATEGORY_INIT (gst_wzp_sink_debug, "wzpsink", 0, "WarzonePhone sink");
}

static void
gst_wzp_sink_init (GstWzpSink *self)
{
  gst_wzp_settings_init (&self->settings);
  self->codec = GST_WZP_CODEC_AUTO;
  self->connect_timeout_ms = CONNECT_TIMEOUT_DEFAULT_MS;
  self->profile = GST_WZP_PROFILE_AUTO;
  g_mutex_init (&self->encoder_lock);
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  /* A live stream is paced by its source and must not wait for the clock;
   * a file is paced by the clock (sync, set per stream in render()).
   * Whether the sink prerolls is chosen in READY->PAUSED. */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
}
