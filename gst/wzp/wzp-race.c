/* wzp-race: a call's dual-path race and the MediaPathReport negotiation
 * (protocol §6.4–§6.5; docs/negotiation.md). The negotiation is one state,
 * moved only by neg_event(): the transitions are the table there. */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"

#include <string.h>

static const gchar *const neg_names[] = {
  [NEG_IDLE] = "idle", [NEG_PEER_EARLY] = "peer-early", [NEG_RACING] = "racing",
  [NEG_AWAIT_PEER] = "await-peer", [NEG_AWAIT_LOCAL] = "await-local", [NEG_DECIDED] = "decided",
};

const gchar *
neg_state_name (NegState st)
{
  return st < G_N_ELEMENTS (neg_names) ? neg_names[st] : "?";
}

gboolean
neg_race_started (const WzpSession *s)
{
  return s->neg != NEG_IDLE && s->neg != NEG_PEER_EARLY;
}

/* ---- the report ----------------------------------------------------------- */

static gboolean
send_report_now (gpointer data)
{
  WzpSession *s = data;

  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED)
    return G_SOURCE_REMOVE;
  send_sig (s, wzp_signal_new_media_path_report (s->call_id, s->direct_ok,
                                                 s->direct_ok ? "Direct" : "Relay"));
  call_event (s, "connect:path_report_sent", "direct_ok", g_variant_new_boolean (s->direct_ok), NULL);
  return G_SOURCE_REMOVE;
}

/* Sent as soon as our direct result is known (neg_event() calls it once). */
static void
send_report (WzpSession *s)
{
  if (!s->send_report)
    return;
  if (s->test_report_delay_ms) {
    g_source_unref (session_timeout (s, s->test_report_delay_ms, send_report_now, g_object_ref (s),
                                     g_object_unref));
    return;
  }
  send_report_now (s);
}

static gboolean
on_report_timeout (gpointer data)
{
  WzpSession *s = data;

  g_clear_pointer (&s->report_timer, g_source_unref);
  neg_event (s, NEG_EV_REPORT_TIMEOUT, FALSE);
  return G_SOURCE_REMOVE;
}

/* ---- the decision ------------------------------------------------------------ */

/* End of a grace period: close the connection we do not send on. */
static gboolean
close_unused (gpointer data)
{
  WzpSession *s = data;

  if (s->send_path != WZP_MEDIA_PATH_RELAY && s->relay_conn && s->direct_conn) {
    /* break the relay only once the peer is heard on direct: a peer that
     * decided relay (a late or lost report) still sends there, and must not
     * lose its frames or, when it later closes the direct path, find us
     * without one (bounded: MAX_GRACE_ROUNDS grace periods) */
    if (!s->heard_direct && ++s->grace_rounds < MAX_GRACE_ROUNDS) {
      g_source_unref (session_timeout (s, RELAY_GRACE_MS, close_unused, g_object_ref (s),
                                       g_object_unref));
      return G_SOURCE_REMOVE;
    }
    drop_conn (s, &s->relay_conn, "not-selected");
  }
  else if (s->send_path != WZP_MEDIA_PATH_DIRECT && s->direct_conn)
    wzp_connection_close (s->direct_conn, 0, "not-selected");
  return G_SOURCE_REMOVE;
}

/* Both results are known (or the peer's timed out): direct only when both
 * sides reached it. */
static void
decide (WzpSession *s)
{
  gboolean use_direct = s->direct_ok && s->peer_direct_ok && s->direct_conn != NULL;

  cancel_timer (&s->report_timer);
  set_path (s, use_direct ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY);
  call_event (s, "connect:path_negotiated", "use_direct", g_variant_new_boolean (use_direct),
              "local_direct_ok", g_variant_new_boolean (s->direct_ok),
              "peer_direct_ok", g_variant_new_boolean (s->peer_direct_ok),
              "chosen_path", g_variant_new_string (use_direct ? "Direct" : "Relay"),
              "encrypted", g_variant_new_boolean (s->e2e_on),
              "peer_authenticated", g_variant_new_boolean (s->peer_authenticated), NULL);
  /* make-before-break: send on the chosen path now, keep hearing the other
   * one for a grace period (the peer may still be on it) */
  s->send_path = use_direct ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY;
  if (use_direct)
    set_state (s, WZP_SESSION_STATE_ACTIVE);
  g_source_unref (session_timeout (s, RELAY_GRACE_MS, close_unused, g_object_ref (s),
                                   g_object_unref));
  flush_tx (s);
}

