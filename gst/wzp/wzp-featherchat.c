/* The featherChat call-signal bridge (see wzp-featherchat.h). */
#include "wzp-featherchat.h"

#include <string.h>
#include <json-glib/json-glib.h>

static const gchar *const call_signal_names[] = {
  "Offer", "Answer", "IceCandidate", "Hangup", "Ringing", "Hold", "Unhold", "Mute", "Unmute",
  "Transfer", "Reject", "Busy",
};

const gchar *
wzp_call_signal_type_name (WzpCallSignalType type)
{
  return (guint) type < G_N_ELEMENTS (call_signal_names) ? call_signal_names[type] : NULL;
}

WzpCallSignalType
wzp_featherchat_signal_type (WzpSignalType type)
{
  switch (type) {
    case WZP_SIGNAL_CALL_OFFER:
    case WZP_SIGNAL_DIRECT_CALL_OFFER: return WZP_CALL_SIGNAL_OFFER;
    case WZP_SIGNAL_CALL_ANSWER:
    case WZP_SIGNAL_DIRECT_CALL_ANSWER: return WZP_CALL_SIGNAL_ANSWER;
    case WZP_SIGNAL_ICE_CANDIDATE: return WZP_CALL_SIGNAL_ICE_CANDIDATE;
    case WZP_SIGNAL_HANGUP: return WZP_CALL_SIGNAL_HANGUP;
    case WZP_SIGNAL_CALL_RINGING: return WZP_CALL_SIGNAL_RINGING;
    case WZP_SIGNAL_HOLD: return WZP_CALL_SIGNAL_HOLD;
    case WZP_SIGNAL_UNHOLD: return WZP_CALL_SIGNAL_UNHOLD;
    case WZP_SIGNAL_MUTE: return WZP_CALL_SIGNAL_MUTE;
    case WZP_SIGNAL_UNMUTE: return WZP_CALL_SIGNAL_UNMUTE;
    case WZP_SIGNAL_TRANSFER: return WZP_CALL_SIGNAL_TRANSFER;
    default: return WZP_CALL_SIGNAL_OFFER;      /* upstream's catch-all */
  }
}

static gboolean
append_nullable (GString *out, const gchar *s, GError **error)
{
  g_autofree gchar *q = NULL;

  if (s == NULL) {
    g_string_append (out, "null");
    return TRUE;
  }
  q = wzp_json_quote (s, error);
  if (q == NULL)
    return FALSE;
  g_string_append (out, q);
  return TRUE;
}

gchar *
wzp_featherchat_encode (const WzpSignal *signal, const gchar *relay_addr, const gchar *room,
                        GError **error)
{
  g_autofree gchar *inner = wzp_signal_to_json (signal, NULL, error);
  GString *out;

  if (inner == NULL)
    return NULL;
  /* serde's field order: signal, relay_addr, room; both always present */
  out = g_string_new ("{\"signal\":");
  g_string_append (out, inner);
  g_string_append (out, ",\"relay_addr\":");
  if (!append_nullable (out, relay_addr, error)) {
    g_string_free (out, TRUE);
    return NULL;
  }
  g_string_append (out, ",\"room\":");
  if (!append_nullable (out, room, error)) {
    g_string_free (out, TRUE);
    return NULL;
  }
  g_string_append_c (out, '}');
  return g_string_free (out, FALSE);
}

/* A member that must be a string or null (or absent). */
static gboolean
nullable_member (JsonObject *o, const gchar *name, gchar **out, GError **error)
{
  JsonNode *n = json_object_get_member (o, name);

  if (out)
    *out = NULL;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING ||
      !g_utf8_validate (json_node_get_string (n), -1, NULL)) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                 "featherChat payload: \"%s\" must be a string or null", name);
    return FALSE;
  }
  if (out)
    *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

WzpSignal *
wzp_featherchat_decode (const gchar *payload, gsize len, gchar **relay_addr, gchar **room,
                        GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) local = NULL;
  g_autofree gchar *inner = NULL, *ra = NULL, *rm = NULL;
  JsonObject *o;
  JsonNode *sig;
  WzpSignal *msg;

  if (len > WZP_SIGNAL_MAX_FRAME || !g_utf8_validate (payload, (gssize) len, NULL) ||
      !wzp_json_check_depth (payload, len, &local) ||
      !json_parser_load_from_data (parser, payload, (gssize) len, &local) ||
      !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                 "featherChat payload: not a JSON object%s%s", local ? ": " : "",
                 local ? local->message : "");
    return NULL;
  }
  o = json_node_get_object (json_parser_get_root (parser));
  sig = json_object_get_member (o, "signal");
  /* an object, or a string for the unit variants ("Reflect") */
  if (sig == NULL || !(JSON_NODE_HOLDS_OBJECT (sig) ||
                       (JSON_NODE_HOLDS_VALUE (sig) && json_node_get_value_type (sig) == G_TYPE_STRING))) {
    g_set_error_literal (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                         "featherChat payload: \"signal\" must be a signal message object");
    return NULL;
  }
  if (!nullable_member (o, "relay_addr", &ra, error) || !nullable_member (o, "room", &rm, error))
    return NULL;
  /* the nested message goes through the same decoder (and checks) as any */
  inner = json_to_string (sig, FALSE);
  msg = wzp_signal_from_json (inner, strlen (inner), error);
  if (msg == NULL)
    return NULL;
  if (relay_addr)
    *relay_addr = g_steal_pointer (&ra);
  if (room)
    *room = g_steal_pointer (&rm);
  return msg;
}
