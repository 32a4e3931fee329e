/* Properties and the session registry shared by wzpsrc and wzpsink. */
#include "gstwzpcommon.h"

#include <string.h>
#include <gst/base/gstbasesrc.h>

/* the call's progress, step by step (GST_DEBUG=wzpsession:5, or wzp*:5) */
GST_DEBUG_CATEGORY (gst_wzp_session_debug);

void
gst_wzp_debug_init (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    GST_DEBUG_CATEGORY_INIT (gst_wzp_session_debug, "wzpsession", 0,
                             "WarzonePhone calls: signalling, race, reports, path, media, end");
    g_once_init_leave (&done, 1);
  }
}

static const GEnumValue encryption_values[] = {
  { GST_WZP_ENCRYPTION_AUTO, "Seal media end to end when the other side can", "auto" },
  { GST_WZP_ENCRYPTION_OFF, "Never seal media end to end", "off" },
  { GST_WZP_ENCRYPTION_REQUIRED, "Refuse a call whose media cannot be sealed end to end", "required" },
  { 0, NULL, NULL },
};

GType
gst_wzp_encryption_get_type (void)
{
  static gsize type = 0;

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static ("GstWzpEncryption", encryption_values));
  return type;
}

void
gst_wzp_install_properties (GObjectClass *klass)
{
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY;

  g_object_class_install_property (klass, GST_WZP_PROP_RELAY,
      g_param_spec_string ("relay", "Relay", "Relay address: host:port, a.b.c.d:port or [v6]:port", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_IDENTITY,
      g_param_spec_string ("identity", "Identity",
          "Seed file or 64 hex digits; unset: a fresh identity (a missing file is an error "
          "unless create-identity=true)", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_CREATE_IDENTITY,
      g_param_spec_boolean ("create-identity", "Create identity",
          "Create the identity seed file (mode 0600) when it does not exist", FALSE, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_ALIAS,
      g_param_spec_string ("alias", "Alias", "Display name shown to the other side", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_CALL,
      g_param_spec_string ("call", "Call", "Fingerprint to call once registered", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_AUTO_ANSWER,
      g_param_spec_boolean ("auto-answer", "Auto-answer", "Accept incoming calls", FALSE, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_ROOM,
      g_param_spec_string ("room", "Room", "Join this group room instead of calling", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_RELAY_FINGERPRINT,
      g_param_spec_string ("relay-fingerprint", "Relay fingerprint",
          "Expected TLS fingerprint of the relay (pin); unset: any", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_DIRECT,
      g_param_spec_boolean ("direct", "Direct", "Race a direct path to the peer", TRUE, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_TOKEN,
      g_param_spec_string ("token", "Token",
          "Authentication token for relays that validate tokens (--auth-url)", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_URI,
      g_param_spec_string ("uri", "URI", "wzp://host:port/call/<fingerprint> or "
          "wzp://host:port/room/<name>, query parameters for the other properties", NULL, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_MEDIA_TIMEOUT,
      g_param_spec_uint ("media-timeout", "Media timeout",
          "End the call when the other side's media stops this long, in ms (0: never)",
          0, 600000, GST_WZP_MEDIA_TIMEOUT_DEFAULT_MS, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_HANDSHAKE_TIMEOUT,
      g_param_spec_uint ("handshake-timeout", "Handshake timeout",
          "Give up reaching the relay (or the peer's direct path) after this long, in ms",
          100, 600000, WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_RING_TIMEOUT,
      g_param_spec_uint ("ring-timeout", "Ring timeout",
          "End a call we place that is not answered this long, in ms (0: the relay's limit)",
          0, 600000, WZP_SESSION_RING_TIMEOUT_DEFAULT_MS, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_ENCRYPTION,
      g_param_spec_enum ("encryption", "Encryption", "End-to-end media encryption: auto (when "
          "the other side can, as gst-wzp can), required (a call that cannot be sealed ends with "
          "an error, an incoming one is declined), off", gst_wzp_encryption_get_type (),
          GST_WZP_ENCRYPTION_AUTO, rw));
  g_object_class_install_property (klass, GST_WZP_PROP_FINGERPRINT,
      g_param_spec_string ("fingerprint", "Fingerprint", "Our identity's fingerprint, what a caller "
          "dials (with a fresh identity: once PLAYING)", NULL,
          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
  g_object_class_install_property (klass, GST_WZP_PROP_SESSION,
      g_param_spec_string ("session", "Session",
          "Elements with the same session name in one process share one call", NULL, rw));
}

static void
answer_cb (GstElement *element, gpointer offset)
{
  WzpSession *session = G_STRUCT_MEMBER (WzpSession *, element, GPOINTER_TO_SIZE (offset));

  if (session)
    wzp_session_answer (session, TRUE);
}

static void
reject_cb (GstElement *element, gpointer offset)
{
  WzpSession *session = G_STRUCT_MEMBER (WzpSession *, element, GPOINTER_TO_SIZE (offset));

  if (session)
    wzp_session_answer (session, FALSE);
}

void
gst_wzp_install_actions (GObjectClass *klass, gsize session_offset)
{
  /* "answer" / "reject": answer the call announced by a wzp-incoming-call
   * message (when auto-answer is off). Any thread. */
  g_signal_newv ("answer", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      g_cclosure_new (G_CALLBACK (answer_cb), GSIZE_TO_POINTER (session_offset), NULL),
      NULL, NULL, NULL, G_TYPE_NONE, 0, NULL);
  g_signal_newv ("reject", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST | G_SIGNAL_ACTION,
      g_cclosure_new (G_CALLBACK (reject_cb), GSIZE_TO_POINTER (session_offset), NULL),
      NULL, NULL, NULL, G_TYPE_NONE, 0, NULL);
}

void
gst_wzp_settings_init (GstWzpSettings *s)
{
  memset (s, 0, sizeof *s);
  s->direct = TRUE;
  s->media_timeout_ms = GST_WZP_MEDIA_TIMEOUT_DEFAULT_MS;
  s->handshake_timeout_ms = WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS;
  s->ring_timeout_ms = WZP_SESSION_RING_TIMEOUT_DEFAULT_MS;
}

void
gst_wzp_settings_clear (GstWzpSettings *s)
{
  g_free (s->relay);
  g_free (s->identity);
  g_free (s->alias);
  g_free (s->call);
  g_free (s->room);
  g_free (s->relay_fingerprint);
  g_free (s->session);
  g_free (s->token);
  memset (s, 0, sizeof *s);
}

static gchar **
string_field (GstWzpSettings *s, guint id)
{
  switch (id) {
    case GST_WZP_PROP_RELAY: return &s->relay;
    case GST_WZP_PROP_IDENTITY: return &s->identity;
    case GST_WZP_PROP_ALIAS: return &s->alias;
    case GST_WZP_PROP_CALL: return &s->call;
    case GST_WZP_PROP_ROOM: return &s->room;
    case GST_WZP_PROP_RELAY_FINGERPRINT: return &s->relay_fingerprint;
    case GST_WZP_PROP_SESSION: return &s->session;
    case GST_WZP_PROP_TOKEN: return &s->token;
    default: return NULL;
  }
}

/* true/yes/1 or false/no/0; anything else is an error that quotes it */
static gboolean
parse_bool (const gchar *uri, const gchar *key, const gchar *v, gboolean *out, GError **error)
{
  if (g_ascii_strcasecmp (v, "true") == 0 || g_strcmp0 (v, "1") == 0 || g_ascii_strcasecmp (v, "yes") == 0)
    *out = TRUE;
  else if (g_ascii_strcasecmp (v, "false") == 0 || g_strcmp0 (v, "0") == 0 || g_ascii_strcasecmp (v, "no") == 0)
    *out = FALSE;
  else {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
                 "%s: %s=\"%s\" is not true or false", uri, key, v);
    return FALSE;
  }
  return TRUE;
}

/* a number of milliseconds from @min to 600000; anything else is an error
 * that quotes it */
static gboolean
parse_ms (const gchar *uri, const gchar *key, const gchar *v, guint min, guint *out, GError **error)
{
  guint64 n;

  if (!g_ascii_string_to_unsigned (v, 10, min, 600000, &n, NULL)) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
                 "%s: %s=\"%s\" is not a number of milliseconds from %u to 600000", uri, key, v, min);
    return FALSE;
  }
  *out = (guint) n;
  return TRUE;
}

gboolean
gst_wzp_settings_set_uri (GstWzpSettings *s, const gchar *uri, GError **error)
{
  g_autoptr (GUri) u = g_uri_parse (uri, G_URI_FLAGS_ENCODED_QUERY, error);
  g_autoptr (GHashTable) params = NULL;
  const gchar *host, *path;
  GHashTableIter it;
  gpointer k, v;

  if (u == NULL)
    return FALSE;
  host = g_uri_get_host (u);
  if (g_strcmp0 (g_uri_get_scheme (u), "wzp") != 0 || host == NULL || g_uri_get_port (u) <= 0) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
                 "%s: expected wzp://host:port/call/<fingerprint> or wzp://host:port/room/<name>", uri);
    return FALSE;
  }
  path = g_uri_get_path (u);
  g_free (s->relay);
  s->relay = g_strdup_printf (strchr (host, ':') ? "[%s]:%d" : "%s:%d", host, g_uri_get_port (u));
  g_clear_pointer (&s->call, g_free);
  g_clear_pointer (&s->room, g_free);
  if (g_str_has_prefix (path, "/call/") && path[6])
    s->call = g_uri_unescape_string (path + 6, NULL);
  else if (g_str_has_prefix (path, "/room/") && path[6])
    s->room = g_uri_unescape_string (path + 6, NULL);
  else if (*path && strcmp (path, "/") != 0) {
    g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
                 "%s: the path must be /call/<fingerprint>, /room/<name> or /", uri);
    return FALSE;
  }
  if (g_uri_get_query (u)) {
    params = g_uri_parse_params (g_uri_get_query (u), -1, "&", G_URI_PARAMS_NONE, error);
    if (params == NULL)
      return FALSE;
    g_hash_table_iter_init (&it, params);
    while (g_hash_table_iter_next (&it, &k, &v)) {
      gchar **field = NULL;
      if (strcmp (k, "identity") == 0) field = &s->identity;
      else if (strcmp (k, "alias") == 0) field = &s->alias;
      else if (strcmp (k, "relay-fingerprint") == 0) field = &s->relay_fingerprint;
      else if (strcmp (k, "session") == 0) field = &s->session;
      else if (strcmp (k, "token") == 0) field = &s->token;
      else if (strcmp (k, "auto-answer") == 0) {
        if (!parse_bool (uri, k, v, &s->auto_answer, error))
          return FALSE;
      } else if (strcmp (k, "direct") == 0) {
        if (!parse_bool (uri, k, v, &s->direct, error))
          return FALSE;
      } else if (strcmp (k, "create-identity") == 0) {
        if (!parse_bool (uri, k, v, &s->create_identity, error))
          return FALSE;
      } else if (strcmp (k, "encryption") == 0) {
        const GEnumValue *ev = NULL;
        for (guint i = 0; encryption_values[i].value_nick && ev == NULL; i++)
          if (strcmp (encryption_values[i].value_nick, v) == 0)
            ev = &encryption_values[i];
        if (ev == NULL) {
          g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI,
                       "%s: encryption=\"%s\" is not auto, required or off", uri, (const gchar *) v);
          return FALSE;
        }
        s->encryption = ev->value;
      } else if (strcmp (k, "media-timeout") == 0) {
        if (!parse_ms (uri, k, v, 0, &s->media_timeout_ms, error))
          return FALSE;
      } else if (strcmp (k, "handshake-timeout") == 0) {
        if (!parse_ms (uri, k, v, 100, &s->handshake_timeout_ms, error))
          return FALSE;
      } else if (strcmp (k, "ring-timeout") == 0) {
        if (!parse_ms (uri, k, v, 0, &s->ring_timeout_ms, error))
          return FALSE;
      } else {
        g_set_error (error, GST_URI_ERROR, GST_URI_ERROR_BAD_URI, "%s: unknown parameter \"%s\"",
                     uri, (const gchar *) k);
        return FALSE;
      }
      if (field) {
        g_free (*field);
        *field = g_strdup (v);
      }
    }
  }
  return TRUE;
}

/* the query parameters of every setting not at its default, so that the URI
 * read back sets what was set */
static void
append_params (GString *u, const GstWzpSettings *s)
{
  gchar media[16], handshake[16], ring[16];
  gchar sep = '?';

  g_snprintf (media, sizeof media, "%u", s->media_timeout_ms);
  g_snprintf (handshake, sizeof handshake, "%u", s->handshake_timeout_ms);
  g_snprintf (ring, sizeof ring, "%u", s->ring_timeout_ms);
  {
    const struct { const gchar *key; const gchar *value; } params[] = {
      { "identity", s->identity }, { "alias", s->alias }, { "relay-fingerprint", s->relay_fingerprint },
      { "session", s->session }, { "token", s->token },
      { "auto-answer", s->auto_answer ? "true" : NULL }, { "direct", s->direct ? NULL : "false" },
      { "create-identity", s->create_identity ? "true" : NULL },
      { "encryption", s->encryption == GST_WZP_ENCRYPTION_AUTO ? NULL :
        s->encryption == GST_WZP_ENCRYPTION_OFF ? "off" : "required" },
      { "media-timeout", s->media_timeout_ms == GST_WZP_MEDIA_TIMEOUT_DEFAULT_MS ? NULL : media },
      { "handshake-timeout",
        s->handshake_timeout_ms == WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS ? NULL : handshake },
      { "ring-timeout", s->ring_timeout_ms == WZP_SESSION_RING_TIMEOUT_DEFAULT_MS ? NULL : ring },
    };

    for (guint i = 0; i < G_N_ELEMENTS (params); i++) {
      g_autofree gchar *esc = NULL;

      if (params[i].value == NULL)
        continue;
      esc = g_uri_escape_string (params[i].value, NULL, FALSE);
      g_string_append_printf (u, "%c%s=%s", sep, params[i].key, esc);
      sep = '&';
    }
  }
}

gchar *
gst_wzp_settings_get_uri (GstWzpSettings *s)
{
  GString *u;

  if (s->relay == NULL)
    return NULL;
  u = g_string_new ("wzp://");
  g_string_append (u, s->relay);
  if (s->call)
    g_string_append_printf (u, "/call/%s", s->call);
  else if (s->room) {
    g_autofree gchar *esc = g_uri_escape_string (s->room, NULL, FALSE);
    g_string_append_printf (u, "/room/%s", esc);
  } else
    g_string_append_c (u, '/');
  append_params (u, s);
  return g_string_free (u, FALSE);
}

static GstURIType
uri_type (GType type)
{
  return g_type_is_a (type, GST_TYPE_BASE_SRC) ? GST_URI_SRC : GST_URI_SINK;
}

static const gchar *const *
uri_protocols (GType type)
{
  static const gchar *const protocols[] = { "wzp", NULL };
  return protocols;
}

static gchar *
uri_get (GstURIHandler *handler)
{
  gchar *uri = NULL;

  g_object_get (handler, "uri", &uri, NULL);
  return uri;
}

static gboolean
uri_set (GstURIHandler *handler, const gchar *uri, GError **error)
{
  GstWzpSettings probe;
  gboolean ok;

  /* validate first, then apply through the property */
  gst_wzp_settings_init (&probe);
  ok = gst_wzp_settings_set_uri (&probe, uri, error);
  gst_wzp_settings_clear (&probe);
  if (ok)
    g_object_set (handler, "uri", uri, NULL);
  return ok;
}

void
gst_wzp_uri_handler_init (gpointer g_iface, gpointer data)
{
  GstURIHandlerInterface *iface = g_iface;

  iface->get_type = uri_type;
  iface->get_protocols = uri_protocols;
  iface->get_uri = uri_get;
  iface->set_uri = uri_set;
}

gboolean
gst_wzp_set_property (GstWzpSettings *s, guint id, const GValue *value)
{
  gchar **f = string_field (s, id);

  if (id == GST_WZP_PROP_URI) {
    g_autoptr (GError) error = NULL;
    if (g_value_get_string (value) && !gst_wzp_settings_set_uri (s, g_value_get_string (value), &error))
      g_warning ("%s", error->message);
    return TRUE;
  }

  if (f) {
    g_free (*f);
    *f = g_value_dup_string (value);
    return TRUE;
  }
  if (id == GST_WZP_PROP_AUTO_ANSWER)
    s->auto_answer = g_value_get_boolean (value);
  else if (id == GST_WZP_PROP_DIRECT)
    s->direct = g_value_get_boolean (value);
  else if (id == GST_WZP_PROP_CREATE_IDENTITY)
    s->create_identity = g_value_get_boolean (value);
  else if (id == GST_WZP_PROP_ENCRYPTION)
    s->encryption = g_value_get_enum (value);
  else if (id == GST_WZP_PROP_MEDIA_TIMEOUT)
    s->media_timeout_ms = g_value_get_uint (value);
  else if (id == GST_WZP_PROP_HANDSHAKE_TIMEOUT)
    s->handshake_timeout_ms = g_value_get_uint (value);
  else if (id == GST_WZP_PROP_RING_TIMEOUT)
    s->ring_timeout_ms = g_value_get_uint (value);
  else
    return FALSE;
  return TRUE;
}

gboolean
gst_wzp_get_property (GstWzpSettings *s, guint id, GValue *value)
{
  gchar **f = string_field (s, id);

  if (id == GST_WZP_PROP_URI) {
    g_value_take_string (value, gst_wzp_settings_get_uri (s));
    return TRUE;
  }
  if (f)
    g_value_set_string (value, *f);
  else if (id == GST_WZP_PROP_AUTO_ANSWER)
    g_value_set_boolean (value, s->auto_answer);
  else if (id == GST_WZP_PROP_DIRECT)
    g_value_set_boolean (value, s->direct);
  else if (id == GST_WZP_PROP_CREATE_IDENTITY)
    g_value_set_boolean (value, s->create_identity);
  else if (id == GST_WZP_PROP_ENCRYPTION)
    g_value_set_enum (value, s->encryption);
  else if (id == GST_WZP_PROP_MEDIA_TIMEOUT)
    g_value_set_uint (value, s->media_timeout_ms);
  else if (id == GST_WZP_PROP_HANDSHAKE_TIMEOUT)
    g_value_set_uint (value, s->handshake_timeout_ms);
  else if (id == GST_WZP_PROP_RING_TIMEOUT)
    g_value_set_uint (value, s->ring_timeout_ms);
  else
    return FALSE;
  return TRUE;
}

static GMutex registry_lock;
static GHashTable *registry;      /* name -> WzpSession* (borrowed; removed on dispose) */

static gboolean
is_hex_seed (const gchar *s)
{
  if (s == NULL || strlen (s) != 64)
    return FALSE;
  for (guint i = 0; i < 64; i++)
    if (!g_ascii_isxdigit (s[i]))
      return FALSE;
  return TRUE;
}

static void
forget (gpointer name, GObject *where_the_object_was)
{
  g_mutex_lock (&registry_lock);
  if (registry && g_hash_table_lookup (registry, name) == (gpointer) where_the_object_was)
    g_hash_table_remove (registry, name);
  g_mutex_unlock (&registry_lock);
  g_free (name);
}

/* Session thread: one bus message per call event, the step name and the
 * event's fields. */
static void
post_event (WzpSession *session, const gchar *step, GVariant *data, GstElement *element)
{
  GstStructure *st = gst_structure_new ("wzp-call-event", "step", G_TYPE_STRING, step, NULL);
  GVariantIter it;
  const gchar *key;
  GVariant *v;

  if (gst_debug_category_get_threshold (gst_wzp_session_debug) >= GST_LEVEL_INFO) {
    g_autofree gchar *text = g_variant_print (data, FALSE);
    GST_CAT_INFO_OBJECT (gst_wzp_session_debug, element, "%s %s", step, text);
  }

  g_variant_iter_init (&it, data);
  while (g_variant_iter_next (&it, "{&sv}", &key, &v)) {
    if (g_variant_is_of_type (v, G_VARIANT_TYPE_BOOLEAN))
      gst_structure_set (st, key, G_TYPE_BOOLEAN, g_variant_get_boolean (v), NULL);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING))
      gst_structure_set (st, key, G_TYPE_STRING, g_variant_get_string (v, NULL), NULL);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_UINT32))
      gst_structure_set (st, key, G_TYPE_UINT, g_variant_get_uint32 (v), NULL);
    else if (g_variant_is_of_type (v, G_VARIANT_TYPE_STRING_ARRAY)) {
      g_autofree const gchar **strv = g_variant_get_strv (v, NULL);
      gst_structure_set (st, key, G_TYPE_STRV, strv, NULL);
    }
    g_variant_unref (v);
  }
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element), st));
  if (strcmp (step, "signal:displaced") == 0) {
    const gchar *reason = "";

    g_variant_lookup (data, "reason", "&s", &reason);
    GST_ELEMENT_WARNING (element, RESOURCE, BUSY,
        ("another process registered this identity on the relay: new calls go to it, not here"),
        ("%s; use one identity in one pipeline", reason));
  }
}

static void
post_incoming (WzpSession *session, const gchar *fp, const gchar *alias, GstElement *element)
{
  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element),
      gst_structure_new ("wzp-incoming-call", "fingerprint", G_TYPE_STRING, fp,
                         "alias", G_TYPE_STRING, alias, NULL)));
}

