/* wzp-relay: command line, configuration file, start-up, HTTP metrics and
 * clean shutdown around the protocol logic in relay.c. */
#define G_LOG_DOMAIN "wzp-relay"

#include "wzp-config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib-unix.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "relay.h"

/* The metrics server's connections are accepted here and handed to
 * libsoup as streams: libsoup 3.2's own listener keeps a reference to every
 * socket it accepts, so each scrape or health check on a connection of its
 * own would cost the relay about 350 bytes for good. */
static gboolean
on_http_incoming (GSocketService *service, GSocketConnection *connection, GObject *source,
                  gpointer data)
{
  g_autoptr (GSocketAddress) local = g_socket_connection_get_local_address (connection, NULL);
  g_autoptr (GSocketAddress) remote = g_socket_connection_get_remote_address (connection, NULL);
  g_autoptr (GError) error = NULL;

  if (local == NULL || remote == NULL ||
      !soup_server_accept_iostream (data, G_IO_STREAM (connection), local, remote, &error))
    g_debug ("metrics: dropped a connection: %s", error ? error->message : "no address");
  return TRUE;
}

typedef struct {
  gchar *listen, *identity, *config, *advertise, *metrics, *auth_url;
  GPtrArray *fed_peers;   /* from [peer:NAME] groups */
  gchar **fed_trusted, **global_rooms, *fed_label, **probe_targets;
  gint probe_interval_ms;
  gboolean fed_require_certificates;
  gint fed_retry_ms;
  gboolean require_signatures, version;
  gchar *log_level;
  gint ring_timeout_ms, register_timeout_ms, handshake_timeout_ms, max_rooms, max_room_members,
      max_conns_per_address, max_signals_per_second, max_pending_calls, rx_hold_us;
} Options;

static Options opt = {
  .ring_timeout_ms = -1, .register_timeout_ms = -1, .handshake_timeout_ms = -1,
  .max_rooms = -1, .max_room_members = -1, .max_conns_per_address = -1,
  .max_signals_per_second = -1, .max_pending_calls = -1, .fed_retry_ms = -1, .probe_interval_ms = -1,
  .rx_hold_us = -1,
};

