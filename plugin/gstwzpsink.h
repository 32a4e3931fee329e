#pragma once

#include <gst/base/gstbasesink.h>
#include "gstwzpcommon.h"

G_BEGIN_DECLS
#define GST_TYPE_WZP_SINK (gst_wzp_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstWzpSink, gst_wzp_sink, GST, WZP_SINK, GstBaseSink)
GST_ELEMENT_REGISTER_DECLARE (wzpsink);
G_END_DECLS