/* The call ended: a wzp-call-ended message (reason and sentence) for
 * applications, and for anything but a hang-up an error with the code an
 * application can act on and a hint on what to do. */
static void
post_error (WzpSession *session, const GError *e, GstElement *element)
{
  gint code = e->domain == WZP_SESSION_ERROR ? e->code : -1;
  GstResourceError rc = GST_RESOURCE_ERROR_FAILED;
  const gchar *hint = "see the GST_DEBUG=wzp*:5 log for the call's steps";

  gst_element_post_message (element, gst_message_new_element (GST_OBJECT (element),
      gst_structure_new ("wzp-call-ended", "reason", G_TYPE_STRING,
                         code >= 0 ? wzp_session_error_nick (code) : "error",
                         "message", G_TYPE_STRING, e->message, NULL)));
  switch (code) {
    case WZP_SESSION_ERROR_HUNG_UP:
      GST_CAT_INFO_OBJECT (gst_wzp_session_debug, element, "call ended: %s", e->message);
      return;
    case WZP_SESSION_ERROR_RELAY_UNREACHABLE:
      rc = GST_RESOURCE_ERROR_OPEN_READ_WRITE;
      hint = "check that the relay runs and relay= is its address";
      break;
    case WZP_SESSION_ERROR_RELAY_NOT_FOUND:
      rc = GST_RESOURCE_ERROR_NOT_FOUND;
      hint = "check the host name in relay=";
      break;
    case WZP_SESSION_ERROR_NOT_AUTHORIZED:
      rc = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      hint = "check token= and relay-fingerprint=";
      break;
    case WZP_SESSION_ERROR_REGISTRATION:
      rc = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      hint = "the relay refused this identity's registration";
      break;
    case WZP_SESSION_ERROR_PEER_UNREACHABLE:
      rc = GST_RESOURCE_ERROR_NOT_FOUND;
      hint = "check the call= fingerprint, and that the callee is registered on this relay";
      break;
    case WZP_SESSION_ERROR_REJECTED:
      hint = "the other side declined the call";
      break;
    case WZP_SESSION_ERROR_NO_ANSWER:
      hint = "nobody answered: is the callee's pipeline running with auto-answer=true?";
      break;
    case WZP_SESSION_ERROR_BUSY:
      rc = GST_RESOURCE_ERROR_BUSY;
      hint = "the callee is in another call";
      break;
    case WZP_SESSION_ERROR_PEER_LOST:
      rc = GST_RESOURCE_ERROR_READ;
      hint = "the other side vanished or its network dropped (media-timeout)";
      break;
    case WZP_SESSION_ERROR_RELAY_LOST:
    case WZP_SESSION_ERROR_RELAY_ENDED:
      rc = GST_RESOURCE_ERROR_READ;
      hint = "the relay went away during the call";
      break;
    case WZP_SESSION_ERROR_NOT_ENCRYPTED:
      rc = GST_RESOURCE_ERROR_NOT_AUTHORIZED;
      hint = "the other side cannot encrypt end to end; encryption=auto allows a plaintext call";
      break;
    case WZP_SESSION_ERROR_INVALID:
      rc = GST_RESOURCE_ERROR_SETTINGS;
      hint = "check the element's properties";
      break;
    default:
      break;
  }
  gst_element_message_full (element, GST_MESSAGE_ERROR, GST_RESOURCE_ERROR, rc, g_strdup (e->message),
                            g_strdup (hint), __FILE__, GST_FUNCTION, __LINE__);
}

