/* wzp-signal: SignalMessage <-> JSON (protocol §2.2-§2.5) and framing (§2.1).
 *
 * Every variant is described by a table of fields (wzp-signal-private.h);
 * encoding, decoding, copying, comparing and freeing walk that table, so a
 * variant is one table entry, not five functions.
 *
 * Input is parsed with json-glib. Output is written by hand: upstream is
 * serde_json, whose bytes json-glib's generator cannot reproduce (it prints
 * doubles with 17 significant digits and escapes DEL), and the protocol
 * needs byte-identical output (docs/decisions.md).
 */
#define G_LOG_DOMAIN "wzp-signal"

#include "wzp-signal-private.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-glib/json-glib.h>

G_DEFINE_QUARK (wzp-signal-error-quark, wzp_signal_error)


/* ---- encoding -------------------------------------------------------------- */

typedef struct {
  GString *out;
  GError **error;
  gboolean failed;
} Encoder;

static void G_GNUC_PRINTF (2, 3)
enc_fail (Encoder *e, const gchar *fmt, ...)
{
  va_list ap;

  if (e->failed)
    return;
  e->failed = TRUE;
  va_start (ap, fmt);
  if (e->error)
    *e->error = g_error_new_valist (WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE, fmt, ap);
  va_end (ap);
}

/* serde_json's escaping: the two-character forms for \b \t \n \f \r " \,
 * \u00xx (lowercase) for other control characters, everything else raw. */
static void
enc_string (Encoder *e, const gchar *s, const gchar *what)
{
  static const gchar hex[] = "0123456789abcdef";

  if (!g_utf8_validate (s, -1, NULL)) {
    enc_fail (e, "%s is not valid UTF-8", what);
    return;
  }
  g_string_append_c (e->out, '"');
  for (const guchar *p = (const guchar *) s; *p; p++) {
    switch (*p) {
      case '"': g_string_append (e->out, "\\\""); break;
      case '\\': g_string_append (e->out, "\\\\"); break;
      case '\b': g_string_append (e->out, "\\b"); break;
      case '\t': g_string_append (e->out, "\\t"); break;
      case '\n': g_string_append (e->out, "\\n"); break;
      case '\f': g_string_append (e->out, "\\f"); break;
      case '\r': g_string_append (e->out, "\\r"); break;
      default:
        if (*p < 0x20) {
          g_string_append (e->out, "\\u00");
          g_string_append_c (e->out, hex[*p >> 4]);
          g_string_append_c (e->out, hex[*p & 0xf]);
        } else {
          g_string_append_c (e->out, (gchar) *p);
        }
    }
  }
  g_string_append_c (e->out, '"');
}

static void
enc_u64 (Encoder *e, guint64 v)
{
  g_string_append_printf (e->out, "%" G_GUINT64_FORMAT, v);
}

static void
enc_byte_array (Encoder *e, const guint8 *data, gsize len)
{
  g_string_append_c (e->out, '[');
  for (gsize i = 0; i < len; i++) {
    if (i)
      g_string_append_c (e->out, ',');
    g_string_append_printf (e->out, "%u", data[i]);
  }
  g_string_append_c (e->out, ']');
}

/* Shortest decimal that reads back as the same f32, in the layout serde_json
 * (ryu) uses: "0.2", "1.0", "1e-7", "1.5e20". Non-finite values are null. */
static void
enc_f32 (Encoder *e, gfloat v)
{
  gchar buf[40], digits[16];
  gint exp10 = 0, ndigits = 0, point;

  if (!isfinite (v)) {
    g_string_append (e->out, "null");
    return;
  }
  if (v == 0.0f) {
    g_string_append (e->out, signbit (v) ? "-0.0" : "0.0");
    return;
  }
  for (gint prec = 0; prec < 9; prec++) {
    snprintf (buf, sizeof buf, "%.*e", prec, (double) v);
    if ((gfloat) g_ascii_strtod (buf, NULL) == v)
      break;
  }
  /* buf: [-]d[.ddd]e[+-]xx */
  for (const gchar *p = buf; *p && *p != 'e'; p++)
    if (g_ascii_isdigit (*p))
      digits[ndigits++] = *p;
  exp10 = atoi (strchr (buf, 'e') + 1);
  while (ndigits > 1 && digits[ndigits - 1] == '0')
    ndigits--;
  digits[ndigits] = '\0';
  if (v < 0)
    g_string_append_c (e->out, '-');
  point = exp10 + 1;            /* digits before the decimal point */
  if (point >= ndigits && point <= 13) {
    g_string_append (e->out, digits);
    for (gint i = ndigits; i < point; i++)
      g_string_append_c (e->out, '0');
    g_string_append (e->out, ".0");
  } else if (point > 0 && point <= 13) {
    g_string_append_len (e->out, digits, point);
    g_string_append_c (e->out, '.');
    g_string_append (e->out, digits + point);
  } else if (point > -6 && point <= 0) {
    g_string_append (e->out, "0.");
    for (gint i = point; i < 0; i++)
      g_string_append_c (e->out, '0');
    g_string_append (e->out, digits);
  } else {
    g_string_append_c (e->out, digits[0]);
    if (ndigits > 1) {
      g_string_append_c (e->out, '.');
      g_string_append (e->out, digits + 1);
    }
    g_string_append_printf (e->out, "e%d", point - 1);
  }
}

