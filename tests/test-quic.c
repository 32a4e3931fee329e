/* wzp-quic on loopback: handshakes, SNI, fingerprints and pinning, signals
 * on streams, datagrams, one socket as client and server at once, many
 * connections, garbage floods, timeouts, IPv6. */
#include <string.h>
#include <gio/gio.h>

#include "wzp-quic.h"

/* ---- helpers ------------------------------------------------------------- */

typedef gboolean (*Predicate) (gpointer data);

/* Runs the thread-default context until @pred holds or @ms pass. */
static gboolean
run_until (Predicate pred, gpointer data, guint ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) ms * 1000;

  while (!pred (data)) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    g_main_context_iteration (NULL, FALSE);
    if (!pred (data))
      g_usleep (100);
  }
  return TRUE;
}

static GSocketAddress *
addr (const gchar *text)
{
  GSocketAddress *a = wzp_socket_address_parse (text, NULL);
  g_assert_nonnull (a);
  return a;
}

static WzpEndpoint *
endpoint_new (const gchar *bind, gboolean listen, const WzpEndpointSettings *settings)
{
  g_autoptr (GSocketAddress) a = addr (bind);
  g_autoptr (GError) error = NULL;
  WzpEndpoint *ep = wzp_endpoint_new (a, NULL, settings, &error);

  g_assert_no_error (error);
  if (listen) {
    g_assert_true (wzp_endpoint_listen (ep, NULL, &error));
    g_assert_no_error (error);
  }
  return ep;
}

static GSocketAddress *
endpoint_addr (WzpEndpoint *ep, const gchar *host)
{
  g_autofree gchar *text = g_strdup_printf (strchr (host, ':') ? "[%s]:%u" : "%s:%u", host,
                                            wzp_endpoint_get_port (ep));
  return addr (text);
}

/* What one side of a connection saw. */
typedef struct {
  WzpConnection *conn;          /* owned */
  gboolean established;
  gboolean closed;
  GError *close_error;
  GPtrArray *signals;           /* gchar* JSON of each message, in order */
  GPtrArray *unis;
  guint datagrams;
  guint64 last_seq;
  gboolean in_order;
} Side;

static void
on_established (WzpConnection *c, Side *s)
{
  s->established = TRUE;
}

static void
on_closed (WzpConnection *c, const GError *e, Side *s)
{
  s->closed = TRUE;
  s->close_error = g_error_copy (e);
}

static void
on_signal (WzpConnection *c, const WzpSignal *msg, Side *s)
{
  g_ptr_array_add (s->signals, wzp_signal_to_json (msg, NULL, NULL));
}

static void
on_uni (WzpConnection *c, GBytes *b, Side *s)
{
  g_ptr_array_add (s->unis, g_strndup (g_bytes_get_data (b, NULL), g_bytes_get_size (b)));
}

static void
on_datagram (WzpConnection *c, const guint8 *data, gsize len, gpointer user_data)
{
  Side *s = user_data;
  guint64 seq = 0;

  if (len >= 8)
    memcpy (&seq, data, 8);
  if (s->datagrams > 0 && seq != s->last_seq + 1)
    s->in_order = FALSE;
  s->last_seq = seq;
  s->datagrams++;
}

static Side *
side_new (WzpConnection *conn)
{
  Side *s = g_new0 (Side, 1);

  s->conn = g_object_ref (conn);
  s->signals = g_ptr_array_new_with_free_func (g_free);
  s->unis = g_ptr_array_new_with_free_func (g_free);
  s->in_order = TRUE;
  s->established = wzp_connection_get_state (conn) == WZP_CONNECTION_ESTABLISHED;
  g_signal_connect (conn, "established", G_CALLBACK (on_established), s);
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed), s);
  g_signal_connect (conn, "signal", G_CALLBACK (on_signal), s);
  g_signal_connect (conn, "uni-stream", G_CALLBACK (on_uni), s);
  wzp_connection_set_datagram_handler (conn, on_datagram, s, NULL);
  return s;
}

static void
side_free (Side *s)
{
  g_signal_handlers_disconnect_by_data (s->conn, s);
  wzp_connection_set_datagram_handler (s->conn, NULL, NULL, NULL);
  g_object_unref (s->conn);
  g_ptr_array_unref (s->signals);
  g_ptr_array_unref (s->unis);
  g_clear_error (&s->close_error);
  g_free (s);
}

/* A server endpoint that wraps every incoming connection in a Side. */
typedef struct {
  WzpEndpoint *ep;
  GPtrArray *sides;
} Server;

static void
on_incoming (WzpEndpoint *ep, WzpConnection *conn, Server *srv)
{
  g_ptr_array_add (srv->sides, side_new (conn));
}

static Server *
server_new (const gchar *bind, const WzpEndpointSettings *settings)
{
  Server *srv = g_new0 (Server, 1);

  srv->ep = endpoint_new (bind, TRUE, settings);
  srv->sides = g_ptr_array_new_with_free_func ((GDestroyNotify) side_free);
  g_signal_connect (srv->ep, "incoming", G_CALLBACK (on_incoming), srv);
  return srv;
}

static void
server_free (Server *srv)
{
  g_ptr_array_unref (srv->sides);
  wzp_endpoint_shutdown (srv->ep, 0, "done");
  g_object_unref (srv->ep);
  g_free (srv);
}

static gboolean
side_established (gpointer s)
{
  return ((Side *) s)->established || ((Side *) s)->closed;
}

static gboolean
side_closed (gpointer s)
{
  return ((Side *) s)->closed;
}