gchar *
gst_wzp_fingerprint (WzpSession *session, const GstWzpSettings *s)
{
  gchar *fp = session ? wzp_session_dup_fingerprint (session) : NULL;
  WzpIdentity *id = NULL;

  if (fp)
    return fp;
  if (is_hex_seed (s->identity))
    id = wzp_identity_new_from_hex (s->identity, NULL);
  else if (s->identity && g_file_test (s->identity, G_FILE_TEST_IS_REGULAR))
    id = wzp_identity_load (s->identity, NULL);
  if (id) {
    fp = g_strdup (wzp_identity_get_fingerprint (id));
    wzp_identity_unref (id);
  }
  return fp;
}

GstFlowReturn
gst_wzp_session_end_flow (WzpSession *session)
{
  return session && wzp_session_get_state (session) == WZP_SESSION_STATE_ENDED ?
      GST_FLOW_EOS : GST_FLOW_OK;
}

/* The merged settings of a session's elements, kept on the session. */
static GstWzpSettings *
merged (WzpSession *session)
{
  return g_object_get_data (G_OBJECT (session), "gst-wzp-settings");
}

static void
merge_settings (GstWzpSettings *into, const GstWzpSettings *from)
{
  gchar **dst[] = { &into->relay, &into->identity, &into->alias, &into->call, &into->room,
    &into->relay_fingerprint, &into->token };
  gchar *const src[] = { from->relay, from->identity, from->alias, from->call, from->room,
    from->relay_fingerprint, from->token };

  for (guint i = 0; i < G_N_ELEMENTS (dst); i++)
    if (*dst[i] == NULL && src[i])
      *dst[i] = g_strdup (src[i]);
  into->auto_answer |= from->auto_answer;
  into->direct &= from->direct;
  into->create_identity |= from->create_identity;
  /* the strictest: required, then off, then auto */
  into->encryption = MAX (into->encryption, from->encryption);
  /* a timeout changed from its default on any element counts */
  if (from->handshake_timeout_ms != WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS)
    into->handshake_timeout_ms = from->handshake_timeout_ms;
  if (from->ring_timeout_ms != WZP_SESSION_RING_TIMEOUT_DEFAULT_MS)
    into->ring_timeout_ms = from->ring_timeout_ms;
  /* the shortest non-zero media timeout of the elements */
  if (from->media_timeout_ms && (into->media_timeout_ms == 0 || from->media_timeout_ms < into->media_timeout_ms))
    into->media_timeout_ms = from->media_timeout_ms;
}

