/* wzp-quic on loopback: handshakes, SNI, fingerprints and pinning, signals
 * on streams, datagrams, key updates, one socket as client and server at once, many
 * connections, garbage floods, timeouts, IPv6. */
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <gio/gio.h>

#include "wzp-quic.h"
#include "wzp-quic-private.h"
#include <sodium.h>

/* ---- helpers ------------------------------------------------------------- */

typedef gboolean (*Predicate) (gpointer data);

/* Runs the thread-default context until @pred holds or @ms pass. */
static gboolean
run_until (Predicate pred, gpointer data, guint ms)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) ms * 1000;

  /* once per turn: a predicate may act (update_accepted) */
  while (!pred (data)) {
    if (g_get_monotonic_time () > deadline)
      return FALSE;
    if (!g_main_context_iteration (NULL, FALSE))
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
  WzpEndpointSettings keep_all;
  WzpEndpoint *ep;

  /* Without settings of their own, the tests count every datagram sent in a
   * burst: none is dropped for waiting (under valgrind a burst waits longer
   * than datagram_max_wait_ms); /quic/send-max-wait tests the limit. */
  if (settings == NULL) {
    wzp_endpoint_settings_init (&keep_all);
    keep_all.datagram_max_wait_ms = 0;
    settings = &keep_all;
  }
  ep = wzp_endpoint_new (a, NULL, settings, &error);

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
  guint marked;                 /* datagrams with a sequence number >= MARK */
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

#define MARK G_GUINT64_CONSTANT (1000000)

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
  s->marked += seq >= MARK;
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

static gboolean
marked_arrived (gpointer data)
{
  gpointer *d = data;

  return ((Side *) d[0])->marked >= GPOINTER_TO_UINT (d[1]);
}

/* Waits until @s has had @n datagrams carrying a MARK sequence number. */
static void
wait_marked (Side *s, guint n, guint ms)
{
  gpointer d[2] = { s, GUINT_TO_POINTER (n) };

  if (!run_until (marked_arrived, d, ms))
    g_error ("timed out waiting: %u of %u marked datagrams arrived", s->marked, n);
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

static gboolean
queues_low (gpointer data)
{
  WzpConnection **conns = data;
  WzpConnectionStats a, b;

  wzp_connection_get_stats (conns[0], &a);
  wzp_connection_get_stats (conns[1], &b);
  return a.datagrams_queued < 64 && b.datagrams_queued < 64;
}

/* Sends no faster than the connections take: the send queue is bounded and
 * drops its oldest entries, as live media should. */
static void
drain_send_queues (WzpConnection *a, WzpConnection *b)
{
  WzpConnection *conns[2] = { a, b };
  g_assert_true (run_until (queues_low, conns, 5000));
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


static void
test_no_sni_and_pins (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  g_autofree gchar *upper = g_ascii_strup (wzp_endpoint_get_fingerprint (srv->ep), -1);
  Side *c, *bad;

  /* no SNI */
  c = dial (client, srv, "127.0.0.1", NULL, NULL);
  g_assert_true (c->established);
  g_assert_true (wait_server_sides (srv, 1, 5000));
  g_assert_null (wzp_connection_get_sni (((Side *) g_ptr_array_index (srv->sides, 0))->conn));
  side_free (c);

  /* the right pin, in another case: accepted */
  c = dial (client, srv, "127.0.0.1", "_signal", upper);
  g_assert_true (c->established);
  g_assert_false (c->closed);
  side_free (c);

  /* a wrong pin: refused with a message that says what to check */
  bad = dial (client, srv, "127.0.0.1", "_signal",
              "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
  g_assert_true (run_until (side_closed, bad, 5000));
  g_assert_false (bad->established);
  g_assert_error (bad->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PIN_MISMATCH);
  g_assert_nonnull (strstr (bad->close_error->message, wzp_endpoint_get_fingerprint (srv->ep)));
  side_free (bad);
  server_free (srv);
}

/* 10,000 datagrams each way: none lost on loopback, order kept. */
static void
test_many_datagrams (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "room", NULL);
  Side *s;
  WzpConnectionStats st;
  const guint n = 10000;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint i = 0; i < n; i++) {
    send_seq_datagram (c->conn, i, 160);
    send_seq_datagram (s->conn, i, 160);
    if (i % 50 == 49)
      drain_send_queues (c->conn, s->conn);
  }
  wait_for (s, 0, n, 0, 20000);
  wait_for (c, 0, n, 0, 20000);
  g_assert_cmpuint (s->datagrams, ==, n);
  g_assert_cmpuint (c->datagrams, ==, n);
  g_test_message ("order kept: server %s, client %s", s->in_order ? "yes" : "no",
                  c->in_order ? "yes" : "no");
  wzp_connection_get_stats (c->conn, &st);
  g_assert_cmpuint (st.datagrams_sent, ==, n);
  g_assert_cmpuint (st.datagrams_received, ==, n);
  g_assert_cmpuint (st.rtt_us, >, 0);
  side_free (c);
  server_free (srv);
}

/* Key updates (RFC 9001 §6), started by either side, three in a row: each
 * side reads the other's packets with keys it derived ahead (and expands
 * only then), and an update can start only once the peer has confirmed the
 * one before, so each success proves the previous one went both ways. */
typedef struct {
  WzpConnection *conn;
  guint sent;
  gint64 last_sent, not_before;
} UpdateTry;

/* A PTO of @c (RFC 9002 §6.2.1, with the 65 ms max_ack_delay we announce) */
static gint64
pto_us (WzpConnection *c)
{
  WzpConnectionStats st;

  wzp_connection_get_stats (c, &st);
  return (gint64) (st.rtt_us + MAX (4 * st.rttvar_us, 1000) + 65000);
}

static gboolean
update_accepted (gpointer data)
{
  UpdateTry *t = data;
  gint64 now = g_get_monotonic_time ();

  /* media every 5 ms keeps packets flowing both ways, so the peer
   * acknowledges in the new key phase */
  if (now - t->last_sent >= 5000) {
    send_seq_datagram (t->conn, 0, 100);
    t->sent++;
    t->last_sent = now;
  }
  return now >= t->not_before && wzp_connection_update_keys (t->conn, NULL);
}

static void
test_key_update (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "room", NULL);
  g_autoptr (GError) error = NULL;
  Side *s;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint round = 0; round < 3; round++) {
    Side *starter = round == 1 ? s : c;
    /* ngtcp2 waits three of its own PTOs after an update before it allows
     * the next (RFC 9001 §6.5); the peer discards its old keys, and derives
     * the next ones, after three of its PTOs, which can be longer (under
     * valgrind, where the two measure the path very differently): a new
     * phase that comes earlier cannot be read, and is lost */
    UpdateTry t = { starter->conn, 0, 0, round == 0 ? 0 :
                    g_get_monotonic_time () + 3 * MAX (pto_us (c->conn), pto_us (s->conn)) };
    gint64 t0 = g_get_monotonic_time ();
    guint marked_s = s->marked, marked_c = c->marked;

    /* the first needs the handshake confirmed, the others the last update */
    g_assert_true (run_until (update_accepted, &t, 5000 + (guint) (MAX (t.not_before - t0, 0) / 1000)));
    /* and none right after it, until the peer has confirmed it */
    g_assert_false (wzp_connection_update_keys (starter->conn, &error));
    g_assert_error (error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_NOT_READY);
    g_clear_error (&error);
    /* a burst each way in the new keys, all of which arrives (the tries'
     * datagrams are not counted: a slow run, under valgrind, can lose some
     * sent while the handshake was being confirmed) */
    for (guint i = 0; i < 50; i++) {
      send_seq_datagram (c->conn, MARK + i, 120);
      send_seq_datagram (s->conn, MARK + i, 120);
    }
    wait_marked (s, marked_s + 50, 10000);
    wait_marked (c, marked_c + 50, 10000);
    g_test_message ("update %u by the %s, accepted after %" G_GINT64_FORMAT " ms, %u tries",
                    round + 1, starter == c ? "client" : "server",
                    (g_get_monotonic_time () - t0) / 1000, t.sent);
  }
  g_assert_cmpint (wzp_connection_get_state (c->conn), ==, WZP_CONNECTION_ESTABLISHED);
  g_assert_cmpint (wzp_connection_get_state (s->conn), ==, WZP_CONNECTION_ESTABLISHED);
  side_free (c);
  server_free (srv);
}