static gboolean
server_has_n (gpointer data)
{
  Server *srv = ((gpointer *) data)[0];
  return srv->sides->len >= GPOINTER_TO_UINT (((gpointer *) data)[1]);
}

static gboolean
wait_server_sides (Server *srv, guint n, guint ms)
{
  gpointer data[2] = { srv, GUINT_TO_POINTER (n) };
  return run_until (server_has_n, data, ms);
}

typedef struct {
  Side *side;
  guint signals, datagrams, unis;
} Want;

static gboolean
want_met (gpointer data)
{
  Want *w = data;
  return w->side->signals->len >= w->signals && w->side->datagrams >= w->datagrams &&
      w->side->unis->len >= w->unis;
}

static void
wait_for (Side *s, guint signals, guint datagrams, guint unis, guint ms)
{
  Want w = { s, signals, datagrams, unis };

  if (!run_until (want_met, &w, ms))
    g_error ("timed out waiting: %u/%u signals, %u/%u datagrams, %u/%u uni",
             s->signals->len, signals, s->datagrams, datagrams, s->unis->len, unis);
}

/* A client connection to @srv; waits for both sides to be established. */
static Side *
dial (WzpEndpoint *client, Server *srv, const gchar *host, const gchar *sni, const gchar *pin)
{
  g_autoptr (GSocketAddress) to = endpoint_addr (srv->ep, host);
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpConnection) conn = wzp_endpoint_connect (client, to, sni, pin, &error);
  Side *s;

  g_assert_no_error (error);
  s = side_new (conn);
  g_assert_true (run_until (side_established, s, 5000));
  return s;
}

static WzpSignal *
ping (guint64 t)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_PING);
  m->ping.timestamp_ms = t;
  return m;
}

static void
send_ping (WzpConnection *c, guint64 t)
{
  g_autoptr (WzpSignal) m = ping (t);
  g_autoptr (GError) error = NULL;

  g_assert_true (wzp_connection_send_signal (c, m, &error));
  g_assert_no_error (error);
}

static void
send_seq_datagram (WzpConnection *c, guint64 seq, gsize len)
{
  guint8 buf[1200] = { 0 };
  g_autoptr (GError) error = NULL;

  memcpy (buf, &seq, 8);
  g_assert_true (wzp_connection_send_datagram (c, buf, len, &error));
  g_assert_no_error (error);
}

/* ---- tests ------------------------------------------------------------- */

static void
check_handshake (const gchar *host, const gchar *sni)
{
  g_autofree gchar *bind = g_strdup_printf (strchr (host, ':') ? "[%s]:0" : "%s:0", host);
  Server *srv = server_new (bind, NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new (bind, FALSE, NULL);
  Side *c = dial (client, srv, host, sni, NULL);
  Side *s;

  g_assert_true (c->established);
  g_assert_false (c->closed);
  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  g_assert_cmpstr (wzp_connection_get_sni (s->conn), ==, sni);
  g_assert_cmpstr (wzp_connection_get_peer_fingerprint (c->conn), ==,
                   wzp_endpoint_get_fingerprint (srv->ep));
  g_assert_cmpuint (strlen (wzp_connection_get_peer_fingerprint (c->conn)), ==, 95);
  g_assert_null (wzp_connection_get_peer_fingerprint (s->conn));
  g_assert_true (wzp_connection_is_server (s->conn));
  g_assert_false (wzp_connection_is_server (c->conn));
  g_assert_cmpuint (wzp_connection_get_max_datagram_size (c->conn), >=, 1100);

  /* one signal each way, in both directions, and datagrams */
  send_ping (c->conn, 1);
  send_ping (s->conn, 2);
  wait_for (s, 1, 0, 0, 5000);
  wait_for (c, 1, 0, 0, 5000);
  g_assert_cmpstr (g_ptr_array_index (s->signals, 0), ==, "{\"Ping\":{\"timestamp_ms\":1}}");
  g_assert_cmpstr (g_ptr_array_index (c->signals, 0), ==, "{\"Ping\":{\"timestamp_ms\":2}}");
  for (guint i = 0; i < 100; i++) {
    send_seq_datagram (c->conn, i, 100);
    send_seq_datagram (s->conn, i, 100);
  }
  wait_for (s, 1, 100, 0, 5000);
  wait_for (c, 1, 100, 0, 5000);

  wzp_connection_close (c->conn, 0, "hangup");
  g_assert_true (run_until (side_closed, s, 5000));
  g_assert_error (s->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PEER_CLOSED);
  g_assert_nonnull (strstr (s->close_error->message, "hangup"));
  g_assert_true (c->closed);
  g_assert_error (c->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_CLOSED);
  side_free (c);
  server_free (srv);
}

static void
test_handshake_sni (void)
{
  const gchar *snis[] = { "_signal", "room_with_underscore", "call-call-0123abcd", "ping", "123", NULL };

  for (guint i = 0; i < G_N_ELEMENTS (snis); i++)
    check_handshake ("127.0.0.1", snis[i]);
}

static void
test_ipv6 (void)
{
  g_autoptr (GSocket) probe = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_DATAGRAM,
                                            G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) a = addr ("[::1]:0");

  if (probe == NULL || !g_socket_bind (probe, a, FALSE, NULL)) {
    g_test_skip ("no IPv6 loopback on this machine");
    return;
  }
  check_handshake ("::1", "_signal");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/quic/handshake-sni", test_handshake_sni);
  g_test_add_func ("/quic/ipv6", test_ipv6);
  return g_test_run ();
}
