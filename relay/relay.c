/* wzp-relay's protocol logic (see relay.h). Everything runs in one
 * GMainContext: the endpoint's. */
#define G_LOG_DOMAIN "wzp-relay"

#include "wzp-e2e.h"
#include "relay.h"
#include "auth.h"
#include "wzp-config.h"
#include "wzp-wire.h"

#include <string.h>

#include "relay-private.h"

void
wzp_relay_settings_init (WzpRelaySettings *s)
{
  memset (s, 0, sizeof *s);
  s->register_timeout_ms = 10000;
  s->handshake_timeout_ms = 10000;
  s->ring_timeout_ms = 30000;
  s->call_lifetime_ms = 24 * 3600 * 1000;
  s->max_rooms = 1000;
  s->max_room_members = 64;
  s->max_conns_per_address = 64;
  s->max_signals_per_second = 50;
  s->max_pending_calls = 8;
}

void
wzp_relay_settings_clear (WzpRelaySettings *s)
{
  g_clear_pointer (&s->advertise, g_free);
  g_clear_pointer (&s->auth_url, g_free);
  g_clear_pointer (&s->fed_peers, g_ptr_array_unref);
  g_clear_pointer (&s->fed_trusted, g_strfreev);
  g_clear_pointer (&s->global_rooms, g_strfreev);
  g_clear_pointer (&s->fed_label, g_free);
  g_clear_pointer (&s->probe_targets, g_strfreev);
}

WzpFederationPeer *
wzp_federation_peer_new (const gchar *name, const gchar *url, const gchar *fingerprint,
                         const gchar *label)
{
  WzpFederationPeer *p = g_new0 (WzpFederationPeer, 1);

  p->name = g_strdup (name);
  p->url = g_strdup (url);
  p->fingerprint = g_strdup (fingerprint);
  p->label = g_strdup (label ? label : name);
  return p;
}

void
wzp_federation_peer_free (WzpFederationPeer *p)
{
  g_free (p->name);
  g_free (p->url);
  g_free (p->fingerprint);
  g_free (p->label);
  g_free (p);
}

/* ---- helpers ---------------------------------------------------------------- */

void
relay_send_signal (Peer *p, const WzpSignal *msg)
{
  g_autoptr (GError) error = NULL;

  if (p && p->conn && !wzp_connection_send_signal (p->conn, msg, &error))
    g_debug ("to %s: %s", wzp_connection_get_remote_address (p->conn), error->message);
}

void
relay_send_hangup (Peer *p, WzpHangupReason reason, const gchar *call_id)
{
  g_autoptr (WzpSignal) h = wzp_signal_new_hangup (reason, call_id);
  relay_send_signal (p, h);
}

static void
peer_close (Peer *p, const gchar *reason)
{
  g_info ("refused %s (%s): %s", wzp_connection_get_remote_address (p->conn),
          p->room_name ? p->room_name : "_signal", reason);
  p->state = PEER_DONE;
  wzp_connection_close (p->conn, 0, reason);
}

Peer *
relay_hub_lookup (WzpRelay *r, const gchar *fp)
{
  return fp ? g_hash_table_lookup (r->hub, fp) : NULL;
}

gboolean
wzp_relay_room_name_valid (const gchar *name)
{
  gsize len = strlen (name);
  const gchar *label = name;
  gboolean all_digits = TRUE;

  if (len == 0 || len > 253 || name[len - 1] == '-')
    return FALSE;
  for (const gchar *p = name;; p++) {
    if (*p == '.' || *p == '\0') {
      gsize l = (gsize) (p - label);
      if (l == 0 || l > 63 || label[0] == '-')
        return FALSE;
      if (*p == '\0')
        return !all_digits;
      label = p + 1;
      all_digits = TRUE;
      continue;
    }
    if (!(g_ascii_isalnum (*p) || *p == '_' || *p == '-'))
      return FALSE;
    if (!g_ascii_isdigit (*p))
      all_digits = FALSE;
  }
}

/* Counts one message against the connection's per-second budget. */
static gboolean
rate_ok (Peer *p)
{
  gint64 now = g_get_monotonic_time ();

  if (now - p->window_start > G_USEC_PER_SEC) {
    p->window_start = now;
    p->window_count = 0;
  }
  if (++p->window_count > p->relay->settings.max_signals_per_second) {
    p->relay->n.signals_rate_limited++;
    return FALSE;
  }
  return TRUE;
}

GPtrArray *
relay_copy_list (const GPtrArray *src)
{
  GPtrArray *dst = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; src && i < src->len; i++)
    g_ptr_array_add (dst, g_strdup (g_ptr_array_index (src, i)));
  return dst;
}

/* ---- calls -------------------------------------------------------------- */

static void
call_free (Call *c)
{
  if (c->timer)
    g_source_remove (c->timer);
  g_free (c->call_id);
  g_free (c->key);
  g_free (c->caller);
  g_free (c->callee);
  g_free (c->caller_reflexive);
  g_free (c->callee_reflexive);
  g_free (c->link_fp);
  if (c->caller_local)
    g_ptr_array_unref (c->caller_local);
  if (c->callee_local)
    g_ptr_array_unref (c->callee_local);
  g_free (c);
}

Call *
relay_call_lookup (WzpRelay *r, const gchar *call_id)
{
  g_autofree gchar *key = call_id ? g_ascii_strdown (call_id, -1) : NULL;
  return key ? g_hash_table_lookup (r->calls, key) : NULL;
}

static const gchar *
call_other (Call *c, const gchar *fp)
{
  if (g_strcmp0 (fp, c->caller) == 0)
    return c->callee;
  if (g_strcmp0 (fp, c->callee) == 0)
    return c->caller;
  return NULL;
}