static void
free_settings (gpointer data)
{
  gst_wzp_settings_clear (data);
  g_free (data);
}

WzpSession *
gst_wzp_session_acquire (GstElement *element, GstWzpSettings *s, GError **error)
{
  g_autofree gchar *name = s->session ? g_strdup (s->session) : g_strdup_printf ("%p", element);
  GstWzpSettings *m;
  WzpSession *session;

  gst_wzp_debug_init ();
  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  session = g_hash_table_lookup (registry, name);
  if (session) {
    guint users = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (session), "gst-wzp-users"));
    g_object_set_data (G_OBJECT (session), "gst-wzp-users", GUINT_TO_POINTER (users + 1));
    merge_settings (merged (session), s);
    g_object_ref (session);
    g_mutex_unlock (&registry_lock);
    return session;
  }
  session = g_object_new (WZP_TYPE_SESSION, NULL);
  m = g_new0 (GstWzpSettings, 1);
  gst_wzp_settings_init (m);
  m->media_timeout_ms = s->media_timeout_ms;
  merge_settings (m, s);
  g_object_set_data_full (G_OBJECT (session), "gst-wzp-settings", m, free_settings);
  g_object_set_data (G_OBJECT (session), "gst-wzp-users", GUINT_TO_POINTER (1));
  g_signal_connect_object (session, "call-event", G_CALLBACK (post_event), element, 0);
  g_signal_connect_object (session, "incoming-call", G_CALLBACK (post_incoming), element, 0);
  g_signal_connect_object (session, "error", G_CALLBACK (post_error), element, 0);
  g_hash_table_insert (registry, g_strdup (name), session);
  g_object_set_data_full (G_OBJECT (session), "gst-wzp-name", g_strdup (name), g_free);
  g_object_weak_ref (G_OBJECT (session), (GWeakNotify) forget, g_strdup (name));
  g_mutex_unlock (&registry_lock);
  return session;
}