static GOptionEntry entries[] = {
  { "listen", 'l', 0, G_OPTION_ARG_STRING, &opt.listen, "QUIC address to listen on (default 0.0.0.0:4433; a bare port listens on all IPv4 addresses)", "ADDR:PORT" },
  { "identity", 'i', 0, G_OPTION_ARG_FILENAME, &opt.identity, "Seed file of the relay's identity, created (mode 0600) when missing (default ~/.wzp/relay-identity)", "FILE" },
  { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt.config, "Configuration file ([relay] group, keys named like these flags; flags win)", "FILE" },
  { "advertise", 'a', 0, G_OPTION_ARG_STRING, &opt.advertise, "Relay address given to callers in CallSetup (default: the listen address)", "ADDR:PORT" },
  { "metrics", 'm', 0, G_OPTION_ARG_STRING, &opt.metrics, "Serve /metrics and /health over HTTP here (a bare port binds 127.0.0.1)", "ADDR:PORT" },
  { "auth-url", 0, 0, G_OPTION_ARG_STRING, &opt.auth_url, "Validate client tokens at this URL (featherChat /v1/auth/validate)", "URL" },
  { "require-signatures", 0, 0, G_OPTION_ARG_NONE, &opt.require_signatures, "Refuse unsigned RegisterPresence and DirectCallOffer", NULL },
  { "ring-timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt.ring_timeout_ms, "End unanswered calls after this long (30000)", "MS" },
  { "register-timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt.register_timeout_ms, "RegisterPresence must arrive within (10000)", "MS" },
  { "handshake-timeout-ms", 0, 0, G_OPTION_ARG_INT, &opt.handshake_timeout_ms, "A room's CallOffer must arrive within (10000)", "MS" },
  { "max-rooms", 0, 0, G_OPTION_ARG_INT, &opt.max_rooms, "Rooms per relay (1000)", "N" },
  { "max-room-members", 0, 0, G_OPTION_ARG_INT, &opt.max_room_members, "Members per room (64)", "N" },
  { "max-conns-per-address", 0, 0, G_OPTION_ARG_INT, &opt.max_conns_per_address, "Connections per source address (64)", "N" },
  { "max-signals-per-second", 0, 0, G_OPTION_ARG_INT, &opt.max_signals_per_second, "Signal messages per second per connection (50)", "N" },
  { "max-pending-calls", 0, 0, G_OPTION_ARG_INT, &opt.max_pending_calls, "Unanswered calls per identity (8)", "N" },
  { "rx-hold-us", 0, 0, G_OPTION_ARG_INT, &opt.rx_hold_us, "Under load, read the socket at most this often, gathering what comes meanwhile into one batch (500; 0 reads each datagram as it comes)", "US" },
  { "probe", 0, 0, G_OPTION_ARG_STRING_ARRAY, &opt.probe_targets, "Probe this relay (RTT, loss, jitter, presence gossip; repeatable)", "ADDR:PORT" },
  { "log-level", 0, 0, G_OPTION_ARG_STRING, &opt.log_level, "What goes to stderr: warning, info (default: a line per registration, call, room join and leave, refusal, federation link change) or debug", "LEVEL" },
  { "version", 'V', 0, G_OPTION_ARG_NONE, &opt.version, "Print the build id and exit", NULL },
  { NULL }
};

/* Federation (docs/relay.md): [peer:NAME] groups with url, fingerprint and
 * label; [trusted] fingerprints = a;b; [federation] global-rooms = x;y and
 * retry-ms. */
static gboolean
load_federation (GKeyFile *kf, const gchar *path, GError **error)
{
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (guint i = 0; groups[i]; i++) {
    g_autofree gchar *url = NULL, *fp = NULL, *label = NULL;
    g_autoptr (GSocketAddress) addr = NULL;
    g_autoptr (GError) local = NULL;
    const gchar *name;

    if (!g_str_has_prefix (groups[i], "peer:"))
      continue;
    name = groups[i] + 5;
    url = g_key_file_get_string (kf, groups[i], "url", NULL);
    fp = g_key_file_get_string (kf, groups[i], "fingerprint", NULL);
    label = g_key_file_get_string (kf, groups[i], "label", NULL);
    if (url == NULL || fp == NULL || strlen (fp) < 16) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                   "%s: [%s] needs url = HOST:PORT and fingerprint = the peer's TLS fingerprint "
                   "(its wzp-relay prints it at start)", path, groups[i]);
      return FALSE;
    }
    /* a host name is resolved once, here: the relay's loop never waits on DNS */
    addr = wzp_socket_address_resolve (url, &local);
    if (addr == NULL) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE, "%s: [%s] url: %s",
                   path, groups[i], local->message);
      return FALSE;
    }
    g_free (url);
    url = wzp_socket_address_to_string (addr);
    if (opt.fed_peers == NULL)
      opt.fed_peers = g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_federation_peer_free);
    g_ptr_array_add (opt.fed_peers, wzp_federation_peer_new (name, url, fp, label));
  }
  if (g_key_file_has_key (kf, "trusted", "fingerprints", NULL))
    opt.fed_trusted = g_key_file_get_string_list (kf, "trusted", "fingerprints", NULL, NULL);
  if (g_key_file_has_key (kf, "federation", "global-rooms", NULL))
    opt.global_rooms = g_key_file_get_string_list (kf, "federation", "global-rooms", NULL, NULL);
  if (opt.probe_targets == NULL && g_key_file_has_key (kf, "federation", "probe-targets", NULL))
    opt.probe_targets = g_key_file_get_string_list (kf, "federation", "probe-targets", NULL, NULL);
  if (opt.probe_interval_ms < 0 && g_key_file_has_key (kf, "federation", "probe-interval-ms", NULL))
    opt.probe_interval_ms = g_key_file_get_integer (kf, "federation", "probe-interval-ms", NULL);
  if (g_key_file_has_key (kf, "federation", "require-certificates", NULL))
    opt.fed_require_certificates = g_key_file_get_boolean (kf, "federation", "require-certificates", NULL);
  if (g_key_file_has_key (kf, "federation", "label", NULL))
    opt.fed_label = g_key_file_get_string (kf, "federation", "label", NULL);
  if (opt.fed_retry_ms < 0 && g_key_file_has_key (kf, "federation", "retry-ms", NULL))
    opt.fed_retry_ms = g_key_file_get_integer (kf, "federation", "retry-ms", NULL);
  return TRUE;
}