void
relay_call_end (WzpRelay *r, Call *c)
{
  g_info ("call %s ended (%s calling %s)", c->call_id, c->caller, c->callee);
  g_hash_table_remove (r->calls, c->key);
}

static gboolean
call_expired (gpointer data)
{
  Call *c = data;
  WzpRelay *r = c->relay;

  c->timer = 0;
  if (!c->active)
    r->n.calls_timed_out++;
  g_info ("call %s %s", c->call_id, c->active ? "reached its lifetime" : "was not answered in time");
  relay_send_hangup (relay_hub_lookup (r, c->caller), WZP_HANGUP_TIMEOUT, c->call_id);
  relay_send_hangup (relay_hub_lookup (r, c->callee), WZP_HANGUP_TIMEOUT, c->call_id);
  relay_call_end (r, c);
  return G_SOURCE_REMOVE;
}

static guint
pending_calls_of (WzpRelay *r, const gchar *fp)
{
  GHashTableIter it;
  gpointer v;
  guint n = 0;

  g_hash_table_iter_init (&it, r->calls);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (!((Call *) v)->active && g_strcmp0 (((Call *) v)->caller, fp) == 0)
      n++;
  return n;
}

/* ---- signatures (docs/relay.md: what is signed) ------------------------ */

/* RegisterPresence: Ed25519 over "register-presence" || identity_pub. */
static gboolean
verify_register (const WzpRegisterPresence *m)
{
  guint8 msg[17 + 32];
  gsize siglen;
  const guint8 *sig = g_bytes_get_data (m->signature, &siglen);

  memcpy (msg, "register-presence", 17);
  memcpy (msg + 17, m->identity_pub, 32);
  return wzp_ed25519_verify (m->identity_pub, msg, sizeof msg, sig, siglen);
}

/* DirectCallOffer: Ed25519 over ephemeral_pub || target_fingerprint ||
 * call_id, with or without the end-to-end capability prefix (wzp-e2e.h). */
gboolean
relay_verify_offer (const WzpDirectCallOffer *m)
{
  gsize siglen;
  const guint8 *sig = g_bytes_get_data (m->signature, &siglen);

  return wzp_e2e_verify_offer (m->identity_pub, m->ephemeral_pub, m->target_fingerprint, m->call_id,
                               sig, siglen, NULL);
}

gsize
relay_sig_len (GBytes *b)
{
  return b ? g_bytes_get_size (b) : 0;
}

/* ---- the _signal hub ------------------------------------------------------ */

/* The earlier registration of a fingerprint is told that calls now go to a
 * newer one: an unsolicited RegisterPresenceAck{success:false}. Upstream
 * clients ignore an ack after registering; ours warn the application. The
 * earlier connection stays open (a call on it goes on), as upstream's. */
static void
tell_displaced (Peer *old, Peer *newer)
{
  g_autoptr (WzpSignal) note = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE_ACK);

  note->register_presence_ack.success = FALSE;
  note->register_presence_ack.error = g_strdup_printf ("displaced: %s registered again from %s",
      newer->fingerprint, wzp_connection_get_remote_address (newer->conn));
  note->register_presence_ack.relay_build = g_strdup (WZP_BUILD_ID);
  relay_send_signal (old, note);
}

static void
on_register (Peer *p, const WzpRegisterPresence *m)
{
  WzpRelay *r = p->relay;
  g_autoptr (WzpSignal) ack = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE_ACK);
  gchar fp[WZP_FINGERPRINT_STRLEN];
  Peer *old;
  const gchar *refusal = NULL;

  if (relay_sig_len (m->signature) > 0 && !verify_register (m)) {
    r->n.forged_signatures++;
    refusal = "the RegisterPresence signature does not verify";
  } else if (relay_sig_len (m->signature) == 0 && r->settings.require_signatures) {
    refusal = "this relay requires signed registrations";
  }
  if (refusal) {
    r->n.register_failures++;
    ack->register_presence_ack.success = FALSE;
    ack->register_presence_ack.error = g_strdup (refusal);
    relay_send_signal (p, ack);
    peer_close (p, "register-refused");
    return;
  }
  wzp_fingerprint_string (m->identity_pub, fp);
  g_free (p->fingerprint);
  /* with auth, the auth server says who this is (protocol §5.2) */
  p->fingerprint = g_strdup (p->auth_fp ? p->auth_fp : fp);
  g_free (p->key_fp);
  p->key_fp = g_strdup (fp);
  g_free (p->alias);
  p->alias = g_strdup (m->alias ? m->alias : p->auth_alias);
  /* a later registration replaces an earlier one; the earlier connection's
   * close must not undo it (upstream bug, protocol §9 #11) */
  old = relay_hub_lookup (r, p->fingerprint);
  g_info ("%s registered from %s%s", p->fingerprint, wzp_connection_get_remote_address (p->conn),
          old && old != p ? ", replacing its earlier registration" : "");
  g_hash_table_replace (r->hub, g_strdup (p->fingerprint), p);
  if (old && old != p)
    tell_displaced (old, p);
  p->state = PEER_REGISTERED;
  if (p->timer) {
    g_source_remove (p->timer);
    p->timer = 0;
  }
  ack->register_presence_ack.success = TRUE;
  ack->register_presence_ack.relay_build = g_strdup (WZP_BUILD_ID);
  relay_send_signal (p, ack);
}

