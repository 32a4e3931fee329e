/* Drives N two-party room calls through a real wzp-relay on loopback: 50
 * datagrams/s each way per call, 80-byte payloads (Opus at 20 ms). The relay
 * runs on CPU 0, this load generator on CPU 1. For N = 50, 100, 200, ... until
 * loss passes 0.1 % (or N = 1600): forwarded datagrams/s, loss, forwarding
 * latency p50/p99, relay CPU % and relay CPU µs per forwarded datagram. First,
 * on the fresh relay, its memory per idle connection over 1,000 connections.
 * Ends with a
 * JSON line. Usage: bench-relay [SECONDS-PER-STEP] [MAX-N] [FIRST-N]; MAX-N 0
 * measures memory only (RSS and heap growth per idle connection, see
 * idle_memory()). WZP_BENCH_RELAY_WRAPPER, if set, is a command line the
 * relay runs under (valgrind's massif, say); WZP_BENCH_RELAY_ARGS, flags
 * added to its command line (--rx-hold-us=0, say). All calls send at the
 * same moment of each 20 ms period, unless WZP_BENCH_RELAY_PHASES=spread:
 * then each call at a phase of its own, spread evenly over the period, as
 * independent callers would (docs/performance.md, "Phases").
 * WZP_BENCH_RELAY_LEGS=quinn: the calls' legs are quinn/rustls connections
 * (tests/quinn-peer, `load` mode: its own process on CPU 1, spread phases),
 * which acknowledge and pace as upstream's clients do, instead of our own
 * ngtcp2 legs; the table then has no latency columns. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <ngtcp2/ngtcp2.h>

#include "bench-util.h"
#include "wzp-identity.h"
#include "wzp-quic.h"
#include "wzp-wire.h"

typedef struct {
  WzpConnection *conn;
  gboolean established, offered, answered, registered;
  guint64 sent, received;
  guint16 seq;
  gint64 due;                   /* when its next datagram goes */
} Leg;

static GArray *latencies;       /* gint64 µs */
static gboolean measuring;

static void
relay_child_setup (gpointer data)
{
  bench_pin_cpu (0);
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

static void
leg_established (WzpConnection *c, Leg *l)
{
  l->established = TRUE;
}

static void
leg_signal (WzpConnection *c, const WzpSignal *m, Leg *l)
{
  if (m->type == WZP_SIGNAL_CALL_ANSWER)
    l->answered = TRUE;
  if (m->type == WZP_SIGNAL_REGISTER_PRESENCE_ACK && m->register_presence_ack.success)
    l->registered = TRUE;
}

static void
leg_datagram (WzpConnection *c, const guint8 *d, gsize len, gpointer data)
{
  Leg *l = data;
  gint64 sent_at;

  l->received++;
  if (measuring && len >= 12 + 8) {
    memcpy (&sent_at, d + 12, 8);
    sent_at = g_get_monotonic_time () - sent_at;
    g_array_append_val (latencies, sent_at);
  }
}

static WzpSignal *
call_offer (WzpIdentity *id)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_CALL_OFFER);
  guint8 secret[32], sig[64];

  memcpy (m->call_offer.identity_pub, wzp_identity_get_public_key (id), 32);
  wzp_x25519_keypair_new (secret, m->call_offer.ephemeral_pub);
  wzp_sign_call_offer (id, m->call_offer.ephemeral_pub, sig);
  m->call_offer.signature = g_bytes_new (sig, sizeof sig);
  m->call_offer.supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (m->call_offer.supported_profiles, WZP_PROFILE_GOOD);
  return m;
}

/* One load step with quinn legs: returns the datagrams sent and received,
 * and the relay's CPU ticks over the sending time plus 300 ms. */
