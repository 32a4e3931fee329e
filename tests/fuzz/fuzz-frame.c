/* libFuzzer: the incremental frame reader, fed in pieces whose sizes come
 * from the input itself, then each complete frame through the decoder. */
#include <stdint.h>
#include <stdlib.h>

#include "wzp-signal.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  WzpFrameReader *reader;
  size_t pos = 1;
  guint step;

  if (size < 1)
    return 0;
  step = (data[0] & 0x0f) + 1;
  /* a small limit so the fuzzer reaches the over-limit path */
  reader = wzp_frame_reader_new (data[0] & 0x80 ? 64 : 0);
  while (pos < size) {
    size_t piece = size - pos < step ? size - pos : step, consumed = 0;
    GError *error = NULL;
    WzpFrameStatus st = wzp_frame_reader_feed (reader, data + pos, piece, &consumed, &error);

    if (consumed > piece)
      abort ();
    if (st == WZP_FRAME_ERROR) {
      if (error == NULL)
        abort ();
      g_error_free (error);
      break;
    }
    pos += consumed;
    if (st == WZP_FRAME_READY) {
      GBytes *body = wzp_frame_reader_take (reader);
      gsize len;
      const gchar *json = g_bytes_get_data (body, &len);
      WzpSignal *msg = wzp_signal_from_json (json, len, &error);

      if (msg == NULL && error == NULL)
        abort ();
      g_clear_error (&error);
      wzp_signal_free (msg);
      g_bytes_unref (body);
    }
  }
  wzp_frame_reader_free (reader);
  return 0;
}