static void iterate_ms (guint ms);

/* Post-handshake TLS messages (RFC 9001 §4.1.3, §6): a server's
 * NewSessionTicket is taken, in pieces cut anywhere; a KeyUpdate, or a
 * NewSessionTicket from a client, ends the connection with CRYPTO_ERROR
 * 0x10a (unexpected_message) and says why on both sides. */
static void
test_post_handshake_tls (void)
{
  static const guint8 ticket[] = { 4, 0, 0, 5, 1, 2, 3, 4, 5 }, empty_ticket[] = { 4, 0, 0, 0 };
  static const guint8 key_update[] = { 24, 0, 0, 1, 0 };
  static const gsize cuts[] = { 2, 6, sizeof ticket };
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);

  for (guint round = 0; round < 3; round++) {
    Side *c = dial (client, srv, "127.0.0.1", "room", NULL);
    Side *s, *from, *to;

    g_assert_true (wait_server_sides (srv, round + 1, 5000));
    s = g_ptr_array_index (srv->sides, round);
    if (round == 0) {
      /* tickets from the server, the first in three pieces */
      for (guint i = 0, at = 0; i < G_N_ELEMENTS (cuts); at = (guint) cuts[i++]) {
        g_assert_true (wzp_connection_test_send_tls (s->conn, ticket + at, cuts[i] - at));
        iterate_ms (20);
      }
      g_assert_true (wzp_connection_test_send_tls (s->conn, empty_ticket, sizeof empty_ticket));
      for (guint i = 0; i < 20; i++) {
        send_seq_datagram (c->conn, i, 100);
        send_seq_datagram (s->conn, i, 100);
      }
      wait_for (c, 0, 20, 0, 5000);
      wait_for (s, 0, 20, 0, 5000);
      g_assert_false (c->closed);
      g_assert_false (s->closed);
      side_free (c);
      continue;
    }
    /* round 1: a client's "ticket"; round 2: the server's KeyUpdate */
    from = round == 1 ? c : s;
    to = round == 1 ? s : c;
    g_assert_true (round == 1 ? wzp_connection_test_send_tls (c->conn, ticket, sizeof ticket)
                              : wzp_connection_test_send_tls (s->conn, key_update, sizeof key_update));
    g_assert_true (run_until (side_closed, to, 5000));
    g_assert_true (run_until (side_closed, from, 5000));
    g_assert_error (to->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PROTOCOL);
    g_assert_nonnull (strstr (to->close_error->message,
                              round == 1 ? "TLS message type 4" : "TLS KeyUpdate"));
    g_assert_error (from->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PEER_CLOSED);
    g_assert_nonnull (strstr (from->close_error->message, "transport error 0x10a"));
    g_test_message ("%s", to->close_error->message);
    side_free (c);
  }
  server_free (srv);
}

/* Runs the default context for @ms of real time. */
static void
iterate_ms (guint ms)
{
  gint64 end = g_get_monotonic_time () + (gint64) ms * 1000;

  while (g_get_monotonic_time () < end) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (200);
  }
}