gboolean
gst_wzp_element_change_state (GstElement *element, WzpSession *session, GstStateChange transition)
{
  g_autoptr (GError) error = NULL;

  if (transition != GST_STATE_CHANGE_PAUSED_TO_PLAYING || session == NULL ||
      gst_wzp_session_activate (session, &error))
    return TRUE;
  GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS, ("%s", error->message),
                     ("set relay= to the relay's address and identity= to a seed file"));
  return FALSE;
}

/* identity= names an existing seed file or is 64 hex digits; a file that is
 * not there yet only with create-identity=true (a typo must not quietly make
 * a new identity nobody knows) */
static gboolean
identity_usable (const GstWzpSettings *m, GError **error)
{
  if (m->identity == NULL || is_hex_seed (m->identity) || m->create_identity ||
      g_file_test (m->identity, G_FILE_TEST_EXISTS))
    return TRUE;
  g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID,
               "identity=\"%s\" is neither an existing seed file nor 64 hex digits; set "
               "create-identity=true to create it", m->identity);
  return FALSE;
}

/* xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx, 32 hex digits in groups of 4 */
static gboolean
is_fingerprint (const gchar *s)
{
  if (strlen (s) != WZP_FINGERPRINT_STRLEN - 1)
    return FALSE;
  for (guint i = 0; s[i]; i++)
    if (i % 5 == 4 ? s[i] != ':' : !g_ascii_isxdigit (s[i]))
      return FALSE;
  return TRUE;
}