static void
on_direct_offer (Peer *p, WzpSignal *msg)
{
  WzpRelay *r = p->relay;
  const WzpDirectCallOffer *o = &msg->direct_call_offer;
  Peer *target = relay_hub_lookup (r, o->target_fingerprint);
  Call *existing = relay_call_lookup (r, o->call_id);
  Call *c;
  g_autoptr (WzpSignal) ringing = NULL;
  gchar fp[WZP_FINGERPRINT_STRLEN];

  r->n.calls_offered++;
  /* signed offers must verify, and then name their signer */
  if (relay_sig_len (o->signature) > 0) {
    wzp_fingerprint_string (o->identity_pub, fp);
    if (!relay_verify_offer (o) || (p->auth_fp == NULL && strcmp (fp, p->fingerprint) != 0)) {
      r->n.forged_signatures++;
      r->n.calls_refused++;
      relay_send_hangup (p, WZP_HANGUP_ERROR, o->call_id);
      return;
    }
  } else if (r->settings.require_signatures) {
    r->n.calls_refused++;
    relay_send_hangup (p, WZP_HANGUP_ERROR, o->call_id);
    return;
  }
  /* the caller is who registered, whatever the offer claims (with auth a
   * client still names itself by its key's fingerprint) */
  if ((g_strcmp0 (o->caller_fingerprint, p->fingerprint) != 0 &&
       g_strcmp0 (o->caller_fingerprint, p->key_fp) != 0) ||
      (existing && g_strcmp0 (existing->caller, p->fingerprint) != 0) ||
      pending_calls_of (r, p->fingerprint) >= r->settings.max_pending_calls ||
      strlen (o->call_id) == 0 || strlen (o->call_id) > 128) {
    r->n.calls_refused++;
    relay_send_hangup (p, WZP_HANGUP_ERROR, o->call_id);
    return;
  }
  /* not here: maybe on a federated relay (protocol §5.9.4) */
  if (target == p || (target == NULL && (existing || !federation_offer (r, msg)))) {
    r->n.calls_unreachable++;
    relay_send_hangup (p, WZP_HANGUP_NORMAL, o->call_id);
    return;
  }
  c = relay_call_new (r, o->call_id, p->fingerprint, o->target_fingerprint);
  g_info ("call %s: %s calls %s%s", o->call_id, p->fingerprint, o->target_fingerprint,
          target ? "" : " on a federated relay");
  c->caller_reflexive = g_strdup (o->caller_reflexive_addr);
  c->caller_local = relay_copy_list (o->caller_local_addrs);
  c->remote_callee = target == NULL;
  if (target)
    relay_send_signal (target, msg);
  ringing = wzp_signal_new (WZP_SIGNAL_CALL_RINGING);
  ringing->call_ringing.call_id = g_strdup (o->call_id);
  relay_send_signal (p, ringing);
}

WzpSignal *
relay_call_setup_for (WzpRelay *r, Call *c, const gchar *reflexive, const GPtrArray *local)
{
  WzpSignal *s = wzp_signal_new (WZP_SIGNAL_CALL_SETUP);

  s->call_setup.call_id = g_strdup (c->call_id);
  s->call_setup.room = g_strconcat ("call-", c->call_id, NULL);
  s->call_setup.relay_addr = g_strdup (r->settings.advertise);
  s->call_setup.peer_direct_addr = g_strdup (reflexive);
  s->call_setup.peer_local_addrs = relay_copy_list (local);
  return s;
}

static void
on_direct_answer (Peer *p, WzpSignal *msg)
{
  WzpRelay *r = p->relay;
  const WzpDirectCallAnswer *a = &msg->direct_call_answer;
  Call *c = relay_call_lookup (r, a->call_id);
  Peer *caller;
  g_autoptr (WzpSignal) to_caller = NULL, to_callee = NULL;

  /* only the callee answers, and only once */
  if (c == NULL || c->active || g_strcmp0 (c->callee, p->fingerprint) != 0) {
    r->n.signals_unexpected++;
    return;
  }
  caller = relay_hub_lookup (r, c->caller);
  if (a->accept_mode == WZP_CALL_ACCEPT_REJECT) {
    r->n.calls_rejected++;
    g_info ("call %s declined", c->call_id);
    if (c->remote_caller) {
      /* upstream sends this and drops it on arrival; ours is heard */
      g_autoptr (WzpSignal) h = wzp_signal_new_hangup (WZP_HANGUP_DECLINED, c->call_id);
      federation_send (r, c->link_fp, h);
    } else
      relay_send_hangup (caller, WZP_HANGUP_DECLINED, c->call_id);
    relay_call_end (r, c);
    return;
  }
  relay_call_activate (r, c, a->callee_reflexive_addr, a->callee_local_addrs);
  if (c->remote_caller)
    federation_send (r, c->link_fp, msg);
  else {
    relay_send_signal (caller, msg);
    to_caller = relay_call_setup_for (r, c, c->callee_reflexive, c->callee_local);
    relay_send_signal (caller, to_caller);
  }
  to_callee = relay_call_setup_for (r, c, c->caller_reflexive, c->caller_local);
  relay_send_signal (p, to_callee);
}

/* Ends the calls of @fp (one, or all when @call_id is NULL), telling the
 * other parties with @msg (or a fresh Hangup with @reason). */
static void
hangup_calls (WzpRelay *r, const gchar *fp, const gchar *call_id, WzpSignal *msg, WzpHangupReason reason)
{
  g_autoptr (GPtrArray) ending = g_ptr_array_new ();
  GHashTableIter it;
  gpointer v;

  g_hash_table_iter_init (&it, r->calls);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    Call *c = v;
    if (call_other (c, fp) == NULL)
      continue;
    if (call_id && g_ascii_strcasecmp (call_id, c->call_id) != 0)
      continue;
    g_ptr_array_add (ending, c);
  }
  for (guint i = 0; i < ending->len; i++) {
    Call *c = g_ptr_array_index (ending, i);
    Peer *other = relay_hub_lookup (r, call_other (c, fp));
    g_autoptr (WzpSignal) h = msg ? NULL : wzp_signal_new_hangup (reason, c->call_id);

    /* the other party on another relay: across the link (upstream never
     * forwards hangups) */
    if ((c->remote_caller || c->remote_callee) && other == NULL)
      federation_send (r, c->link_fp, msg ? msg : h);
    else
      relay_send_signal (other, msg ? msg : h);
    relay_call_end (r, c);
  }
}