static void
enc_profile (Encoder *e, const WzpQualityProfile *p)
{
  const gchar *codec = wzp_codec_id_to_string (p->codec);

  if (codec == NULL) {
    enc_fail (e, "codec id %d is out of range", (gint) p->codec);
    return;
  }
  g_string_append_printf (e->out, "{\"codec\":\"%s\",\"fec_ratio\":", codec);
  enc_f32 (e, p->fec_ratio);
  g_string_append_printf (e->out, ",\"frame_duration_ms\":%u,\"frames_per_block\":%u}",
                          p->frame_duration_ms, p->frames_per_block);
}

static void
enc_nullable_string (Encoder *e, const gchar *s, const gchar *what)
{
  if (s)
    enc_string (e, s, what);
  else
    g_string_append (e->out, "null");
}

static void
enc_participant (Encoder *e, const WzpRoomParticipant *p)
{
  if (p == NULL || p->fingerprint == NULL) {
    enc_fail (e, "a room participant has no fingerprint");
    return;
  }
  g_string_append (e->out, "{\"fingerprint\":");
  enc_string (e, p->fingerprint, "participant fingerprint");
  g_string_append (e->out, ",\"alias\":");
  enc_nullable_string (e, p->alias, "participant alias");
  g_string_append (e->out, ",\"relay_label\":");
  enc_nullable_string (e, p->relay_label, "participant relay_label");
  g_string_append_c (e->out, '}');
}

static void enc_signal (Encoder *e, const WzpSignal *msg);

static gboolean
field_is_absent (const WzpSignal *msg, const WzpFieldDesc *fd)
{
  gconstpointer p = WZP_FIELD_PTR (msg, fd);

  switch (fd->kind) {
    case WZP_FK_STR:
    case WZP_FK_KEY_OPT:
    case WZP_FK_BYTES:
    case WZP_FK_PROFILE_OPT:
    case WZP_FK_SIGNAL:
      return *(gconstpointer *) p == NULL;
    case WZP_FK_STRS:
    case WZP_FK_PARTICIPANTS: {
      const GPtrArray *a = *(GPtrArray **) p;
      return a == NULL || a->len == 0;
    }
    case WZP_FK_PROFILES: {
      const GArray *a = *(GArray **) p;
      return a == NULL || a->len == 0;
    }
    default:
      return FALSE;
  }
}

