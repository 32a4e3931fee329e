/* The relay's Prometheus metrics and JSON health (served by main.c over
 * HTTP): counters, gauges and the per-peer figures of probes and links. */
#define G_LOG_DOMAIN "wzp-relay"

#include "relay-private.h"
#include "auth.h"
#include "wzp-config.h"
#include "wzp-wire.h"

#include <string.h>
/* glibc's heap statistics; a sanitizer's allocator has none to give */
#if defined(HAVE_MALLINFO2) && !defined(__SANITIZE_ADDRESS__)
#define HEAP_GAUGE 1
#include <malloc.h>
#endif

/* Per room member, from its last QualityReport trailer (members that sent
 * none are left out): loss, RTT and jitter as the member measured them. */
static void
session_gauges (WzpRelay *r, GString *s)
{
  static const gchar *const names[] = { "wzp_relay_session_loss_pct", "wzp_relay_session_rtt_ms",
                                        "wzp_relay_session_jitter_ms" };
  static const gchar *const help[] = { "Loss the member reported in its last trailer (%).",
                                       "RTT the member reported in its last trailer (ms).",
                                       "Jitter the member reported in its last trailer (ms)." };

  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    GHashTableIter it;
    gpointer v;
    gboolean header = FALSE;

    g_hash_table_iter_init (&it, r->rooms);
    while (g_hash_table_iter_next (&it, NULL, &v)) {
      Room *room = v;
      for (guint i = 0; i < room->members->len; i++) {
        Peer *m = g_ptr_array_index (room->members, i);
        gdouble val = k == 0 ? m->report_loss_pct : k == 1 ? m->report_rtt_ms : m->report_jitter_ms;
        if (!m->has_report)
          continue;
        if (!header) {
          g_string_append_printf (s, "# HELP %s %s\n# TYPE %s gauge\n", names[k], help[k], names[k]);
          header = TRUE;
        }
        g_string_append_printf (s, "%s{room=\"%s\",fingerprint=\"%s\"} %.2f\n", names[k],
                                room->name, m->fingerprint, val);
      }
    }
  }
}

static void
metric (GString *s, const gchar *name, const gchar *type, const gchar *help, guint64 value)
{
  g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n%s %" G_GUINT64_FORMAT "\n",
                          name, help, name, type, name, value);
}