/* call= is a fingerprint as identities make them. Behind a relay that
 * validates tokens the auth server names the parties, so there anything
 * without blanks goes. */
static gboolean
call_target_usable (GstWzpSettings *m, GError **error)
{
  if (m->call == NULL || (m->token && *m->call && !strpbrk (m->call, " \t\r\n")))
    return TRUE;
  if (is_fingerprint (m->call)) {
    gchar *lower = g_ascii_strdown (m->call, -1);   /* the relay routes by the exact string */
    g_free (m->call);
    m->call = lower;
    return TRUE;
  }
  g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID,
               "call=\"%s\" is not a fingerprint: expected 8 groups of 4 hex digits, "
               "xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx:xxxx (the callee's fingerprint property or "
               "wzp-tool identity show prints it)", m->call);
  return FALSE;
}

gboolean
gst_wzp_session_activate (WzpSession *session, GError **error)
{
  GstWzpSettings *m;
  gboolean ok = TRUE;

  g_mutex_lock (&registry_lock);
  if (g_object_get_data (G_OBJECT (session), "gst-wzp-started") == NULL) {
    m = merged (session);
    if (!call_target_usable (m, error) || !identity_usable (m, error)) {
      g_mutex_unlock (&registry_lock);
      return FALSE;
    }
    g_object_set (session, "relay", m->relay, "alias", m->alias, "call-target", m->call,
                  "auto-answer", m->auto_answer, "relay-fingerprint", m->relay_fingerprint,
                  "direct", m->direct, "mode", m->room ? "room" : "call", "room", m->room,
                  "token", m->token, "media-timeout-ms", m->media_timeout_ms,
                  "handshake-timeout-ms", m->handshake_timeout_ms, "ring-timeout-ms", m->ring_timeout_ms,
                  "encryption", m->encryption == GST_WZP_ENCRYPTION_OFF ? "off" :
                  m->encryption == GST_WZP_ENCRYPTION_REQUIRED ? "required" : "auto", NULL);
    if (is_hex_seed (m->identity))
      g_object_set (session, "identity-hex", m->identity, NULL);
    else if (m->identity)
      g_object_set (session, "identity-file", m->identity, NULL);
    ok = wzp_session_start (session, error);
    if (ok)
      g_object_set_data (G_OBJECT (session), "gst-wzp-started", GINT_TO_POINTER (1));
  }
  g_mutex_unlock (&registry_lock);
  return ok;
}

