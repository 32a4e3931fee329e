/* wzpsrc/wzpsink as GStreamer elements: state changes never wait for the
 * network, PLAYING→NULL cycles do not deadlock, every property is described,
 * wzpsink prerolls behind a file and not behind a live source. */
#include <gst/gst.h>
#include <string.h>

static GstElement *
pipeline (const gchar *desc)
{
  g_autoptr (GError) error = NULL;
  GstElement *p = gst_parse_launch (desc, &error);

  g_assert_no_error (error);
  return p;
}

/* A relay address where nothing answers: UDP to a port nobody listens on. */
#define DEAD_RELAY "relay=127.0.0.1:9 identity=2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a"

static void
test_no_blocking (void)
{
  GstElement *p = pipeline ("wzpsrc " DEAD_RELAY " call=9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c "
                            "! fakesink audiotestsrc is-live=true ! opusenc ! wzpsink " DEAD_RELAY);
  gint64 t0;

  for (guint i = 0; i < 3; i++) {
    t0 = g_get_monotonic_time ();
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
    g_assert_cmpint (g_get_monotonic_time () - t0, <, 500000);
    g_usleep (200000);
    t0 = g_get_monotonic_time ();
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
    /* NULL hangs up and returns within 1 s even though the relay never answered */
    g_assert_cmpint (g_get_monotonic_time () - t0, <, 1000000);
  }
  gst_object_unref (p);
}

/* 200 cycles against a relay that never answers: bounded total time, no
 * deadlock (each NULL stops the session thread). */
static void
test_many_cycles (void)
{
  GstElement *p = pipeline ("wzpsrc " DEAD_RELAY " ! fakesink");
  gint64 t0 = g_get_monotonic_time ();

  for (guint i = 0; i < 200; i++) {
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
  }
  g_test_message ("200 cycles in %.1f s", (g_get_monotonic_time () - t0) / 1e6);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 60 * G_USEC_PER_SEC);
  gst_object_unref (p);
}

static void
test_properties_documented (void)
{
  const gchar *names[] = { "wzpsrc", "wzpsink" };

  for (guint e = 0; e < G_N_ELEMENTS (names); e++) {
    GstElement *el = gst_element_factory_make (names[e], NULL);
    guint n;
    GParamSpec **specs;

    g_assert_nonnull (el);
    specs = g_object_class_list_properties (G_OBJECT_GET_CLASS (el), &n);
    g_assert_cmpuint (n, >=, 9);
    for (guint i = 0; i < n; i++)
      g_assert_true (g_param_spec_get_blurb (specs[i]) && *g_param_spec_get_blurb (specs[i]));
    g_free (specs);
    gst_object_unref (el);
  }
}

/* The read-only fingerprint: from a hex identity before anything starts, from
 * the session's fresh identity once PLAYING (what a caller would dial). */
static void
test_fingerprint (void)
{
  GstElement *p = pipeline ("wzpsrc name=src " DEAD_RELAY " ! fakesink "
                            "audiotestsrc is-live=true ! opusenc ! wzpsink name=sink relay=127.0.0.1:9");
  GstElement *src = gst_bin_get_by_name (GST_BIN (p), "src");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
  g_autofree gchar *a = NULL, *b = NULL, *c = NULL;

  g_object_get (src, "fingerprint", &a, NULL);
  /* the identity 2a2a...: its fingerprint, as wzp-tool identity show prints it */
  g_assert_cmpstr (a, ==, "9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c");
  g_object_get (sink, "fingerprint", &b, NULL);
  g_assert_null (b);            /* a fresh identity, not made yet */
  g_assert_cmpint (gst_element_set_state (p, GST_STATE_PLAYING), !=, GST_STATE_CHANGE_FAILURE);
  g_usleep (100000);
  g_object_get (sink, "fingerprint", &c, NULL);
  g_assert_nonnull (c);
  g_assert_cmpuint (strlen (c), ==, 39);
  g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
  gst_object_unref (src);
  gst_object_unref (sink);
  gst_object_unref (p);
}

