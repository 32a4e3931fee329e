/* Added transport latency and CPU of a call, compared in the same run with a
 * plain RTP/UDP pipeline. Both run 20 ms Opus frames from the same encoder
 * set-up for SECONDS each; a frame's latency is the time from entering the
 * sending element (wzpsink / rtpopuspay) to leaving the receiving one
 * (wzpsrc / rtpopusdepay), matched by payload. wzpsrc hands in-order frames
 * on at once (its latency only delays playout at the sink), so the RTP path
 * runs without rtpjitterbuffer, which would hold every packet for its
 * latency: the figures compare transport plus element cost.
 * Usage: bench-latency [SECONDS]  (needs GST_PLUGIN_PATH=build/plugin) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <gio/gio.h>
#include <gst/gst.h>
#include <glib/gstdio.h>

#include "bench-util.h"
#include "wzp-identity.h"

static GHashTable *sent;        /* payload hash -> send time (µs) */
static GArray *lat;             /* µs */
static GMutex lock;

static guint
payload_hash (GstBuffer *buf)
{
  GstMapInfo m;
  guint h = 5381;

  if (!gst_buffer_map (buf, &m, GST_MAP_READ))
    return 0;
  for (gsize i = 0; i < m.size; i++)
    h = h * 33 + m.data[i];
  gst_buffer_unmap (buf, &m);
  return h;
}

static GstPadProbeReturn
on_send (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  gint64 *t = g_new (gint64, 1);

  *t = g_get_monotonic_time ();
  g_mutex_lock (&lock);
  g_hash_table_insert (sent, GUINT_TO_POINTER (payload_hash (GST_PAD_PROBE_INFO_BUFFER (info))), t);
  g_mutex_unlock (&lock);
  return GST_PAD_PROBE_OK;
}

static GstPadProbeReturn
on_receive (GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
  guint h = payload_hash (GST_PAD_PROBE_INFO_BUFFER (info));
  gint64 now = g_get_monotonic_time (), *t;

  g_mutex_lock (&lock);
  if ((t = g_hash_table_lookup (sent, GUINT_TO_POINTER (h))) != NULL) {
    gint64 d = now - *t;
    g_array_append_val (lat, d);
    g_hash_table_remove (sent, GUINT_TO_POINTER (h));
  }
  g_mutex_unlock (&lock);
  return GST_PAD_PROBE_OK;
}

static void
probe (GstElement *bin, const gchar *name, const gchar *pad, gboolean sending)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (bin), name);
  GstPad *p = gst_element_get_static_pad (e, pad);

  gst_pad_add_probe (p, GST_PAD_PROBE_TYPE_BUFFER, sending ? on_send : on_receive, NULL, NULL);
  gst_object_unref (p);
  gst_object_unref (e);
}