static void
enc_field_value (Encoder *e, const WzpSignal *msg, const WzpFieldDesc *fd)
{
  gconstpointer p = WZP_FIELD_PTR (msg, fd);
  const gchar *name;

  switch (fd->kind) {
    case WZP_FK_STR: {
      const gchar *s = *(gchar **) p;
      if (s == NULL && fd->flavour == WZP_FF_DEFAULT)
        s = "";
      if (s == NULL)
        enc_fail (e, "%s.%s is required", wzp_signal_type_name (msg->type), fd->name);
      else
        enc_string (e, s, fd->name);
      break;
    }
    case WZP_FK_U64:
      enc_u64 (e, *(guint64 *) p);
      break;
    case WZP_FK_U32:
      enc_u64 (e, *(guint32 *) p);
      break;
    case WZP_FK_U8:
      enc_u64 (e, *(guint8 *) p);
      break;
    case WZP_FK_BOOL:
      g_string_append (e->out, *(gboolean *) p ? "true" : "false");
      break;
    case WZP_FK_KEY:
      enc_byte_array (e, p, 32);
      break;
    case WZP_FK_KEY_OPT:
      enc_byte_array (e, *(guint8 **) p, 32);
      break;
    case WZP_FK_BYTES: {
      GBytes *b = *(GBytes **) p;
      gsize len = 0;
      const guint8 *d = b ? g_bytes_get_data (b, &len) : NULL;
      enc_byte_array (e, d, len);
      break;
    }
    case WZP_FK_ACCEPT_MODE:
    case WZP_FK_HANGUP_REASON:
      name = fd->kind == WZP_FK_ACCEPT_MODE ?
          wzp_call_accept_mode_to_string (*(gint *) p) :
          wzp_hangup_reason_to_string (*(gint *) p);
      if (name == NULL)
        enc_fail (e, "%s.%s: value %d is out of range", wzp_signal_type_name (msg->type),
                  fd->name, *(gint *) p);
      else
        g_string_append_printf (e->out, "\"%s\"", name);
      break;
    case WZP_FK_PROFILE:
      enc_profile (e, p);
      break;
    case WZP_FK_PROFILE_OPT:
      enc_profile (e, *(WzpQualityProfile **) p);
      break;
    case WZP_FK_PROFILES: {
      const GArray *a = *(GArray **) p;
      g_string_append_c (e->out, '[');
      for (guint i = 0; a && i < a->len; i++) {
        if (i)
          g_string_append_c (e->out, ',');
        enc_profile (e, &g_array_index (a, WzpQualityProfile, i));
      }
      g_string_append_c (e->out, ']');
      break;
    }
    case WZP_FK_STRS: {
      const GPtrArray *a = *(GPtrArray **) p;
      g_string_append_c (e->out, '[');
      for (guint i = 0; a && i < a->len; i++) {
        const gchar *s = g_ptr_array_index (a, i);
        if (i)
          g_string_append_c (e->out, ',');
        if (s == NULL)
          enc_fail (e, "%s.%s holds a NULL string", wzp_signal_type_name (msg->type), fd->name);
        else
          enc_string (e, s, fd->name);
      }
      g_string_append_c (e->out, ']');
      break;
    }
    case WZP_FK_PARTICIPANTS: {
      const GPtrArray *a = *(GPtrArray **) p;
      g_string_append_c (e->out, '[');
      for (guint i = 0; a && i < a->len; i++) {
        if (i)
          g_string_append_c (e->out, ',');
        enc_participant (e, g_ptr_array_index (a, i));
      }
      g_string_append_c (e->out, ']');
      break;
    }
    case WZP_FK_REPORT: {
      const WzpQualityReport *r = p;
      g_string_append_printf (e->out, "{\"loss_pct\":%u,\"rtt_4ms\":%u,\"jitter_ms\":%u,"
                              "\"bitrate_cap_kbps\":%u}", r->loss_pct, r->rtt_4ms,
                              r->jitter_ms, r->bitrate_cap_kbps);
      break;
    }
    case WZP_FK_SIGNAL: {
      const WzpSignal *inner = *(WzpSignal **) p;
      if (inner == NULL)
        enc_fail (e, "%s.%s is required", wzp_signal_type_name (msg->type), fd->name);
      else
        enc_signal (e, inner);
      break;
    }
    default:
      g_assert_not_reached ();
  }
}

static void
enc_signal (Encoder *e, const WzpSignal *msg)
{
  const WzpVariantDesc *vd = wzp_signal_variant_desc (msg->type);
  gboolean first = TRUE;

  if (vd == NULL) {
    enc_fail (e, "message type %d is out of range", (gint) msg->type);
    return;
  }
  if (vd->fields == NULL) {
    g_string_append_printf (e->out, "\"%s\"", vd->name);
    return;
  }
  g_string_append_printf (e->out, "{\"%s\":{", vd->name);
  for (guint i = 0; i < vd->n_fields && !e->failed; i++) {
    const WzpFieldDesc *fd = &vd->fields[i];
    gboolean absent = field_is_absent (msg, fd);

    if (absent && (fd->flavour == WZP_FF_OPTIONAL || fd->flavour == WZP_FF_OPTIONAL_EMPTY))
      continue;
    if (!first)
      g_string_append_c (e->out, ',');
    first = FALSE;
    g_string_append_printf (e->out, "\"%s\":", fd->name);
    if (absent && fd->flavour == WZP_FF_NULLABLE)
      g_string_append (e->out, "null");
    else
      enc_field_value (e, msg, fd);
  }
  g_string_append (e->out, "}}");
}

gchar *
wzp_signal_to_json (const WzpSignal *msg, gsize *out_len, GError **error)
{
  Encoder e = { g_string_sized_new (128), error, FALSE };

  g_return_val_if_fail (msg != NULL, NULL);
  enc_signal (&e, msg);
  if (e.failed) {
    g_string_free (e.out, TRUE);
    return NULL;
  }
  if (out_len)
    *out_len = e.out->len;
  return g_string_free (e.out, FALSE);
}