static void
on_path_report (Peer *p, WzpSignal *msg)
{
  WzpRelay *r = p->relay;
  Call *c = relay_call_lookup (r, msg->media_path_report.call_id);
  const gchar *other = c ? call_other (c, p->fingerprint) : NULL;

  /* only the two parties of that call may tell each other (protocol §5.8) */
  if (other == NULL) {
    r->n.path_reports_dropped++;
    return;
  }
  r->n.path_reports_forwarded++;
  if (g_strcmp0 (p->fingerprint, c->caller) == 0)
    c->caller_direct_ok = msg->media_path_report.direct_ok;
  else
    c->callee_direct_ok = msg->media_path_report.direct_ok;
  if ((c->remote_caller || c->remote_callee) && relay_hub_lookup (r, other) == NULL)
    federation_send (r, c->link_fp, msg);
  else
    relay_send_signal (relay_hub_lookup (r, other), msg);
}

static void
on_signal_message (Peer *p, WzpSignal *msg)
{
  WzpRelay *r = p->relay;

  if (p->state == PEER_AWAIT_REGISTER) {
    if (msg->type == WZP_SIGNAL_REGISTER_PRESENCE)
      on_register (p, &msg->register_presence);
    else if (msg->type == WZP_SIGNAL_AUTH_TOKEN && r->settings.auth_url == NULL)
      ;                         /* tolerated and ignored when auth is off */
    else {
      r->n.register_failures++;
      peer_close (p, "expected RegisterPresence");
    }
    return;
  }
  if (p->state != PEER_REGISTERED)
    return;
  switch (msg->type) {
    case WZP_SIGNAL_DIRECT_CALL_OFFER:
      on_direct_offer (p, msg);
      break;
    case WZP_SIGNAL_DIRECT_CALL_ANSWER:
      on_direct_answer (p, msg);
      break;
    case WZP_SIGNAL_HANGUP:
      r->n.hangups++;
      hangup_calls (r, p->fingerprint, msg->hangup.call_id, msg, WZP_HANGUP_NORMAL);
      break;
    case WZP_SIGNAL_MEDIA_PATH_REPORT:
      on_path_report (p, msg);
      break;
    case WZP_SIGNAL_PING: {
      g_autoptr (WzpSignal) pong = wzp_signal_new (WZP_SIGNAL_PONG);
      pong->pong.timestamp_ms = msg->ping.timestamp_ms;
      relay_send_signal (p, pong);
      break;
    }
    case WZP_SIGNAL_REFLECT: {
      g_autoptr (WzpSignal) resp = wzp_signal_new (WZP_SIGNAL_REFLECT_RESPONSE);
      r->n.reflects++;
      resp->reflect_response.observed_addr = g_strdup (wzp_connection_get_remote_address (p->conn));
      relay_send_signal (p, resp);
      break;
    }
    case WZP_SIGNAL_REGISTER_PRESENCE:
      on_register (p, &msg->register_presence);
      break;
    default:
      r->n.signals_unexpected++;
      g_debug ("unexpected %s on _signal", wzp_signal_type_name (msg->type));
  }
}

/* ---- rooms ---------------------------------------------------------------- */

static void
room_free (Room *room)
{
  g_ptr_array_unref (room->members);
  g_free (room->name);
  g_free (room);
}

void
relay_room_broadcast_update (Room *room)
{
  g_autoptr (WzpSignal) u = wzp_signal_new (WZP_SIGNAL_ROOM_UPDATE);

  u->room_update.participants = g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_room_participant_free);
  for (guint i = 0; i < room->members->len; i++) {
    Peer *m = g_ptr_array_index (room->members, i);
    g_ptr_array_add (u->room_update.participants,
                     wzp_room_participant_new (m->fingerprint, m->alias, NULL));
  }
  /* a global room: the members on federated relays too, with their labels */
  federation_add_remote_participants (room->relay, room->name, u->room_update.participants);
  u->room_update.count = u->room_update.participants->len;
  for (guint i = 0; i < room->members->len; i++)
    relay_send_signal (g_ptr_array_index (room->members, i), u);
}

static void
peer_clear_fwd (Peer *p)
{
  if (p->fwd != p->fwd_few)
    g_free (p->fwd);
  p->fwd = NULL;
  p->n_fwd = 0;
}

static void
room_rebuild_fwd (Room *room)
{
  for (guint i = 0; i < room->members->len; i++) {
    Peer *m = g_ptr_array_index (room->members, i);
    guint n = 0;

    peer_clear_fwd (m);
    m->fwd = room->members->len - 1 <= G_N_ELEMENTS (m->fwd_few) ? m->fwd_few :
        g_new (WzpConnection *, room->members->len - 1);
    for (guint j = 0; j < room->members->len; j++)
      if (j != i)
        m->fwd[n++] = ((Peer *) g_ptr_array_index (room->members, j))->conn;
    m->n_fwd = n;
  }
}

static void
room_leave (Peer *p)
{
  WzpRelay *r = p->relay;
  Room *room = p->room;
  g_autofree gchar *name = NULL;

  if (room == NULL)
    return;
  name = g_strdup (room->name);
  g_ptr_array_remove (room->members, p);
  p->room = NULL;
  peer_clear_fwd (p);
  room_rebuild_fwd (room);
  if (room->members->len == 0)
    g_hash_table_remove (r->rooms, room->name);
  else
    relay_room_broadcast_update (room);
  federation_room_changed (r, name);
}