static guint64
packets_sent (WzpConnection *c)
{
  WzpConnectionStats st;

  wzp_connection_get_stats (c, &st);
  return st.packets_sent;
}

/* RTT + max (4 RTTVAR, 1 ms), µs: a probe timeout without max_ack_delay */
static gint64
pto_base (WzpConnection *c)
{
  WzpConnectionStats st;

  wzp_connection_get_stats (c, &st);
  return (gint64) (st.rtt_us + MAX (4 * st.rttvar_us, 1000));
}

static gboolean
drop_next_sent (const struct sockaddr *remote, gboolean sending, gpointer data)
{
  guint *drop = data;

  if (!sending || *drop == 0)
    return FALSE;
  (*drop)--;
  return TRUE;
}

/* Media every 20 ms for @rounds rounds, both ways or client to server only;
 * returns the UDP packets each side sent meanwhile. */
static void
media_rounds (Side *c, Side *s, guint rounds, gboolean both, guint64 *c_pkts, guint64 *s_pkts)
{
  guint64 c0 = packets_sent (c->conn), s0 = packets_sent (s->conn);
  guint c_want = s->datagrams + rounds, s_want = c->datagrams + (both ? rounds : 0);

  for (guint i = 0; i < rounds; i++) {
    send_seq_datagram (c->conn, i, 100);
    if (both)
      send_seq_datagram (s->conn, i, 100);
    iterate_ms (20);
  }
  iterate_ms (100);
  g_assert_cmpuint (s->datagrams, ==, c_want);
  g_assert_cmpuint (c->datagrams, ==, s_want);
  *c_pkts = packets_sent (c->conn) - c0;
  *s_pkts = packets_sent (s->conn) - s0;
}

/* Acknowledgements ride on the datagrams going the other way instead of a
 * packet each (settings.ack_hold_ms); one-way media is still acknowledged,
 * in fewer packets; RTT stays true; with the hold off, a packet per ack. */
static void
test_ack_hold (void)
{
  for (guint hold = 0; hold < 2; hold++) {
    WzpEndpointSettings es;
    Server *srv;
    g_autoptr (WzpEndpoint) client = NULL;
    Side *c, *s;
    WzpConnectionStats st;
    guint64 cp, sp;

    wzp_endpoint_settings_init (&es);
    es.datagram_max_wait_ms = 0;        /* every datagram counted, as above */
    if (!hold)
      es.ack_hold_ms = 0;
    srv = server_new ("127.0.0.1:0", &es);
    client = endpoint_new ("127.0.0.1:0", FALSE, &es);
    c = dial (client, srv, "127.0.0.1", "room", NULL);
    g_assert_true (wait_server_sides (srv, 1, 5000));
    s = g_ptr_array_index (srv->sides, 0);
    iterate_ms (200);             /* handshake leftovers */

    media_rounds (c, s, 100, TRUE, &cp, &sp);
    g_test_message ("hold %u ms, both ways: 100 datagrams each, packets client %" G_GUINT64_FORMAT
                    " server %" G_GUINT64_FORMAT, es.ack_hold_ms, cp, sp);
    if (hold) {
      g_assert_cmpuint (cp, <=, 105);
      g_assert_cmpuint (sp, <=, 105);
    } else {
      g_assert_cmpuint (cp + sp, >=, 300);
    }

    media_rounds (c, s, 50, FALSE, &cp, &sp);
    wzp_connection_get_stats (c->conn, &st);
    g_test_message ("hold %u ms, one way: 50 datagrams, packets client %" G_GUINT64_FORMAT
                    " server (acks) %" G_GUINT64_FORMAT ", client RTT %" G_GUINT64_FORMAT " us",
                    es.ack_hold_ms, cp, sp, st.rtt_us);
    g_assert_cmpuint (sp, >=, 5);             /* still acknowledged */
    if (hold) {
      g_assert_cmpuint (cp, <=, 55);
      /* a side that only listens has no datagram for its acknowledgements
       * to ride on: it does not hold them, but sends them at ngtcp2's pace
       * (held, two or three lost in a row stalled the sender's media) */
      g_assert_cmpuint (sp, >=, 25);
      g_assert_cmpuint (sp, <=, 55);
    }
    /* the hold is announced in max_ack_delay and taken out of RTT samples */
    g_assert_cmpuint (st.rtt_us, <, 15000);
    g_assert_cmpuint (st.datagrams_lost, ==, 0);

    /* signalling alone keeps ngtcp2's timing: a lost message goes again
     * after QUIC's probe timeout, not also after the hold */
    if (hold) {
      gint64 t0, elapsed;
      guint drop = 1;

      iterate_ms (2 * es.ack_hold_ms);
      wzp_endpoint_set_test_filter (client, drop_next_sent, &drop);
      t0 = g_get_monotonic_time ();
      {
        /* a unidirectional stream: nothing else goes either way */
        g_autoptr (GBytes) b = g_bytes_new_static ("x", 1);
        g_assert_true (wzp_connection_send_uni (c->conn, b, NULL));
      }
      while (s->unis->len == 0 && g_get_monotonic_time () - t0 < 2000000)
        iterate_ms (1);
      elapsed = g_get_monotonic_time () - t0;
      wzp_endpoint_set_test_filter (client, NULL, NULL);
      g_test_message ("a message lost without media arrived after %.1f ms", elapsed / 1000.0);
      g_assert_cmpuint (drop, ==, 0);
      g_assert_cmpuint (s->unis->len, ==, 1);
      /* probe timeout: RTT + 4 RTTVAR + 25 ms + the announced hold (~72 ms
       * on loopback); the timer hold would add another 40 */
      g_assert_cmpint (elapsed, <, pto_base (c->conn) + (gint64) (25 + es.ack_hold_ms + 30) * 1000);

      /* a signalling connection announces the usual 25 ms, so its probe
       * timeout, and a lost message, come sooner */
      {
        Side *sc = dial (client, srv, "127.0.0.1", "_signal", NULL), *ss;
        g_autoptr (GBytes) b = g_bytes_new_static ("y", 1);

        g_assert_true (wait_server_sides (srv, 2, 5000));
        ss = g_ptr_array_index (srv->sides, 1);
        iterate_ms (100);
        drop = 1;
        wzp_endpoint_set_test_filter (client, drop_next_sent, &drop);
        t0 = g_get_monotonic_time ();
        g_assert_true (wzp_connection_send_uni (sc->conn, b, NULL));
        while (ss->unis->len == 0 && g_get_monotonic_time () - t0 < 2000000)
          iterate_ms (1);
        elapsed = g_get_monotonic_time () - t0;
        wzp_endpoint_set_test_filter (client, NULL, NULL);
        g_test_message ("on _signal, a lost message arrived after %.1f ms", elapsed / 1000.0);
        g_assert_cmpuint (drop, ==, 0);
        g_assert_cmpuint (ss->unis->len, ==, 1);
        /* ~28 ms on loopback; announcing the hold would add 40 */
        g_assert_cmpint (elapsed, <, pto_base (sc->conn) + (gint64) (25 + 30) * 1000);
        side_free (sc);
      }
    }
    side_free (c);
    server_free (srv);
  }
}