/* Values from the configuration file fill what the command line left unset. */
/* Every group and key of the file is one we know: a typo is a start-up
 * error that names the file, group and key, not a setting silently ignored. */
static gboolean
check_keys (GKeyFile *kf, const gchar *path, GError **error)
{
  static const gchar *const relay_keys[] = {
    "listen", "identity", "advertise", "metrics", "auth-url", "log-level", "ring-timeout-ms",
    "register-timeout-ms", "handshake-timeout-ms", "max-rooms", "max-room-members",
    "max-conns-per-address", "max-signals-per-second", "max-pending-calls", "rx-hold-us",
    "require-signatures", NULL };
  static const gchar *const peer_keys[] = { "url", "fingerprint", "label", NULL };
  static const gchar *const trusted_keys[] = { "fingerprints", NULL };
  static const gchar *const federation_keys[] = { "global-rooms", "probe-targets",
    "probe-interval-ms", "require-certificates", "label", "retry-ms", NULL };
  g_auto (GStrv) groups = g_key_file_get_groups (kf, NULL);

  for (guint i = 0; groups[i]; i++) {
    const gchar *const *known = g_str_equal (groups[i], "relay") ? relay_keys :
        g_str_has_prefix (groups[i], "peer:") ? peer_keys :
        g_str_equal (groups[i], "trusted") ? trusted_keys :
        g_str_equal (groups[i], "federation") ? federation_keys : NULL;
    g_auto (GStrv) keys = NULL;

    if (known == NULL) {
      g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_GROUP_NOT_FOUND,
                   "%s: unknown group [%s] (known: [relay], [peer:NAME], [trusted], [federation])",
                   path, groups[i]);
      return FALSE;
    }
    keys = g_key_file_get_keys (kf, groups[i], NULL, NULL);
    for (guint k = 0; keys && keys[k]; k++)
      if (!g_strv_contains (known, keys[k])) {
        g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_KEY_NOT_FOUND,
                     "%s: unknown key \"%s\" in [%s]", path, keys[k], groups[i]);
        return FALSE;
      }
  }
  return TRUE;
}

