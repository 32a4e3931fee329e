/* wzp-tool call / answer (wzp-tool-call.c). */
#pragma once

#include <glib.h>

/* argv: RELAY [FINGERPRINT] options...; returns the exit status (2 = usage). */
int wzp_tool_call (int argc, char **argv, gboolean answer);

/* A usage error naming what was wrong (printf-style); returns 2. */
int wzp_tool_usage_error (const gchar *fmt, ...) G_GNUC_PRINTF (1, 2);
/* argv[i] of @cmd was not accepted: an unknown argument, or one of
 * @value_opts (NULL-terminated) without a value or with a bad one. */
int wzp_tool_bad_option (const gchar *cmd, const gchar *const *value_opts, int argc, char **argv, int i);
