/* Health probes and presence gossip (protocol §5.10) and the presence
 * registry behind /presence, /peers, /route and RouteQuery (§5.11).
 *
 * Prober: per target, a `_probe` connection from the relay's socket, one
 * Ping{timestamp_ms = Unix ms} per interval (1 s), RTT from the echoed
 * timestamp, loss and jitter (standard deviation of RTTs) over the last 60
 * pings; every 10th ping also a PresenceUpdate with our registered
 * fingerprints. A lost connection resets the gauges and is dialled again
 * after 5 s. Responder: Ping → Pong, PresenceUpdate → recorded under the
 * sender's relay_addr and answered with our list, RouteQuery → RouteResponse. */
#define G_LOG_DOMAIN "wzp-relay"

#include "relay-private.h"

#include <math.h>
#include <string.h>

#define WINDOW 60
#define GOSSIP_EVERY 10
#define RECONNECT_MS 5000
/* bounds on what anyone who opens a _probe connection can make us keep */
#define MAX_GOSSIP_RELAYS 64
#define MAX_GOSSIP_FINGERPRINTS 10000
#define MAX_PROBE_SIGNALS_PER_SECOND 20

typedef struct {
  guint64 sent_ms;
  gdouble rtt_ms;                /* < 0: unanswered */
} Sample;

struct _Prober {
  WzpProbes *probes;
  gchar *target;
  WzpConnection *conn;
  gboolean up;
  guint tick, retry;
  guint64 pings;
  Sample window[WINDOW];
  guint n;                       /* samples in the window */
};

struct _WzpProbes {
  WzpRelay *relay;
  GPtrArray *probers;            /* Prober* */
  GHashTable *responders;        /* WzpConnection* (ref) */
  GHashTable *remote;            /* relay address -> GPtrArray of fingerprints (gossip) */
};

static guint64
unix_ms (void)
{
  return (guint64) (g_get_real_time () / 1000);
}

/* Fingerprints registered here: the _signal hub and the room members. */
static GPtrArray *
local_fingerprints (WzpRelay *r)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter it;
  gpointer k, v;

  g_hash_table_iter_init (&it, r->hub);
  while (g_hash_table_iter_next (&it, &k, NULL))
    if (g_hash_table_add (seen, k))
      g_ptr_array_add (out, g_strdup (k));
  g_hash_table_iter_init (&it, r->rooms);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    Room *room = v;
    for (guint i = 0; i < room->members->len; i++) {
      Peer *m = g_ptr_array_index (room->members, i);
      if (m->fingerprint && g_hash_table_add (seen, m->fingerprint))
        g_ptr_array_add (out, g_strdup (m->fingerprint));
    }
  }
  return out;
}

/* The local fingerprints as a set, built once per question. */
static GHashTable *
local_set (WzpRelay *r)
{
  GPtrArray *l = local_fingerprints (r);
  GHashTable *set = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (guint i = 0; i < l->len; i++)
    g_hash_table_add (set, g_strdup (g_ptr_array_index (l, i)));
  g_ptr_array_unref (l);
  return set;
}

static gboolean
is_local (WzpRelay *r, const gchar *fp)
{
  g_autoptr (GHashTable) set = local_set (r);

  return g_hash_table_contains (set, fp);
}

/* The relay address gossip places @fp at, or NULL. */
static const gchar *
remote_location (WzpProbes *p, const gchar *fp)
{
  GHashTableIter it;
  gpointer k, v;

  if (p == NULL)
    return NULL;
  g_hash_table_iter_init (&it, p->remote);
  while (g_hash_table_iter_next (&it, &k, &v))
    if (g_ptr_array_find_with_equal_func (v, fp, g_str_equal, NULL))
      return k;
  return NULL;
}