void
gst_wzp_session_release (WzpSession *session)
{
  guint users;

  if (session == NULL)
    return;
  g_mutex_lock (&registry_lock);
  users = GPOINTER_TO_UINT (g_object_get_data (G_OBJECT (session), "gst-wzp-users"));
  g_object_set_data (G_OBJECT (session), "gst-wzp-users", GUINT_TO_POINTER (users - 1));
  /* out of the registry at once: an element started again gets a new call,
   * even while the session thread still holds this one */
  if (users == 1) {
    const gchar *name = g_object_get_data (G_OBJECT (session), "gst-wzp-name");
    if (registry && name && g_hash_table_lookup (registry, name) == session)
      g_hash_table_remove (registry, name);
  }
  g_mutex_unlock (&registry_lock);
  /* the last element out ends the call: Hangup with call_id, then the thread */
  if (users == 1) {
    wzp_session_hangup (session);
    wzp_session_stop (session);
  }
  g_object_unref (session);
}

void
gst_wzp_install_stats (GObjectClass *klass, guint id)
{
  g_object_class_install_property (klass, id,
      g_param_spec_boxed ("stats", "Statistics", "Call state, negotiated path, RTT, jitter, packets sent/"
                          "received/dropped/lost/late/duplicate/reordered, bytes, jitter-buffer "
                          "level, setup time", GST_TYPE_STRUCTURE,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));
}