/* wzpsink prerolls behind a file (and behind decodebin, whose pad is linked
 * later), as sinks do, and not behind a live source: PAUSED then waits for
 * the file's first buffer, never for the network. */
static void
test_preroll (void)
{
  static const struct {
    const gchar *upstream;
    gboolean prerolls;
  } cases[] = {
    { "audiotestsrc is-live=true ! opusenc", FALSE },
    { "audiotestsrc num-buffers=50 ! opusenc", TRUE },
    { "audiotestsrc num-buffers=50 ! wavenc ! decodebin ! audioconvert ! audioresample "
      "! audio/x-raw,rate=48000,channels=1 ! opusenc", TRUE },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree gchar *desc = g_strdup_printf ("%s ! wzpsink name=sink " DEAD_RELAY, cases[i].upstream);
    GstElement *p = pipeline (desc);
    GstElement *sink = gst_bin_get_by_name (GST_BIN (p), "sink");
    GstStateChangeReturn ret = gst_element_set_state (p, GST_STATE_PAUSED);
    gboolean async = !cases[i].prerolls;
    GstState state = GST_STATE_VOID_PENDING;

    g_test_message ("%s: set_state returned %s", cases[i].upstream,
                    gst_element_state_change_return_get_name (ret));
    g_assert_cmpint (ret, ==, cases[i].prerolls ? GST_STATE_CHANGE_ASYNC : GST_STATE_CHANGE_NO_PREROLL);
    g_object_get (sink, "async", &async, NULL);
    g_assert_cmpint (async, ==, cases[i].prerolls);
    /* a file's first buffer completes PAUSED; a live pipeline is PAUSED at once */
    g_assert_cmpint (gst_element_get_state (p, &state, NULL, 5 * GST_SECOND), ==,
                     cases[i].prerolls ? GST_STATE_CHANGE_SUCCESS : GST_STATE_CHANGE_NO_PREROLL);
    g_assert_cmpint (state, ==, GST_STATE_PAUSED);
    g_assert_cmpint (gst_element_set_state (p, GST_STATE_NULL), ==, GST_STATE_CHANGE_SUCCESS);
    gst_object_unref (sink);
    gst_object_unref (p);
  }
}