static void
record_presence (WzpProbes *p, const gchar *relay_addr, GPtrArray *fps)
{
  GPtrArray *copy;

  if (!g_hash_table_contains (p->remote, relay_addr) &&
      g_hash_table_size (p->remote) >= MAX_GOSSIP_RELAYS) {
    p->relay->n.signals_unexpected++;
    return;
  }
  copy = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; fps && i < fps->len && i < MAX_GOSSIP_FINGERPRINTS; i++)
    g_ptr_array_add (copy, g_strdup (g_ptr_array_index (fps, i)));
  /* a relay's whole set is replaced on each update */
  g_hash_table_replace (p->remote, g_strdup (relay_addr), copy);
}

static WzpSignal *
presence_msg (WzpRelay *r, const gchar *relay_addr)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_PRESENCE_UPDATE);

  m->presence_update.fingerprints = local_fingerprints (r);
  m->presence_update.relay_addr = g_strdup (relay_addr);
  return m;
}

static WzpSignal *
route_response (WzpRelay *r, const gchar *fp)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_ROUTE_RESPONSE);
  const gchar *where = remote_location (r->probes, fp);

  m->route_response.fingerprint = g_strdup (fp);
  m->route_response.relay_chain = g_ptr_array_new_with_free_func (g_free);
  if (is_local (r, fp)) {
    m->route_response.found = TRUE;
    g_ptr_array_add (m->route_response.relay_chain, g_strdup (r->settings.advertise));
  } else if (where) {
    m->route_response.found = TRUE;
    g_ptr_array_add (m->route_response.relay_chain, g_strdup (r->settings.advertise));
    g_ptr_array_add (m->route_response.relay_chain, g_strdup (where));
  }
  return m;
}

/* ---- responder ------------------------------------------------------------------ */

static void
on_responder_signal (WzpConnection *conn, const WzpSignal *msg, gpointer data)
{
  WzpProbes *p = data;
  WzpRelay *r = p->relay;
  g_autoptr (WzpSignal) reply = NULL;
  gint64 now = g_get_monotonic_time ();
  gint64 *window = g_object_get_data (G_OBJECT (conn), "wzp-probe-window");

  /* window[0]: start of the current second, window[1]: messages in it */
  if (window == NULL) {
    window = g_new0 (gint64, 2);
    g_object_set_data_full (G_OBJECT (conn), "wzp-probe-window", window, g_free);
  }
  if (now - window[0] >= G_USEC_PER_SEC) {
    window[0] = now;
    window[1] = 0;
  }
  if (++window[1] > MAX_PROBE_SIGNALS_PER_SECOND) {
    r->n.signals_rate_limited++;
    return;
  }
  switch (msg->type) {
    case WZP_SIGNAL_PING:
      reply = wzp_signal_new (WZP_SIGNAL_PONG);
      reply->pong.timestamp_ms = msg->ping.timestamp_ms;
      break;
    case WZP_SIGNAL_PRESENCE_UPDATE: {
      const gchar *addr = msg->presence_update.relay_addr;
      /* the sender says which relay it is; else where it came from */
      record_presence (p, addr && *addr ? addr : wzp_connection_get_remote_address (conn),
                       msg->presence_update.fingerprints);
      reply = presence_msg (r, wzp_connection_get_remote_address (conn));
      break;
    }
    case WZP_SIGNAL_ROUTE_QUERY:
      reply = route_response (r, msg->route_query.fingerprint);
      break;
    default:
      r->n.signals_unexpected++;
      return;
  }
  wzp_connection_send_signal (conn, reply, NULL);
}

static void
on_responder_closed (WzpConnection *conn, const GError *why, gpointer data)
{
  WzpProbes *p = data;

  g_signal_handlers_disconnect_by_data (conn, p);
  g_hash_table_remove (p->responders, conn);
}

void
probes_accept (WzpRelay *r, WzpConnection *conn)
{
  WzpProbes *p = r->probes;

  g_hash_table_add (p->responders, g_object_ref (conn));
  g_signal_connect (conn, "signal", G_CALLBACK (on_responder_signal), p);
  g_signal_connect (conn, "closed", G_CALLBACK (on_responder_closed), p);
}

/* ---- prober --------------------------------------------------------------------- */

static void prober_dial (Prober *pr);

