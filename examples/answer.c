/* Answer WarzonePhone calls from a C GStreamer application: answers through
 * the bus (wzp-incoming-call → the element's "answer" action), records the
 * caller's audio to a WAV file, prints the call's statistics every second.
 *
 *   GST_PLUGIN_PATH=build/plugin build/examples/wzp-answer RELAY IDENTITY SECONDS OUT.wav
 */
#include <stdio.h>
#include <stdlib.h>
#include <gst/gst.h>

typedef struct {
  GMainLoop *loop;
  GstElement *src;
} App;

static gboolean
on_message (GstBus *bus, GstMessage *msg, gpointer data)
{
  App *app = data;
  const GstStructure *st;

  switch (GST_MESSAGE_TYPE (msg)) {
    case GST_MESSAGE_ELEMENT:
      st = gst_message_get_structure (msg);
      if (gst_structure_has_name (st, "wzp-incoming-call")) {
        printf ("incoming call from %s, answering\n", gst_structure_get_string (st, "fingerprint"));
        g_signal_emit_by_name (app->src, "answer");
      } else if (gst_structure_has_name (st, "wzp-call-event")) {
        printf ("event %s\n", gst_structure_get_string (st, "step"));
      }
      break;
    case GST_MESSAGE_ERROR: {
      g_autoptr (GError) err = NULL;
      g_autofree gchar *debug = NULL;
      gst_message_parse_error (msg, &err, &debug);
      fprintf (stderr, "error: %s (%s)\n", err->message, debug);
      g_main_loop_quit (app->loop);
      break;
    }
    case GST_MESSAGE_EOS:
      printf ("call ended\n");
      g_main_loop_quit (app->loop);
      break;
    default:
      break;
  }
  fflush (stdout);
  return G_SOURCE_CONTINUE;
}

static gboolean
print_stats (gpointer data)
{
  App *app = data;
  GstStructure *st = NULL;
  guint64 received = 0, lost = 0;
  const gchar *path;

  g_object_get (app->src, "stats", &st, NULL);
  path = gst_structure_get_string (st, "path");
  gst_structure_get_uint64 (st, "packets-received", &received);
  gst_structure_get_uint64 (st, "packets-lost", &lost);
  printf ("stats path=%s, packets-received=%" G_GUINT64_FORMAT ", packets-lost=%" G_GUINT64_FORMAT "\n",
          path, received, lost);
  fflush (stdout);
  gst_structure_free (st);
  return G_SOURCE_CONTINUE;
}

static gboolean
quit (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

int
main (int argc, char **argv)
{
  g_autofree gchar *desc = NULL;
  g_autoptr (GError) error = NULL;
  GstElement *pipeline;
  GstBus *bus;
  App app;

  gst_init (&argc, &argv);
  if (argc != 5) {
    fprintf (stderr, "usage: %s RELAY IDENTITY SECONDS OUT.wav\n", argv[0]);
    return 2;
  }
  desc = g_strdup_printf ("wzpsrc name=src relay=%s identity=%s create-identity=true ! opusdec plc=true "
                          "! audioconvert ! audioresample ! wavenc ! filesink location=%s",
                          argv[1], argv[2], argv[4]);
  pipeline = gst_parse_launch (desc, &error);
  if (pipeline == NULL) {
    fprintf (stderr, "%s\n", error->message);
    return 1;
  }
  app.loop = g_main_loop_new (NULL, FALSE);
  app.src = gst_bin_get_by_name (GST_BIN (pipeline), "src");
  bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_message, &app);
  g_timeout_add_seconds (1, print_stats, &app);
  g_timeout_add ((guint) (atof (argv[3]) * 1000), quit, app.loop);
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  g_main_loop_run (app.loop);
  print_stats (&app);             /* the final figures */
  /* finish the WAV header */
  gst_element_send_event (pipeline, gst_event_new_eos ());
  gst_message_unref (gst_bus_timed_pop_filtered (bus, 2 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR) ?:
                     gst_message_new_eos (NULL));
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (app.src);
  gst_object_unref (pipeline);
  g_main_loop_unref (app.loop);
  return 0;
}