gchar *
wzp_relay_metrics_text (WzpRelay *r)
{
  GString *s = g_string_new (NULL);
  GHashTableIter it;
  gpointer v;
  guint64 participants = 0, active = 0, pending = 0, in_rooms = 0, on_signal = 0, other = 0;
  WzpEndpointStats es;

  g_hash_table_iter_init (&it, r->rooms);
  while (g_hash_table_iter_next (&it, NULL, &v))
    participants += ((Room *) v)->members->len;
  g_hash_table_iter_init (&it, r->calls);
  while (g_hash_table_iter_next (&it, NULL, &v))
    (((Call *) v)->active ? active++ : pending++);
  g_hash_table_iter_init (&it, r->peers);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    Peer *p = v;
    if (p->state == PEER_DONE)
      other++;
    else if (p->is_signal)
      on_signal++;
    else
      in_rooms++;
  }
  wzp_endpoint_get_stats (r->endpoint, &es);
  g_string_append (s, "# HELP wzp_relay_connections Open connections by purpose.\n"
                   "# TYPE wzp_relay_connections gauge\n");
  g_string_append_printf (s, "wzp_relay_connections{purpose=\"room\"} %" G_GUINT64_FORMAT "\n"
                          "wzp_relay_connections{purpose=\"signal\"} %" G_GUINT64_FORMAT "\n"
                          "wzp_relay_connections{purpose=\"other\"} %" G_GUINT64_FORMAT "\n",
                          in_rooms, on_signal, other);
  metric (s, "wzp_relay_registered_identities", "gauge", "Identities registered on _signal.",
          g_hash_table_size (r->hub));
  metric (s, "wzp_relay_active_rooms", "gauge", "Rooms with at least one member.",
          g_hash_table_size (r->rooms));
  metric (s, "wzp_relay_room_participants", "gauge", "Members of all rooms.", participants);
  g_string_append (s, "# HELP wzp_relay_calls Direct calls in the registry.\n"
                   "# TYPE wzp_relay_calls gauge\n");
  g_string_append_printf (s, "wzp_relay_calls{state=\"active\"} %" G_GUINT64_FORMAT "\n"
                          "wzp_relay_calls{state=\"pending\"} %" G_GUINT64_FORMAT "\n", active, pending);
  metric (s, "wzp_relay_connections_total", "counter", "Connections accepted.", r->n.connections_total);
  metric (s, "wzp_relay_packets_forwarded_total", "counter", "Media datagrams forwarded (by fan-out).",
          r->n.datagrams_forwarded);
  metric (s, "wzp_relay_bytes_forwarded_total", "counter", "Media bytes forwarded (by fan-out).",
          r->n.bytes_forwarded);
  metric (s, "wzp_relay_datagrams_received_total", "counter", "Media datagrams received in rooms.",
          r->n.datagrams_in);
  g_string_append (s, "# HELP wzp_relay_drops_total Things dropped, by reason.\n"
                   "# TYPE wzp_relay_drops_total counter\n");
  g_string_append_printf (s,
      "wzp_relay_drops_total{reason=\"malformed_datagram\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_drops_total{reason=\"undecodable_packet\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_drops_total{reason=\"path_report_not_a_party\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_drops_total{reason=\"signal_rate_limit\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_drops_total{reason=\"unexpected_signal\"} %" G_GUINT64_FORMAT "\n",
      r->n.datagrams_malformed, es.packets_dropped, r->n.path_reports_dropped,
      r->n.signals_rate_limited, r->n.signals_unexpected);
  metric (s, "wzp_relay_path_reports_forwarded_total", "counter", "MediaPathReports forwarded.",
          r->n.path_reports_forwarded);
  metric (s, "wzp_relay_quality_directives_total", "counter",
          "QualityDirectives sent to rooms (the weakest member's tier changed).", r->n.quality_directives);
  session_gauges (r, s);
  metric (s, "wzp_federation_links_up", "gauge", "Federation links that are up.", federation_links_up (r));
  federation_peer_metrics (r, s);
  probes_metrics (r, s);
  g_string_append (s, "# HELP wzp_federation_links_total Inbound federation links, by outcome.\n"
                   "# TYPE wzp_federation_links_total counter\n");
  g_string_append_printf (s,
      "wzp_federation_links_total{outcome=\"accepted\"} %" G_GUINT64_FORMAT "\n"
      "wzp_federation_links_total{outcome=\"refused\"} %" G_GUINT64_FORMAT "\n"
      "wzp_federation_links_total{outcome=\"unverified\"} %" G_GUINT64_FORMAT "\n",
      r->n.fed_links_accepted, r->n.fed_links_refused, r->n.fed_links_unverified);
  metric (s, "wzp_federation_signals_sent_total", "counter", "FederatedSignalForwards sent.",
          r->n.fed_signals_sent);
  metric (s, "wzp_federation_signals_received_total", "counter", "FederatedSignalForwards received.",
          r->n.fed_signals_received);
  metric (s, "wzp_federation_signals_dropped_total", "counter",
          "Forwarded signals dropped (loops, unknown calls, unexpected variants).", r->n.fed_signals_dropped);
  metric (s, "wzp_federation_datagrams_sent_total", "counter", "Media datagrams sent on links.",
          r->n.fed_datagrams_sent);
  metric (s, "wzp_federation_datagrams_received_total", "counter", "Media datagrams received on links.",
          r->n.fed_datagrams_received);
  metric (s, "wzp_federation_datagrams_duplicate_total", "counter",
          "Link datagrams dropped as duplicates (2 s window).", r->n.fed_datagrams_duplicate);
  metric (s, "wzp_federation_datagrams_dropped_total", "counter",
          "Link datagrams dropped (malformed, unknown room, over 500/s per room).", r->n.fed_datagrams_dropped);
  metric (s, "wzp_relay_handshake_failures_total", "counter",
          "Room handshakes refused or timed out.", r->n.handshake_failures);
  metric (s, "wzp_relay_register_failures_total", "counter",
          "_signal registrations refused or timed out.", r->n.register_failures);
  metric (s, "wzp_relay_forged_signatures_total", "counter", "Signatures that did not verify.",
          r->n.forged_signatures);
  g_string_append (s, "# HELP wzp_relay_limit_hits_total Limits reached, by limit.\n"
                   "# TYPE wzp_relay_limit_hits_total counter\n");
  g_string_append_printf (s,
      "wzp_relay_limit_hits_total{limit=\"room_or_address\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_limit_hits_total{limit=\"half_open\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_limit_hits_total{limit=\"room_name\"} %" G_GUINT64_FORMAT "\n",
      r->n.refused_limit, es.initials_refused, r->n.refused_room_name);
  g_string_append (s, "# HELP wzp_relay_calls_total Direct-call outcomes.\n"
                   "# TYPE wzp_relay_calls_total counter\n");
  g_string_append_printf (s,
      "wzp_relay_calls_total{outcome=\"offered\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_calls_total{outcome=\"unreachable\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_calls_total{outcome=\"rejected\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_calls_total{outcome=\"timed_out\"} %" G_GUINT64_FORMAT "\n"
      "wzp_relay_calls_total{outcome=\"refused\"} %" G_GUINT64_FORMAT "\n",
      r->n.calls_offered, r->n.calls_unreachable, r->n.calls_rejected, r->n.calls_timed_out,
      r->n.calls_refused);
  metric (s, "wzp_relay_reflects_total", "counter", "Reflect requests answered.", r->n.reflects);
  g_string_append (s, "# HELP wzp_relay_auth_attempts_total Token validations, by result.\n"
                   "# TYPE wzp_relay_auth_attempts_total counter\n");
  g_string_append_printf (s, "wzp_relay_auth_attempts_total{result=\"ok\"} %" G_GUINT64_FORMAT "\n"
                          "wzp_relay_auth_attempts_total{result=\"fail\"} %" G_GUINT64_FORMAT "\n",
                          r->n.auth_ok, r->n.auth_fail);
  metric (s, "wzp_relay_udp_packets_received_total", "counter", "UDP datagrams received.",
          es.packets_received);
  metric (s, "wzp_relay_udp_packets_sent_total", "counter", "UDP datagrams sent.", es.packets_sent);
  metric (s, "wzp_relay_udp_reads_total", "counter",
          "Wake-ups that read UDP datagrams (received over reads: the mean batch).", es.rx_wakeups);
  metric (s, "wzp_relay_udp_read_holds_total", "counter",
          "Reads after which the socket was left alone for --rx-hold-us, under load.", es.rx_holds);
