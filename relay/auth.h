/* Token validation against a featherChat-style auth server (protocol §4.6):
 * POST {"token":"..."} as JSON; valid when the answer is 2xx with
 * {"valid":true,"fingerprint":"...","alias":...}. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct _WzpAuth WzpAuth;

/* @ok FALSE: @error says why (for logs). */
typedef void (*WzpAuthDone) (gboolean ok, const gchar *fingerprint, const gchar *alias,
                             const gchar *error, gpointer user_data);

WzpAuth *wzp_auth_new (const gchar *url, guint timeout_s, GError **error);
void wzp_auth_free (WzpAuth *auth);
/* @done is called exactly once, in the calling thread's context; with
 * ok = FALSE and "cancelled" when @cancellable fires. */
void wzp_auth_validate (WzpAuth *auth, const gchar *token, GCancellable *cancellable,
                        WzpAuthDone done, gpointer user_data);

G_END_DECLS