static void
prober_stats (Prober *pr, gdouble *rtt, gdouble *loss_pct, gdouble *jitter)
{
  gdouble sum = 0, sq = 0, last = -1;
  guint answered = 0, counted = 0;
  guint64 now = unix_ms ();

  for (guint i = 0; i < pr->n; i++) {
    const Sample *s = &pr->window[i];
    if (s->rtt_ms < 0 && now - s->sent_ms < 2000)
      continue;                  /* may still be answered */
    counted++;
    if (s->rtt_ms >= 0) {
      answered++;
      sum += s->rtt_ms;
      sq += s->rtt_ms * s->rtt_ms;
      last = s->rtt_ms;
    }
  }
  *rtt = last;
  *loss_pct = counted ? 100.0 * (counted - answered) / counted : 0;
  *jitter = answered > 1 ? sqrt (MAX (0, sq / answered - (sum / answered) * (sum / answered))) : 0;
}

static gboolean
prober_tick (gpointer data)
{
  Prober *pr = data;
  g_autoptr (WzpSignal) ping = wzp_signal_new (WZP_SIGNAL_PING);
  Sample s = { unix_ms (), -1 };

  if (!pr->up)
    return G_SOURCE_CONTINUE;
  ping->ping.timestamp_ms = s.sent_ms;
  if (pr->n == WINDOW) {
    memmove (pr->window, pr->window + 1, (WINDOW - 1) * sizeof (Sample));
    pr->n--;
  }
  pr->window[pr->n++] = s;
  wzp_connection_send_signal (pr->conn, ping, NULL);
  if (pr->pings++ % GOSSIP_EVERY == 0) {
    g_autoptr (WzpSignal) gossip = presence_msg (pr->probes->relay, pr->target);
    wzp_connection_send_signal (pr->conn, gossip, NULL);
  }
  return G_SOURCE_CONTINUE;
}

static void
on_prober_signal (WzpConnection *conn, const WzpSignal *msg, gpointer data)
{
  Prober *pr = data;

  if (msg->type == WZP_SIGNAL_PONG) {
    for (guint i = 0; i < pr->n; i++)
      if (pr->window[i].sent_ms == msg->pong.timestamp_ms && pr->window[i].rtt_ms < 0) {
        pr->window[i].rtt_ms = (gdouble) (g_get_real_time () / 1000.0 - (gdouble) msg->pong.timestamp_ms);
        if (pr->window[i].rtt_ms < 0)
          pr->window[i].rtt_ms = 0;
        break;
      }
  } else if (msg->type == WZP_SIGNAL_PRESENCE_UPDATE) {
    /* the target's own list, under the target's address */
    record_presence (pr->probes, pr->target, msg->presence_update.fingerprints);
  }
}

static gboolean
on_prober_retry (gpointer data)
{
  Prober *pr = data;

  pr->retry = 0;
  prober_dial (pr);
  return G_SOURCE_REMOVE;
}

static void
prober_reset (Prober *pr)
{
  if (pr->conn) {
    g_signal_handlers_disconnect_by_data (pr->conn, pr);
    wzp_connection_close (pr->conn, 0, "probe");
    g_clear_object (&pr->conn);
  }
  pr->up = FALSE;
  pr->n = 0;
  pr->pings = 0;
}

static void
on_prober_closed (WzpConnection *conn, const GError *why, gpointer data)
{
  Prober *pr = data;

  g_debug ("probe %s: %s", pr->target, why->message);
  prober_reset (pr);
  g_hash_table_remove (pr->probes->remote, pr->target);
  if (pr->retry == 0)
    pr->retry = g_timeout_add (RECONNECT_MS, on_prober_retry, pr);
}

static void
on_prober_established (WzpConnection *conn, gpointer data)
{
  Prober *pr = data;

  pr->up = TRUE;
  prober_tick (pr);
}

