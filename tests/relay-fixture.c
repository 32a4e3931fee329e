/* A real wzp-relay process for tests (see relay-fixture.h). */
#include "relay-fixture.h"

#include <signal.h>
#include <sys/prctl.h>
#include <glib/gstdio.h>

#include <string.h>
#include <json-glib/json-glib.h>
#include <libsoup/soup.h>

#include "wzp-quic.h"

static void
die_with_parent (gpointer data)
{
  prctl (PR_SET_PDEATHSIG, SIGTERM);
}

/* Starts the relay of @r listening on @listen, reading its banner. */
static void
relay_spawn (Relay *r, const gchar *relay_path, const gchar *listen, const gchar *const *extra)
{
  g_autoptr (GPtrArray) argv = g_ptr_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree gchar *id = g_build_filename (r->dir, "relay.seed", NULL);
  g_autoptr (GDataInputStream) out = NULL;

  g_ptr_array_add (argv, (gpointer) relay_path);
  g_ptr_array_add (argv, "--listen");
  g_ptr_array_add (argv, (gpointer) listen);
  g_ptr_array_add (argv, "--identity");
  g_ptr_array_add (argv, id);
  g_ptr_array_add (argv, "--metrics");
  g_ptr_array_add (argv, "0");
  for (guint i = 0; extra && extra[i]; i++)
    g_ptr_array_add (argv, (gpointer) extra[i]);
  g_ptr_array_add (argv, NULL);
  {
    g_autoptr (GSubprocessLauncher) l = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDOUT_PIPE);
    /* a test that aborts must not leave its relay behind */
    g_subprocess_launcher_set_child_setup (l, die_with_parent, NULL, NULL);
    r->proc = g_subprocess_launcher_spawnv (l, (const gchar *const *) argv->pdata, &error);
  }
  g_assert_no_error (error);
  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (r->proc));
  g_clear_pointer (&r->addr, g_free);
  g_clear_pointer (&r->tls_fp, g_free);
  g_clear_pointer (&r->fingerprint, g_free);
  g_clear_pointer (&r->metrics_url, g_free);
  for (;;) {
    g_autofree gchar *line = g_data_input_stream_read_line (out, NULL, NULL, NULL);
    g_assert_nonnull (line);
    if (g_str_has_prefix (line, "listening on "))
      r->addr = g_strdup (line + 13);
    else if (g_str_has_prefix (line, "TLS fingerprint: "))
      r->tls_fp = g_strdup (line + 17);
    else if (g_str_has_prefix (line, "identity fingerprint: "))
      r->fingerprint = g_strdup (line + 22);
    else if (g_str_has_prefix (line, "metrics: ")) {
      r->metrics_url = g_strdup (line + 9);
      break;
    }
  }
  g_clear_object (&r->sockaddr);
  r->sockaddr = wzp_socket_address_parse (r->addr, NULL);
  g_assert_nonnull (r->sockaddr);
}

Relay *
relay_start (const gchar *relay_path, const gchar *const *extra)
{
  Relay *r = g_new0 (Relay, 1);

  r->dir = g_dir_make_tmp ("wzp-relay-test-XXXXXX", NULL);
  relay_spawn (r, relay_path, "127.0.0.1:0", extra);
  return r;
}

void
relay_restart (Relay *r, const gchar *relay_path)
{
  g_autofree gchar *addr = g_strdup (r->addr);

  g_subprocess_send_signal (r->proc, SIGTERM);
  g_subprocess_wait (r->proc, NULL, NULL);
  g_assert_cmpint (g_subprocess_get_exit_status (r->proc), ==, 0);
  g_clear_object (&r->proc);
  relay_spawn (r, relay_path, addr, NULL);
  g_assert_cmpstr (r->addr, ==, addr);
}

void
relay_free (Relay *r)
{
  g_autofree gchar *id = g_build_filename (r->dir, "relay.seed", NULL);

  g_clear_object (&r->proc);
  g_unlink (id);
  g_rmdir (r->dir);
  g_free (r->dir);
  g_free (r->addr);
  g_free (r->tls_fp);
  g_free (r->fingerprint);
  g_free (r->metrics_url);
  g_object_unref (r->sockaddr);
  g_free (r);
}

void
relay_stop (Relay *r)
{
  g_subprocess_send_signal (r->proc, SIGTERM);
  g_subprocess_wait (r->proc, NULL, NULL);
  g_assert_true (g_subprocess_get_if_exited (r->proc));
  g_assert_cmpint (g_subprocess_get_exit_status (r->proc), ==, 0);
  relay_free (r);
}

struct _AuthStub {
  SoupServer *server;
};

static void
stub_handler (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
              gpointer data)
{
  SoupMessageBody *body = soup_server_message_get_request_body (msg);
  g_autoptr (GBytes) bytes = soup_message_body_flatten (body);
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autofree gchar *reply = NULL;
  const gchar *token = "";

  if (json_parser_load_from_data (parser, g_bytes_get_data (bytes, NULL), (gssize) g_bytes_get_size (bytes), NULL))
    token = json_object_get_string_member (json_node_get_object (json_parser_get_root (parser)), "token");
  reply = g_str_has_prefix (token, "good-") ?
      g_strdup_printf ("{\"valid\":true,\"fingerprint\":\"auth-%s\",\"alias\":null}", token + 5) :
      g_strdup ("{\"valid\":false}");
  soup_server_message_set_status (msg, 200, NULL);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, reply, strlen (reply));
}

AuthStub *
auth_stub_start (gchar **url)
{
  AuthStub *a = g_new0 (AuthStub, 1);
  g_autoptr (GSocketAddress) any = wzp_socket_address_parse ("127.0.0.1:0", NULL);
  GSList *listeners;
  g_autoptr (GSocketAddress) where = NULL;
  g_autofree gchar *text = NULL;

  a->server = soup_server_new (NULL, NULL);
  soup_server_add_handler (a->server, "/validate", stub_handler, NULL, NULL);
  g_assert_true (soup_server_listen (a->server, any, 0, NULL));
  listeners = soup_server_get_listeners (a->server);
  where = g_socket_get_local_address (listeners->data, NULL);
  g_slist_free (listeners);
  text = wzp_socket_address_to_string (where);
  *url = g_strdup_printf ("http://%s/validate", text);
  return a;
}

void
auth_stub_stop (AuthStub *a)
{
  soup_server_disconnect (a->server);
  g_object_unref (a->server);
  g_free (a);
}

gchar *
relay_fetch_metrics (Relay *r)
{
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", r->metrics_url);
  g_autoptr (GBytes) body = soup_session_send_and_read (session, msg, NULL, NULL);
  gsize len;
  const gchar *data;

  if (body == NULL)
    return NULL;
  data = g_bytes_get_data (body, &len);
  return g_strndup (data, len);
}