gchar *
wzp_json_quote (const gchar *s, GError **error)
{
  Encoder e = { g_string_sized_new (32), error, FALSE };

  enc_string (&e, s, "the string");
  if (e.failed) {
    g_string_free (e.out, TRUE);
    return NULL;
  }
  return g_string_free (e.out, FALSE);
}

GBytes *
wzp_signal_to_frame (const WzpSignal *msg, GError **error)
{
  gsize len = 0;
  g_autofree gchar *json = wzp_signal_to_json (msg, &len, error);
  guint8 *buf;

  if (json == NULL)
    return NULL;
  if (len > WZP_SIGNAL_MAX_FRAME) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                 "%s message of %" G_GSIZE_FORMAT " bytes exceeds the 1 MiB frame limit",
                 wzp_signal_type_name (msg->type), len);
    return NULL;
  }
  buf = g_malloc (len + 4);
  buf[0] = (guint8) (len >> 24);
  buf[1] = (guint8) (len >> 16);
  buf[2] = (guint8) (len >> 8);
  buf[3] = (guint8) len;
  memcpy (buf + 4, json, len);
  return g_bytes_new_take (buf, len + 4);
}

/* ---- decoding -------------------------------------------------------------- */

typedef struct {
  GError **error;
  const gchar *variant;   /* for messages */
} Decoder;

static gboolean G_GNUC_PRINTF (3, 4)
dec_fail (Decoder *d, const gchar *field, const gchar *fmt, ...)
{
  g_autofree gchar *what = NULL;
  va_list ap;

  va_start (ap, fmt);
  what = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
               "%s.%s: %s", d->variant, field, what);
  return FALSE;
}

static gboolean
node_is_null (JsonNode *n)
{
  return n == NULL || JSON_NODE_HOLDS_NULL (n);
}

static gboolean
dec_uint (Decoder *d, const gchar *field, JsonNode *n, guint64 max, guint64 *out)
{
  gint64 v;

  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return dec_fail (d, field, "expected an unsigned integer");
  v = json_node_get_int (n);
  /* json-glib folds integers above 2^63-1 into negative values, so a
   * negative here is either a minus sign or an overflow: both errors. */
  if (v < 0 || (guint64) v > max)
    return dec_fail (d, field, "integer out of range 0..%" G_GUINT64_FORMAT, max);
  *out = (guint64) v;
  return TRUE;
}

static gboolean
dec_string (Decoder *d, const gchar *field, JsonNode *n, gchar **out)
{
  const gchar *s;

  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return dec_fail (d, field, "expected a string");
  s = json_node_get_string (n);
  /* json-glib also takes non-JSON escapes such as octal "\226", which can
   * produce bytes that are not UTF-8 */
  if (!g_utf8_validate (s, -1, NULL))
    return dec_fail (d, field, "string is not valid UTF-8");
  *out = g_strdup (s);
  return TRUE;
}