/* A member's trailer: when its tier changes and the room's weakest tier
 * moves, every member hears the profile to use (§5.3.4). Members that never
 * send trailers stay at Good. */
static void
room_quality (Peer *p, const guint8 *trailer)
{
  Room *room = p->room;
  WzpQualityReport qr = { .loss_pct = trailer[0], .rtt_4ms = trailer[1], .jitter_ms = trailer[2] };
  WzpTier weakest = WZP_TIER_STUDIO_64K;
  g_autoptr (WzpSignal) d = NULL;

  p->has_report = TRUE;
  p->report_loss_pct = wzp_quality_report_loss_percent (&qr);
  p->report_rtt_ms = wzp_quality_report_rtt_ms (&qr);
  p->report_jitter_ms = qr.jitter_ms;

  if (!wzp_tier_controller_feed (&p->quality, wzp_quality_report_loss_percent (&qr),
                                 wzp_quality_report_rtt_ms (&qr)))
    return;
  for (guint i = 0; i < room->members->len; i++)
    weakest = MIN (weakest, ((Peer *) g_ptr_array_index (room->members, i))->quality.tier);
  if (weakest == room->tier)
    return;
  room->tier = weakest;
  d = wzp_signal_new (WZP_SIGNAL_QUALITY_DIRECTIVE);
  d->quality_directive.recommended_profile = *wzp_tier_profile (weakest);
  d->quality_directive.reason = g_strdup_printf ("weakest link: %s", wzp_tier_name (weakest));
  p->relay->n.quality_directives++;
  for (guint i = 0; i < room->members->len; i++)
    relay_send_signal (g_ptr_array_index (room->members, i), d);
}

/* The test hooks (relay-private.h): what a relay that records, alters or
 * replays call media would do. Returns the datagram to forward and how many
 * times. */
static const guint8 *
test_hooks (WzpRelay *r, Peer *p, const guint8 *data, gsize len, guint8 *scratch, guint *times)
{
  if (!g_str_has_prefix (p->room_name, "call-"))
    return data;
  r->test_count++;
  if (r->test_tap) {
    guint8 n[2] = { (guint8) (len >> 8), (guint8) len };
    if (fwrite (n, 1, 2, r->test_tap) != 2 || fwrite (data, 1, len, r->test_tap) != len)
      g_warning ("test tap: cannot write");
    fflush (r->test_tap);
  }
  if (r->test_replay_every && r->test_count % r->test_replay_every == 0)
    *times = 2;
  if (r->test_flip_every && r->test_count % r->test_flip_every == 0 && len > WZP_MEDIA_HEADER_SIZE) {
    if (scratch != data)
      memcpy (scratch, data, len);
    scratch[WZP_MEDIA_HEADER_SIZE] ^= 0x10;
    return scratch;
  }
  return data;
}

/* SFU: each datagram to every other member, never back to the sender. */
static void
on_room_datagram (WzpConnection *conn, const guint8 *data, gsize len, gpointer user_data)
{
  Peer *p = user_data;
  WzpRelay *r = p->relay;
  Room *room = p->room;
  guint8 fixed[ROOM_DATAGRAM_MAX];
  const guint8 *out = data;
  guint times = 1;

  r->n.datagrams_in++;
  /* a valid media packet: header, known codec, room for its trailer */
  if (room == NULL || len < WZP_MEDIA_HEADER_SIZE || ((data[0] >> 2) & 0xf) >= WZP_CODEC_COUNT ||
      ((data[0] & 2) && len < WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE)) {
    r->n.datagrams_malformed++;
    return;
  }
  if (data[0] & 2)
    room_quality (p, data + len - WZP_QUALITY_REPORT_SIZE);
  /* upstream re-serialises, which clears byte 1's two unused bits */
  if ((data[1] & 3) && len <= sizeof fixed) {
    memcpy (fixed, data, len);
    fixed[1] &= 0xfc;
    out = fixed;
  }
  if (G_UNLIKELY (r->test_tap || r->test_flip_every || r->test_replay_every) && len <= sizeof fixed)
    out = test_hooks (r, p, out, len, fixed, &times);
  for (guint t = 0; t < times; t++)
    for (guint i = 0; i < p->n_fwd; i++) {
      if (wzp_connection_send_datagram (p->fwd[i], out, len, NULL)) {
        r->n.datagrams_forwarded++;
        r->n.bytes_forwarded += len;
      }
    }
  if (r->fed)
    federation_room_datagram (r, room, out, len);
}