/* A sender faster than the path: the send queue stays bounded, keeps the
 * newest datagrams and counts what it dropped. */
static void
test_send_queue_bound (void)
{
  WzpEndpointSettings es;
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = NULL;
  Side *c;
  WzpConnectionStats st;
  Side *s;

  /* the bound alone: none dropped for waiting */
  wzp_endpoint_settings_init (&es);
  es.datagram_max_wait_ms = 0;
  client = endpoint_new ("127.0.0.1:0", FALSE, &es);
  c = dial (client, srv, "127.0.0.1", "room", NULL);

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint i = 0; i < 5000; i++)
    send_seq_datagram (c->conn, i, 1000);
  wzp_connection_get_stats (c->conn, &st);
  g_assert_cmpuint (st.datagrams_queued, <=, 256);
  g_assert_cmpuint (st.datagrams_dropped, >, 0);
  g_assert_cmpuint (st.datagrams_sent + st.datagrams_queued + st.datagrams_dropped, ==, 5000);
  /* what was kept arrives, the newest last */
  wait_for (s, 0, (guint) (5000 - st.datagrams_dropped), 0, 10000);
  g_assert_cmpuint (s->last_seq, ==, 4999);
  side_free (c);
  server_free (srv);
}

static gboolean
drop_received (const struct sockaddr *remote, gboolean sending, gpointer data)
{
  return !sending;              /* TRUE drops: the peer's packets never come in */
}

/* A sender whose congestion window stays shut (the peer's acknowledgements
 * never arrive): what waited longer than datagram_max_wait_ms is dropped
 * and counted, so the queue holds 100 ms of media, not 256 datagrams. */
static void
test_send_max_wait (void)
{
  WzpEndpointSettings es;
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = NULL;
  WzpConnectionStats st;
  Side *c;

  wzp_endpoint_settings_init (&es);
  g_assert_cmpuint (es.datagram_max_wait_ms, ==, 100);
  client = endpoint_new ("127.0.0.1:0", FALSE, &es);
  c = dial (client, srv, "127.0.0.1", "room", NULL);
  g_assert_true (wait_server_sides (srv, 1, 5000));
  wzp_endpoint_set_test_filter (client, drop_received, NULL);
  /* 1000-byte datagrams every 5 ms for 1 s: the initial window passes about
   * a dozen, then the queue would only grow */
  for (guint i = 0; i < 200; i++) {
    send_seq_datagram (c->conn, i, 1000);
    iterate_ms (5);
  }
  wzp_connection_get_stats (c->conn, &st);
  g_test_message ("sent %" G_GUINT64_FORMAT ", queued %" G_GUINT64_FORMAT ", dropped %" G_GUINT64_FORMAT,
                  st.datagrams_sent, st.datagrams_queued, st.datagrams_dropped);
  g_assert_cmpuint (st.datagrams_sent, <, 60);
  /* 100 ms of 5 ms sends, and the sends of one write's lateness */
  g_assert_cmpuint (st.datagrams_queued, <=, 24);
  g_assert_cmpuint (st.datagrams_sent + st.datagrams_queued + st.datagrams_dropped, ==, 200);
  g_assert_cmpuint (st.datagrams_dropped, >=, 200 - 60 - 24);
  wzp_endpoint_set_test_filter (client, NULL, NULL);
  side_free (c);
  server_free (srv);
}

/* 500 messages on 500 streams, delivered intact and in order; a large one
 * spanning many packets; an oversized frame refused without harm. */