GstStructure *
gst_wzp_stats_new (WzpSession *session, const WzpJitterStats *jitter)
{
  WzpSessionStats ss = { 0 };
  WzpJitterStats js = { 0 };
  g_autofree gchar *call_id = session ? wzp_session_dup_call_id (session) : NULL;
  g_autofree gchar *peer = session ? wzp_session_dup_peer_fingerprint (session) : NULL;

  if (session)
    wzp_session_get_stats (session, &ss);
  if (jitter)
    js = *jitter;
  return gst_structure_new ("application/x-wzp-stats",
      "call-id", G_TYPE_STRING, call_id,
      "peer-fingerprint", G_TYPE_STRING, peer,
      "state", G_TYPE_STRING, wzp_session_state_name (session ? wzp_session_get_state (session)
                                                              : WZP_SESSION_STATE_IDLE),
      "path", G_TYPE_STRING, wzp_media_path_name (ss.path),
      "rtt-ms", G_TYPE_DOUBLE, ss.rtt_us / 1000.0,
      "jitter-ms", G_TYPE_DOUBLE, ss.jitter_us / 1000.0,
      "packets-sent", G_TYPE_UINT64, ss.frames_sent,
      "packets-received", G_TYPE_UINT64, ss.frames_received,
      "packets-dropped", G_TYPE_UINT64, ss.frames_dropped,
      "packets-lost", G_TYPE_UINT64, js.lost,
      "packets-late", G_TYPE_UINT64, js.late,
      "packets-duplicate", G_TYPE_UINT64, js.duplicate,
      "packets-reordered", G_TYPE_UINT64, js.reordered,
      "bytes-sent", G_TYPE_UINT64, ss.bytes_sent,
      "bytes-received", G_TYPE_UINT64, ss.bytes_received,
      "quality-reports-sent", G_TYPE_UINT64, ss.reports_sent,
      "quality-reports-received", G_TYPE_UINT64, ss.reports_received,
      "jitter-buffer-level", G_TYPE_UINT, js.level,
      "packets-concealed", G_TYPE_UINT64, js.concealed,
      "frames-stretched", G_TYPE_UINT64, js.stretched,
      "frames-shrunk", G_TYPE_UINT64, js.shrunk,
      "target-delay-ms", G_TYPE_UINT, js.target_ms,
      "playout-delay-ms", G_TYPE_UINT, js.delay_ms,
      "setup-ms", G_TYPE_DOUBLE, ss.setup_us / 1000.0,
      "encrypted", G_TYPE_BOOLEAN, ss.encrypted,
      "peer-authenticated", G_TYPE_BOOLEAN, ss.peer_authenticated,
      "packets-auth-failed", G_TYPE_UINT64, ss.frames_auth_failed,
      "packets-replayed", G_TYPE_UINT64, ss.frames_replayed,
      "packets-repair", G_TYPE_UINT64, ss.frames_repair, NULL);
}
