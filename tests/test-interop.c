/* wzp-quic against an independent QUIC stack: quinn/rustls, the family
 * upstream WZP is built on (tests/quinn-peer). Both directions: our client
 * with a quinn server (ECDSA P-256 certificate, as upstream apps use), and a
 * quinn client with our server (Ed25519 certificate, as relays use). */
#include <string.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "wzp-identity.h"
#include "wzp-quic.h"

static const gchar *peer_path;

typedef struct {
  gboolean established, closed;
  GError *close_error;
  gchar *signal;
  guint n_signals;
  guint datagrams;
  WzpConnection *conn;
} Peer;

static void
on_established (WzpConnection *c, Peer *p)
{
  p->established = TRUE;
}

static void
on_closed (WzpConnection *c, const GError *e, Peer *p)
{
  p->closed = TRUE;
  p->close_error = g_error_copy (e);
}

static void
on_signal (WzpConnection *c, const WzpSignal *msg, Peer *p)
{
  g_free (p->signal);
  p->signal = wzp_signal_to_json (msg, NULL, NULL);
  p->n_signals++;
}

static void
on_datagram (WzpConnection *c, const guint8 *d, gsize len, gpointer data)
{
  ((Peer *) data)->datagrams++;
}

static void
watch (Peer *p, WzpConnection *conn)
{
  p->conn = g_object_ref (conn);
  g_signal_connect (conn, "established", G_CALLBACK (on_established), p);
  g_signal_connect (conn, "closed", G_CALLBACK (on_closed), p);
  g_signal_connect (conn, "signal", G_CALLBACK (on_signal), p);
  wzp_connection_set_datagram_handler (conn, on_datagram, p, NULL);
}

static void
peer_clear (Peer *p)
{
  if (p->conn) {
    g_signal_handlers_disconnect_by_data (p->conn, p);
    wzp_connection_set_datagram_handler (p->conn, NULL, NULL, NULL);
    g_object_unref (p->conn);
  }
  g_clear_error (&p->close_error);
  g_free (p->signal);
}

typedef gboolean (*Pred) (Peer *p);

static gboolean
run_until (Pred pred, Peer *p, guint ms)
{
  gint64 end = g_get_monotonic_time () + ms * 1000;

  while (!pred (p) && g_get_monotonic_time () < end) {
    g_main_context_iteration (NULL, FALSE);
    g_usleep (200);
  }
  return pred (p);
}

static gboolean is_established (Peer *p) { return p->established || p->closed; }
static gboolean has_signal (Peer *p) { return p->signal != NULL || p->closed; }
static gboolean has_datagrams (Peer *p) { return p->datagrams >= 100 || p->closed; }
static gboolean is_closed (Peer *p) { return p->closed; }
static gboolean has_two_signals (Peer *p) { return p->n_signals >= 2 || p->closed; }

/* The end of the exchange: both sides say on a stream that they have every
 * datagram. The client speaks first and closes last, so the server has read
 * everything before the close. */
static void
finish_exchange (Peer *p, gboolean client)
{
  g_autoptr (WzpSignal) bye = wzp_signal_new_hangup (WZP_HANGUP_NORMAL, NULL);

  if (client)
    g_assert_true (wzp_connection_send_signal (p->conn, bye, NULL));
  g_assert_true (run_until (has_two_signals, p, 10000));
  g_assert_cmpstr (p->signal, ==, "{\"Hangup\":{\"reason\":\"Normal\"}}");
  if (!client)
    g_assert_true (wzp_connection_send_signal (p->conn, bye, NULL));
}
static gboolean has_conn (Peer *p) { return p->conn != NULL; }

static void
send_datagrams (WzpConnection *c)
{
  guint8 buf[100] = { 0 };

  for (guint64 i = 0; i < 100; i++) {
    g_autoptr (GError) error = NULL;
    memcpy (buf, &i, 8);
    g_assert_true (wzp_connection_send_datagram (c, buf, sizeof buf, &error));
    g_assert_no_error (error);
  }
}