static gboolean
load_config (const gchar *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  struct { const gchar *key; gchar **value; } strings[] = {
    { "listen", &opt.listen }, { "identity", &opt.identity }, { "advertise", &opt.advertise },
    { "metrics", &opt.metrics }, { "auth-url", &opt.auth_url }, { "log-level", &opt.log_level },
  };
  struct { const gchar *key; gint *value; } ints[] = {
    { "ring-timeout-ms", &opt.ring_timeout_ms }, { "register-timeout-ms", &opt.register_timeout_ms },
    { "handshake-timeout-ms", &opt.handshake_timeout_ms }, { "max-rooms", &opt.max_rooms },
    { "max-room-members", &opt.max_room_members },
    { "max-conns-per-address", &opt.max_conns_per_address },
    { "max-signals-per-second", &opt.max_signals_per_second },
    { "max-pending-calls", &opt.max_pending_calls }, { "rx-hold-us", &opt.rx_hold_us },
  };

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, error)) {
    g_prefix_error (error, "%s: ", path);
    return FALSE;
  }
  if (!check_keys (kf, path, error))
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (strings); i++)
    if (*strings[i].value == NULL && g_key_file_has_key (kf, "relay", strings[i].key, NULL))
      *strings[i].value = g_key_file_get_string (kf, "relay", strings[i].key, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (ints); i++) {
    if (*ints[i].value < 0 && g_key_file_has_key (kf, "relay", ints[i].key, NULL)) {
      g_autoptr (GError) e = NULL;
      gint v = g_key_file_get_integer (kf, "relay", ints[i].key, &e);
      if (e || v < 0) {
        g_set_error (error, G_KEY_FILE_ERROR, G_KEY_FILE_ERROR_INVALID_VALUE,
                     "%s: [relay] %s must be a number of 0 or more", path, ints[i].key);
        return FALSE;
      }
      *ints[i].value = v;
    }
  }
  if (!opt.require_signatures && g_key_file_has_key (kf, "relay", "require-signatures", NULL))
    opt.require_signatures = g_key_file_get_boolean (kf, "relay", "require-signatures", NULL);
  return load_federation (kf, path, error);
}

/* The relay's log on stderr: one line per event, with the time and the
 * level, down to --log-level. G_MESSAGES_DEBUG still adds debug domains. */
static GLogLevelFlags log_threshold = G_LOG_LEVEL_INFO;

static GLogWriterOutput
log_writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
  const gchar *message = NULL, *domain = NULL, *name;
  g_autoptr (GDateTime) now = NULL;
  g_autofree gchar *stamp = NULL;

  for (gsize i = 0; i < n_fields; i++) {
    if (g_str_equal (fields[i].key, "MESSAGE"))
      message = fields[i].value;
    else if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
      domain = fields[i].value;
  }
  if ((level & G_LOG_LEVEL_MASK) > log_threshold && g_log_writer_default_would_drop (level, domain))
    return G_LOG_WRITER_HANDLED;
  name = level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL) ? "ERROR" :
      level & G_LOG_LEVEL_WARNING ? "WARNING" : level & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO) ?
      "INFO" : "DEBUG";
  now = g_date_time_new_now_utc ();
  stamp = g_date_time_format (now, "%Y-%m-%dT%H:%M:%S");
  fprintf (stderr, "%s.%03dZ %s %s: %s\n", stamp, g_date_time_get_microsecond (now) / 1000, name,
           domain ? domain : "wzp", message ? message : "");
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

static gboolean
set_log_level (const gchar *level, GError **error)
{
  if (level == NULL || g_str_equal (level, "info"))
    log_threshold = G_LOG_LEVEL_INFO;
  else if (g_str_equal (level, "warning"))
    log_threshold = G_LOG_LEVEL_WARNING;
  else if (g_str_equal (level, "debug"))
    log_threshold = G_LOG_LEVEL_DEBUG;
  else {
    g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "--log-level \"%s\": use warning, info or debug", level);
    return FALSE;
  }
  return TRUE;
}

/* "PORT" or "HOST:PORT" (a host name is resolved); a bare port gets
 * @default_host. */
static GSocketAddress *
parse_address (const gchar *text, const gchar *default_host, GError **error)
{
  guint64 port;

  if (g_ascii_string_to_unsigned (text, 10, 0, 65535, &port, NULL)) {
    g_autofree gchar *full = g_strdup_printf ("%s:%s", default_host, text);
    return wzp_socket_address_resolve (full, error);
  }
  return wzp_socket_address_resolve (text, error);
}

static WzpIdentity *
load_identity (GError **error)
{
  g_autofree gchar *path = opt.identity ? g_strdup (opt.identity) :
      g_build_filename (g_get_home_dir (), ".wzp", "relay-identity", NULL);
  g_autofree gchar *dir = g_path_get_dirname (path);
  gboolean created = FALSE;
  WzpIdentity *id;

  if (g_mkdir_with_parents (dir, 0700) != 0) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot create %s", dir);
    return NULL;
  }
  id = wzp_identity_load_or_create (path, &created, error);
  if (id && created)
    printf ("created identity %s\n", path);
  return id;
}

