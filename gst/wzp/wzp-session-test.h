/* Fault injection for the project's own tests and benchmarks. Not installed
 * and not in the typelib: no application can come to depend on it. */
#pragma once

#include "wzp-session.h"

G_BEGIN_DECLS

/* Sets one fault before wzp_session_start(), by name:
 *   test-block-direct     (0/1) drop every packet not to or from the relay
 *   test-report-delay-ms  send our MediaPathReport this late
 *   test-relay-delay-ms   dial the relay's call room this late
 *   test-setup-delay-ms   act on the relay's CallSetup this late
 * FALSE for a name it does not know. */
gboolean wzp_session_set_test_fault (WzpSession *session, const gchar *name, guint value);

G_END_DECLS
