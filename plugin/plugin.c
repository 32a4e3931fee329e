/* The gst-wzp plugin: wzpsrc and wzpsink. */
#include "wzp-config.h"

#include "gstwzpsink.h"
#include "gstwzpsrc.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ok = FALSE;

  ok |= GST_ELEMENT_REGISTER (wzpsrc, plugin);
  ok |= GST_ELEMENT_REGISTER (wzpsink, plugin);
  return ok;
}

#define PACKAGE "gst-wzp"
GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, wzp,
                   "WarzonePhone voice calls over QUIC", plugin_init, WZP_VERSION, "LGPL",
                   WZP_PACKAGE_NAME, WZP_PACKAGE_ORIGIN)