#ifdef HEAP_GAUGE
  {
    /* allocated bytes, whether or not their pages are resident yet: RSS
     * alone counts a fresh heap's untouched buffers late and a reused
     * heap's early */
    struct mallinfo2 mi = mallinfo2 ();
    metric (s, "wzp_relay_heap_bytes", "gauge", "Bytes allocated from the C heap (glibc mallinfo2).",
            (guint64) (mi.uordblks + mi.hblkhd));
  }
#endif
  return g_string_free (s, FALSE);
}

gchar *
wzp_relay_health_json (WzpRelay *r)
{
  return g_strdup_printf ("{\"status\":\"ok\",\"build\":\"%s\",\"uptime_s\":%" G_GINT64_FORMAT
                          ",\"connections\":%u,\"registered\":%u,\"rooms\":%u,\"calls\":%u,"
                          "\"tls_fingerprint\":\"%s\",\"fingerprint\":\"%s\"}",
                          WZP_BUILD_ID, (g_get_monotonic_time () - r->started_us) / G_USEC_PER_SEC,
                          g_hash_table_size (r->peers), g_hash_table_size (r->hub),
                          g_hash_table_size (r->rooms), g_hash_table_size (r->calls),
                          wzp_endpoint_get_fingerprint (r->endpoint),
                          wzp_identity_get_fingerprint (r->identity));
}