static void
test_many_signals (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "_signal", NULL);
  g_autoptr (WzpSignal) big = wzp_signal_new (WZP_SIGNAL_ICE_CANDIDATE);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) huge = NULL;
  WzpConnectionStats st;
  Side *s;
  guint8 *h;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint i = 0; i < 500; i++)
    send_ping (c->conn, i);
  wait_for (s, 500, 0, 0, 20000);
  for (guint i = 0; i < 500; i++) {
    g_autofree gchar *want = g_strdup_printf ("{\"Ping\":{\"timestamp_ms\":%u}}", i);
    g_assert_cmpstr (g_ptr_array_index (s->signals, i), ==, want);
  }

  big->ice_candidate.candidate = g_malloc (300001);
  memset (big->ice_candidate.candidate, 'x', 300000);
  big->ice_candidate.candidate[300000] = '\0';
  g_assert_true (wzp_connection_send_signal (c->conn, big, &error));
  g_assert_no_error (error);
  wait_for (s, 501, 0, 0, 20000);
  g_assert_cmpuint (strlen (g_ptr_array_index (s->signals, 500)), ==, 300000 + 33);

  /* 1 MiB + 1: the receiver resets that stream and carries on */
  h = g_malloc (4 + 1048577);
  h[0] = 0; h[1] = 0x10; h[2] = 0; h[3] = 1;
  memset (h + 4, ' ', 1048577);
  huge = g_bytes_new_take (h, 4 + 1048577);
  g_assert_true (wzp_connection_send_frame (c->conn, huge, &error));
  g_assert_no_error (error);
  send_ping (c->conn, 9999);
  wait_for (s, 502, 0, 0, 20000);
  g_assert_cmpstr (g_ptr_array_index (s->signals, 501), ==, "{\"Ping\":{\"timestamp_ms\":9999}}");
  wzp_connection_get_stats (s->conn, &st);
  g_assert_cmpuint (st.bad_streams, ==, 1);
  g_assert_false (s->closed);
  g_assert_false (c->closed);
  side_free (c);
  server_free (srv);
}

static GBytes *
frame_of (const gchar *json)
{
  gsize n = strlen (json);
  guint8 *b = g_malloc (n + 4);

  b[0] = (guint8) (n >> 24); b[1] = (guint8) (n >> 16); b[2] = (guint8) (n >> 8); b[3] = (guint8) n;
  memcpy (b + 4, json, n);
  return g_bytes_new_take (b, n + 4);
}

/* Bad JSON, an unknown variant and a truncated frame each cost only their
 * own stream. */
static void
test_bad_streams (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "_signal", NULL);
  const gchar *bad[] = { "{\"Ping\":", "{\"Frobnicate\":{}}", "[1,2,3]" };
  WzpConnectionStats st;
  Side *s;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GBytes) f = frame_of (bad[i]);
    g_assert_true (wzp_connection_send_frame (c->conn, f, NULL));
    send_ping (c->conn, i);
  }
  {
    static const guint8 trunc[] = { 0, 0, 0, 50, '{', '"' };
    g_autoptr (GBytes) f = g_bytes_new_static (trunc, sizeof trunc);
    g_assert_true (wzp_connection_send_frame (c->conn, f, NULL));
    send_ping (c->conn, 3);
  }
  wait_for (s, 4, 0, 0, 5000);
  for (guint i = 0; i < 4; i++) {
    g_autofree gchar *want = g_strdup_printf ("{\"Ping\":{\"timestamp_ms\":%u}}", i);
    g_assert_cmpstr (g_ptr_array_index (s->signals, i), ==, want);
  }
  wzp_connection_get_stats (s->conn, &st);
  g_assert_cmpuint (st.bad_streams, ==, 3);
  g_assert_cmpuint (st.unknown_signals, ==, 1);
  side_free (c);
  server_free (srv);
}

/* The direct-call shape: endpoint B is a client of A and, on the same
 * socket, the server for a dial from C; datagrams flow on both. */
static void
test_client_and_server_one_socket (void)
{
  Server *a = server_new ("127.0.0.1:0", NULL);
  Server *b = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) cep = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *b_to_a = dial (b->ep, a, "127.0.0.1", "_signal", NULL);
  Side *c_to_b = dial (cep, b, "127.0.0.1", "call-x", NULL);
  Side *a_side, *b_side;

  g_assert_true (wait_server_sides (a, 1, 5000));
  g_assert_true (wait_server_sides (b, 1, 5000));
  a_side = g_ptr_array_index (a->sides, 0);
  b_side = g_ptr_array_index (b->sides, 0);
  for (guint i = 0; i < 200; i++) {
    send_seq_datagram (b_to_a->conn, i, 100);
    send_seq_datagram (a_side->conn, i, 100);
    send_seq_datagram (c_to_b->conn, i, 100);
    send_seq_datagram (b_side->conn, i, 100);
  }
  wait_for (a_side, 0, 200, 0, 5000);
  wait_for (b_to_a, 0, 200, 0, 5000);
  wait_for (b_side, 0, 200, 0, 5000);
  wait_for (c_to_b, 0, 200, 0, 5000);
  /* the two connections really share B's port */
  g_assert_cmpuint (g_str_has_suffix (wzp_connection_get_remote_address (b_side->conn), "") , ==, TRUE);
  {
    g_autofree gchar *port = g_strdup_printf (":%u", wzp_endpoint_get_port (b->ep));
    g_assert_true (g_str_has_suffix (wzp_connection_get_remote_address (a_side->conn), port));
  }
  side_free (b_to_a);
  side_free (c_to_b);
  server_free (a);
  server_free (b);
}

static gboolean
all_established (gpointer data)
{
  GPtrArray *sides = data;

  for (guint i = 0; i < sides->len; i++)
    if (!side_established (g_ptr_array_index (sides, i)))
      return FALSE;
  return TRUE;
}

typedef struct {
  GPtrArray *sides;
  guint n;
} AllWant;

static gboolean
all_have (gpointer data)
{
  AllWant *w = data;

  for (guint i = 0; i < w->sides->len; i++)
    if (((Side *) g_ptr_array_index (w->sides, i))->datagrams < w->n)
      return FALSE;
  return TRUE;
}

