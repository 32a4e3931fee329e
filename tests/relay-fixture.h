/* Starts a real wzp-relay on 127.0.0.1 with a free port for a test. */
#pragma once

#include <gio/gio.h>

typedef struct {
  GSubprocess *proc;
  gchar *dir;
  gchar *addr;              /* 127.0.0.1:port */
  gchar *tls_fp;
  gchar *fingerprint;
  gchar *metrics_url;
  GSocketAddress *sockaddr;
} Relay;

/* @relay_path: the binary; @extra: more flags (NULL-terminated) or NULL. */
Relay *relay_start (const gchar *relay_path, const gchar *const *extra);
/* SIGTERM (asserting exit 0), then the relay again on the same address
 * with the same identity (without @extra flags). */
void relay_restart (Relay *r, const gchar *relay_path);
/* SIGTERM, asserts a clean exit 0, frees. */
void relay_stop (Relay *r);
/* GET /metrics (Prometheus text); NULL when it cannot be read. */
gchar *relay_fetch_metrics (Relay *r);
/* Frees without stopping (the process is gone already). */
void relay_free (Relay *r);

/* A stub featherChat-style auth server in this process (libsoup): token
 * "good-NAME" is valid with fingerprint "auth-NAME", anything else refused.
 * Returns its validation URL; runs in the thread-default main context. */
typedef struct _AuthStub AuthStub;
AuthStub *auth_stub_start (gchar **url);
void auth_stub_stop (AuthStub *stub);
