/* Call setup time through a real wzp-relay on loopback: from place_call() to
 * the first media frame received on each side, for direct, relay-only and
 * direct-blocked calls; for direct also until media runs on the direct
 * path. Each side sends a frame every 2 ms from the moment it is ACTIVE.
 * Prints a table and a JSON line. Usage: bench-call-setup [CALLS-PER-CASE] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>

#include "wzp-session.h"
#include "wzp-session-test.h"

typedef struct {
  WzpSession *s;
  volatile gint reflexive;
} Side;

static void
on_event (WzpSession *s, const gchar *step, GVariant *data, Side *side)
{
  if (strcmp (step, "signal:reflexive") == 0)
    g_atomic_int_set (&side->reflexive, 1);
}

static void
child_setup (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static Side *
side_new (const gchar *relay, const gchar *hex, gboolean callee, gboolean direct, gboolean blocked)
{
  Side *side = g_new0 (Side, 1);

  side->s = g_object_new (WZP_TYPE_SESSION, "relay", relay, "identity-hex", hex,
                          "auto-answer", callee, "direct", direct, NULL);
  wzp_session_set_test_fault (side->s, "test-block-direct", blocked);
  g_signal_connect (side->s, "call-event", G_CALLBACK (on_event), side);
  wzp_session_start (side->s, NULL);
  return side;
}

static void
side_free (Side *side)
{
  wzp_session_hangup (side->s);
  wzp_session_stop (side->s);
  g_object_unref (side->s);
  g_free (side);
}

static int
cmp_d (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
pct (GArray *a, double p)
{
  if (a->len == 0)
    return -1;
  g_array_sort (a, cmp_d);
  return g_array_index (a, double, (guint) MIN (a->len - 1, a->len * p));
}

/* One call; returns ms to first frame at caller and callee, and for direct
 * calls ms until frames arrive on the direct path at both. */
static gboolean
one_call (const gchar *relay, guint i, gboolean direct, gboolean blocked, double *first, double *on_direct)
{
  g_autofree gchar *ha = g_strdup_printf ("%064x", 2 * i + 1);
  g_autofree gchar *hb = g_strdup_printf ("%064x", 2 * i + 2);
  g_autofree gchar *fpb = NULL;
  guint8 seed[32];
  Side *a, *b;
  gint64 t0, deadline, got_a = 0, got_b = 0, dir_a = 0, dir_b = 0, next = 0;
  guint8 frame[80] = { 0 };

  {
    g_autoptr (WzpIdentity) id = NULL;
    for (guint k = 0; k < 32; k++)
      seed[k] = (guint8) g_ascii_xdigit_value (hb[2 * k]) << 4 | (guint8) g_ascii_xdigit_value (hb[2 * k + 1]);
    id = wzp_identity_new_from_seed (seed);
    fpb = g_strdup (wzp_identity_get_fingerprint (id));
  }
  b = side_new (relay, hb, TRUE, direct, blocked);
  a = side_new (relay, ha, FALSE, direct, blocked);
  deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while ((!g_atomic_int_get (&a->reflexive) || !g_atomic_int_get (&b->reflexive)) &&
         g_get_monotonic_time () < deadline)
    g_usleep (200);
  t0 = g_get_monotonic_time ();
  wzp_session_place_call (a->s, fpb);
  deadline = t0 + 10 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < deadline && !(got_a && got_b && (!direct || blocked || (dir_a && dir_b)))) {
    WzpMediaFrame *f;
    if (g_get_monotonic_time () >= next) {
      wzp_session_send_media (a->s, frame, sizeof frame, WZP_CODEC_OPUS24K, 0);
      wzp_session_send_media (b->s, frame, sizeof frame, WZP_CODEC_OPUS24K, 0);
      next = g_get_monotonic_time () + 2000;
    }
    while ((f = wzp_session_recv_media (a->s, 0)) != NULL) {
      if (!got_a)
        got_a = f->received_us;
      if (!dir_a && f->path == WZP_MEDIA_PATH_DIRECT)
        dir_a = f->received_us;
      wzp_media_frame_free (f);
    }
    while ((f = wzp_session_recv_media (b->s, 0)) != NULL) {
      if (!got_b)
        got_b = f->received_us;
      if (!dir_b && f->path == WZP_MEDIA_PATH_DIRECT)
        dir_b = f->received_us;
      wzp_media_frame_free (f);
    }
    g_usleep (100);
  }
  side_free (a);
  side_free (b);
  if (!got_a || !got_b)
    return FALSE;
  *first = (MAX (got_a, got_b) - t0) / 1000.0;
  *on_direct = dir_a && dir_b ? (MAX (dir_a, dir_b) - t0) / 1000.0 : -1;
  return TRUE;
}