/* 200 concurrent clients on one server endpoint, each exchanging datagrams. */
static void
test_many_connections (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  g_autoptr (GPtrArray) clients = g_ptr_array_new_with_free_func ((GDestroyNotify) side_free);
  g_autoptr (GSocketAddress) to = endpoint_addr (srv->ep, "127.0.0.1");
  WzpEndpointStats es;
  AllWant w;

  for (guint i = 0; i < 200; i++) {
    g_autoptr (WzpConnection) conn = wzp_endpoint_connect (client, to, "room", NULL, NULL);
    g_ptr_array_add (clients, side_new (conn));
  }
  g_assert_true (run_until (all_established, clients, 20000));
  g_assert_true (wait_server_sides (srv, 200, 20000));
  for (guint i = 0; i < 200; i++) {
    Side *c = g_ptr_array_index (clients, i);
    g_assert_false (c->closed);
    for (guint j = 0; j < 5; j++)
      send_seq_datagram (c->conn, j, 100);
  }
  for (guint i = 0; i < 200; i++) {
    Side *s = g_ptr_array_index (srv->sides, i);
    for (guint j = 0; j < 5; j++)
      send_seq_datagram (s->conn, j, 100);
  }
  w.sides = srv->sides;
  w.n = 5;
  g_assert_true (run_until (all_have, &w, 20000));
  w.sides = clients;
  g_assert_true (run_until (all_have, &w, 20000));
  wzp_endpoint_get_stats (srv->ep, &es);
  g_assert_cmpuint (es.connections, ==, 200);
  g_assert_cmpuint (es.half_open, ==, 0);
  g_assert_cmpuint (es.connections_accepted, ==, 200);
  g_ptr_array_set_size (clients, 0);
  server_free (srv);
}

/* 20,000 random, empty and replayed datagrams at the server socket while a
 * live connection exchanges datagrams: it loses nothing. */
static void
test_garbage_flood (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "room", NULL);
  g_autoptr (GSocket) raw = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                          G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) to = endpoint_addr (srv->ep, "127.0.0.1");
  g_autoptr (GRand) r = g_rand_new_with_seed (11);
  WzpEndpointStats es;
  guint8 buf[1400];
  Side *s;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  for (guint i = 0; i < 20000; i++) {
    gsize len = 0;

    switch (i % 4) {
      case 0: len = 0; break;                                           /* empty */
      case 1: len = g_rand_int_range (r, 1, 40); break;                /* short */
      case 2: len = 1200; buf[0] = 0xc0; buf[1] = 0; buf[2] = 0; buf[3] = 0; buf[4] = 1; break;  /* Initial-looking */
      default: len = g_rand_int_range (r, 1, sizeof buf); break;       /* random */
    }
    for (gsize j = (i % 4 == 2) ? 5 : 0; j < len; j++)
      buf[j] = (guint8) g_rand_int (r);
    g_socket_send_to (raw, to, (const gchar *) buf, len, NULL, NULL);
    if (i % 20 == 0) {
      send_seq_datagram (c->conn, i / 20, 100);
      g_main_context_iteration (NULL, FALSE);
    }
  }
  wait_for (s, 0, 1000, 0, 20000);
  g_assert_cmpuint (s->datagrams, ==, 1000);
  g_assert_false (s->closed);
  /* still answering: a fresh connection works */
  {
    Side *c2 = dial (client, srv, "127.0.0.1", "room2", NULL);
    g_assert_true (c2->established);
    side_free (c2);
  }
  wzp_endpoint_get_stats (srv->ep, &es);
  g_test_message ("flood: %" G_GUINT64_FORMAT " packets dropped, %" G_GUINT64_FORMAT
                  " Initials refused, %u connections", es.packets_dropped, es.initials_refused,
                  es.connections);
  g_assert_cmpuint (es.packets_dropped, >=, 10000);
  g_assert_cmpuint (es.half_open, <=, 256);
  side_free (c);
  server_free (srv);
}

static void
test_idle_and_keepalive (void)
{
  WzpEndpointSettings quiet, alive;
  Server *srv;
  g_autoptr (WzpEndpoint) client_quiet = NULL, client_alive = NULL;
  Side *q, *a;

  wzp_endpoint_settings_init (&quiet);
  quiet.idle_timeout_ms = 1000;
  quiet.keep_alive_ms = 0;
  alive = quiet;
  alive.keep_alive_ms = 250;
  srv = server_new ("127.0.0.1:0", &quiet);
  client_quiet = endpoint_new ("127.0.0.1:0", FALSE, &quiet);
  client_alive = endpoint_new ("127.0.0.1:0", FALSE, &alive);
  q = dial (client_quiet, srv, "127.0.0.1", "room", NULL);
  a = dial (client_alive, srv, "127.0.0.1", "room", NULL);
  g_assert_true (run_until (side_closed, q, 5000));
  g_assert_error (q->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_IDLE_TIMEOUT);
  /* three idle timeouts later the kept-alive one is still up */
  g_assert_false (run_until (side_closed, a, 3000));
  g_assert_true (a->established);
  send_ping (a->conn, 1);
  g_assert_true (wait_server_sides (srv, 2, 1000));
  side_free (q);
  side_free (a);
  server_free (srv);
}

static void
test_handshake_timeout (void)
{
  WzpEndpointSettings st;
  g_autoptr (WzpEndpoint) client = NULL;
  g_autoptr (GSocket) silent = g_socket_new (G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_DATAGRAM,
                                             G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) any = addr ("127.0.0.1:0");
  g_autoptr (GSocketAddress) to = NULL;
  g_autoptr (WzpConnection) conn = NULL;
  Side *s;
  gint64 t0;

  /* a bound socket that never answers, like a relay that is down */
  g_assert_true (g_socket_bind (silent, any, FALSE, NULL));
  to = g_socket_get_local_address (silent, NULL);
  wzp_endpoint_settings_init (&st);
  st.handshake_timeout_ms = 500;
  client = endpoint_new ("127.0.0.1:0", FALSE, &st);
  t0 = g_get_monotonic_time ();
  conn = wzp_endpoint_connect (client, to, "_signal", NULL, NULL);
  s = side_new (conn);
  g_assert_true (run_until (side_closed, s, 5000));
  g_assert_error (s->close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_HANDSHAKE_TIMEOUT);
  g_assert_cmpint (g_get_monotonic_time () - t0, <, 2000000);
  side_free (s);
}