static gboolean
dec_bool (Decoder *d, const gchar *field, JsonNode *n, gboolean *out)
{
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return dec_fail (d, field, "expected true or false");
  *out = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
dec_f32 (Decoder *d, const gchar *field, JsonNode *n, gfloat *out)
{
  GType t;
  gfloat v;

  if (!JSON_NODE_HOLDS_VALUE (n))
    return dec_fail (d, field, "expected a number");
  t = json_node_get_value_type (n);
  if (t == G_TYPE_DOUBLE)
    v = (gfloat) json_node_get_double (n);
  else if (t == G_TYPE_INT64)
    v = (gfloat) json_node_get_int (n);
  else
    return dec_fail (d, field, "expected a number");
  if (!isfinite (v))
    return dec_fail (d, field, "number out of range for a 32-bit float");
  *out = v;
  return TRUE;
}

/* An array of integers 0-255; @exact 0 = any length. */
static gboolean
dec_byte_array (Decoder *d, const gchar *field, JsonNode *n, guint exact, GByteArray **out)
{
  JsonArray *a;
  guint len;
  g_autoptr (GByteArray) bytes = NULL;

  if (!JSON_NODE_HOLDS_ARRAY (n))
    return dec_fail (d, field, "expected an array of integers 0-255");
  a = json_node_get_array (n);
  len = json_array_get_length (a);
  if (exact && len != exact)
    return dec_fail (d, field, "expected exactly %u integers 0-255, got %u", exact, len);
  bytes = g_byte_array_sized_new (len);
  for (guint i = 0; i < len; i++) {
    guint64 v;
    guint8 b;

    if (!dec_uint (d, field, json_array_get_element (a, i), 255, &v))
      return FALSE;
    b = (guint8) v;
    g_byte_array_append (bytes, &b, 1);
  }
  *out = g_steal_pointer (&bytes);
  return TRUE;
}

static JsonObject *
dec_object (Decoder *d, const gchar *field, JsonNode *n)
{
  if (!JSON_NODE_HOLDS_OBJECT (n)) {
    dec_fail (d, field, "expected an object");
    return NULL;
  }
  return json_node_get_object (n);
}

static JsonNode *
required_member (Decoder *d, const gchar *field, JsonObject *o, const gchar *name)
{
  JsonNode *n = json_object_get_member (o, name);

  if (n == NULL) {
    g_autofree gchar *path = g_strdup_printf ("%s.%s", field, name);
    dec_fail (d, path, "missing field");
  }
  return n;
}

static gboolean
dec_u8_member (Decoder *d, const gchar *field, JsonObject *o, const gchar *name, guint8 *out)
{
  JsonNode *n = required_member (d, field, o, name);
  guint64 v;

  if (n == NULL || !dec_uint (d, name, n, 255, &v))
    return FALSE;
  *out = (guint8) v;
  return TRUE;
}

static gboolean
dec_profile (Decoder *d, const gchar *field, JsonNode *n, WzpQualityProfile *p)
{
  JsonObject *o = dec_object (d, field, n);
  JsonNode *m;

  if (o == NULL)
    return FALSE;
  if (!(m = required_member (d, field, o, "codec")))
    return FALSE;
  if (!JSON_NODE_HOLDS_VALUE (m) || json_node_get_value_type (m) != G_TYPE_STRING ||
      !wzp_codec_id_from_string (json_node_get_string (m), &p->codec))
    return dec_fail (d, field, "codec must be one of Opus24k, Opus16k, Opus6k, Codec2_3200, "
                     "Codec2_1200, ComfortNoise, Opus32k, Opus48k, Opus64k");
  if (!(m = required_member (d, field, o, "fec_ratio")) ||
      !dec_f32 (d, "fec_ratio", m, &p->fec_ratio))
    return FALSE;
  return dec_u8_member (d, field, o, "frame_duration_ms", &p->frame_duration_ms) &&
      dec_u8_member (d, field, o, "frames_per_block", &p->frames_per_block);
}

static gboolean
dec_nullable_string (Decoder *d, const gchar *field, JsonNode *n, gchar **out)
{
  if (node_is_null (n)) {
    *out = NULL;
    return TRUE;
  }
  return dec_string (d, field, n, out);
}

static gboolean
dec_participants (Decoder *d, const gchar *field, JsonNode *n, GPtrArray **out)
{
  g_autoptr (GPtrArray) list = wzp_signal_new_participant_list ();
  JsonArray *a;

  if (!JSON_NODE_HOLDS_ARRAY (n))
    return dec_fail (d, field, "expected an array of participants");
  a = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonObject *o = dec_object (d, field, json_array_get_element (a, i));
    WzpRoomParticipant *p;
    JsonNode *m;

    if (o == NULL || !(m = required_member (d, field, o, "fingerprint")))
      return FALSE;
    p = g_new0 (WzpRoomParticipant, 1);
    g_ptr_array_add (list, p);
    if (!dec_string (d, "fingerprint", m, &p->fingerprint) ||
        !dec_nullable_string (d, "alias", json_object_get_member (o, "alias"), &p->alias) ||
        !dec_nullable_string (d, "relay_label", json_object_get_member (o, "relay_label"),
                              &p->relay_label))
      return FALSE;
  }
  *out = g_steal_pointer (&list);
  return TRUE;
}

static gboolean
dec_str_list (Decoder *d, const gchar *field, JsonNode *n, GPtrArray **out)
{
  g_autoptr (GPtrArray) list = wzp_signal_new_str_list ();
  JsonArray *a;

  if (!JSON_NODE_HOLDS_ARRAY (n))
    return dec_fail (d, field, "expected an array of strings");
  a = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    gchar *s;

    if (!dec_string (d, field, json_array_get_element (a, i), &s))
      return FALSE;
    g_ptr_array_add (list, s);
  }
  *out = g_steal_pointer (&list);
  return TRUE;
}

static WzpSignal *dec_signal (Decoder *d, JsonNode *root);

/* Sets the value a missing/null field gets: NULL for optional values, empty
 * for lists, "" / 0 / [] for defaulted fields. */
