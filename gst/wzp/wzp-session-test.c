/* Fault injection for tests (wzp-session-test.h). */
#include "wzp-session-private.h"
#include "wzp-session-test.h"

#include <string.h>

gboolean
wzp_session_set_test_fault (WzpSession *s, const gchar *name, guint value)
{
  g_return_val_if_fail (WZP_IS_SESSION (s), FALSE);

  if (strcmp (name, "test-block-direct") == 0)
    s->test_block_direct = value != 0;
  else if (strcmp (name, "test-report-delay-ms") == 0)
    s->test_report_delay_ms = value;
  else if (strcmp (name, "test-relay-delay-ms") == 0)
    s->test_relay_delay_ms = value;
  else if (strcmp (name, "test-setup-delay-ms") == 0)
    s->test_setup_delay_ms = value;
  else
    return FALSE;
  return TRUE;
}
