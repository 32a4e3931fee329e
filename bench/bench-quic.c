/* QUIC endpoint figures on loopback, both ends in this process and thread:
 * one-way datagram rate (100-byte payloads), datagram ping-pong RTT (median,
 * p99), handshake time (median of 100), and CPU per 10,000 datagrams sent and
 * received. Prints a table and one JSON line. */
#include <string.h>
#include <sys/resource.h>
#include <gio/gio.h>

#include "bench-util.h"
#include "wzp-quic.h"

static guint received;
static gint64 echo_at;

static void
count_datagram (WzpConnection *c, const guint8 *d, gsize len, gpointer data)
{
  received++;
}

static void
echo_datagram (WzpConnection *c, const guint8 *d, gsize len, gpointer data)
{
  wzp_connection_send_datagram (c, d, len, NULL);
}

static void
mark_echo (WzpConnection *c, const guint8 *d, gsize len, gpointer data)
{
  echo_at = g_get_monotonic_time ();
}

static WzpConnection *server_conn;

static void
on_incoming (WzpEndpoint *ep, WzpConnection *c, gpointer data)
{
  g_set_object (&server_conn, c);
}

static gboolean established;

static void
on_established (WzpConnection *c, gpointer data)
{
  established = TRUE;
}

static double
cpu_seconds (void)
{
  struct rusage ru;

  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static WzpConnection *
dial (WzpEndpoint *client, GSocketAddress *to)
{
  WzpConnection *c = wzp_endpoint_connect (client, to, "bench", NULL, NULL);

  established = FALSE;
  g_signal_connect (c, "established", G_CALLBACK (on_established), NULL);
  while (!established || server_conn == NULL)
    g_main_context_iteration (NULL, TRUE);
  g_signal_handlers_disconnect_by_func (c, on_established, NULL);
  return c;
}

int
main (void)
{
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) server = wzp_endpoint_new (any, NULL, NULL, NULL);
  g_autoptr (WzpEndpoint) client = wzp_endpoint_new (any, NULL, NULL, NULL);
  g_autofree gchar *target = NULL;
  g_autoptr (GSocketAddress) to = NULL;
  g_autoptr (GArray) rtts = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr (GArray) hs = g_array_new (FALSE, FALSE, sizeof (gint64));
  guint8 payload[100] = { 0 };
  const guint n = 200000;
  WzpConnection *c;
  gint64 t0;
  double cpu0, secs, cpu, rate, rtt50, rtt99, hs50;

  wzp_endpoint_listen (server, NULL, NULL);
  g_signal_connect (server, "incoming", G_CALLBACK (on_incoming), NULL);
  target = g_strdup_printf ("127.0.0.1:%u", wzp_endpoint_get_port (server));
  to = wzp_socket_address_parse (target, NULL);

  /* handshakes */
  for (guint i = 0; i < 100; i++) {
    gint64 start = g_get_monotonic_time (), d;
    g_clear_object (&server_conn);
    c = dial (client, to);
    d = g_get_monotonic_time () - start;
    g_array_append_val (hs, d);
    wzp_connection_close (c, 0, "bench");
    g_object_unref (c);
  }

  /* one-way rate and CPU, no more than 128 in flight */
  g_clear_object (&server_conn);
  c = dial (client, to);
  wzp_connection_set_datagram_handler (server_conn, count_datagram, NULL, NULL);
  received = 0;
  t0 = g_get_monotonic_time ();
  cpu0 = cpu_seconds ();
  for (guint sent = 0; sent < n;) {
    while (sent < n && sent - received < 128) {
      memcpy (payload, &sent, sizeof sent);
      if (wzp_connection_send_datagram (c, payload, sizeof payload, NULL))
        sent++;
    }
    g_main_context_iteration (NULL, FALSE);
  }
  while (received < n && g_get_monotonic_time () - t0 < 60 * G_USEC_PER_SEC)
    g_main_context_iteration (NULL, FALSE);
  secs = (g_get_monotonic_time () - t0) / 1e6;
  cpu = cpu_seconds () - cpu0;
  rate = received / secs;

  /* ping-pong */
  wzp_connection_set_datagram_handler (server_conn, echo_datagram, NULL, NULL);
  wzp_connection_set_datagram_handler (c, mark_echo, NULL, NULL);
  for (guint i = 0; i < 2000; i++) {
    gint64 start = g_get_monotonic_time (), d;
    echo_at = 0;
    wzp_connection_send_datagram (c, payload, sizeof payload, NULL);
    while (echo_at == 0)
      g_main_context_iteration (NULL, FALSE);
    d = echo_at - start;
    g_array_append_val (rtts, d);
  }
  g_array_sort (rtts, bench_cmp_i64);
  g_array_sort (hs, bench_cmp_i64);
  rtt50 = g_array_index (rtts, gint64, rtts->len / 2) / 1000.0;
  rtt99 = g_array_index (rtts, gint64, rtts->len * 99 / 100) / 1000.0;
  hs50 = g_array_index (hs, gint64, hs->len / 2) / 1000.0;

  g_print ("%-44s %12s\n", "measure", "value");
  g_print ("%-44s %12.0f\n", "datagrams/s one way (100-byte payload)", rate);
  g_print ("%-44s %12u\n", "datagrams delivered", received);
  g_print ("%-44s %12.3f\n", "datagram RTT median (ms)", rtt50);
  g_print ("%-44s %12.3f\n", "datagram RTT p99 (ms)", rtt99);
  g_print ("%-44s %12.3f\n", "handshake median of 100 (ms)", hs50);
  g_print ("%-44s %12.3f\n", "CPU s per 10,000 datagrams (send+receive)", cpu / (received / 10000.0));
  g_print ("{\"bench\":\"quic\",\"datagrams_per_s\":%.0f,\"rtt_p50_ms\":%.3f,\"rtt_p99_ms\":%.3f,"
           "\"handshake_p50_ms\":%.3f,\"cpu_s_per_10k_datagrams\":%.4f}\n",
           rate, rtt50, rtt99, hs50, cpu / (received / 10000.0));
  wzp_connection_close (c, 0, "bench");
  g_object_unref (c);
  g_clear_object (&server_conn);
  return received == n ? 0 : 1;
}