/* Our direct result is known: the race's losers go, the report leaves. */
static void
local_result (WzpSession *s, gboolean ok)
{
  s->direct_ok = ok;
  cancel_timer (&s->direct_timer);
  stop_punching (s);
  for (guint i = 0; s->dials && i < s->dials->len; i++) {
    WzpConnection *c = g_ptr_array_index (s->dials, i);
    if (c != s->direct_conn)
      wzp_connection_close (c, 0, "not-selected");
  }
  if (ok && s->direct_conn)
    call_event (s, "connect:dual_path_race_done", "direct_ok", g_variant_new_boolean (TRUE),
                "address", g_variant_new_string (wzp_connection_get_remote_address (s->direct_conn)),
                NULL);
  else
    call_event (s, ok ? "connect:dual_path_race_done" : "connect:dual_path_race_failed",
                "direct_ok", g_variant_new_boolean (ok), NULL);
  send_report (s);
}

/* ---- the state machine ---------------------------------------------------------- */

/* Every transition of the negotiation (docs/negotiation.md has the diagram):
 *
 *   state          event              next          does
 *   idle           race-start         racing
 *   idle           peer-report        peer-early
 *   idle           room               decided       relay path, no race
 *   peer-early     race-start         await-local
 *   racing         direct-result      await-peer    report; wait report-timeout-ms
 *   racing         peer-report        await-local
 *   await-local    direct-result      decided       report; decide
 *   await-peer     peer-report        decided       decide
 *   await-peer     report-timeout     decided       peer counted as relay; decide
 *
 * Any other pair (a second report, a result after the decision, a timeout
 * that lost its race) changes nothing. @ok is the event's direct_ok. */
void
neg_event (WzpSession *s, NegEvent ev, gboolean ok)
{
  NegState from = s->neg, to = from;

  switch (from) {
    case NEG_IDLE:
      to = ev == NEG_EV_RACE_START ? NEG_RACING : ev == NEG_EV_PEER_REPORT ? NEG_PEER_EARLY :
          ev == NEG_EV_ROOM ? NEG_DECIDED : from;
      break;
    case NEG_PEER_EARLY:
      to = ev == NEG_EV_RACE_START ? NEG_AWAIT_LOCAL : from;
      break;
    case NEG_RACING:
      to = ev == NEG_EV_DIRECT_RESULT ? NEG_AWAIT_PEER : ev == NEG_EV_PEER_REPORT ? NEG_AWAIT_LOCAL : from;
      break;
    case NEG_AWAIT_LOCAL:
      to = ev == NEG_EV_DIRECT_RESULT ? NEG_DECIDED : from;
      break;
    case NEG_AWAIT_PEER:
      to = ev == NEG_EV_PEER_REPORT || ev == NEG_EV_REPORT_TIMEOUT ? NEG_DECIDED : from;
      break;
    case NEG_DECIDED:
      break;
  }
  if (to == from)
    return;
  g_debug ("negotiation: %s -> %s", neg_state_name (from), neg_state_name (to));
  s->neg = to;
  if (ev == NEG_EV_PEER_REPORT) {
    s->peer_direct_ok = ok;
    call_event (s, "connect:peer_report_received", "direct_ok", g_variant_new_boolean (ok), NULL);
  } else if (ev == NEG_EV_REPORT_TIMEOUT) {
    s->peer_direct_ok = FALSE;
    call_event (s, "connect:peer_report_timeout", NULL);
  } else if (ev == NEG_EV_DIRECT_RESULT) {
    local_result (s, ok);
  }
  if (to == NEG_AWAIT_PEER && s->report_timer == NULL)
    s->report_timer = session_timeout (s, s->report_timeout_ms, on_report_timeout, s, NULL);
  if (to == NEG_DECIDED && ev != NEG_EV_ROOM)
    decide (s);
}

