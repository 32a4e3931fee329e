/* Token validation over HTTP with libsoup (see auth.h). */
#define G_LOG_DOMAIN "wzp-relay"

#include "auth.h"

#include <json-glib/json-glib.h>
#include <string.h>
#include <libsoup/soup.h>

struct _WzpAuth {
  SoupSession *session;
  gchar *url;
};

typedef struct {
  SoupMessage *msg;
  WzpAuthDone done;
  gpointer user_data;
} Request;

WzpAuth *
wzp_auth_new (const gchar *url, guint timeout_s, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, error);
  WzpAuth *a;

  if (uri == NULL)
    return NULL;
  if (g_strcmp0 (g_uri_get_scheme (uri), "http") != 0 && g_strcmp0 (g_uri_get_scheme (uri), "https") != 0) {
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                 "%s: the auth URL must be http:// or https://", url);
    return NULL;
  }
  a = g_new0 (WzpAuth, 1);
  a->url = g_strdup (url);
  a->session = soup_session_new_with_options ("timeout", timeout_s, "idle-timeout", 60, NULL);
  return a;
}

void
wzp_auth_free (WzpAuth *a)
{
  if (a == NULL)
    return;
  soup_session_abort (a->session);
  g_object_unref (a->session);
  g_free (a->url);
  g_free (a);
}

static void
finish (Request *req, gboolean ok, const gchar *fp, const gchar *alias, const gchar *error)
{
  req->done (ok, fp, alias, error, req->user_data);
  g_object_unref (req->msg);
  g_free (req);
}

static void
on_reply (GObject *source, GAsyncResult *res, gpointer data)
{
  Request *req = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) body = soup_session_send_and_read_finish (SOUP_SESSION (source), res, &error);
  g_autoptr (JsonParser) parser = NULL;
  guint status = soup_message_get_status (req->msg);
  JsonNode *root;
  JsonObject *o;
  const gchar *fp, *alias = NULL;
  g_autofree gchar *why = NULL;

  if (body == NULL) {
    why = g_strdup_printf ("auth server: %s", error->message);
    finish (req, FALSE, NULL, NULL, why);
    return;
  }
  if (!SOUP_STATUS_IS_SUCCESSFUL (status)) {
    why = g_strdup_printf ("auth server answered HTTP %u", status);
    finish (req, FALSE, NULL, NULL, why);
    return;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, g_bytes_get_data (body, NULL), (gssize) g_bytes_get_size (body), NULL) ||
      (root = json_parser_get_root (parser)) == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    finish (req, FALSE, NULL, NULL, "auth server answered something that is not a JSON object");
    return;
  }
  o = json_node_get_object (root);
  if (!json_object_has_member (o, "valid") || !JSON_NODE_HOLDS_VALUE (json_object_get_member (o, "valid")) ||
      json_node_get_value_type (json_object_get_member (o, "valid")) != G_TYPE_BOOLEAN ||
      !json_object_get_boolean_member (o, "valid")) {
    finish (req, FALSE, NULL, NULL, "token refused");
    return;
  }
  fp = json_object_has_member (o, "fingerprint") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (o, "fingerprint")) &&
      json_node_get_value_type (json_object_get_member (o, "fingerprint")) == G_TYPE_STRING ?
      json_object_get_string_member (o, "fingerprint") : NULL;
  if (fp == NULL || *fp == '\0' || !g_utf8_validate (fp, -1, NULL) || strlen (fp) > 256) {
    finish (req, FALSE, NULL, NULL, "auth server gave no fingerprint");
    return;
  }
  if (json_object_has_member (o, "alias") &&
      JSON_NODE_HOLDS_VALUE (json_object_get_member (o, "alias")) &&
      json_node_get_value_type (json_object_get_member (o, "alias")) == G_TYPE_STRING)
    alias = json_object_get_string_member (o, "alias");
  if (alias && !g_utf8_validate (alias, -1, NULL))
    alias = NULL;
  finish (req, TRUE, fp, alias, NULL);
}

void
wzp_auth_validate (WzpAuth *a, const gchar *token, GCancellable *cancellable, WzpAuthDone done,
                   gpointer user_data)
{
  Request *req = g_new0 (Request, 1);
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autoptr (GBytes) body = NULL;
  gchar *json;
  gsize len;

  req->done = done;
  req->user_data = user_data;
  req->msg = soup_message_new (SOUP_METHOD_POST, a->url);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "token");
  json_builder_add_string_value (b, token);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json = json_generator_to_data (gen, &len);
  body = g_bytes_new_take (json, len);
  soup_message_set_request_body_from_bytes (req->msg, "application/json", body);
  soup_session_send_and_read_async (a->session, req->msg, G_PRIORITY_DEFAULT, cancellable,
                                    on_reply, req);
}
