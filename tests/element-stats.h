/* Reading wzpsrc/wzpsink's `stats` in tests that run the elements. */
#pragma once

#include <gst/gst.h>

/* The uint64 field @field of @e's stats (asserted to be there). */
guint64 stat_u64 (GstElement *e, const gchar *field);
/* For spin(): the element's call carries media (state "active"). */
gboolean element_active (gpointer element);
/* For spin(): active, and on the relay path. */
gboolean element_on_relay (gpointer element);