static gboolean
quinn_step (GSocketAddress *relay, WzpIdentity *id, GPid relay_pid, guint calls, guint secs,
            guint room_base, guint64 *sent, guint64 *received, guint64 *ticks)
{
  const gchar *peer = g_getenv ("WZP_QUINN_PEER");
  g_autofree gchar *addr = wzp_socket_address_to_string (relay);
  g_autofree gchar *legs = g_strdup_printf ("%u", 2 * calls);
  g_autofree gchar *dur = g_strdup_printf ("%u", secs);
  g_autofree gchar *prefix = g_strdup_printf ("quinn-%u", room_base);
  g_autoptr (WzpSignal) offer = call_offer (id);
  g_autoptr (GBytes) frame = wzp_signal_to_frame (offer, NULL);
  g_autoptr (GSubprocess) p = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autofree gchar *line = NULL;
  g_autofree gchar *json = NULL;
  guint64 cpu0 = 0;
  gsize flen;
  const guint8 *f;

  if (peer == NULL || frame == NULL) {
    g_printerr ("bench-relay: WZP_QUINN_PEER names no quinn peer (build it: tests/quinn-peer)\n");
    return FALSE;
  }
  f = g_bytes_get_data (frame, &flen);
  json = g_strndup ((const gchar *) f + 4, flen - 4);   /* the JSON after the length prefix */
  p = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE, NULL,
                        "taskset", "-c", "1", peer, "load", addr, legs, dur, prefix, NULL);
  if (p == NULL)
    return FALSE;
  {
    g_autofree gchar *in = g_strconcat (json, "\n", NULL);
    g_output_stream_write_all (g_subprocess_get_stdin_pipe (p), in, strlen (in), NULL, NULL, NULL);
  }
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (p));
  while ((line = g_data_input_stream_read_line (out, NULL, NULL, NULL))) {
    if (g_str_equal (line, "READY"))
      cpu0 = bench_proc_cpu_ticks (relay_pid);
    else if (g_str_has_prefix (line, "DONE ")) {
      *ticks = bench_proc_cpu_ticks (relay_pid) - cpu0;
      if (sscanf (line + 5, "%" G_GUINT64_FORMAT " %" G_GUINT64_FORMAT, sent, received) != 2)
        return FALSE;
    } else if (g_str_has_prefix (line, "FAIL"))
      g_printerr ("bench-relay: quinn legs: %s\n", line);
    g_clear_pointer (&line, g_free);
  }
  g_subprocess_wait (p, NULL, NULL);
  return g_subprocess_get_successful (p);
}

static guint64
proc_rss_kib (GPid pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/status", pid);
  g_autofree gchar *text = NULL;
  const gchar *at;

  if (!g_file_get_contents (path, &text, NULL, NULL) || !(at = strstr (text, "VmRSS:")))
    return 0;
  return g_ascii_strtoull (at + 6, NULL, 10);
}

/* One counter from the relay's /metrics (plain HTTP/1.0 GET), 0 if absent. */
static guint64
metric_value (const gchar *hostport, const gchar *name)
{
  g_autoptr (GSocketClient) client = g_socket_client_new ();
  g_autoptr (GSocketConnection) conn = g_socket_client_connect_to_host (client, hostport, 80, NULL, NULL);
  g_autoptr (GString) body = g_string_new (NULL);
  g_autofree gchar *req = g_strdup_printf ("GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n", hostport);
  g_autofree gchar *needle = g_strdup_printf ("\n%s ", name);
  gchar buf[4096];
  gssize n;
  const gchar *at;

  if (conn == NULL ||
      !g_output_stream_write_all (g_io_stream_get_output_stream (G_IO_STREAM (conn)), req,
                                  strlen (req), NULL, NULL, NULL))
    return 0;
  while ((n = g_input_stream_read (g_io_stream_get_input_stream (G_IO_STREAM (conn)), buf,
                                   sizeof buf, NULL, NULL)) > 0)
    g_string_append_len (body, buf, n);
  at = strstr (body->str, needle);
  return at ? g_ascii_strtoull (at + strlen (needle), NULL, 10) : 0;
}

static void
iterate_for (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end)
    g_main_context_iteration (NULL, TRUE);
}