static void
on_call_offer (Peer *p, const WzpCallOffer *o)
{
  WzpRelay *r = p->relay;
  g_autoptr (WzpSignal) answer = NULL;
  gchar fp[WZP_FINGERPRINT_STRLEN];
  guint8 eph_secret[32], sig[64];
  Room *room;
  gboolean call_room = g_str_has_prefix (p->room_name, "call-");

  if (!wzp_verify_call_offer (o->identity_pub, o->ephemeral_pub,
                              g_bytes_get_data (o->signature, NULL), relay_sig_len (o->signature))) {
    r->n.handshake_failures++;
    peer_close (p, "bad-signature");
    return;
  }
  wzp_fingerprint_string (o->identity_pub, fp);
  if (p->auth_fp)
    g_strlcpy (fp, p->auth_fp, sizeof fp);
  if (call_room) {
    Call *c = relay_call_lookup (r, p->room_name + 5);
    if (c == NULL || call_other (c, fp) == NULL) {
      r->n.refused_limit++;
      peer_close (p, "not-a-party");
      return;
    }
  }
  room = g_hash_table_lookup (r->rooms, p->room_name);
  if (room == NULL && g_hash_table_size (r->rooms) >= r->settings.max_rooms) {
    r->n.refused_limit++;
    peer_close (p, "too-many-rooms");
    return;
  }
  if (room && room->members->len >= (call_room ? 2 : r->settings.max_room_members)) {
    r->n.refused_limit++;
    peer_close (p, "room-full");
    return;
  }
  p->fingerprint = g_strdup (p->auth_fp ? p->auth_fp : fp);
  p->alias = g_strdup (o->alias ? o->alias : p->auth_alias);
  answer = wzp_signal_new (WZP_SIGNAL_CALL_ANSWER);
  memcpy (answer->call_answer.identity_pub, wzp_identity_get_public_key (r->identity), 32);
  wzp_x25519_keypair_new (eph_secret, answer->call_answer.ephemeral_pub);
  wzp_sign_call_answer (r->identity, answer->call_answer.ephemeral_pub, sig);
  answer->call_answer.signature = g_bytes_new (sig, sizeof sig);
  answer->call_answer.chosen_profile = WZP_PROFILE_GOOD;
  memset (eph_secret, 0, sizeof eph_secret);
  relay_send_signal (p, answer);

  if (room == NULL) {
    room = g_new0 (Room, 1);
    room->relay = r;
    room->tier = WZP_TIER_GOOD;
    room->name = g_strdup (p->room_name);
    room->call_room = call_room;
    room->members = g_ptr_array_new ();
    g_hash_table_insert (r->rooms, room->name, room);
  }
  g_ptr_array_add (room->members, p);
  p->room = room;
  g_info ("%s joined room %s from %s (%u members)", p->fingerprint, room->name,
          wzp_connection_get_remote_address (p->conn), room->members->len);
  room_rebuild_fwd (room);
  p->state = PEER_IN_ROOM;
  if (p->timer) {
    g_source_remove (p->timer);
    p->timer = 0;
  }
  wzp_connection_set_datagram_handler (p->conn, on_room_datagram, p, NULL);
  relay_room_broadcast_update (room);
  federation_room_changed (r, room->name);
}

static void
on_room_message (Peer *p, WzpSignal *msg)
{
  if (p->state != PEER_AWAIT_OFFER)
    return;                     /* after the handshake, room signals are drained */
  if (msg->type == WZP_SIGNAL_CALL_OFFER)
    on_call_offer (p, &msg->call_offer);
  else if (msg->type == WZP_SIGNAL_AUTH_TOKEN && p->relay->settings.auth_url == NULL)
    ;                           /* tolerated and ignored when auth is off */
  else {
    p->relay->n.handshake_failures++;
    peer_close (p, "expected CallOffer");
  }
}

/* ---- connections ---------------------------------------------------------- */

static void
peer_free (Peer *p)
{
  WzpRelay *r = p->relay;

  if (p->timer)
    g_source_remove (p->timer);
  if (p->source) {
    guint n = GPOINTER_TO_UINT (g_hash_table_lookup (r->per_address, p->source));
    if (n <= 1)
      g_hash_table_remove (r->per_address, p->source);
    else
      g_hash_table_insert (r->per_address, g_strdup (p->source), GUINT_TO_POINTER (n - 1));
  }
  if (p->auth_cancel) {
    g_cancellable_cancel (p->auth_cancel);
    g_object_unref (p->auth_cancel);
  }
  g_queue_clear_full (&p->held, (GDestroyNotify) wzp_signal_free);
  peer_clear_fwd (p);
  g_signal_handlers_disconnect_by_data (p->conn, p);
  wzp_connection_set_datagram_handler (p->conn, NULL, NULL, NULL);
  g_object_unref (p->conn);
  g_free (p->auth_fp);
  g_free (p->auth_alias);
  g_free (p->key_fp);
  g_free (p->room_name);
  g_free (p->fingerprint);
  g_free (p->alias);
  g_free (p->source);
  g_free (p);
}

static void
dispatch (Peer *p, WzpSignal *msg)
{
  if (p->is_signal)
    on_signal_message (p, msg);
  else
    on_room_message (p, msg);
}

typedef struct {
  WzpRelay *relay;
  WzpConnection *conn;
} AuthCtx;

static void
on_auth_done (gboolean ok, const gchar *fingerprint, const gchar *alias, const gchar *error,
              gpointer data)
{
  AuthCtx *ctx = data;
  WzpRelay *r = ctx->relay;
  Peer *p = g_hash_table_lookup (r->peers, ctx->conn);

  g_object_unref (ctx->conn);
  g_free (ctx);
  if (p == NULL || p->state != PEER_AUTH_PENDING)
    return;                     /* gone meanwhile */
  g_clear_object (&p->auth_cancel);
  if (!ok) {
    r->n.auth_fail++;
    g_info ("%s: auth refused: %s", wzp_connection_get_remote_address (p->conn), error);
    peer_close (p, "auth-failed");
    return;
  }
  r->n.auth_ok++;
  p->auth_fp = g_strdup (fingerprint);
  p->auth_alias = g_strdup (alias);
  p->state = p->is_signal ? PEER_AWAIT_REGISTER : PEER_AWAIT_OFFER;
  while (!g_queue_is_empty (&p->held) && p->state != PEER_DONE) {
    g_autoptr (WzpSignal) held = g_queue_pop_head (&p->held);
    dispatch (p, held);
  }
}

