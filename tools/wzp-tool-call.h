/* wzp-tool call / answer (wzp-tool-call.c). */
#pragma once

#include <glib.h>

/* argv: RELAY [FINGERPRINT] options...; returns the exit status (2 = usage). */
int wzp_tool_call (int argc, char **argv, gboolean answer);