static void
dec_field_default (WzpSignal *msg, const WzpFieldDesc *fd)
{
  gpointer p = WZP_FIELD_PTR (msg, fd);

  switch (fd->kind) {
    case WZP_FK_STR:
      if (fd->flavour == WZP_FF_DEFAULT)
        *(gchar **) p = g_strdup ("");
      break;
    case WZP_FK_STRS:
      *(GPtrArray **) p = wzp_signal_new_str_list ();
      break;
    case WZP_FK_PARTICIPANTS:
      *(GPtrArray **) p = wzp_signal_new_participant_list ();
      break;
    default:
      break;                    /* zeroed by wzp_signal_new() */
  }
}

static gboolean
dec_field (Decoder *d, WzpSignal *msg, const WzpFieldDesc *fd, JsonNode *n)
{
  gpointer p = WZP_FIELD_PTR (msg, fd);
  const gchar *name = fd->name;
  GByteArray *bytes = NULL;
  guint64 v;

  switch (fd->kind) {
    case WZP_FK_STR:
      return dec_string (d, name, n, p);
    case WZP_FK_U64:
      return dec_uint (d, name, n, G_MAXUINT64, p);
    case WZP_FK_U32:
      if (!dec_uint (d, name, n, G_MAXUINT32, &v))
        return FALSE;
      *(guint32 *) p = (guint32) v;
      return TRUE;
    case WZP_FK_U8:
      if (!dec_uint (d, name, n, G_MAXUINT8, &v))
        return FALSE;
      *(guint8 *) p = (guint8) v;
      return TRUE;
    case WZP_FK_BOOL:
      return dec_bool (d, name, n, p);
    case WZP_FK_KEY:
    case WZP_FK_KEY_OPT:
      if (!dec_byte_array (d, name, n, 32, &bytes))
        return FALSE;
      if (fd->kind == WZP_FK_KEY)
        memcpy (p, bytes->data, 32);
      else
        *(guint8 **) p = g_memdup2 (bytes->data, 32);
      g_byte_array_unref (bytes);
      return TRUE;
    case WZP_FK_BYTES:
      if (!dec_byte_array (d, name, n, 0, &bytes))
        return FALSE;
      *(GBytes **) p = g_byte_array_free_to_bytes (bytes);
      return TRUE;
    case WZP_FK_ACCEPT_MODE:
    case WZP_FK_HANGUP_REASON:
      if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
        return dec_fail (d, name, "expected a string");
      if (fd->kind == WZP_FK_ACCEPT_MODE ?
          !wzp_call_accept_mode_from_string (json_node_get_string (n), p) :
          !wzp_hangup_reason_from_string (json_node_get_string (n), p))
        return dec_fail (d, name, "unknown value \"%s\"", json_node_get_string (n));
      return TRUE;
    case WZP_FK_PROFILE:
      return dec_profile (d, name, n, p);
    case WZP_FK_PROFILE_OPT: {
      WzpQualityProfile prof;
      if (!dec_profile (d, name, n, &prof))
        return FALSE;
      *(WzpQualityProfile **) p = g_memdup2 (&prof, sizeof prof);
      return TRUE;
    }
    case WZP_FK_PROFILES: {
      g_autoptr (GArray) list = wzp_signal_new_profile_list ();
      JsonArray *a;
      if (!JSON_NODE_HOLDS_ARRAY (n))
        return dec_fail (d, name, "expected an array of quality profiles");
      a = json_node_get_array (n);
      for (guint i = 0; i < json_array_get_length (a); i++) {
        WzpQualityProfile prof;
        if (!dec_profile (d, name, json_array_get_element (a, i), &prof))
          return FALSE;
        g_array_append_val (list, prof);
      }
      *(GArray **) p = g_steal_pointer (&list);
      return TRUE;
    }
    case WZP_FK_STRS:
      return dec_str_list (d, name, n, p);
    case WZP_FK_PARTICIPANTS:
      return dec_participants (d, name, n, p);
    case WZP_FK_REPORT: {
      WzpQualityReport *r = p;
      JsonObject *o = dec_object (d, name, n);
      return o && dec_u8_member (d, name, o, "loss_pct", &r->loss_pct) &&
          dec_u8_member (d, name, o, "rtt_4ms", &r->rtt_4ms) &&
          dec_u8_member (d, name, o, "jitter_ms", &r->jitter_ms) &&
          dec_u8_member (d, name, o, "bitrate_cap_kbps", &r->bitrate_cap_kbps);
    }
    case WZP_FK_SIGNAL: {
      const gchar *outer = d->variant;
      WzpSignal *inner = dec_signal (d, n);
      d->variant = outer;
      if (inner == NULL)
        return FALSE;
      *(WzpSignal **) p = inner;
      return TRUE;
    }
    default:
      g_assert_not_reached ();
  }
}

