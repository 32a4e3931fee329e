/* libFuzzer: wzpsrc's decoders (plugin/gstwzpdecoder.c). The input is a
 * stream of frames as a peer could send them: codec id (any byte), payload
 * length, payload; between them gaps to conceal, with or without the next
 * frame's FEC. Every call must write exactly the samples it says, and
 * nothing may crash, leak or read out of bounds, whatever the bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gstwzpdecoder.h"

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  gst_init (NULL, NULL);
  return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GstWzpDecoder *d = gst_wzp_decoder_new ();
  GstWzpReencoder *r = gst_wzp_reencoder_new ();
  gint16 *out = g_new (gint16, GST_WZP_MAX_FRAME_SAMPLES);
  size_t at = 0;

  while (at + 2 <= size) {
    guint8 op = data[at], len = data[at + 1];
    WzpCodecId codec = (WzpCodecId) (op & 0x0f);
    guint n;

    at += 2;
    len = (guint8) MIN ((size_t) len, size - at);
    switch (op >> 4) {
      case 0:                   /* a gap of (len % 6 + 1) × 20 ms */
        gst_wzp_decoder_conceal (d, (len % 6 + 1) * 960, out);
        break;
      case 1:                   /* a gap whose next frame is this payload */
        gst_wzp_decoder_conceal_fec (d, (len % 3 + 1) * 960, 960 * (1 + len % 2), codec,
                                     data + at, len, out);
        at += len;
        break;
      case 2: {                 /* decoded, then made Opus again */
        GBytes *b;
        n = gst_wzp_decoder_decode (d, codec, data + at, len, 960, out);
        if (n == 0 || n > GST_WZP_MAX_FRAME_SAMPLES)
          abort ();
        if ((b = gst_wzp_reencoder_encode (r, out, n % 960 == 0 && n <= 1920 ? n : 960, codec)))
          g_bytes_unref (b);
        at += len;
        break;
      }
      default:                  /* a frame */
        n = gst_wzp_decoder_decode (d, codec, data + at, len, 960, out);
        if (n == 0 || n > GST_WZP_MAX_FRAME_SAMPLES)
          abort ();
        at += len;
        break;
    }
  }
  g_free (out);
  gst_wzp_reencoder_free (r);
  gst_wzp_decoder_free (d);
  return 0;
}