static void
prober_dial (Prober *pr)
{
  WzpRelay *r = pr->probes->relay;
  g_autoptr (GSocketAddress) addr = wzp_socket_address_parse (pr->target, NULL);

  prober_reset (pr);
  pr->conn = addr ? wzp_endpoint_connect (r->endpoint, addr, "_probe", NULL, NULL) : NULL;
  if (pr->conn == NULL) {
    pr->retry = g_timeout_add (RECONNECT_MS, on_prober_retry, pr);
    return;
  }
  g_signal_connect (pr->conn, "established", G_CALLBACK (on_prober_established), pr);
  g_signal_connect (pr->conn, "signal", G_CALLBACK (on_prober_signal), pr);
  g_signal_connect (pr->conn, "closed", G_CALLBACK (on_prober_closed), pr);
}

static void
prober_free (Prober *pr)
{
  prober_reset (pr);
  if (pr->tick)
    g_source_remove (pr->tick);
  if (pr->retry)
    g_source_remove (pr->retry);
  g_free (pr->target);
  g_free (pr);
}

static void
unref_closing (gpointer data)
{
  WzpConnection *conn = data;

  wzp_connection_close (conn, 0, "shutdown");
  g_object_unref (conn);
}

WzpProbes *
probes_new (WzpRelay *r)
{
  WzpProbes *p = g_new0 (WzpProbes, 1);
  gchar **targets = r->settings.probe_targets;
  guint interval = r->settings.probe_interval_ms ? r->settings.probe_interval_ms : 1000;

  p->relay = r;
  p->probers = g_ptr_array_new_with_free_func ((GDestroyNotify) prober_free);
  p->responders = g_hash_table_new_full (NULL, NULL, unref_closing, NULL);
  p->remote = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  for (guint i = 0; targets && targets[i]; i++) {
    Prober *pr = g_new0 (Prober, 1);
    pr->probes = p;
    pr->target = g_strdup (targets[i]);
    pr->tick = g_timeout_add (interval, prober_tick, pr);
    g_ptr_array_add (p->probers, pr);
    prober_dial (pr);
  }
  return p;
}

void
probes_free (WzpProbes *p)
{
  if (p == NULL)
    return;
  g_ptr_array_unref (p->probers);
  {
    GHashTableIter it;
    gpointer k;
    g_hash_table_iter_init (&it, p->responders);
    while (g_hash_table_iter_next (&it, &k, NULL))
      g_signal_handlers_disconnect_by_data (k, p);
  }
  g_hash_table_destroy (p->responders);
  g_hash_table_destroy (p->remote);
  g_free (p);
}

/* ---- HTTP and metrics ----------------------------------------------------------- */

static void
json_str (GString *s, const gchar *v)
{
  g_autofree gchar *q = v ? wzp_json_quote (v, NULL) : NULL;

  g_string_append (s, q ? q : "null");
}

static void
presence_entry (GString *s, WzpRelay *r, GHashTable *local, const gchar *fp)
{
  const gchar *where = g_hash_table_contains (local, fp) ? NULL : remote_location (r->probes, fp);

  g_string_append (s, "{\"fingerprint\":");
  json_str (s, fp);
  g_string_append (s, ",\"location\":");
  if (g_hash_table_contains (local, fp))
    g_string_append (s, "\"Local\"");
  else if (where) {
    g_string_append (s, "{\"Remote\":");
    json_str (s, where);
    g_string_append_c (s, '}');
  } else
    g_string_append (s, "null");
  g_string_append_c (s, '}');
}

gchar *
wzp_relay_presence_json (WzpRelay *r, const gchar *fp)
{
  GString *s = g_string_new (NULL);
  g_autoptr (GHashTable) local = local_set (r);
  g_autoptr (GHashTable) done = g_hash_table_new (g_str_hash, g_str_equal);
  GHashTableIter it;
  gpointer k, v;
  gboolean first = TRUE;

  if (fp) {
    presence_entry (s, r, local, fp);
    return g_string_free (s, FALSE);
  }
  g_string_append_c (s, '[');
  g_hash_table_iter_init (&it, local);
  while (g_hash_table_iter_next (&it, &k, NULL)) {
    if (!first)
      g_string_append_c (s, ',');
    first = FALSE;
    presence_entry (s, r, local, k);
  }
  /* each remote fingerprint once, where gossip first places it */
  g_hash_table_iter_init (&it, r->probes->remote);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    GPtrArray *list = v;
    for (guint i = 0; i < list->len; i++) {
      const gchar *f = g_ptr_array_index (list, i);
      if (g_hash_table_contains (local, f) || !g_hash_table_add (done, (gpointer) f))
        continue;
      if (!first)
        g_string_append_c (s, ',');
      first = FALSE;
      g_string_append (s, "{\"fingerprint\":");
      json_str (s, f);
      g_string_append (s, ",\"location\":{\"Remote\":");
      json_str (s, k);
      g_string_append (s, "}}");
    }
  }
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