static void
serve_metrics (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
               gpointer data)
{
  WzpRelay *relay = data;
  gchar *body;

  if (soup_server_message_get_method (msg) != SOUP_METHOD_GET) {
    soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
    return;
  }
  if (strcmp (path, "/metrics") == 0) {
    body = wzp_relay_metrics_text (relay);
    soup_server_message_set_response (msg, "text/plain; version=0.0.4; charset=utf-8",
                                      SOUP_MEMORY_TAKE, body, strlen (body));
  } else if (strcmp (path, "/health") == 0 || strcmp (path, "/presence") == 0 ||
             g_str_has_prefix (path, "/presence/") || strcmp (path, "/peers") == 0 ||
             g_str_has_prefix (path, "/route/")) {
    if (strcmp (path, "/health") == 0)
      body = wzp_relay_health_json (relay);
    else if (strcmp (path, "/presence") == 0)
      body = wzp_relay_presence_json (relay, NULL);
    else if (g_str_has_prefix (path, "/presence/"))
      body = wzp_relay_presence_json (relay, path + 10);
    else if (strcmp (path, "/peers") == 0)
      body = wzp_relay_peers_json (relay);
    else
      body = wzp_relay_route_json (relay, path + 7);
    soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_TAKE, body, strlen (body));
  } else if (strcmp (path, "/mesh") == 0) {
    body = wzp_relay_mesh_text (relay);
    soup_server_message_set_response (msg, "text/plain; charset=utf-8", SOUP_MEMORY_TAKE, body, strlen (body));
  } else {
    soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
    return;
  }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
}

typedef struct {
  GMainLoop *loop;
  WzpRelay *relay;
  gboolean stopping;
} App;

