/* Reading wzpsrc/wzpsink's `stats` in tests that run the elements. */
#include "element-stats.h"

static GstStructure *
stats_of (gpointer element)
{
  GstStructure *st = NULL;

  g_object_get (element, "stats", &st, NULL);
  g_assert_nonnull (st);
  return st;
}

guint64
stat_u64 (GstElement *e, const gchar *field)
{
  GstStructure *st = stats_of (e);
  guint64 v = G_MAXUINT64;

  g_assert_true (gst_structure_get_uint64 (st, field, &v));
  gst_structure_free (st);
  return v;
}

static gboolean
active_on (gpointer element, const gchar *path)
{
  GstStructure *st = stats_of (element);
  gboolean up = g_strcmp0 (gst_structure_get_string (st, "state"), "active") == 0 &&
                (path == NULL || g_strcmp0 (gst_structure_get_string (st, "path"), path) == 0);

  gst_structure_free (st);
  return up;
}

gboolean
element_active (gpointer element)
{
  return active_on (element, NULL);
}

gboolean
element_on_relay (gpointer element)
{
  return active_on (element, "relay");
}