static void
on_auth_token (Peer *p, const WzpSignal *msg)
{
  WzpRelay *r = p->relay;
  AuthCtx *ctx;

  if (msg->type != WZP_SIGNAL_AUTH_TOKEN) {
    r->n.auth_fail++;
    peer_close (p, "expected AuthToken");
    return;
  }
  p->state = PEER_AUTH_PENDING;
  p->auth_cancel = g_cancellable_new ();
  ctx = g_new0 (AuthCtx, 1);
  ctx->relay = r;
  ctx->conn = g_object_ref (p->conn);
  wzp_auth_validate (r->auth, msg->auth_token.token, p->auth_cancel, on_auth_done, ctx);
}

static void
on_peer_signal (WzpConnection *conn, const WzpSignal *msg, gpointer data)
{
  Peer *p = data;

  if (p->state == PEER_DONE)
    return;
  if (!rate_ok (p))
    return;
  switch (p->state) {
    case PEER_AWAIT_AUTH:
      on_auth_token (p, msg);
      break;
    case PEER_AUTH_PENDING:
      /* clients need not wait for the verdict; keep a few messages */
      if (g_queue_get_length (&p->held) < 8)
        g_queue_push_tail (&p->held, wzp_signal_copy (msg));
      break;
    default:
      dispatch (p, (WzpSignal *) msg);
  }
}

static void
on_peer_closed (WzpConnection *conn, const GError *why, gpointer data)
{
  Peer *p = data;
  WzpRelay *r = p->relay;

  if (p->room)
    g_info ("%s left room %s: %s", p->fingerprint ? p->fingerprint : wzp_connection_get_remote_address (conn),
            p->room->name, why->message);
  else
    g_debug ("%s (%s) left: %s", wzp_connection_get_remote_address (conn),
             p->room_name ? p->room_name : wzp_connection_get_sni (conn), why->message);
  room_leave (p);
  /* only the current registration's end hangs up its calls */
  if (p->fingerprint && p->state != PEER_IN_ROOM && relay_hub_lookup (r, p->fingerprint) == p) {
    /* closed by the party itself: Normal (protocol §5.4 step 6); gone
     * silent (idle timeout, a broken path): Timeout, so the other side can
     * tell a vanished peer from a hang-up (upstream clients end the call on
     * any Hangup) */
    hangup_calls (r, p->fingerprint, NULL, NULL,
                  wzp_connection_get_peer_close (conn, NULL, NULL) ? WZP_HANGUP_NORMAL : WZP_HANGUP_TIMEOUT);
    g_hash_table_remove (r->hub, p->fingerprint);
  }
  g_hash_table_remove (r->peers, conn);
}

static gboolean
on_deadline (gpointer data)
{
  Peer *p = data;

  p->timer = 0;
  if (p->is_signal)
    p->relay->n.register_failures++;
  else
    p->relay->n.handshake_failures++;
  peer_close (p, p->is_signal ? "register-timeout" : "handshake-timeout");
  return G_SOURCE_REMOVE;
}

static gboolean
linger_close (gpointer data)
{
  WzpConnection *conn = data;

  wzp_connection_close (conn, 0, "done");
  return G_SOURCE_REMOVE;
}

gchar *
relay_source_ip (const gchar *addr)
{
  const gchar *colon = strrchr (addr, ':');

  return colon ? g_strndup (addr, (gsize) (colon - addr)) : g_strdup (addr);
}

static void
on_incoming (WzpEndpoint *ep, WzpConnection *conn, gpointer data)
{
  WzpRelay *r = data;
  const gchar *raw = wzp_connection_get_sni (conn);
  g_autofree gchar *sni = g_ascii_strdown (raw ? raw : "default", -1);
  g_autofree gchar *ip = relay_source_ip (wzp_connection_get_remote_address (conn));
  guint per_ip = GPOINTER_TO_UINT (g_hash_table_lookup (r->per_address, ip));
  Peer *p;

  r->n.connections_total++;
  if (strcmp (sni, "ping") == 0) {
    wzp_connection_close (conn, 0, "ping");
    return;
  }
  if (strcmp (sni, "version") == 0) {
    g_autoptr (GBytes) id = g_bytes_new_static (WZP_BUILD_ID, strlen (WZP_BUILD_ID));
    wzp_connection_send_uni (conn, id, NULL);
    g_timeout_add_full (G_PRIORITY_DEFAULT, 100, linger_close, g_object_ref (conn), g_object_unref);
    return;
  }
  if (strcmp (sni, "_federation") == 0) {
    federation_accept (r, conn);
    return;
  }
  if (strcmp (sni, "_probe") == 0) {
    probes_accept (r, conn);
    return;
  }
  if (strcmp (sni, "_signal") != 0 && !wzp_relay_room_name_valid (sni)) {
    r->n.refused_room_name++;
    wzp_connection_close (conn, 0, "bad-room-name");
    return;
  }
  if (per_ip >= r->settings.max_conns_per_address) {
    r->n.refused_limit++;
    wzp_connection_close (conn, 0, "too-many-connections");
    return;
  }
  g_hash_table_insert (r->per_address, g_strdup (ip), GUINT_TO_POINTER (per_ip + 1));
  p = g_new0 (Peer, 1);
  wzp_tier_controller_init (&p->quality);
  p->relay = r;
  p->conn = g_object_ref (conn);
  p->source = g_steal_pointer (&ip);
  if (strcmp (sni, "_signal") == 0) {
    p->is_signal = TRUE;
    p->state = PEER_AWAIT_REGISTER;
    p->timer = g_timeout_add (r->settings.register_timeout_ms, on_deadline, p);
  } else {
    p->state = PEER_AWAIT_OFFER;
    p->room_name = g_strdup (sni);
    p->timer = g_timeout_add (r->settings.handshake_timeout_ms, on_deadline, p);
  }
  if (r->auth)
    p->state = PEER_AWAIT_AUTH;
  g_hash_table_insert (r->peers, conn, p);
  g_signal_connect (conn, "signal", G_CALLBACK (on_peer_signal), p);
  g_signal_connect (conn, "closed", G_CALLBACK (on_peer_closed), p);
}