static gboolean
tick_iterate (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Opens @n legs to room names from @rooms (two legs per room). */
static GPtrArray *
open_legs (WzpEndpoint *ep, GSocketAddress *relay, WzpIdentity *id, guint n, gboolean join,
           guint first_room)
{
  GPtrArray *legs = g_ptr_array_new ();
  gint64 deadline;
  guint ready;

  for (guint i = 0; i < n; i++) {
    Leg *l = g_new0 (Leg, 1);
    g_autofree gchar *room = g_strdup_printf ("bench-%u", first_room + i / 2);

    l->conn = wzp_endpoint_connect (ep, relay, join ? room : "_signal", NULL, NULL);
    g_signal_connect (l->conn, "established", G_CALLBACK (leg_established), l);
    g_signal_connect (l->conn, "signal", G_CALLBACK (leg_signal), l);
    wzp_connection_set_datagram_handler (l->conn, leg_datagram, l, NULL);
    g_ptr_array_add (legs, l);
    if (i % 32 == 31)
      iterate_for (5);
  }
  deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  do {
    ready = 0;
    g_main_context_iteration (NULL, TRUE);
    for (guint i = 0; i < legs->len; i++) {
      Leg *l = g_ptr_array_index (legs, i);
      if (join && l->established && !l->offered) {
        g_autoptr (WzpSignal) offer = call_offer (id);
        l->offered = wzp_connection_send_signal (l->conn, offer, NULL);
      }
      ready += join ? l->answered : l->established;
    }
  } while (ready < legs->len && g_get_monotonic_time () < deadline);
  return legs;
}

/* Registers each `_signal` leg of @legs under an identity of its own (an
 * unsigned RegisterPresence, which the relay accepts unless it requires
 * signatures); returns how many the relay acknowledged. */
static guint
register_legs (GPtrArray *legs)
{
  gint64 deadline = g_get_monotonic_time () + 60 * G_USEC_PER_SEC;
  guint done;

  for (guint i = 0; i < legs->len; i++) {
    Leg *l = g_ptr_array_index (legs, i);
    g_autoptr (WzpIdentity) who = wzp_identity_new_random ();
    g_autoptr (WzpSignal) m = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE);

    memcpy (m->register_presence.identity_pub, wzp_identity_get_public_key (who), 32);
    wzp_connection_send_signal (l->conn, m, NULL);
    if (i % 32 == 31)
      iterate_for (5);
  }
  do {
    done = 0;
    g_main_context_iteration (NULL, TRUE);
    for (guint i = 0; i < legs->len; i++)
      done += ((Leg *) g_ptr_array_index (legs, i))->registered;
  } while (done < legs->len && g_get_monotonic_time () < deadline);
  return done;
}

static void
close_legs (GPtrArray *legs)
{
  for (guint i = 0; i < legs->len; i++) {
    Leg *l = g_ptr_array_index (legs, i);
    wzp_connection_set_datagram_handler (l->conn, NULL, NULL, NULL);
    g_signal_handlers_disconnect_by_data (l->conn, l);
    wzp_connection_close (l->conn, 0, "bench");
    g_object_unref (l->conn);
    g_free (l);
  }
  g_ptr_array_unref (legs);
  iterate_for (200);
}

/* The relay's memory per idle connection, over 1,000 idle `_signal`
 * connections (handshake done, each registered under its own identity, as
 * clients waiting for calls are): RSS growth and heap
 * growth (allocated bytes, from its /metrics), in KiB. RSS alone misleads
 * both ways: on a fresh heap, pages of a buffer that was allocated but never
 * written are not resident yet; on a heap that earlier load grew, new
 * connections take memory that already is. So this runs on the fresh relay,
 * before any load, after ten connections opened and closed to keep one-time
 * set-up out of it, and reports both. */
static void
idle_memory (WzpEndpoint *ep, GSocketAddress *relay, WzpIdentity *id, GPid pid,
             const gchar *metrics, double *rss_kib, double *heap_kib)
{
  guint64 rss0, rss1, heap0, heap1;
  GPtrArray *idle;

  close_legs (open_legs (ep, relay, id, 10, FALSE, 0));
  iterate_for (500);
  rss0 = proc_rss_kib (pid);
  heap0 = metric_value (metrics, "wzp_relay_heap_bytes");
  idle = open_legs (ep, relay, id, 1000, FALSE, 0);
  if (register_legs (idle) < idle->len)
    g_printerr ("bench-relay: not every idle connection could register\n");
  iterate_for (1000);
  rss1 = proc_rss_kib (pid);
  heap1 = metric_value (metrics, "wzp_relay_heap_bytes");
  close_legs (idle);
  *rss_kib = (rss1 - rss0) / 1000.0;
  *heap_kib = heap0 && heap1 > heap0 ? (heap1 - heap0) / 1024.0 / 1000.0 : 0;
  g_print ("RSS per idle connection: %.1f KiB (%" G_GUINT64_FORMAT " KiB for 1000); "
           "heap per idle connection: %.1f KiB\n", *rss_kib, rss1 - rss0, *heap_kib);
}