gchar *
wzp_relay_peers_json (WzpRelay *r)
{
  GString *s = g_string_new ("[");
  GHashTableIter it;
  gpointer k, v;
  gboolean first = TRUE;

  g_hash_table_iter_init (&it, r->probes->remote);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    GPtrArray *list = v;
    if (!first)
      g_string_append_c (s, ',');
    first = FALSE;
    g_string_append (s, "{\"addr\":");
    json_str (s, k);
    g_string_append (s, ",\"fingerprints\":[");
    for (guint i = 0; i < list->len; i++) {
      if (i)
        g_string_append_c (s, ',');
      json_str (s, g_ptr_array_index (list, i));
    }
    g_string_append (s, "],\"rtt_ms\":null}");
  }
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

gchar *
wzp_relay_route_json (WzpRelay *r, const gchar *fp)
{
  g_autoptr (WzpSignal) m = route_response (r, fp);
  GString *s = g_string_new ("{\"fingerprint\":");
  GPtrArray *chain = m->route_response.relay_chain;

  json_str (s, fp);
  g_string_append_printf (s, ",\"route\":\"%s\",\"relay_chain\":[",
                          !m->route_response.found ? "not_found" : chain->len == 1 ? "local" : "direct_peer");
  for (guint i = 0; i < chain->len; i++) {
    if (i)
      g_string_append_c (s, ',');
    json_str (s, g_ptr_array_index (chain, i));
  }
  g_string_append (s, "]}");
  return g_string_free (s, FALSE);
}

gchar *
wzp_relay_mesh_text (WzpRelay *r)
{
  GString *s = g_string_new ("Target                          RTT(ms)   Loss(%)  Jitter(ms)  State\n");

  for (guint i = 0; i < r->probes->probers->len; i++) {
    Prober *pr = g_ptr_array_index (r->probes->probers, i);
    gdouble rtt, loss, jitter;
    prober_stats (pr, &rtt, &loss, &jitter);
    g_string_append_printf (s, "%-30s  %7.2f  %8.1f  %10.2f  %s\n", pr->target, rtt, loss, jitter,
                            pr->up ? "UP" : "DOWN");
  }
  return g_string_free (s, FALSE);
}

void
probes_metrics (WzpRelay *r, GString *s)
{
  static const gchar *const names[] = { "wzp_probe_up", "wzp_probe_rtt_ms", "wzp_probe_loss_pct",
                                        "wzp_probe_jitter_ms" };
  static const gchar *const help[] = { "1 when the probe connection is up.",
                                       "Last probe round trip (ms).",
                                       "Unanswered probes over the last 60 (%).",
                                       "Standard deviation of the probe RTTs (ms)." };

  if (r->probes->probers->len == 0)
    return;
  for (guint m = 0; m < G_N_ELEMENTS (names); m++) {
    g_string_append_printf (s, "# HELP %s %s\n# TYPE %s gauge\n", names[m], help[m], names[m]);
    for (guint i = 0; i < r->probes->probers->len; i++) {
      Prober *pr = g_ptr_array_index (r->probes->probers, i);
      gdouble v[4];
      prober_stats (pr, &v[1], &v[2], &v[3]);
      v[0] = pr->up;
      g_string_append_printf (s, "%s{target=\"%s\"} %.3f\n", names[m], pr->target, v[m]);
    }
  }
}