int
main (int argc, char **argv)
{
  guint n = argc > 1 ? (guint) atoi (argv[1]) : 50;
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-bench-setup-XXXXXX", NULL);
  g_autofree gchar *seed = g_build_filename (dir, "relay.seed", NULL);
  g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GSubprocess) relay = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autofree gchar *addr = NULL;
  g_autoptr (GString) json = g_string_new ("{\"bench\":\"call-setup\"");
  const struct { const gchar *name; gboolean direct, blocked; } cases[] = {
    { "direct", TRUE, FALSE }, { "relay_only", FALSE, FALSE }, { "direct_blocked", TRUE, TRUE },
  };

  g_subprocess_launcher_set_child_setup (l, child_setup, NULL, NULL);
  relay = g_subprocess_launcher_spawn (l, NULL, WZP_RELAY_PATH, "--listen", "127.0.0.1:0",
                                       "--identity", seed, "--max-conns-per-address", "10000", NULL);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (relay));
  for (;;) {
    g_autofree gchar *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
    g_assert (line != NULL);
    if (g_str_has_prefix (line, "listening on "))
      addr = g_strdup (line + 13);
    if (g_str_has_prefix (line, "advertised"))
      break;
  }
  g_print ("%-16s %6s %12s %10s %16s %14s\n", "case", "calls", "first p50 ms", "p95 ms",
           "on-direct p50", "p95 ms");
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autoptr (GArray) first = g_array_new (FALSE, FALSE, sizeof (double));
    g_autoptr (GArray) dir_t = g_array_new (FALSE, FALSE, sizeof (double));
    guint failed = 0;

    for (guint i = 0; i < n; i++) {
      double f, d;
      if (!one_call (addr, c * 1000 + i, cases[c].direct, cases[c].blocked, &f, &d)) {
        failed++;
        continue;
      }
      g_array_append_val (first, f);
      if (d >= 0)
        g_array_append_val (dir_t, d);
    }
    g_print ("%-16s %6u %12.1f %10.1f %16.1f %14.1f%s\n", cases[c].name, first->len,
             pct (first, 0.5), pct (first, 0.95), pct (dir_t, 0.5), pct (dir_t, 0.95),
             failed ? "  (some calls failed)" : "");
    g_string_append_printf (json, ",\"%s_median_ms\":%.1f,\"%s_p95_ms\":%.1f,\"%s_failed\":%u",
                            cases[c].name, pct (first, 0.5), cases[c].name, pct (first, 0.95),
                            cases[c].name, failed);
    if (cases[c].direct && !cases[c].blocked)
      g_string_append_printf (json, ",\"direct_on_direct_median_ms\":%.1f,\"direct_on_direct_p95_ms\":%.1f",
                              pct (dir_t, 0.5), pct (dir_t, 0.95));
  }
  g_string_append_c (json, '}');
  g_print ("%s\n", json->str);
  g_subprocess_send_signal (relay, SIGTERM);
  g_subprocess_wait (relay, NULL, NULL);
  g_unlink (seed);
  g_rmdir (dir);
  return 0;
}