int
main (int argc, char **argv)
{
  guint step_s = argc > 1 ? (guint) atoi (argv[1]) : 5;
  /* each call's datagrams at its own phase of the 20 ms period rather than
   * all at once (docs/performance.md, "Phases") */
  gboolean quinn = g_strcmp0 (g_getenv ("WZP_BENCH_RELAY_LEGS"), "quinn") == 0;
  gboolean spread = quinn || g_strcmp0 (g_getenv ("WZP_BENCH_RELAY_PHASES"), "spread") == 0;
  guint max_n = argc > 2 ? (guint) atoi (argv[2]) : 1600;
  guint min_n = argc > 3 ? (guint) atoi (argv[3]) : 50;
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-bench-relay-XXXXXX", NULL);
  g_autofree gchar *seed = g_build_filename (dir, "relay.seed", NULL);
  g_autoptr (GSubprocessLauncher) launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  g_autoptr (GSubprocess) relay = NULL;
  g_autoptr (GDataInputStream) out = NULL;
  g_autoptr (GSocketAddress) relay_addr = NULL, any = NULL;
  g_autoptr (WzpEndpoint) ep = NULL;
  g_autoptr (WzpIdentity) id = wzp_identity_new_random ();
  g_autoptr (GString) json = g_string_new ("{\"bench\":\"relay\",\"steps\":[");
  g_autofree gchar *metrics = NULL;
  WzpEndpointSettings es;
  GPid pid;
  long hz = sysconf (_SC_CLK_TCK);
  guint room_base = 0;
  double best_us = 0, idle_kib, heap_kib;

  bench_pin_cpu (1);
  latencies = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_subprocess_launcher_set_child_setup (launcher, relay_child_setup, NULL, NULL);
  {
    /* WZP_BENCH_RELAY_BIN runs another build's relay under the same legs
     * (bench/compare-relay.sh) */
    const gchar *bin = g_getenv ("WZP_BENCH_RELAY_BIN");
    const gchar *relay_args[] = { bin && *bin ? bin : WZP_RELAY_PATH, "--listen", "127.0.0.1:0", "--identity", seed,
                                  "--max-conns-per-address", "100000", "--max-rooms", "100000",
                                  "--max-signals-per-second", "1000", "--metrics", "127.0.0.1:0", NULL };
    const gchar *wrapper = g_getenv ("WZP_BENCH_RELAY_WRAPPER");
    const gchar *extra = g_getenv ("WZP_BENCH_RELAY_ARGS");
    g_auto (GStrv) wrap = NULL, more = NULL;
    g_autoptr (GStrvBuilder) args = g_strv_builder_new ();
    g_auto (GStrv) argv_relay = NULL;

    if (wrapper && *wrapper && !g_shell_parse_argv (wrapper, NULL, &wrap, NULL))
      g_error ("WZP_BENCH_RELAY_WRAPPER is not a command line");
    if (wrap)
      g_strv_builder_addv (args, (const gchar **) wrap);
    g_strv_builder_addv (args, relay_args);
    if (extra && *extra && !g_shell_parse_argv (extra, NULL, &more, NULL))
      g_error ("WZP_BENCH_RELAY_ARGS is not a list of flags");
    if (more)
      g_strv_builder_addv (args, (const gchar **) more);
    argv_relay = g_strv_builder_end (args);
    relay = g_subprocess_launcher_spawnv (launcher, (const gchar * const *) argv_relay, NULL);
    g_assert (relay != NULL);
  }
  pid = atoi (g_subprocess_get_identifier (relay));
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (relay));
  for (;;) {
    g_autofree gchar *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
    g_assert (line != NULL);
    if (g_str_has_prefix (line, "listening on "))
      relay_addr = wzp_socket_address_parse (line + 13, NULL);
    if (g_str_has_prefix (line, "metrics: http://")) {
      metrics = g_strndup (line + 16, strcspn (line + 16, "/"));
      break;
    }
  }
  any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  wzp_endpoint_settings_init (&es);
  es.max_connections = 100000;
  es.rx_hold_us = 0;            /* the latencies are the relay's */
  ep = wzp_endpoint_new (any, NULL, &es, NULL);
  g_timeout_add (1, tick_iterate, NULL);

  idle_memory (ep, relay_addr, id, pid, metrics, &idle_kib, &heap_kib);
  /* the figures depend on ngtcp2's version: say which one this is */
  g_print ("ngtcp2 %s\n", ngtcp2_version (0)->version_str);
  g_print ("%6s %14s %8s %9s %9s %8s %12s %8s %8s %8s\n", "calls", "forwarded/s", "loss %", "p50 ms",
           "p99 ms", "CPU %", "µs/datagram", "pkts in", "pkts out", "batch");
  for (guint n = min_n; quinn && n <= max_n; n *= 2) {
    guint64 sent = 0, received = 0, ticks = 0, in0, in1, out0, out1;
    double loss, cpu_s, us_per;

    in0 = metric_value (metrics, "wzp_relay_udp_packets_received_total");
    out0 = metric_value (metrics, "wzp_relay_udp_packets_sent_total");
    if (!quinn_step (relay_addr, id, pid, n, step_s, room_base, &sent, &received, &ticks)) {
      g_printerr ("bench-relay: the quinn legs failed at %u calls\n", n);
      break;
    }
    in1 = metric_value (metrics, "wzp_relay_udp_packets_received_total");
    out1 = metric_value (metrics, "wzp_relay_udp_packets_sent_total");
    room_base += n;
    loss = sent ? MAX (0.0, 100.0 * (1.0 - (double) received / (double) sent)) : 100;
    cpu_s = (double) ticks / (double) hz;
    us_per = received ? cpu_s * 1e6 / (double) received : 0;
    /* packets include the legs' handshakes and closes */
    g_print ("%6u %14.0f %8.3f %9s %9s %8.1f %12.2f %8.2f %8.2f %8s\n", n, received / (double) step_s,
             loss, "-", "-", 100.0 * cpu_s / (step_s + 0.3), us_per,
             received ? (double) (in1 - in0) / (double) received : 0,
             received ? (double) (out1 - out0) / (double) received : 0, "-");
    g_string_append_printf (json, "%s{\"calls\":%u,\"forwarded_per_s\":%.0f,\"loss_pct\":%.3f,"
                            "\"cpu_us_per_datagram\":%.2f}", n == min_n ? "" : ",", n,
                            received / (double) step_s, loss, us_per);
    if (n == 400 || best_us == 0)
      best_us = us_per;
    if (loss > 0.1)
      break;
  }
  for (guint n = min_n; !quinn && n <= max_n; n *= 2) {
    GPtrArray *legs = open_legs (ep, relay_addr, id, 2 * n, TRUE, room_base);
    guint64 cpu0, cpu1, sent = 0, received = 0, in0, in1, out0, out1, reads0, reads1;
    gint64 t0;
    guint cursor = 0;
    double secs, loss, cpu_s, us_per, p50, p99;

    room_base += n;
    iterate_for (300);
    for (guint i = 0; i < legs->len; i++)
      ((Leg *) g_ptr_array_index (legs, i))->received = 0;
    g_array_set_size (latencies, 0);
    measuring = TRUE;
    cpu0 = bench_proc_cpu_ticks (pid);
    in0 = metric_value (metrics, "wzp_relay_udp_packets_received_total");
    reads0 = metric_value (metrics, "wzp_relay_udp_reads_total");
    out0 = metric_value (metrics, "wzp_relay_udp_packets_sent_total");
    t0 = g_get_monotonic_time ();
    for (guint i = 0; i < legs->len; i++)
      ((Leg *) g_ptr_array_index (legs, i))->due = t0 + (spread ? 20000 * (gint64) i / legs->len : 0);
    while (g_get_monotonic_time () - t0 < (gint64) step_s * G_USEC_PER_SEC) {
      gint64 now = g_get_monotonic_time ();
      Leg *l;

      /* the legs come due in their order, round and round: each at most
       * once a pass, so that a late pass does not send a leg twice */
      for (guint k = 0; k < legs->len && (l = g_ptr_array_index (legs, cursor))->due <= now; k++) {
        guint16 seq = l->seq++;
        guint8 pkt[12 + 80] = { 0 };
        WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = seq, .timestamp = seq * 20u };
        gint64 sent_at = g_get_monotonic_time ();

        wzp_media_header_write (&h, pkt);
        memcpy (pkt + 12, &sent_at, 8);
        if (wzp_connection_send_datagram (l->conn, pkt, sizeof pkt, NULL))
          l->sent++;
        l->due += 20000;
        cursor = (cursor + 1) % legs->len;
      }
      g_main_context_iteration (NULL, FALSE);
    }
    iterate_for (300);          /* stragglers */
    measuring = FALSE;
    cpu1 = bench_proc_cpu_ticks (pid);
    in1 = metric_value (metrics, "wzp_relay_udp_packets_received_total");
    reads1 = metric_value (metrics, "wzp_relay_udp_reads_total");
    out1 = metric_value (metrics, "wzp_relay_udp_packets_sent_total");
    secs = step_s;
    for (guint i = 0; i < legs->len; i++) {
      Leg *l = g_ptr_array_index (legs, i);
      sent += l->sent;
      received += l->received;
      l->sent = 0;
    }
    loss = sent ? 100.0 * (1.0 - (double) received / (double) sent) : 100;
    if (loss < 0)
      loss = 0;
    cpu_s = (double) (cpu1 - cpu0) / (double) hz;
    us_per = received ? cpu_s * 1e6 / (double) received : 0;
    g_array_sort (latencies, bench_cmp_i64);
    p50 = latencies->len ? g_array_index (latencies, gint64, latencies->len / 2) / 1000.0 : 0;
    p99 = latencies->len ? g_array_index (latencies, gint64, latencies->len * 99 / 100) / 1000.0 : 0;
    /* UDP packets the relay took in and sent out per forwarded datagram
     * (1 and 1 would be media only; the rest is acknowledgements), and how
     * many it read per wake-up */
    g_print ("%6u %14.0f %8.3f %9.3f %9.3f %8.1f %12.2f %8.2f %8.2f %8.1f\n", n, received / secs, loss,
             p50, p99, 100.0 * cpu_s / secs, us_per,
             received ? (double) (in1 - in0) / (double) received : 0,
             received ? (double) (out1 - out0) / (double) received : 0,
             reads1 > reads0 ? (double) (in1 - in0) / (double) (reads1 - reads0) : 0);
    g_string_append_printf (json, "%s{\"calls\":%u,\"forwarded_per_s\":%.0f,\"loss_pct\":%.3f,"
                            "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"cpu_pct\":%.1f,\"cpu_us_per_datagram\":%.2f}",
                            n == min_n ? "" : ",", n, received / secs, loss, p50, p99,
                            100.0 * cpu_s / secs, us_per);
    if (n == 400 || best_us == 0)
      best_us = us_per;
    close_legs (legs);
    if (loss > 0.1)
      break;
  }

  g_string_append_printf (json, "],\"legs\":\"%s\",\"phases\":\"%s\",\"cpu_us_per_datagram_at_400\":%.2f,"
                          "\"rss_kib_per_idle_connection\":%.1f,\"heap_kib_per_idle_connection\":%.1f,"
                          "\"ngtcp2\":\"%s\"}",
                          quinn ? "quinn" : "ngtcp2", spread ? "spread" : "same", best_us, idle_kib, heap_kib,
                          ngtcp2_version (0)->version_str);
  g_print ("%s\n", json->str);
  g_subprocess_send_signal (relay, SIGTERM);
  g_subprocess_wait (relay, NULL, NULL);
  g_unlink (seed);
  g_rmdir (dir);
  return 0;
}