static void
send_ping (WzpConnection *c, WzpSignalType type, guint64 t)
{
  g_autoptr (WzpSignal) m = wzp_signal_new (type);
  g_autoptr (GError) error = NULL;

  m->ping.timestamp_ms = t;
  g_assert_true (wzp_connection_send_signal (c, m, &error));
  g_assert_no_error (error);
}

/* An ECDSA P-256 self-signed certificate and PKCS#8 key, as DER files. */
static void
make_p256 (const gchar *cert_path, const gchar *key_path, gchar fp[WZP_TLS_FINGERPRINT_STRLEN])
{
  EVP_PKEY *pkey = EVP_EC_gen ("P-256");
  X509 *x = X509_new ();
  PKCS8_PRIV_KEY_INFO *p8;
  guint8 *der = NULL;
  int len;

  g_assert_nonnull (pkey);
  X509_set_version (x, 2);
  ASN1_INTEGER_set (X509_get_serialNumber (x), 1);
  X509_gmtime_adj (X509_getm_notBefore (x), -3600);
  X509_gmtime_adj (X509_getm_notAfter (x), 86400);
  X509_NAME_add_entry_by_txt (X509_get_subject_name (x), "CN", MBSTRING_ASC,
                              (const guint8 *) "localhost", -1, -1, 0);
  X509_set_issuer_name (x, X509_get_subject_name (x));
  X509_set_pubkey (x, pkey);
  g_assert_cmpint (X509_sign (x, pkey, EVP_sha256 ()), >, 0);
  len = i2d_X509 (x, &der);
  g_assert_true (g_file_set_contents (cert_path, (const gchar *) der, len, NULL));
  wzp_tls_fingerprint (der, (gsize) len, fp);
  OPENSSL_free (der);
  der = NULL;
  p8 = EVP_PKEY2PKCS8 (pkey);
  len = i2d_PKCS8_PRIV_KEY_INFO (p8, &der);
  g_assert_true (g_file_set_contents (key_path, (const gchar *) der, len, NULL));
  OPENSSL_free (der);
  PKCS8_PRIV_KEY_INFO_free (p8);
  X509_free (x);
  EVP_PKEY_free (pkey);
}

static GSubprocess *
spawn_peer (GInputStream **out, const gchar *const *argv)
{
  g_autoptr (GError) error = NULL;
  GSubprocess *p = g_subprocess_newv (argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &error);

  g_assert_no_error (error);
  *out = g_subprocess_get_stdout_pipe (p);
  return p;
}

static gchar *
finish_peer (GSubprocess *p)
{
  g_autofree gchar *out = NULL;
  g_autoptr (GError) error = NULL;

  g_subprocess_communicate_utf8 (p, NULL, NULL, &out, NULL, &error);
  g_assert_no_error (error);
  g_test_message ("quinn peer: %s", out);
  g_assert_true (g_subprocess_get_if_exited (p));
  if (g_subprocess_get_exit_status (p) != 0)
    g_error ("quinn peer failed: %s", out);
  return g_strdup (out);
}