static gboolean
quit_loop (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static gboolean
on_terminate (gpointer data)
{
  App *app = data;

  if (!app->stopping) {
    app->stopping = TRUE;
    printf ("shutting down\n");
    fflush (stdout);
    wzp_relay_shutdown (app->relay);
    /* let the hangups and closes leave before exiting */
    g_timeout_add (200, quit_loop, app->loop);
  }
  return G_SOURCE_CONTINUE;
}

/* Every forwarded datagram touches two connections' state, about 32 KiB
 * each (ngtcp2's, OpenSSL's and ours) spread over the heap: with 4 KiB pages
 * that is a TLB miss after another, and with 2 MiB pages it is not (-7 % of
 * the relay's CPU per datagram at 400 calls, docs/performance.md). glibc
 * puts its heap on transparent huge pages when GLIBC_TUNABLES has
 * glibc.malloc.hugetlb=1, and reads that only as a program starts: so the
 * relay starts once more with it set, unless it is set already (either
 * way), huge pages are off in the kernel, WZP_RELAY_HUGE_PAGES=0 says no,
 * or valgrind runs it (it would not follow). The process keeps its id. */
static void
heap_on_huge_pages (char **argv)
{
#ifdef __GLIBC__
  g_autofree gchar *tunables = g_strdup (g_getenv ("GLIBC_TUNABLES"));
  const gchar *preload = g_getenv ("LD_PRELOAD");
  g_autofree gchar *thp = NULL, *set = NULL, *self = NULL;

  if (g_strcmp0 (g_getenv ("WZP_RELAY_HUGE_PAGES"), "0") == 0 ||
      (tunables && strstr (tunables, "glibc.malloc.hugetlb")) || (preload && strstr (preload, "vgpreload")) ||
      !g_file_get_contents ("/sys/kernel/mm/transparent_hugepage/enabled", &thp, NULL, NULL) ||
      strstr (thp, "[never]"))
    return;
  set = tunables && *tunables ? g_strconcat (tunables, ":glibc.malloc.hugetlb=1", NULL) :
      g_strdup ("glibc.malloc.hugetlb=1");
  /* by its own name, so that ps and pgrep know it as before */
  self = g_file_read_link ("/proc/self/exe", NULL);
  if (self == NULL)
    return;
  g_setenv ("GLIBC_TUNABLES", set, TRUE);
  execv (self, argv);
  /* cannot: small pages, and the environment as it was */
  if (tunables)
    g_setenv ("GLIBC_TUNABLES", tunables, TRUE);
  else
    g_unsetenv ("GLIBC_TUNABLES");
#endif
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- the WarzonePhone relay");
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) listen_addr = NULL;
  g_autoptr (WzpEndpoint) ep = NULL;
  g_autoptr (WzpIdentity) id = NULL;
  g_autoptr (SoupServer) http = NULL;
  g_autoptr (GSocketService) http_service = NULL;
  g_autoptr (GSocketAddress) http_addr = NULL;
  g_autoptr (GInetSocketAddress) bound = NULL;
  g_autofree gchar *bound_str = NULL;
  WzpRelaySettings settings;
  WzpEndpointSettings ep_settings;
  App app = { 0 };

  heap_on_huge_pages (argv);
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    g_printerr ("wzp-relay: %s (see --help)\n", error->message);
    return 2;
  }
  if (opt.version) {
    printf ("%s\n", WZP_BUILD_ID);
    return 0;
  }
  if (opt.config && !load_config (opt.config, &error)) {
    g_printerr ("wzp-relay: %s\n", error->message);
    return 1;
  }
  if (!set_log_level (opt.log_level, &error)) {
    g_printerr ("wzp-relay: %s\n", error->message);
    return 2;
  }
  g_log_set_writer_func (log_writer, NULL, NULL);
  listen_addr = parse_address (opt.listen ? opt.listen : "0.0.0.0:4433", "0.0.0.0", &error);
  if (listen_addr == NULL) {
    g_printerr ("wzp-relay: --listen: %s\n", error->message);
    return 2;
  }
  id = load_identity (&error);
  if (id == NULL) {
    g_printerr ("wzp-relay: %s\n", error->message);
    return 1;
  }
  wzp_endpoint_settings_init (&ep_settings);
  if (opt.rx_hold_us > 100000) {
    g_printerr ("wzp-relay: --rx-hold-us must be 0 to 100000\n");
    return 2;
  }
  if (opt.rx_hold_us >= 0)
    ep_settings.rx_hold_us = (guint) opt.rx_hold_us;
  ep = wzp_endpoint_new (listen_addr, NULL, &ep_settings, &error);
  if (ep == NULL || !wzp_endpoint_listen (ep, wzp_identity_get_tls_secret_key (id), &error)) {
    g_printerr ("wzp-relay: cannot listen on %s: %s\n", opt.listen ? opt.listen : "0.0.0.0:4433",
                error->message);
    return 1;
  }
  bound = wzp_endpoint_get_local_address (ep);
  bound_str = wzp_socket_address_to_string (G_SOCKET_ADDRESS (bound));

  wzp_relay_settings_init (&settings);
#define SET(field) if (opt.field >= 0) settings.field = (guint) opt.field
  SET (ring_timeout_ms);
  SET (register_timeout_ms);
  SET (handshake_timeout_ms);
  SET (max_rooms);
  SET (max_room_members);
  SET (max_conns_per_address);
  SET (max_signals_per_second);
  SET (max_pending_calls);