/* ---- the direct connection -------------------------------------------------- */

static gboolean
on_direct_timeout (gpointer data)
{
  WzpSession *s = data;

  g_clear_pointer (&s->direct_timer, g_source_unref);
  neg_event (s, NEG_EV_DIRECT_RESULT, FALSE);
  return G_SOURCE_REMOVE;
}

static void
on_direct_closed (WzpConnection *c, const GError *why, WzpSession *s)
{
  if (c != s->direct_conn)
    return;
  g_clear_object (&s->direct_conn);
  /* the peer hung up on the direct path (its Hangup may not reach us: the
   * relay may be gone, which is why the call was still up) */
  if (g_strcmp0 (wzp_connection_get_peer_close (c, NULL, NULL), "hangup") == 0 &&
      s->send_path == WZP_MEDIA_PATH_DIRECT) {
    end_call (s, g_error_new_literal (WZP_SESSION_ERROR, WZP_SESSION_ERROR_HUNG_UP,
                                      "the other side hung up"));
    return;
  }
  if (s->send_path == WZP_MEDIA_PATH_DIRECT) {
    s->send_path = s->relay_admitted ? WZP_MEDIA_PATH_RELAY : WZP_MEDIA_PATH_NONE;
    set_path (s, s->send_path);
  }
}

/* A direct connection is the peer's only when its certificate carries the
 * identity key that signed the peer's offer or answer. A peer that proved no
 * key (upstream's: random certificates) gets upstream's rules, unless
 * encryption=required. Anyone else is refused and counted; the race goes on. */
static gboolean
direct_is_peer (WzpSession *s, WzpConnection *c)
{
  guint8 pk[32];

  if (!s->peer_e2e)
    return !g_str_equal (s->encryption, "required");
  if (wzp_connection_get_peer_public_key (c, pk) && memcmp (pk, s->peer_identity_pub, 32) == 0)
    return TRUE;
  g_mutex_lock (&s->lock);
  s->stats.direct_refused++;
  g_mutex_unlock (&s->lock);
  call_event (s, "connect:direct_refused", "address",
              g_variant_new_string (wzp_connection_get_remote_address (c)), NULL);
  wzp_connection_close (c, 0, "not-the-peer");
  return FALSE;
}

/* The first direct connection up from the peer wins the race. */
static void
adopt_direct (WzpSession *s, WzpConnection *c)
{
  if (s->direct_conn || (s->neg != NEG_RACING && s->neg != NEG_AWAIT_LOCAL) || !direct_is_peer (s, c))
    return;
  s->direct_conn = g_object_ref (c);
  g_signal_connect (c, "closed", G_CALLBACK (on_direct_closed), s);
  wzp_connection_set_datagram_handler (c, on_media, s, NULL);
  neg_event (s, NEG_EV_DIRECT_RESULT, TRUE);
}

static void
on_dial_established (WzpConnection *c, WzpSession *s)
{
  adopt_direct (s, c);
}

/* Acceptor: the peer's dial arrives on the shared socket. */
void
on_incoming (WzpEndpoint *ep, WzpConnection *c, WzpSession *s)
{
  g_autofree gchar *want = s->room_name ? g_strconcat ("call-", s->room_name, NULL) : NULL;
  const gchar *sni = wzp_connection_get_sni (c);

  /* The relay sends CallSetup to both sides at once, but they may hear it
   * far apart (different links, federated relays, a busy host) while the
   * two are close to each other: the peer's dial can come before our own
   * CallSetup. Keep it (named after this call, at most MAX_EARLY_DIALS) until
   * then. */
  if (!neg_race_started (s) && s->call_id && sni && g_str_has_suffix (sni, s->call_id) &&
      wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED &&
      (s->early_dials == NULL || s->early_dials->len < MAX_EARLY_DIALS)) {
    if (s->early_dials == NULL)
      s->early_dials = g_ptr_array_new_with_free_func (g_object_unref);
    g_ptr_array_add (s->early_dials, g_object_ref (c));
    call_event (s, "connect:early_dial", "address",
                g_variant_new_string (wzp_connection_get_remote_address (c)), NULL);
    return;
  }
  if (!neg_race_started (s) || g_strcmp0 (sni, want) != 0) {
    wzp_connection_close (c, 0, "unexpected");
    return;
  }
  adopt_direct (s, c);
}

