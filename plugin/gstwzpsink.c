/**
 * SECTION:element-wzpsink
 * @title: wzpsink
 *
 * Sends Opus frames (20 or 40 ms) into a WarzonePhone call: registers on the
 * relay, places the call given by `call` (or answers one with `auto-answer`,
 * or joins `room`), and sends each buffer as one media datagram on the
 * negotiated path. Never blocks on the network.
 *
 * |[
 * gst-launch-1.0 audiotestsrc is-live=true ! opusenc frame-size=20 ! \
 *     wzpsink relay=127.0.0.1:4433 identity=alice.seed call=<fingerprint>
 * ]|
 */
#include "gstwzpsink.h"

GST_DEBUG_CATEGORY_STATIC (gst_wzp_sink_debug);
#define GST_CAT_DEFAULT gst_wzp_sink_debug

struct _GstWzpSink {
  GstBaseSink parent;
  GstWzpSettings settings;
  WzpSession *session;
};

G_DEFINE_TYPE_WITH_CODE (GstWzpSink, gst_wzp_sink, GST_TYPE_BASE_SINK,
    G_IMPLEMENT_INTERFACE (GST_TYPE_URI_HANDLER, gst_wzp_uri_handler_init))
GST_ELEMENT_REGISTER_DEFINE (wzpsink, "wzpsink", GST_RANK_NONE, GST_TYPE_WZP_SINK)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK,
    GST_PAD_ALWAYS, GST_STATIC_CAPS ("audio/x-opus, rate = (int) 48000, channels = (int) 1"));

static gboolean
gst_wzp_sink_start (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);
  g_autoptr (GError) error = NULL;

  /* the session starts its own thread: nothing here waits for the network */
  self->session = gst_wzp_session_acquire (GST_ELEMENT (self), &self->settings, &error);
  if (self->session == NULL) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error->message),
                       ("set relay= to the relay's address and identity= to a seed file"));
    return FALSE;
  }
  return TRUE;
}

static gboolean
gst_wzp_sink_stop (GstBaseSink *bsink)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);

  g_clear_pointer (&self->session, gst_wzp_session_release);
  return TRUE;
}

static GstFlowReturn
gst_wzp_sink_render (GstBaseSink *bsink, GstBuffer *buf)
{
  GstWzpSink *self = GST_WZP_SINK (bsink);
  GstMapInfo map;
  GstClockTime pts = GST_BUFFER_PTS (buf);
  guint32 ts = GST_CLOCK_TIME_IS_VALID (pts) ? (guint32) (pts / GST_MSECOND) : 0;

  if (!gst_buffer_map (buf, &map, GST_MAP_READ))
    return GST_FLOW_ERROR;
  /* before the call is up frames are dropped and counted, as a live call would */
  wzp_session_send_media (self->session, map.data, map.size, WZP_CODEC_OPUS24K, ts);
  gst_buffer_unmap (buf, &map);
  return GST_FLOW_OK;
}

/* The call starts in PLAYING: READY→PAUSED never touches the network. */
static GstStateChangeReturn
gst_wzp_sink_change_state (GstElement *element, GstStateChange transition)
{
  GstWzpSink *self = GST_WZP_SINK (element);

  if (transition == GST_STATE_CHANGE_PAUSED_TO_PLAYING && self->session) {
    g_autoptr (GError) error = NULL;
    if (!gst_wzp_session_activate (self->session, &error)) {
      GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("%s", error->message),
                         ("set relay= to the relay's address and identity= to a seed file"));
      return GST_STATE_CHANGE_FAILURE;
    }
  }
  return GST_ELEMENT_CLASS (gst_wzp_sink_parent_class)->change_state (element, transition);
}

static void
gst_wzp_sink_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  if (!gst_wzp_set_property (&GST_WZP_SINK (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_sink_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  if (!gst_wzp_get_property (&GST_WZP_SINK (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_sink_finalize (GObject *object)
{
  GstWzpSink *self = GST_WZP_SINK (object);

  g_clear_pointer (&self->session, gst_wzp_session_release);
  gst_wzp_settings_clear (&self->settings);
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
  ec->change_state = gst_wzp_sink_change_state;
  gst_element_class_add_static_pad_template (ec, &sink_template);
  gst_element_class_set_static_metadata (ec, "WarzonePhone sink", "Sink/Network/Audio",
      "Sends Opus audio into a WarzonePhone call", "gst-wzp");
  bc->start = gst_wzp_sink_start;
  bc->stop = gst_wzp_sink_stop;
  bc->render = gst_wzp_sink_render;
  GST_DEBUG_CATEGORY_INIT (gst_wzp_sink_debug, "wzpsink", 0, "WarzonePhone sink");
}

static void
gst_wzp_sink_init (GstWzpSink *self)
{
  gst_wzp_settings_init (&self->settings);
  /* live media: never wait for the clock, never hold the pipeline back */
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
  gst_base_sink_set_async_enabled (GST_BASE_SINK (self), FALSE);
}