/* A lossy path: the first three datagrams the client (then the server)
 * sends are lost. They go again after the probe timeout of the default
 * initial RTT, doubling each time: from 100 ms, after 0.3, 0.6 and 1.2 s,
 * so the client's 4th try goes at 2.1 s (the server's sooner: the client's
 * probes hurry it). From RFC 9002's 333 ms it went at 1 + 2 + 4 = 7 s; on a
 * path losing 30 %, such runs pushed a relay's answer past the 10 s
 * handshake limit. */
static void
test_lost_first_flights (void)
{
  for (guint server_side = 0; server_side < 2; server_side++) {
    Server *srv = server_new ("127.0.0.1:0", NULL);
    g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
    g_autoptr (GSocketAddress) to = endpoint_addr (srv->ep, "127.0.0.1");
    g_autoptr (WzpConnection) conn = NULL;
    guint drop = 3;
    gint64 t0, elapsed;
    Side *c;

    wzp_endpoint_set_test_filter (server_side ? srv->ep : client, drop_next_sent, &drop);
    t0 = g_get_monotonic_time ();
    conn = wzp_endpoint_connect (client, to, "_signal", NULL, NULL);
    c = side_new (conn);
    g_assert_true (run_until (side_established, c, 15000));
    elapsed = g_get_monotonic_time () - t0;
    g_test_message ("%s's first 3 datagrams lost: handshake done after %.0f ms",
                    server_side ? "server" : "client", elapsed / 1000.0);
    g_assert_true (c->established);
    g_assert_false (c->closed);
    g_assert_cmpuint (drop, ==, 0);
    g_assert_cmpint (elapsed, <, 3500000);
    wzp_endpoint_set_test_filter (server_side ? srv->ep : client, NULL, NULL);
    side_free (c);
    server_free (srv);
  }
}

static void
test_uni_and_shutdown (void)
{
  Server *srv = server_new ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) client = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  Side *c = dial (client, srv, "127.0.0.1", "version", NULL);
  g_autoptr (GBytes) build = g_bytes_new_static ("9377a90", 7);
  Side *s;

  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);
  g_assert_true (wzp_connection_send_uni (s->conn, build, NULL));
  wait_for (c, 0, 0, 1, 5000);
  g_assert_cmpstr (g_ptr_array_index (c->unis, 0), ==, "9377a90");
  wzp_endpoint_shutdown (srv->ep, 0, "shutdown");
  g_assert_true (run_until (side_closed, c, 5000));
  g_assert_nonnull (strstr (c->close_error->message, "shutdown"));
  side_free (c);
  server_free (srv);
}

/* The endpoint's own socket, found among this process's descriptors by
 * its bound address. */
static int
endpoint_fd (WzpEndpoint *ep, int family)
{
  for (int fd = 0; fd < 1024; fd++) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int type;
    socklen_t tlen = sizeof type;

    if (getsockname (fd, (struct sockaddr *) &ss, &len) != 0 || ss.ss_family != family ||
        getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0 || type != SOCK_DGRAM)
      continue;
    if (ntohs (family == AF_INET ? ((struct sockaddr_in *) &ss)->sin_port :
               ((struct sockaddr_in6 *) &ss)->sin6_port) == wzp_endpoint_get_port (ep))
      return fd;
  }
  return -1;
}

/* RFC 9000 §14: the DF bit is set (and IPv6 does not fragment locally). */
static void
test_no_fragments (void)
{
  g_autoptr (WzpEndpoint) v4 = endpoint_new ("127.0.0.1:0", FALSE, NULL);
  g_autoptr (GSocket) probe = g_socket_new (G_SOCKET_FAMILY_IPV6, G_SOCKET_TYPE_DATAGRAM,
                                            G_SOCKET_PROTOCOL_UDP, NULL);
  g_autoptr (GSocketAddress) a = addr ("[::1]:0");
  int fd = endpoint_fd (v4, AF_INET), val = -1;
  socklen_t len = sizeof val;

  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (getsockopt (fd, IPPROTO_IP, IP_MTU_DISCOVER, &val, &len), ==, 0);
  g_assert_cmpint (val, ==, IP_PMTUDISC_PROBE);
  if (probe == NULL || !g_socket_bind (probe, a, FALSE, NULL)) {
    g_test_message ("no IPv6 loopback on this machine: IPv4 checked only");
    return;
  }
  {
    g_autoptr (WzpEndpoint) v6 = endpoint_new ("[::1]:0", FALSE, NULL);

    fd = endpoint_fd (v6, AF_INET6);
    g_assert_cmpint (fd, >=, 0);
    g_assert_cmpint (getsockopt (fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &val, &len), ==, 0);
    g_assert_cmpint (val, ==, IPV6_PMTUDISC_PROBE);
    g_assert_cmpint (getsockopt (fd, IPPROTO_IP, IP_MTU_DISCOVER, &val, &len), ==, 0);
    g_assert_cmpint (val, ==, IP_PMTUDISC_PROBE);
  }
}

/* Sends @n numbered datagrams from @first, @per_ms of them every
 * millisecond, running the loop in between. */
