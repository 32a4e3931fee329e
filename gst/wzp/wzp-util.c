#include "wzp-util.h"

#include <gio/gio.h>
#include <string.h>

gchar *
wzp_hex_encode (const guint8 *data, gsize len)
{
  static const gchar digits[] = "0123456789abcdef";
  gchar *out = g_malloc (len * 2 + 1);

  for (gsize i = 0; i < len; i++) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 0xf];
  }
  out[len * 2] = '\0';
  return out;
}

gboolean
wzp_hex_decode_exact (const gchar *hex, guint8 *out, gsize out_len)
{
  if (hex == NULL || strlen (hex) != out_len * 2)
    return FALSE;
  for (gsize i = 0; i < out_len; i++) {
    gint hi = g_ascii_xdigit_value (hex[2 * i]);
    gint lo = g_ascii_xdigit_value (hex[2 * i + 1]);

    if (hi < 0 || lo < 0)
      return FALSE;
    out[i] = (guint8) ((hi << 4) | lo);
  }
  return TRUE;
}

GBytes *
wzp_hex_decode (const gchar *hex, GError **error)
{
  g_autoptr (GByteArray) arr = g_byte_array_new ();
  gint pending = -1;

  for (const gchar *p = hex; *p; p++) {
    gint v;

    if (g_ascii_isspace (*p))
      continue;
    v = g_ascii_xdigit_value (*p);
    if (v < 0) {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "'%c' is not a hex digit", *p);
      return NULL;
    }
    if (pending < 0) {
      pending = v;
    } else {
      guint8 b = (guint8) ((pending << 4) | v);
      g_byte_array_append (arr, &b, 1);
      pending = -1;
    }
  }
  if (pending >= 0) {
    g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                         "hex text has an odd number of digits");
    return NULL;
  }
  return g_byte_array_free_to_bytes (g_steal_pointer (&arr));
}