static WzpSignal *
dec_signal (Decoder *d, JsonNode *root)
{
  const gchar *name;
  JsonNode *body = NULL;
  const WzpVariantDesc *vd;
  WzpSignalType type;
  g_autoptr (WzpSignal) msg = NULL;
  JsonObject *o;

  if (JSON_NODE_HOLDS_VALUE (root) && json_node_get_value_type (root) == G_TYPE_STRING) {
    name = json_node_get_string (root);
  } else if (JSON_NODE_HOLDS_OBJECT (root)) {
    JsonObject *top = json_node_get_object (root);
    g_autoptr (GList) members = json_object_get_members (top);

    if (json_object_get_size (top) != 1) {
      g_set_error (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                   "a message must be an object with exactly one key, got %u",
                   json_object_get_size (top));
      return NULL;
    }
    name = members->data;
    body = json_object_get_member (top, name);
  } else {
    g_set_error_literal (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                         "a message must be a JSON object or a variant name string");
    return NULL;
  }
  if (!wzp_signal_type_from_name (name, &type)) {
    g_autofree gchar *shown = g_utf8_make_valid (name, MIN (strlen (name), 64));
    g_set_error (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_UNKNOWN_VARIANT,
                 "unknown variant \"%s\"", shown);
    return NULL;
  }
  vd = wzp_signal_variant_desc (type);
  d->variant = vd->name;
  msg = wzp_signal_new (type);
  if (vd->fields == NULL) {
    /* "Reflect" or {"Reflect":null} */
    if (body && !JSON_NODE_HOLDS_NULL (body)) {
      g_set_error (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                   "%s takes no fields: expected \"%s\" or {\"%s\":null}",
                   vd->name, vd->name, vd->name);
      return NULL;
    }
    return g_steal_pointer (&msg);
  }
  if (body == NULL || !JSON_NODE_HOLDS_OBJECT (body)) {
    g_set_error (d->error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_MESSAGE,
                 "%s needs an object of fields", vd->name);
    return NULL;
  }
  o = json_node_get_object (body);
  for (guint i = 0; i < vd->n_fields; i++) {
    const WzpFieldDesc *fd = &vd->fields[i];
    JsonNode *n = json_object_get_member (o, fd->name);

    if (node_is_null (n)) {
      if (fd->flavour == WZP_FF_REQUIRED) {
        dec_fail (d, fd->name, n ? "must not be null" : "missing field");
        return NULL;
      }
      dec_field_default (msg, fd);
      continue;
    }
    if (!dec_field (d, msg, fd, n))
      return NULL;
  }
  return g_steal_pointer (&msg);
}

/* Refuses nesting deeper than WZP_SIGNAL_MAX_DEPTH before json-glib's
 * recursive parser sees it. */
gboolean
wzp_json_check_depth (const gchar *json, gsize len, GError **error)
{
  gboolean in_string = FALSE, escaped = FALSE;
  guint depth = 0;

  for (gsize i = 0; i < len; i++) {
    gchar c = json[i];

    if (in_string) {
      if (escaped)
        escaped = FALSE;
      else if (c == '\\')
        escaped = TRUE;
      else if (c == '"')
        in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '{' || c == '[') {
      if (++depth > WZP_SIGNAL_MAX_DEPTH) {
        g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                     "JSON nested deeper than %d levels", WZP_SIGNAL_MAX_DEPTH);
        return FALSE;
      }
    } else if ((c == '}' || c == ']') && depth > 0) {
      depth--;
    }
  }
  return TRUE;
}

WzpSignal *
wzp_signal_from_json (const gchar *json, gsize len, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local = NULL;
  Decoder d = { error, "" };
  JsonNode *root;

  if (json == NULL || len == 0) {
    g_set_error_literal (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                         "empty message");
    return NULL;
  }
  if (len > WZP_SIGNAL_MAX_FRAME) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                 "message of %" G_GSIZE_FORMAT " bytes exceeds the 1 MiB limit", len);
    return NULL;
  }
  if (memchr (json, '\0', len) != NULL) {
    g_set_error_literal (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                         "message contains a NUL byte");
    return NULL;
  }
  if (!wzp_json_check_depth (json, len, error))
    return NULL;
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, json, (gssize) len, &local)) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                 "invalid JSON: %s", local->message);
    return NULL;
  }
  root = json_parser_get_root (parser);
  if (root == NULL) {
    g_set_error_literal (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_INVALID_JSON,
                         "empty message");
    return NULL;
  }
  return dec_signal (&d, root);
}

