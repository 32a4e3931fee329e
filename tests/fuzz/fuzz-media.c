/* libFuzzer: the media datagram parser. A parsed packet must write back to
 * the same bytes (apart from the two unused header bits). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wzp-wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  WzpMediaPacket p;
  GError *error = NULL;
  guint8 *out;
  gsize n;

  if (!wzp_media_packet_parse (data, size, &p, &error)) {
    if (error == NULL)
      abort ();
    g_error_free (error);
    return 0;
  }
  if (p.payload < data || p.payload + p.payload_len > data + size)
    abort ();
  out = malloc (size);
  n = wzp_media_packet_write (&p.header, p.payload, p.payload_len,
                              p.header.has_quality ? &p.quality : NULL, out, size);
  if (n != size || out[0] != data[0] || (out[1] ^ data[1]) & 0xfc ||
      memcmp (out + 2, data + 2, size - 2) != 0)
    abort ();
  free (out);
  return 0;
}