#undef SET
  settings.require_signatures = opt.require_signatures;
  settings.auth_url = g_strdup (opt.auth_url);
  settings.fed_peers = opt.fed_peers ? g_ptr_array_ref (opt.fed_peers) : NULL;
  settings.fed_trusted = g_strdupv (opt.fed_trusted);
  settings.global_rooms = g_strdupv (opt.global_rooms);
  settings.fed_label = g_strdup (opt.fed_label);
  settings.fed_require_certificates = opt.fed_require_certificates;
  settings.probe_targets = g_strdupv (opt.probe_targets);
  if (opt.probe_interval_ms > 0)
    settings.probe_interval_ms = (guint) opt.probe_interval_ms;
  if (opt.fed_retry_ms > 0)
    settings.fed_retry_ms = (guint) opt.fed_retry_ms;
  if (opt.advertise) {
    g_autoptr (GSocketAddress) a = wzp_socket_address_parse (opt.advertise, &error);
    if (a == NULL) {
      g_printerr ("wzp-relay: --advertise: %s\n", error->message);
      return 2;
    }
    settings.advertise = wzp_socket_address_to_string (a);
  } else if (g_inet_address_get_is_any (g_inet_socket_address_get_address (bound))) {
    /* clients cannot dial 0.0.0.0: say so rather than guess (protocol §9 #15) */
    settings.advertise = g_strdup_printf ("127.0.0.1:%u", wzp_endpoint_get_port (ep));
    g_printerr ("wzp-relay: listening on a wildcard address: set --advertise to the address "
                "callers can reach (using %s)\n", settings.advertise);
  } else {
    settings.advertise = g_strdup (bound_str);
  }
  app.relay = wzp_relay_new (ep, id, &settings, &error);
  if (app.relay == NULL) {
    g_printerr ("wzp-relay: --auth-url: %s\n", error->message);
    return 2;
  }

  if (opt.metrics) {
    g_autoptr (GSocketAddress) maddr = parse_address (opt.metrics, "127.0.0.1", &error);
    http = soup_server_new (NULL, NULL);
    soup_server_add_handler (http, NULL, serve_metrics, app.relay, NULL);
    http_service = g_socket_service_new ();
    if (maddr == NULL ||
        !g_socket_listener_add_address (G_SOCKET_LISTENER (http_service), maddr, G_SOCKET_TYPE_STREAM,
                                        G_SOCKET_PROTOCOL_TCP, NULL, &http_addr, &error)) {
      g_printerr ("wzp-relay: --metrics %s: %s\n", opt.metrics, error->message);
      return 1;
    }
    g_signal_connect (http_service, "incoming", G_CALLBACK (on_http_incoming), http);
    g_socket_service_start (http_service);
  }

  /* before the lines that say the relay is up: a stop that follows them at
   * once is a clean one */
  app.loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGTERM, on_terminate, &app);
  g_unix_signal_add (SIGINT, on_terminate, &app);
  printf ("wzp-relay %s (build %s)\n", WZP_VERSION, WZP_BUILD_ID);
  printf ("listening on %s\n", bound_str);
  printf ("identity fingerprint: %s\n", wzp_identity_get_fingerprint (id));
  printf ("TLS fingerprint: %s\n", wzp_endpoint_get_fingerprint (ep));
  printf ("advertised address: %s\n", settings.advertise);
  if (settings.fed_peers || settings.fed_trusted || settings.global_rooms)
    printf ("federation: %u peers, %u trusted, %u global rooms\n",
            settings.fed_peers ? settings.fed_peers->len : 0,
            settings.fed_trusted ? g_strv_length (settings.fed_trusted) : 0,
            settings.global_rooms ? g_strv_length (settings.global_rooms) : 0);
  if (http_addr) {
    g_autofree gchar *text = wzp_socket_address_to_string (http_addr);

    printf ("metrics: http://%s/metrics\n", text);
  }
  fflush (stdout);

  g_main_loop_run (app.loop);

  if (http_service) {
    g_socket_service_stop (http_service);
    g_socket_listener_close (G_SOCKET_LISTENER (http_service));
  }
  if (http)
    soup_server_disconnect (http);
  wzp_relay_free (app.relay);
  wzp_relay_settings_clear (&settings);
  g_main_loop_unref (app.loop);
  printf ("stopped\n");
  return 0;
}