static void
test_uri (void)
{
  g_autoptr (GError) error = NULL;
  GstElement *src = gst_element_make_from_uri (GST_URI_SRC,
      "wzp://127.0.0.1:4433/call/9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c?identity=bob.seed&direct=false",
      NULL, &error);
  GstElement *sink, *v6;
  gchar *relay = NULL, *call = NULL, *identity = NULL, *room = NULL, *uri = NULL;
  gboolean direct = TRUE, auto_answer = FALSE;

  g_assert_no_error (error);
  g_assert_nonnull (src);
  g_assert_true (g_str_has_prefix (GST_OBJECT_NAME (src), "wzpsrc"));
  g_object_get (src, "relay", &relay, "call", &call, "identity", &identity, "direct", &direct, NULL);
  g_assert_cmpstr (relay, ==, "127.0.0.1:4433");
  g_assert_cmpstr (call, ==, "9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c");
  g_assert_cmpstr (identity, ==, "bob.seed");
  g_assert_false (direct);
  g_free (relay);
  g_free (call);
  g_free (identity);

  sink = gst_element_make_from_uri (GST_URI_SINK, "wzp://[::1]:4433/room/Stand%20Up?auto-answer=true", NULL, &error);
  g_assert_no_error (error);
  g_object_get (sink, "relay", &relay, "room", &room, "auto-answer", &auto_answer, "uri", &uri, NULL);
  g_assert_cmpstr (relay, ==, "[::1]:4433");
  g_assert_cmpstr (room, ==, "Stand Up");
  g_assert_true (auto_answer);
  g_assert_cmpstr (uri, ==, "wzp://[::1]:4433/room/Stand%20Up?auto-answer=true");
  g_free (relay);
  g_free (room);
  g_free (uri);

  /* the URI reads back with its parameters; a value that is not a boolean is refused */
  gst_object_unref (sink);
  sink = gst_element_factory_make ("wzpsink", NULL);
  g_object_set (sink, "uri", "wzp://127.0.0.1:4433/call/9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c"
                "?identity=/tmp/b%20b.seed&direct=false&alias=Bob", NULL);
  g_object_get (sink, "uri", &uri, NULL);
  g_assert_cmpstr (uri, ==, "wzp://127.0.0.1:4433/call/9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c"
                   "?identity=%2Ftmp%2Fb%20b.seed&alias=Bob&direct=false");
  g_free (uri);
  g_assert_false (gst_uri_handler_set_uri (GST_URI_HANDLER (sink), "wzp://127.0.0.1:4433/?auto-answer=maybe",
                                           &error));
  g_assert_nonnull (strstr (error->message, "auto-answer=\"maybe\" is not true or false"));
  g_clear_error (&error);

  /* bad URIs are refused with a message */
  v6 = gst_element_factory_make ("wzpsrc", NULL);
  g_assert_false (gst_uri_handler_set_uri (GST_URI_HANDLER (v6), "wzp://127.0.0.1/call/x", &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_assert_false (gst_uri_handler_set_uri (GST_URI_HANDLER (v6), "wzp://127.0.0.1:4433/nope", &error));
  g_clear_error (&error);
  g_assert_false (gst_uri_handler_set_uri (GST_URI_HANDLER (v6), "wzp://127.0.0.1:4433/?bogus=1", &error));
  g_clear_error (&error);
  gst_object_unref (v6);
  gst_object_unref (src);
  gst_object_unref (sink);
}

static void
test_latency_query (void)
{
  GstElement *src = gst_element_factory_make ("wzpsrc", NULL);
  GstElement *p = gst_pipeline_new (NULL);
  GstElement *sink = gst_element_factory_make ("fakesink", NULL);
  GstQuery *q;
  gboolean live;
  GstClockTime min, max;

  g_object_set (src, "relay", "127.0.0.1:9", "min-latency", 30, "max-latency", 300, NULL);
  gst_bin_add_many (GST_BIN (p), src, sink, NULL);
  gst_element_link (src, sink);
  gst_element_set_state (p, GST_STATE_PLAYING);
  q = gst_query_new_latency ();
  g_assert_true (gst_element_query (src, q));
  gst_query_parse_latency (q, &live, &min, &max);
  g_assert_true (live);
  /* the playout delay is in the timestamps: the minimum is the decoder's
   * moment; the maximum covers max-latency and the receive queue */
  g_assert_cmpuint (min, ==, 10 * GST_MSECOND);
  g_assert_cmpuint (max, >=, 310 * GST_MSECOND);
  gst_query_unref (q);
  {
    guint lo = 0, hi = 0;
    /* latency= is a fixed delay: both bounds */
    g_object_set (src, "latency", 60, NULL);
    g_object_get (src, "min-latency", &lo, "max-latency", &hi, NULL);
    g_assert_cmpuint (lo, ==, 60);
    g_assert_cmpuint (hi, ==, 60);
  }
  gst_element_set_state (p, GST_STATE_NULL);
  gst_object_unref (p);
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/elements/no-blocking", test_no_blocking);
  g_test_add_func ("/elements/many-cycles", test_many_cycles);
  g_test_add_func ("/elements/properties-documented", test_properties_documented);
  g_test_add_func ("/elements/latency-query", test_latency_query);
  g_test_add_func ("/elements/uri", test_uri);
  g_test_add_func ("/elements/fingerprint", test_fingerprint);
  g_test_add_func ("/elements/preroll", test_preroll);
  return g_test_run ();
}