static double
cpu_s (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

typedef struct {
  double p50, p99, cpu;
  guint frames;
} Result;

static Result
run (const gchar *receiver, const gchar *sender, guint secs)
{
  g_autoptr (GError) error = NULL;
  GstElement *rx = gst_parse_launch (receiver, &error), *tx;
  Result r = { 0 };
  double c0;

  g_assert_no_error (error);
  tx = gst_parse_launch (sender, &error);
  g_assert_no_error (error);
  probe (rx, "out", "src", FALSE);
  probe (tx, "in", "sink", TRUE);
  g_hash_table_remove_all (sent);
  g_array_set_size (lat, 0);
  gst_element_set_state (rx, GST_STATE_PLAYING);
  g_usleep (500000);
  c0 = cpu_s ();
  gst_element_set_state (tx, GST_STATE_PLAYING);
  g_usleep (secs * G_USEC_PER_SEC);
  r.cpu = cpu_s () - c0;
  gst_element_set_state (tx, GST_STATE_NULL);
  gst_element_set_state (rx, GST_STATE_NULL);
  gst_object_unref (tx);
  gst_object_unref (rx);
  g_array_sort (lat, bench_cmp_i64);
  r.frames = lat->len;
  if (lat->len) {
    r.p50 = g_array_index (lat, gint64, lat->len / 2) / 1000.0;
    r.p99 = g_array_index (lat, gint64, lat->len * 99 / 100) / 1000.0;
  }
  return r;
}

static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

int
main (int argc, char **argv)
{
  guint secs = argc > 1 ? (guint) atoi (argv[1]) : 10;
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-bench-lat-XXXXXX", NULL);
  g_autofree gchar *seed = g_build_filename (dir, "relay.seed", NULL);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GSubprocess) relay = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autofree gchar *addr = NULL, *rx = NULL, *tx = NULL, *fp_b = NULL;
  const gchar *hex_a = "1111111111111111111111111111111111111111111111111111111111111111";
  const gchar *hex_b = "2222222222222222222222222222222222222222222222222222222222222222";
  const gchar *src = "audiotestsrc is-live=true wave=pink-noise samplesperbuffer=960 "
      "! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 bitrate=24000";
  guint8 raw[32];
  GPid pid;
  guint64 t0, t1;
  long hz = sysconf (_SC_CLK_TCK);
  Result wzp, rtp;
  gint port = 30000 + g_random_int_range (0, 20000);

  gst_init (&argc, &argv);
  sent = g_hash_table_new_full (NULL, NULL, NULL, g_free);
  lat = g_array_new (FALSE, FALSE, sizeof (gint64));
  memset (raw, 0x22, sizeof raw);
  {
    g_autoptr (WzpIdentity) id = wzp_identity_new_from_seed (raw);
    fp_b = g_strdup (wzp_identity_get_fingerprint (id));
  }
  g_subprocess_launcher_set_child_setup (l, child_setup, NULL, NULL);
  relay = g_subprocess_launcher_spawn (l, NULL, WZP_RELAY_PATH, "--listen", "127.0.0.1:0",
                                       "--identity", seed, NULL);
  pid = atoi (g_subprocess_get_identifier (relay));
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (relay));
  for (;;) {
    g_autofree gchar *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
    g_assert (line != NULL);
    if (g_str_has_prefix (line, "listening on "))
      addr = g_strdup (line + 13);
    if (g_str_has_prefix (line, "advertised"))
      break;
  }

  rx = g_strdup_printf ("wzpsrc name=out relay=%s identity=%s auto-answer=true latency=40 ! fakesink sync=false",
                        addr, hex_b);
  tx = g_strdup_printf ("%s ! identity name=in ! wzpsink relay=%s identity=%s call=%s", src, addr, hex_a, fp_b);
  t0 = bench_proc_cpu_ticks (pid);
  wzp = run (rx, tx, secs);
  t1 = bench_proc_cpu_ticks (pid);
  g_free (rx);
  g_free (tx);
  rx = g_strdup_printf ("udpsrc port=%d caps=\"application/x-rtp,media=audio,encoding-name=OPUS,"
                        "clock-rate=48000,payload=96\" ! rtpopusdepay "
                        "! identity name=out ! fakesink sync=false", port);
  tx = g_strdup_printf ("%s ! identity name=in ! rtpopuspay ! udpsink sync=false host=127.0.0.1 port=%d", src, port);
  rtp = run (rx, tx, secs);

  g_print ("%-36s %10s %10s %8s %14s\n", "path", "p50 ms", "p99 ms", "frames", "CPU s/min");
  g_print ("%-36s %10.3f %10.3f %8u %14.2f  (+ relay %.2f)\n", "wzpsink -> relay/direct -> wzpsrc",
           wzp.p50, wzp.p99, wzp.frames, wzp.cpu * 60 / secs, (double) (t1 - t0) / hz * 60 / secs);
  g_print ("%-36s %10.3f %10.3f %8u %14.2f\n", "rtpopuspay -> UDP -> rtpopusdepay", rtp.p50, rtp.p99,
           rtp.frames, rtp.cpu * 60 / secs);
  g_print ("{\"bench\":\"latency\",\"wzp_p50_ms\":%.3f,\"wzp_p99_ms\":%.3f,\"rtp_p50_ms\":%.3f,"
           "\"rtp_p99_ms\":%.3f,\"p50_ratio\":%.3f,\"wzp_cpu_s_per_min\":%.2f,\"rtp_cpu_s_per_min\":%.2f}\n",
           wzp.p50, wzp.p99, rtp.p50, rtp.p99, rtp.p50 > 0 ? wzp.p50 / rtp.p50 : 0,
           wzp.cpu * 60 / secs, rtp.cpu * 60 / secs);
  g_subprocess_send_signal (relay, SIGTERM);
  g_subprocess_wait (relay, NULL, NULL);
  g_unlink (seed);
  g_rmdir (dir);
  return 0;
}
