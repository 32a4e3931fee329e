/* libFuzzer: the JSON signal decoder. Whatever it accepts must re-encode,
 * and the re-encoding must decode to an equal message with identical bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wzp-signal.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  WzpSignal *msg = wzp_signal_from_json ((const gchar *) data, size, &error);

  if (msg == NULL) {
    if (error == NULL || error->domain != WZP_SIGNAL_ERROR)
      abort ();
    g_error_free (error);
    return 0;
  }
  {
    gsize len = 0;
    gchar *json = wzp_signal_to_json (msg, &len, NULL);
    WzpSignal *back;
    gchar *again;

    if (json == NULL)
      abort ();
    back = wzp_signal_from_json (json, len, NULL);
    if (back == NULL || !wzp_signal_equal (msg, back))
      abort ();
    again = wzp_signal_to_json (back, NULL, NULL);
    if (again == NULL || strcmp (json, again) != 0)
      abort ();
    g_free (again);
    g_free (json);
    wzp_signal_free (back);
  }
  wzp_signal_free (msg);
  return 0;
}
