/* A minimal QUIC server for tests of wzp-tool's network commands: it answers
 * SNI "version" with a build id on a unidirectional stream and lets "ping"
 * connections go after the handshake, as a relay does (protocol §1.5).
 * Prints "PORT <n>" and "FINGERPRINT <fp>", then serves until killed. */
#include <stdio.h>
#include <string.h>
#include <gio/gio.h>

#include "wzp-quic.h"

static void
on_incoming (WzpEndpoint *ep, WzpConnection *conn, gpointer data)
{
  const gchar *sni = wzp_connection_get_sni (conn);

  if (g_strcmp0 (sni, "version") == 0) {
    g_autoptr (GBytes) id = g_bytes_new_static ("fixture-build", 13);
    wzp_connection_send_uni (conn, id, NULL);
  } else if (g_strcmp0 (sni, "ping") == 0) {
    wzp_connection_close (conn, 0, "ping");
  }
}

int
main (int argc, char **argv)
{
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse (argc > 1 ? argv[1] : "127.0.0.1:0", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpEndpoint) ep = wzp_endpoint_new (any, NULL, NULL, &error);
  g_autoptr (GMainLoop) loop = g_main_loop_new (NULL, FALSE);

  if (ep == NULL || !wzp_endpoint_listen (ep, NULL, &error)) {
    g_printerr ("quic-fixture: %s\n", error->message);
    return 1;
  }
  g_signal_connect (ep, "incoming", G_CALLBACK (on_incoming), NULL);
  printf ("PORT %u\nFINGERPRINT %s\n", wzp_endpoint_get_port (ep), wzp_endpoint_get_fingerprint (ep));
  fflush (stdout);
  g_main_loop_run (loop);
  return 0;
}
