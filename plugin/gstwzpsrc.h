#pragma once

#include <gst/base/gstpushsrc.h>
#include "gstwzpcommon.h"

G_BEGIN_DECLS
#define GST_TYPE_WZP_SRC (gst_wzp_src_get_type ())
G_DECLARE_FINAL_TYPE (GstWzpSrc, gst_wzp_src, GST, WZP_SRC, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE (wzpsrc);
G_END_DECLS
