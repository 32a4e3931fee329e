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

GST_DEBUG_CATEGORY_STATIC (gst_wzp_src_debug);
#define GST_CAT_DEFAULT gst_wzp_src_debug

struct _GstWzpSrc {
  GstPushSrc parent;
  GstWzpSettings settings;
  WzpSession *session;
  gint flushing;
};

G_DEFINE_TYPE (GstWzpSrc, gst_wzp_src, GST_TYPE_PUSH_SRC)
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
  return TRUE;
}

static gboolean
gst_wzp_src_stop (GstBaseSrc *bsrc)
{
  GstWzpSrc *self = GST_WZP_SRC (bsrc);

  g_clear_pointer (&self->session, gst_wzp_session_release);
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

static GstFlowReturn
gst_wzp_src_create (GstPushSrc *psrc, GstBuffer **outbuf)
{
  GstWzpSrc *self = GST_WZP_SRC (psrc);
  WzpMediaFrame *f = NULL;
  gsize len;
  gconstpointer data;

  while (f == NULL) {
    if (g_atomic_int_get (&self->flushing))
      return GST_FLOW_FLUSHING;
    if (wzp_session_get_state (self->session) == WZP_SESSION_STATE_ENDED)
      return GST_FLOW_EOS;
    f = wzp_session_recv_media (self->session, g_get_monotonic_time () + 100 * 1000);
  }
  data = g_bytes_get_data (f->payload, &len);
  *outbuf = gst_buffer_new_memdup (data, len);
  GST_BUFFER_DURATION (*outbuf) = wzp_codec_id_frame_ms (f->codec) * GST_MSECOND;
  wzp_media_frame_free (f);
  return GST_FLOW_OK;
}

static void
gst_wzp_src_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  if (!gst_wzp_set_property (&GST_WZP_SRC (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_src_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  if (!gst_wzp_get_property (&GST_WZP_SRC (object)->settings, id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void
gst_wzp_src_finalize (GObject *object)
{
  GstWzpSrc *self = GST_WZP_SRC (object);

  g_clear_pointer (&self->session, gst_wzp_session_release);
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
  gst_element_class_add_static_pad_template (ec, &src_template);
  gst_element_class_set_static_metadata (ec, "WarzonePhone source", "Source/Network/Audio",
      "Receives Opus audio from a WarzonePhone call", "gst-wzp");
  bc->start = gst_wzp_src_start;
  bc->stop = gst_wzp_src_stop;
  bc->unlock = gst_wzp_src_unlock;
  bc->unlock_stop = gst_wzp_src_unlock_stop;
  GST_PUSH_SRC_CLASS (klass)->create = gst_wzp_src_create;
  GST_DEBUG_CATEGORY_INIT (gst_wzp_src_debug, "wzpsrc", 0, "WarzonePhone source");
}

static void
gst_wzp_src_init (GstWzpSrc *self)
{
  gst_wzp_settings_init (&self->settings);
  gst_base_src_set_live (GST_BASE_SRC (self), TRUE);
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
  gst_base_src_set_do_timestamp (GST_BASE_SRC (self), TRUE);
}