WzpSignal *
wzp_signal_from_frame (const guint8 *data, gsize len, GError **error)
{
  guint32 n;

  if (len < 4) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TRUNCATED,
                 "frame of %" G_GSIZE_FORMAT " bytes has no complete length prefix", len);
    return NULL;
  }
  n = ((guint32) data[0] << 24) | ((guint32) data[1] << 16) | ((guint32) data[2] << 8) | data[3];
  if (n > WZP_SIGNAL_MAX_FRAME) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                 "frame length %u exceeds the 1 MiB limit", n);
    return NULL;
  }
  if (len - 4 < n) {
    g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TRUNCATED,
                 "frame announces %u bytes but only %" G_GSIZE_FORMAT " follow", n, len - 4);
    return NULL;
  }
  return wzp_signal_from_json ((const gchar *) data + 4, n, error);
}

WzpSignal *
wzp_signal_new_hangup (WzpHangupReason reason, const gchar *call_id)
{
  WzpSignal *msg = wzp_signal_new (WZP_SIGNAL_HANGUP);

  msg->hangup.reason = reason;
  msg->hangup.call_id = g_strdup (call_id);
  return msg;
}

WzpSignal *
wzp_signal_new_media_path_report (const gchar *call_id, gboolean direct_ok,
                                  const gchar *race_winner)
{
  WzpSignal *msg = wzp_signal_new (WZP_SIGNAL_MEDIA_PATH_REPORT);

  msg->media_path_report.call_id = g_strdup (call_id);
  msg->media_path_report.direct_ok = direct_ok;
  msg->media_path_report.race_winner = g_strdup (race_winner ? race_winner : "");
  return msg;
}

/* ---- incremental framing ------------------------------------------------- */

struct _WzpFrameReader {
  gsize max_len;
  guint8 prefix[4];
  guint prefix_have;
  guint32 body_len;
  GByteArray *body;
  gboolean ready;
  gboolean failed;
};

WzpFrameReader *
wzp_frame_reader_new (gsize max_len)
{
  WzpFrameReader *r = g_new0 (WzpFrameReader, 1);

  r->max_len = max_len ? max_len : WZP_SIGNAL_MAX_FRAME;
  return r;
}

void
wzp_frame_reader_free (WzpFrameReader *r)
{
  if (r == NULL)
    return;
  if (r->body)
    g_byte_array_unref (r->body);
  g_free (r);
}

WzpFrameStatus
wzp_frame_reader_feed (WzpFrameReader *r, const guint8 *data, gsize len,
                       gsize *consumed, GError **error)
{
  gsize used = 0;

  *consumed = 0;
  if (r->failed) {
    g_set_error_literal (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                         "frame reader is in error after an oversized frame");
    return WZP_FRAME_ERROR;
  }
  if (r->ready)
    return WZP_FRAME_READY;
  while (r->prefix_have < 4 && used < len)
    r->prefix[r->prefix_have++] = data[used++];
  if (r->prefix_have < 4) {
    *consumed = used;
    return WZP_FRAME_NEED_MORE;
  }
  if (r->body == NULL) {
    r->body_len = ((guint32) r->prefix[0] << 24) | ((guint32) r->prefix[1] << 16) |
        ((guint32) r->prefix[2] << 8) | r->prefix[3];
    if (r->body_len > r->max_len) {
      r->failed = TRUE;
      *consumed = used;
      g_set_error (error, WZP_SIGNAL_ERROR, WZP_SIGNAL_ERROR_TOO_LARGE,
                   "frame length %u exceeds the limit of %" G_GSIZE_FORMAT " bytes",
                   r->body_len, r->max_len);
      return WZP_FRAME_ERROR;
    }
    /* Grow with the data, not with the announced length. */
    r->body = g_byte_array_sized_new (MIN (r->body_len, 4096));
  }
  if (r->body->len < r->body_len && used < len) {
    gsize take = MIN (len - used, r->body_len - r->body->len);
    g_byte_array_append (r->body, data + used, (guint) take);
    used += take;
  }
  *consumed = used;
  if (r->body->len < r->body_len)
    return WZP_FRAME_NEED_MORE;
  r->ready = TRUE;
  return WZP_FRAME_READY;
}

GBytes *
wzp_frame_reader_take (WzpFrameReader *r)
{
  GBytes *b;

  if (!r->ready)
    return NULL;
  b = g_byte_array_free_to_bytes (r->body);
  r->body = NULL;
  r->prefix_have = 0;
  r->body_len = 0;
  r->ready = FALSE;
  return b;
}

gboolean
wzp_frame_reader_in_frame (const WzpFrameReader *r)
{
  return r->prefix_have > 0;
}
