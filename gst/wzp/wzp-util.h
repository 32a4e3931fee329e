/* Small helpers shared by libwzp modules and tools. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Lowercase hex of @len bytes; a newly allocated string. */
gchar *wzp_hex_encode (const guint8 *data, gsize len);
/* Decodes exactly @out_len bytes of hex (either case) from @hex, which must
 * hold exactly 2 * @out_len hex digits. */
gboolean wzp_hex_decode_exact (const gchar *hex, guint8 *out, gsize out_len);
/* Decodes any even-length hex string (whitespace ignored) into a GBytes. */
GBytes *wzp_hex_decode (const gchar *hex, GError **error);

G_END_DECLS
