/**
 * SECTION:element-wzpsrc
 * @title: wzpsrc
 *
 * Receives the other side's Opus frames from a WarzonePhone call (or room).
 * Live; produces nothing until media flows; the streaming thread waits on
 * the call's receive queue with a deadline, and unlock() wakes it at once.
 *
 * |[
 * gst-launch-1.0 wzpsrc relay=127.0.0.1:4433 identity=bob.seed auto-answer=true ! \
 *     opusdec plc=true ! audioconvert ! autoaudiosink
 * ]|
 */
#include "gstwzpsrc.h"
#include "wzp-jitter.h"

#include <gst/pbutils/pbutils.h>

GST_DEBUG_CATEGORY_STATIC (gst_wzp_src_debug);
#define GST_CAT_DEFAULT gst_wzp_src_debug

/* what the latency query's minimum says: the time from a buffer's timestamp
 * to the moment it may be pushed at the latest (a gap is given up exactly at
 * its play time; the decoder behind needs a moment for the concealment) */
#define PROCESSING_MS 20

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
};

enum { PROP_LATENCY = GST_WZP_PROP_LAST, PROP_STATS, PROP_MIN_LATENCY, PROP_MAX_LATENCY };

G_DEFINE_TYPE_WITH_CODE (GstWzpSrc, gst_wzp_src, GST_TYPE_PUSH_SRC,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_wzp_uri_handler_init))
GST_ELEMENT_REGISTER_DEFINE (wzpsrc, "wzpsrc", GST_RANK_NONE, GST_TYPE_WZP_SRC)

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus, rate = (int) 48000, channels = (int) 1, "
                                     "channel-mapping-family = (int) 0"));

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

static GstFlowReturn
gst_wzp_src_create (GstPushSrc *psrc, GstBuffer **outbuf)
{
  GstWzpSrc *self = GST_WZP_SRC (psrc);

  for (;;) {
    WzpMediaFrame *f = NULL;
    guint gap = 0;
    gint64 wake, now = g_get_monotonic_time ();
    WzpJitterOutput out;

    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    gint64 play;

    g_mutex_lock (&self->lock);
    out = wzp_jitter_pop (self->jitter, now, &f, &gap, &wake);
    play = wzp_jitter_get_play_us (self->jitter);
    g_mutex_unlock (&self->lock);
    if (out == WZP_JITTER_FRAME) {
      gsize len;
      gconstpointer data = g_bytes_get_data (f->payload, &len);
      guint us = wzp_opus_packet_duration_us (data, len);
      GstClockTime dur = us ? us * GST_USECOND : wzp_codec_id_frame_ms (f->codec) * GST_MSECOND;

      *outbuf = gst_buffer_new_memdup (data, len);
      GST_BUFFER_PTS (*outbuf) = play_pts (self, play, now);
      GST_BUFFER_DURATION (*outbuf) = dur;
      if (self->discont) {
        GST_BUFFER_FLAG_SET (*outbuf, GST_BUFFER_FLAG_DISCONT);
        self->discont = FALSE;
      }
      self->next_pts = GST_BUFFER_PTS (*outbuf) + dur;
      if (dur)
        self->frame_dur = dur;
      wzp_media_frame_free (f);
      return GST_FLOW_OK;
    }
    if (out == WZP_JITTER_GAP) {
      /* lost frames, or delay added: a GAP lets opusdec plc=true conceal
       * them (and keeps a recording's timestamps contiguous) */
      GstClockTime dur = gap * self->frame_dur;

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
    f = wzp_session_recv_media (self->session, wake >= 0 ? MIN (wake, now + 100000) : now + 100000);
    while (f) {
      g_mutex_lock (&self->lock);
      wzp_jitter_push (self->jitter, f);
      g_mutex_unlock (&self->lock);
      f = wzp_session_recv_media (self->session, 0);
    }
  }
}

/* Mono 48 kHz Opus with an OpusHead/OpusTags stream header, so muxers
 * (oggmux, matroskamux) and payloaders can take the stream as it is. */
static gboolean
gst_wzp_src_negotiate (GstBaseSrc *bsrc)
{
  GstBuffer *head = gst_codec_utils_opus_create_header (48000, 1, 0, 1, 0, NULL, 0, 0);
  GstTagList *tags = gst_tag_list_new_empty ();
  GstCaps *caps = gst_codec_utils_opus_create_caps_from_header (head, NULL);
  gboolean ok;

  gst_tag_list_unref (tags);
  gst_buffer_unref (head);
  if (caps == NULL)
    caps = gst_caps_from_string ("audio/x-opus, rate=(int)48000, channels=(int)1, "
                                 "channel-mapping-family=(int)0");
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

static GstStructure *
src_stats (GstWzpSrc *self)
{
  WzpJitterStats js = { 0 };

  g_mutex_lock (&self->lock);
  if (self->jitter)
    wzp_jitter_get_stats (self->jitter, &js);
  g_mutex_unlock (&self->lock);
  return gst_wzp_stats_new (self->session, &js);
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
      "Receives Opus audio from a WarzonePhone call", "gst-wzp");
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