static void
test_our_client_quinn_server (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-interop-XXXXXX", NULL);
  g_autofree gchar *cert = g_build_filename (dir, "cert.der", NULL);
  g_autofree gchar *key = g_build_filename (dir, "key.der", NULL);
  gchar fp[WZP_TLS_FINGERPRINT_STRLEN];
  const gchar *argv[] = { peer_path, "server", cert, key, NULL };
  g_autoptr (GSubprocess) proc = NULL;
  g_autoptr (GDataInputStream) lines = NULL;
  g_autofree gchar *line = NULL, *target = NULL, *result = NULL;
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  g_autoptr (GSocketAddress) to = NULL;
  g_autoptr (WzpEndpoint) ep = NULL;
  g_autoptr (WzpConnection) conn = NULL;
  GInputStream *out;
  Peer p = { 0 };

  if (peer_path == NULL) {
    g_test_skip ("the quinn peer is not built: cargo is not installed");
    return;
  }
  make_p256 (cert, key, fp);
  proc = spawn_peer (&out, argv);
  lines = g_data_input_stream_new (out);
  line = g_data_input_stream_read_line (lines, NULL, NULL, NULL);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "LISTEN "));
  target = g_strdup_printf ("127.0.0.1:%s", line + 7);
  to = wzp_socket_address_parse (target, NULL);
  ep = wzp_endpoint_new (any, NULL, NULL, NULL);
  conn = wzp_endpoint_connect (ep, to, "_signal", fp, NULL);
  watch (&p, conn);
  g_assert_true (run_until (is_established, &p, 10000));
  g_assert_false (p.closed);
  /* pinned to the P-256 certificate the quinn server presents */
  g_assert_cmpstr (wzp_connection_get_peer_fingerprint (conn), ==, fp);
  send_ping (conn, WZP_SIGNAL_PING, 1);
  g_assert_true (run_until (has_signal, &p, 10000));
  g_assert_cmpstr (p.signal, ==, "{\"Pong\":{\"timestamp_ms\":2}}");
  send_datagrams (conn);
  g_assert_true (run_until (has_datagrams, &p, 10000));
  g_assert_cmpuint (p.datagrams, ==, 100);
  finish_exchange (&p, TRUE);
  wzp_connection_close (conn, 0, "done");
  /* let the close go out, then wait for the peer's verdict */
  while (g_main_context_iteration (NULL, FALSE));
  result = finish_peer (proc);
  g_assert_nonnull (strstr (result, "OK sni=_signal close=done"));
  peer_clear (&p);
  g_unlink (cert);
  g_unlink (key);
  g_rmdir (dir);
}

static void
on_incoming (WzpEndpoint *ep, WzpConnection *conn, Peer *p)
{
  watch (p, conn);
  p->established = TRUE;
}

static void
test_quinn_client_our_server (void)
{
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  g_autoptr (WzpEndpoint) ep = wzp_endpoint_new (any, NULL, NULL, NULL);
  g_autoptr (GSubprocess) proc = NULL;
  g_autofree gchar *target = NULL, *result = NULL;
  guint8 seed[32];
  const gchar *argv[5];
  GInputStream *out;
  Peer p = { 0 };

  if (peer_path == NULL) {
    g_test_skip ("the quinn peer is not built: cargo is not installed");
    return;
  }
  memset (seed, 0x2a, sizeof seed);
  g_assert_true (wzp_endpoint_listen (ep, seed, NULL));
  g_signal_connect (ep, "incoming", G_CALLBACK (on_incoming), &p);
  target = g_strdup_printf ("127.0.0.1:%u", wzp_endpoint_get_port (ep));
  argv[0] = peer_path;
  argv[1] = "client";
  argv[2] = target;
  argv[3] = "_signal";
  argv[4] = NULL;
  proc = spawn_peer (&out, argv);
  g_assert_true (run_until (has_conn, &p, 20000));
  g_assert_cmpstr (wzp_connection_get_sni (p.conn), ==, "_signal");
  g_assert_true (run_until (has_signal, &p, 10000));
  g_assert_cmpstr (p.signal, ==, "{\"Ping\":{\"timestamp_ms\":1}}");
  send_ping (p.conn, WZP_SIGNAL_PONG, 2);
  send_datagrams (p.conn);
  g_assert_true (run_until (has_datagrams, &p, 10000));
  g_assert_cmpuint (p.datagrams, ==, 100);
  finish_exchange (&p, FALSE);
  g_assert_true (run_until (is_closed, &p, 10000));
  g_assert_error (p.close_error, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PEER_CLOSED);
  g_assert_nonnull (strstr (p.close_error->message, "\"done\""));
  result = finish_peer (proc);
  g_assert_nonnull (strstr (result, "OK client exchange complete"));
  g_signal_handlers_disconnect_by_data (ep, &p);
  peer_clear (&p);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  peer_path = g_getenv ("WZP_QUINN_PEER");
  if (peer_path && !g_file_test (peer_path, G_FILE_TEST_IS_EXECUTABLE))
    peer_path = NULL;
  g_test_add_func ("/interop/our-client-quinn-server", test_our_client_quinn_server);
  g_test_add_func ("/interop/quinn-client-our-server", test_quinn_client_our_server);
  return g_test_run ();
}