WzpRelay *
wzp_relay_new (WzpEndpoint *endpoint, WzpIdentity *identity, const WzpRelaySettings *settings,
               GError **error)
{
  WzpAuth *auth = NULL;
  WzpRelay *r;

  if (settings->auth_url && (auth = wzp_auth_new (settings->auth_url, 5, error)) == NULL)
    return NULL;
  r = g_new0 (WzpRelay, 1);
  r->auth = auth;

  r->endpoint = g_object_ref (endpoint);
  r->identity = wzp_identity_ref (identity);
  r->settings = *settings;
  r->settings.advertise = g_strdup (settings->advertise);
  r->settings.auth_url = g_strdup (settings->auth_url);
  r->settings.fed_peers = settings->fed_peers ? g_ptr_array_ref (settings->fed_peers) : NULL;
  r->settings.fed_trusted = g_strdupv (settings->fed_trusted);
  r->settings.global_rooms = g_strdupv (settings->global_rooms);
  r->settings.fed_label = g_strdup (settings->fed_label);
  r->settings.probe_targets = g_strdupv (settings->probe_targets);
  r->peers = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) peer_free);
  r->hub = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  r->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) room_free);
  r->calls = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) call_free);
  r->per_address = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  r->started_us = g_get_monotonic_time ();
  r->incoming_id = g_signal_connect (endpoint, "incoming", G_CALLBACK (on_incoming), r);
  r->fed = federation_new (r);
  r->probes = probes_new (r);
  if (g_getenv ("WZP_RELAY_TEST_TAP"))
    r->test_tap = fopen (g_getenv ("WZP_RELAY_TEST_TAP"), "ab");
  r->test_flip_every = (guint) g_ascii_strtoull (g_getenv ("WZP_RELAY_TEST_FLIP_EVERY") ?: "0", NULL, 10);
  r->test_replay_every = (guint) g_ascii_strtoull (g_getenv ("WZP_RELAY_TEST_REPLAY_EVERY") ?: "0", NULL, 10);
  if (r->test_tap || r->test_flip_every || r->test_replay_every)
    g_warning ("test hooks are on: call media is recorded or altered (WZP_RELAY_TEST_*)");
  return r;
}

void
wzp_relay_shutdown (WzpRelay *r)
{
  GHashTableIter it;
  gpointer v;

  g_hash_table_iter_init (&it, r->calls);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    Call *c = v;
    /* both parties said direct: their media does not pass here, and the
     * call outlives this relay (they register again when it is back) */
    if (c->caller_direct_ok == 1 && c->callee_direct_ok == 1)
      continue;
    /* reason Error, not Normal: the parties can tell the relay ended the
     * call from the other side hanging up (docs/decisions.md) */
    relay_send_hangup (relay_hub_lookup (r, c->caller), WZP_HANGUP_ERROR, c->call_id);
    relay_send_hangup (relay_hub_lookup (r, c->callee), WZP_HANGUP_ERROR, c->call_id);
    if (c->remote_caller || c->remote_callee) {
      g_autoptr (WzpSignal) h = wzp_signal_new_hangup (WZP_HANGUP_ERROR, c->call_id);
      federation_send (r, c->link_fp, h);
    }
  }
  g_hash_table_remove_all (r->calls);
  wzp_endpoint_shutdown (r->endpoint, 0, "shutdown");
}

void
wzp_relay_free (WzpRelay *r)
{
  if (r == NULL)
    return;
  g_signal_handler_disconnect (r->endpoint, r->incoming_id);
  g_clear_pointer (&r->fed, federation_free);
  if (r->test_tap)
    fclose (r->test_tap);
  g_clear_pointer (&r->probes, probes_free);
  g_hash_table_destroy (r->calls);
  g_hash_table_destroy (r->hub);
  g_hash_table_destroy (r->peers);
  g_hash_table_destroy (r->rooms);
  g_hash_table_destroy (r->per_address);
  wzp_relay_settings_clear (&r->settings);
  wzp_auth_free (r->auth);
  wzp_identity_unref (r->identity);
  g_object_unref (r->endpoint);
  g_free (r);
}

/* ---- calls, for federation.c too ----------------------------------------- */

/* A registry entry, ringing (ring timeout). */
Call *
relay_call_new (WzpRelay *r, const gchar *call_id, const gchar *caller, const gchar *callee)
{
  Call *c = g_new0 (Call, 1);

  c->caller_direct_ok = c->callee_direct_ok = -1;
  c->relay = r;
  c->call_id = g_strdup (call_id);
  c->key = g_ascii_strdown (call_id, -1);
  c->caller = g_strdup (caller);
  c->callee = g_strdup (callee);
  c->timer = g_timeout_add (r->settings.ring_timeout_ms, call_expired, c);
  g_hash_table_replace (r->calls, g_strdup (c->key), c);
  return c;
}

/* Accepted: the callee's addresses, and the lifetime bound instead of the ring timeout. */
void
relay_call_activate (WzpRelay *r, Call *c, const gchar *callee_reflexive, const GPtrArray *callee_local)
{
  g_info ("call %s answered", c->call_id);
  c->active = TRUE;
  g_free (c->callee_reflexive);
  c->callee_reflexive = g_strdup (callee_reflexive);
  if (c->callee_local)
    g_ptr_array_unref (c->callee_local);
  c->callee_local = relay_copy_list (callee_local);
  if (c->timer)
    g_source_remove (c->timer);
  c->timer = g_timeout_add (r->settings.call_lifetime_ms, call_expired, c);
}