static void
send_paced (Side *c, guint64 first, guint n, guint per_ms)
{
  gint64 next = g_get_monotonic_time ();

  for (guint i = 0; i < n;) {
    if (g_get_monotonic_time () >= next) {
      for (guint k = 0; k < per_ms && i < n; k++, i++)
        send_seq_datagram (c->conn, first + i, 100);
      next += 1000;
    }
    g_main_context_iteration (NULL, FALSE);
  }
}

static guint64
rx_holds (WzpEndpoint *ep)
{
  WzpEndpointStats st;

  wzp_endpoint_get_stats (ep, &st);
  return st.rx_holds;
}

/* The receive hold (WzpEndpointSettings.rx_hold_us): a quiet endpoint reads
 * each datagram as it comes; under load it leaves the socket alone for the
 * hold after reading it empty, and gathers what came meanwhile; when the
 * load stops it goes back to reading at once. Nothing is lost or reordered,
 * and an endpoint with the hold off never holds. */
static void
test_rx_hold (void)
{
  WzpEndpointSettings ss, cs;
  Server *srv;
  WzpEndpoint *client;
  WzpEndpointStats st;
  Side *c, *s;
  guint64 before;

  wzp_endpoint_settings_init (&ss);
  ss.rx_hold_us = 2000;
  wzp_endpoint_settings_init (&cs);
  cs.rx_hold_us = 0;
  cs.datagram_max_wait_ms = 0;          /* every datagram counted, as above */
  srv = server_new ("127.0.0.1:0", &ss);
  client = endpoint_new ("127.0.0.1:0", FALSE, &cs);
  c = dial (client, srv, "127.0.0.1", "room", NULL);
  g_assert_true (wait_server_sides (srv, 1, 5000));
  s = g_ptr_array_index (srv->sides, 0);

  /* quiet: 50 a second, fewer than two per hold */
  for (guint i = 0; i < 20; i++) {
    send_seq_datagram (c->conn, i, 100);
    iterate_ms (20);
  }
  wait_for (s, 0, 20, 0, 5000);
  g_assert_cmpuint (rx_holds (srv->ep), ==, 0);

  /* busy: 5,000 a second, ten per hold */
  send_paced (c, 20, 3000, 5);
  wait_for (s, 0, 3020, 0, 5000);
  g_assert_true (s->in_order);
  g_assert_cmpuint (rx_holds (srv->ep), >, 50);
  wzp_endpoint_get_stats (srv->ep, &st);
  g_test_message ("%" G_GUINT64_FORMAT " holds, %" G_GUINT64_FORMAT " packets in %" G_GUINT64_FORMAT
                  " reads", st.rx_holds, st.packets_received, st.rx_wakeups);
  /* in batches: five come each millisecond, so reading at once gets at
   * most five a read, holding about ten */
  g_assert_cmpuint (st.rx_wakeups * 6, <, st.packets_received);

  /* quiet again: once the busy tenth of a second is past, no more holds */
  iterate_ms (300);
  before = rx_holds (srv->ep);
  for (guint i = 0; i < 10; i++) {
    send_seq_datagram (c->conn, 3020 + i, 100);
    iterate_ms (20);
  }
  wait_for (s, 0, 3030, 0, 5000);
  g_assert_true (s->in_order);
  g_assert_cmpuint (rx_holds (srv->ep), ==, before);
  g_assert_cmpuint (rx_holds (client), ==, 0);

  side_free (c);
  server_free (srv);
  wzp_endpoint_shutdown (client, 0, "done");
  g_object_unref (client);
}

static void
test_address_strings (void)
{
  const gchar *ok[] = { "127.0.0.1:4433", "[::1]:4433", "[2001:db8::1]:1", "0.0.0.0:0" };
  const gchar *bad[] = { "", "127.0.0.1", "127.0.0.1:65536", "localhost:4433", "[::1:4433", "::1:4433x" };

  for (guint i = 0; i < G_N_ELEMENTS (ok); i++) {
    g_autoptr (GSocketAddress) a = wzp_socket_address_parse (ok[i], NULL);
    g_autofree gchar *back = wzp_socket_address_to_string (a);
    g_assert_cmpstr (back, ==, ok[i]);
  }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) error = NULL;
    g_assert_null (wzp_socket_address_parse (bad[i], &error));
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/quic/handshake-sni", test_handshake_sni);
  g_test_add_func ("/quic/ipv6", test_ipv6);
  g_test_add_func ("/quic/no-sni-and-pins", test_no_sni_and_pins);
  g_test_add_func ("/quic/many-datagrams", test_many_datagrams);
  g_test_add_func ("/quic/key-update", test_key_update);
  g_test_add_func ("/quic/post-handshake-tls", test_post_handshake_tls);
  g_test_add_func ("/quic/send-queue-bound", test_send_queue_bound);
  g_test_add_func ("/quic/send-max-wait", test_send_max_wait);
  g_test_add_func ("/quic/ack-hold", test_ack_hold);
  g_test_add_func ("/quic/many-signals", test_many_signals);
  g_test_add_func ("/quic/bad-streams", test_bad_streams);
  g_test_add_func ("/quic/client-and-server-one-socket", test_client_and_server_one_socket);
  g_test_add_func ("/quic/many-connections", test_many_connections);
  g_test_add_func ("/quic/garbage-flood", test_garbage_flood);
  g_test_add_func ("/quic/idle-and-keepalive", test_idle_and_keepalive);
  g_test_add_func ("/quic/handshake-timeout", test_handshake_timeout);
  g_test_add_func ("/quic/lost-first-flights", test_lost_first_flights);
  g_test_add_func ("/quic/uni-and-shutdown", test_uni_and_shutdown);
  g_test_add_func ("/quic/address-strings", test_address_strings);
  g_test_add_func ("/quic/no-fragments", test_no_fragments);
  g_test_add_func ("/quic/rx-hold", test_rx_hold);
  return g_test_run ();
}