/* The race has started (or the call ended): the dials kept from before it
 * are taken as if they came now, or closed when @take is FALSE. */
static void
take_early_dials (WzpSession *s, gboolean take)
{
  g_autoptr (GPtrArray) early = g_steal_pointer (&s->early_dials);

  for (guint i = 0; early && i < early->len; i++) {
    WzpConnection *c = g_ptr_array_index (early, i);

    if (wzp_connection_get_state (c) == WZP_CONNECTION_CLOSED)
      continue;
    if (take)
      on_incoming (s->ep, c, s);
    else
      wzp_connection_close (c, 0, "hangup");
  }
}

/* ---- the race ------------------------------------------------------------------ */

void
start_race (WzpSession *s, const WzpCallSetup *setup)
{
  gint role;
  g_autoptr (GPtrArray) candidates = g_ptr_array_new_with_free_func (g_free);
  g_autofree gchar *sni = g_strconcat ("call-", setup->room, NULL);

  neg_event (s, NEG_EV_RACE_START, FALSE);
  call_event (s, "connect:dual_path_race_start", NULL);
  if (!s->direct || !s->own_reflexive || !setup->peer_direct_addr ||
      (role = strcmp (s->own_reflexive, setup->peer_direct_addr)) == 0) {
    call_event (s, "connect:dual_path_skipped", NULL);
    neg_event (s, NEG_EV_DIRECT_RESULT, FALSE);
    take_early_dials (s, FALSE);
    return;
  }
  s->direct_timer = session_timeout (s, s->direct_timeout_ms, on_direct_timeout, s, NULL);
  for (guint i = 0; setup->peer_local_addrs && i < setup->peer_local_addrs->len; i++)
    g_ptr_array_add (candidates, g_strdup (g_ptr_array_index (setup->peer_local_addrs, i)));
  if (!g_ptr_array_find_with_equal_func (candidates, setup->peer_direct_addr, g_str_equal, NULL))
    g_ptr_array_add (candidates, g_strdup (setup->peer_direct_addr));
  if (role < 0) {
    call_event (s, "connect:role", "role", g_variant_new_string ("Acceptor"), NULL);
    start_punching (s, candidates);
    take_early_dials (s, TRUE);
    return;                     /* on_incoming() takes the peer's dial */
  }
  call_event (s, "connect:role", "role", g_variant_new_string ("Dialer"), NULL);
  take_early_dials (s, FALSE);  /* the peer is the Acceptor: not its dial */
  s->dials = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < candidates->len; i++) {
    g_autoptr (GSocketAddress) a = wzp_socket_address_parse (g_ptr_array_index (candidates, i), NULL);
    WzpConnection *c;

    if (a == NULL || !wzp_endpoint_can_reach (s->ep, a))
      continue;
    c = wzp_endpoint_connect (s->ep, a, sni, NULL, NULL);
    if (c == NULL)
      continue;
    g_signal_connect (c, "established", G_CALLBACK (on_dial_established), s);
    g_ptr_array_add (s->dials, c);
  }
  if (s->dials->len == 0)
    neg_event (s, NEG_EV_DIRECT_RESULT, FALSE);
}

void
race_stop (WzpSession *s)
{
  cancel_timer (&s->direct_timer);
  cancel_timer (&s->report_timer);
  stop_punching (s);
  drop_conn (s, &s->direct_conn, "hangup");
  take_early_dials (s, FALSE);
  if (s->dials) {
    for (guint i = 0; i < s->dials->len; i++) {
      WzpConnection *c = g_ptr_array_index (s->dials, i);
      g_signal_handlers_disconnect_by_data (c, s);
      wzp_connection_close (c, 0, "hangup");
    }
    g_clear_pointer (&s->dials, g_ptr_array_unref);
  }
}
