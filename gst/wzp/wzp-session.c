/* WzpSession: the GObject, signalling and the call's life (see
 * wzp-session.h, wzp-session-private.h for the other units, and
 * docs/negotiation.md). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"

#include <string.h>
#include <sodium.h>

G_DEFINE_QUARK (wzp-session-error-quark, wzp_session_error)

G_DEFINE_TYPE (WzpSession, wzp_session, G_TYPE_OBJECT)

enum {
  PROP_0, PROP_RELAY, PROP_IDENTITY_FILE, PROP_IDENTITY_HEX, PROP_ALIAS, PROP_MODE, PROP_ROOM,
  PROP_CALL_TARGET, PROP_AUTO_ANSWER, PROP_RELAY_FINGERPRINT, PROP_DIRECT, PROP_SEND_PATH_REPORT,
  PROP_REPORT_TIMEOUT_MS, PROP_DIRECT_TIMEOUT_MS, PROP_MEDIA_TIMEOUT_MS, PROP_STATS, PROP_LOCAL_PORT, PROP_STATE, PROP_NEGOTIATED_PATH,
  PROP_HANDSHAKE_TIMEOUT_MS, PROP_RING_TIMEOUT_MS, PROP_ENCRYPTION, PROP_TOKEN, N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIG_STATE_CHANGED, SIG_INCOMING_CALL, SIG_CALL_EVENT, SIG_ERROR, N_SIGNALS };
static guint signals[N_SIGNALS];

const gchar *
wzp_session_state_name (WzpSessionState s)
{
  static const gchar *const names[] = { "idle", "registering", "registered", "calling", "ringing",
    "connecting", "active", "ended" };
  return (guint) s < G_N_ELEMENTS (names) ? names[s] : "unknown";
}

const gchar *
wzp_media_path_name (WzpMediaPath p)
{
  return p == WZP_MEDIA_PATH_DIRECT ? "direct" : p == WZP_MEDIA_PATH_RELAY ? "relay" : "none";
}

/* ---- timers on the session's context ------------------------------------- */

GSource *
session_timeout (WzpSession *s, guint ms, GSourceFunc func, gpointer data, GDestroyNotify destroy)
{
  GSource *src = g_timeout_source_new (ms);

  g_source_set_callback (src, func, data, destroy);
  g_source_attach (src, s->ctx);
  return src;
}

void
cancel_timer (GSource **src)
{
  if (*src) {
    g_source_destroy (*src);
    g_source_unref (*src);
    *src = NULL;
  }
}

/* ---- events, state, errors (session thread) ------------------------------- */

/* Emits "call-event" with @step and a dictionary built from key/value pairs
 * (const gchar *key, GVariant *value, ..., NULL). */
void
call_event (WzpSession *s, const gchar *step, ...)
{
  GVariantBuilder b;
  va_list ap;
  const gchar *key;
  g_autoptr (GVariant) dict = NULL;
  g_autofree gchar *text = NULL;

  gboolean has_call_id = FALSE;

  g_variant_builder_init (&b, G_VARIANT_TYPE_VARDICT);
  va_start (ap, step);
  while ((key = va_arg (ap, const gchar *)) != NULL) {
    has_call_id |= strcmp (key, "call_id") == 0;
    g_variant_builder_add (&b, "{sv}", key, va_arg (ap, GVariant *));
  }
  va_end (ap);
  /* every event of a call names it and the other side (session thread: the
   * only writer, so no lock to read) */
  if (s->call_id && !has_call_id)
    g_variant_builder_add (&b, "{sv}", "call_id", g_variant_new_string (s->call_id));
  if (s->peer_fp)
    g_variant_builder_add (&b, "{sv}", "peer", g_variant_new_string (s->peer_fp));
  dict = g_variant_ref_sink (g_variant_builder_end (&b));
  text = g_variant_print (dict, FALSE);
  g_debug ("%s %s", step, text);
  g_signal_emit (s, signals[SIG_CALL_EVENT], 0, step, dict);
}

void
set_state (WzpSession *s, WzpSessionState state)
{
  g_mutex_lock (&s->lock);
  if (s->state == state || s->state == WZP_SESSION_STATE_ENDED) {
    g_mutex_unlock (&s->lock);
    return;
  }
  s->state = state;
  g_mutex_unlock (&s->lock);
  g_signal_emit (s, signals[SIG_STATE_CHANGED], 0, state);
}


void
fail (WzpSession *s, WzpSessionError code, const gchar *fmt, ...)
{
  va_list ap;
  GError *e;

  va_start (ap, fmt);
  e = g_error_new_valist (WZP_SESSION_ERROR, code, fmt, ap);
  va_end (ap);
  end_call (s, e);
}

void
send_sig (WzpSession *s, WzpSignal *msg)
{
  g_autoptr (GError) error = NULL;

  if (s->sig && !wzp_connection_send_signal (s->sig, msg, &error))
    g_debug ("signal not sent: %s", error->message);
  wzp_signal_free (msg);
}

/* The path the call's media takes: the negotiated one, then wherever the
 * call converges (following the peer to direct, or back to the relay when
 * the direct connection closes). */
void
set_path (WzpSession *s, WzpMediaPath path)
{
  gboolean changed;

  g_mutex_lock (&s->lock);
  changed = s->path != path;
  s->path = s->stats.path = path;
  g_mutex_unlock (&s->lock);
  if (changed)
    g_object_notify_by_pspec (G_OBJECT (s), props[PROP_NEGOTIATED_PATH]);
}

/* ---- signalling ---------------------------------------------------------- */

static WzpSignal *
register_msg (WzpSession *s)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_REGISTER_PRESENCE);
  guint8 msg[17 + 32], sig[64];

  memcpy (m->register_presence.identity_pub, wzp_identity_get_public_key (s->identity), 32);
  /* signed as docs/relay.md says: "register-presence" || identity_pub */
  memcpy (msg, "register-presence", 17);
  memcpy (msg + 17, m->register_presence.identity_pub, 32);
  wzp_identity_sign (s->identity, msg, sizeof msg, sig);
  m->register_presence.signature = g_bytes_new (sig, sizeof sig);
  m->register_presence.alias = g_strdup (s->alias);
  return m;
}

static void on_direct_answer (WzpSession *s, const WzpDirectCallAnswer *a);

/* CallSetup came, the answer did not (a relay that drops it): go on as with
 * an answer that proves nothing */
static gboolean
on_answer_missing (gpointer data)
{
  WzpSession *s = data;
  WzpDirectCallAnswer none = { .call_id = s->call_id, .accept_mode = WZP_CALL_ACCEPT_GENERIC };

  g_clear_pointer (&s->answer_timer, g_source_unref);
  call_event (s, "call:answer_missing", NULL);
  on_direct_answer (s, &none);
  return G_SOURCE_REMOVE;
}

/* The caller's side of the answer: whether the callee sealed its consent
 * to end-to-end protection with its identity key. */
static void
on_direct_answer (WzpSession *s, const WzpDirectCallAnswer *a)
{
  if (a->accept_mode == WZP_CALL_ACCEPT_REJECT || g_strcmp0 (a->call_id, s->call_id) != 0 ||
      wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED || !s->awaiting_answer)
    return;
  s->awaiting_answer = FALSE;
  cancel_timer (&s->answer_timer);
  secure_from_answer (s, a);
  /* a CallSetup that overtook the answer */
  if (s->pending_setup && wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED)
    on_call_setup (s, &s->pending_setup->call_setup);
  g_clear_pointer (&s->pending_setup, wzp_signal_free);
}

/* ring-timeout-ms passed and the callee has not answered: we hang up */
static gboolean
on_ring_timeout (gpointer data)
{
  WzpSession *s = data;
  WzpSessionState st = wzp_session_get_state (s);

  g_clear_pointer (&s->ring_timer, g_source_unref);
  if (st != WZP_SESSION_STATE_CALLING && st != WZP_SESSION_STATE_RINGING)
    return G_SOURCE_REMOVE;
  if (s->sig && s->call_id)
    send_sig (s, wzp_signal_new_hangup (WZP_HANGUP_TIMEOUT, s->call_id));
  fail (s, WZP_SESSION_ERROR_NO_ANSWER, "no answer from %s within %u ms (ring-timeout)",
        s->call_target ? s->call_target : "the callee", s->ring_timeout_ms);
  return G_SOURCE_REMOVE;
}

static void
do_place_call (WzpSession *s, const gchar *target)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_OFFER);
  WzpDirectCallOffer *o = &m->direct_call_offer;
  g_autoptr (GByteArray) signed_bytes = NULL;
  guint8 sig[64];

  g_mutex_lock (&s->lock);
  g_free (s->call_id);
  s->call_id = g_strdup_printf ("%016" G_GINT64_MODIFIER "x", g_get_real_time () * 1000 +
                                g_random_int_range (0, 1000));
  g_free (s->peer_fp);
  s->peer_fp = g_strdup (target);
  g_mutex_unlock (&s->lock);
  s->call_started_us = g_get_monotonic_time ();
  o->caller_fingerprint = g_strdup (wzp_identity_get_fingerprint (s->identity));
  o->caller_alias = g_strdup (s->alias);
  o->target_fingerprint = g_strdup (target);
  o->call_id = g_strdup (s->call_id);
  memcpy (o->identity_pub, wzp_identity_get_public_key (s->identity), 32);
  wzp_x25519_keypair_new (s->eph_secret, o->ephemeral_pub);
  memcpy (s->offer_eph, o->ephemeral_pub, 32);
  s->peer_e2e = s->peer_authenticated = s->e2e_on = FALSE;
  s->awaiting_answer = TRUE;
  signed_bytes = wzp_e2e_offer_bytes (!encryption_off (s), o->ephemeral_pub, target, s->call_id);
  wzp_identity_sign (s->identity, signed_bytes->data, signed_bytes->len, sig);
  o->signature = g_bytes_new (sig, sizeof sig);
  o->supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (o->supported_profiles, WZP_PROFILE_GOOD);
  o->caller_reflexive_addr = g_strdup (s->own_reflexive);
  o->caller_local_addrs = local_candidates (s);
  if (o->caller_local_addrs->len == 0)
    g_clear_pointer (&o->caller_local_addrs, g_ptr_array_unref);
  o->caller_build_version = g_strdup (WZP_BUILD_ID);
  set_state (s, WZP_SESSION_STATE_CALLING);
  cancel_timer (&s->ring_timer);
  if (s->ring_timeout_ms)
    s->ring_timer = session_timeout (s, s->ring_timeout_ms, on_ring_timeout, s, NULL);
  call_event (s, "call:offer_sent", "call_id", g_variant_new_string (s->call_id),
              "target", g_variant_new_string (target), NULL);
  send_sig (s, m);
  /* the relay has the offer a round trip before our room connection's
   * CallOffer can reach it: the call is known there by then */
  early_dial_relay (s, s->call_id);
}

static void
do_answer (WzpSession *s, gboolean accept)
{
  WzpSignal *m;

  if (s->incoming_call_id == NULL)
    return;
  m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_ANSWER);
  m->direct_call_answer.call_id = g_strdup (s->incoming_call_id);
  m->direct_call_answer.accept_mode = accept ? WZP_CALL_ACCEPT_TRUSTED : WZP_CALL_ACCEPT_REJECT;
  m->direct_call_answer.chosen_profile = g_memdup2 (&WZP_PROFILE_GOOD, sizeof WZP_PROFILE_GOOD);
  if (accept) {
    m->direct_call_answer.callee_reflexive_addr = g_strdup (s->own_reflexive);
    m->direct_call_answer.callee_local_addrs = local_candidates (s);
    if (m->direct_call_answer.callee_local_addrs->len == 0)
      g_clear_pointer (&m->direct_call_answer.callee_local_addrs, g_ptr_array_unref);
  }
  m->direct_call_answer.callee_build_version = g_strdup (WZP_BUILD_ID);
  if (accept && s->peer_e2e && !encryption_off (s)) {
    g_autoptr (GByteArray) b = NULL;
    guint8 sig[64], eph_pub[32];

    wzp_x25519_keypair_new (s->eph_secret, eph_pub);
    memcpy (s->answer_eph, eph_pub, 32);
    b = wzp_e2e_answer_bytes (eph_pub, s->offer_eph, s->incoming_call_id);
    wzp_identity_sign (s->identity, b->data, b->len, sig);
    m->direct_call_answer.identity_pub = g_memdup2 (wzp_identity_get_public_key (s->identity), 32);
    m->direct_call_answer.ephemeral_pub = g_memdup2 (eph_pub, 32);
    m->direct_call_answer.signature = g_bytes_new (sig, sizeof sig);
  }
  if (accept) {
    g_mutex_lock (&s->lock);
    g_free (s->call_id);
    s->call_id = g_strdup (s->incoming_call_id);
    g_mutex_unlock (&s->lock);
    if (s->peer_e2e && !encryption_off (s))
      start_e2e (s, FALSE);
    s->call_started_us = g_get_monotonic_time ();
  }
  g_clear_pointer (&s->incoming_call_id, g_free);
  if (!accept) {
    drop_conn (s, &s->relay_conn, "declined");
    s->relay_early = s->relay_admitted = FALSE;
  }
  call_event (s, accept ? "call:accepted" : "call:rejected", NULL);
  send_sig (s, m);
}

/* The relay or the peer ended the call: why, by the reason and our state. */
static void
on_hangup (WzpSession *s, WzpHangupReason reason)
{
  WzpSessionState st = wzp_session_get_state (s);
  gboolean placing = st == WZP_SESSION_STATE_CALLING || st == WZP_SESSION_STATE_RINGING;

  if (reason == WZP_HANGUP_DECLINED)
    fail (s, WZP_SESSION_ERROR_REJECTED, "the callee declined the call");
  else if (reason == WZP_HANGUP_BUSY)
    fail (s, WZP_SESSION_ERROR_BUSY, "the callee is busy");
  else if (reason == WZP_HANGUP_TIMEOUT && placing)
    fail (s, WZP_SESSION_ERROR_NO_ANSWER, "no answer: the relay stopped ringing %s",
          s->call_target ? s->call_target : "the callee");
  else if (st == WZP_SESSION_STATE_CALLING && !s->rang)
    fail (s, WZP_SESSION_ERROR_PEER_UNREACHABLE,
          "the callee %s is not registered on the relay at %s: check the fingerprint",
          s->call_target ? s->call_target : "", s->relay);
  else if (reason == WZP_HANGUP_ERROR)
    fail (s, WZP_SESSION_ERROR_RELAY_ENDED, "the relay at %s ended the call (it is shutting down "
          "or failed)", s->relay);
  else if (reason == WZP_HANGUP_TIMEOUT && st == WZP_SESSION_STATE_RINGING)
    fail (s, WZP_SESSION_ERROR_NO_ANSWER, "the call was not answered in time");
  else if (reason == WZP_HANGUP_TIMEOUT)
    /* our relay: the other side's connection went silent */
    fail (s, WZP_SESSION_ERROR_PEER_LOST, "the other side %s is gone: its connection to the relay "
          "went silent", s->peer_fp ? s->peer_fp : "");
  else
    end_call (s, g_error_new_literal (WZP_SESSION_ERROR, WZP_SESSION_ERROR_HUNG_UP,
                                      "the other side hung up"));
}

static void
on_signal (WzpConnection *c, const WzpSignal *msg, WzpSession *s)
{
  switch (msg->type) {
    case WZP_SIGNAL_REGISTER_PRESENCE_ACK:
      if (!msg->register_presence_ack.success && s->registered_once && !s->reregistering) {
        /* a newer registration of our identity takes our calls from now on;
         * a call in progress goes on */
        call_event (s, "signal:displaced", "reason", g_variant_new_string (
            msg->register_presence_ack.error ? msg->register_presence_ack.error : "displaced"), NULL);
        return;
      }
      if (!msg->register_presence_ack.success) {
        fail (s, WZP_SESSION_ERROR_REGISTRATION, "the relay refused the registration: %s",
              msg->register_presence_ack.error ? msg->register_presence_ack.error : "no reason given");
        return;
      }
      s->rereg_delay_ms = 0;
      if (s->reregistering) {
        /* back on the relay: a call in progress goes on as it was */
        s->reregistering = FALSE;
        call_event (s, "signal:reregistered", NULL);
        if (wzp_session_get_state (s) == WZP_SESSION_STATE_REGISTERED) {
          g_clear_pointer (&s->own_reflexive, g_free);
          send_sig (s, wzp_signal_new (WZP_SIGNAL_REFLECT));
        }
        break;
      }
      s->registered_once = TRUE;
      set_state (s, WZP_SESSION_STATE_REGISTERED);
      call_event (s, "signal:registered", NULL);
      send_sig (s, wzp_signal_new (WZP_SIGNAL_REFLECT));
      break;
    case WZP_SIGNAL_REFLECT_RESPONSE:
      if (s->own_reflexive == NULL) {
        s->own_reflexive = g_strdup (msg->reflect_response.observed_addr);
        call_event (s, "signal:reflexive", "address", g_variant_new_string (s->own_reflexive), NULL);
        if (s->call_target && s->call_id == NULL)
          do_place_call (s, s->call_target);
      }
      break;
    case WZP_SIGNAL_DIRECT_CALL_OFFER:
      if (s->call_id || s->incoming_call_id) {
        /* one call at a time */
        g_autoptr (WzpSignal) busy = wzp_signal_new_hangup (WZP_HANGUP_BUSY, msg->direct_call_offer.call_id);
        send_sig (s, g_steal_pointer (&busy));
        return;
      }
      {
        const WzpDirectCallOffer *o = &msg->direct_call_offer;
        gsize siglen = 0;
        const guint8 *sig = o->signature ? g_bytes_get_data (o->signature, &siglen) : NULL;
        gboolean e2e = FALSE;
        gboolean ok = sig && o->target_fingerprint && o->call_id &&
            wzp_e2e_verify_offer (o->identity_pub, o->ephemeral_pub, o->target_fingerprint, o->call_id,
                                  sig, siglen, &e2e);

        peer_signed (s, o->identity_pub, o->caller_fingerprint, ok && e2e);
        memcpy (s->offer_eph, o->ephemeral_pub, 32);
        s->e2e_on = FALSE;
        if (!s->peer_e2e && encryption_required (s)) {
          g_autoptr (WzpSignal) no = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_ANSWER);
          no->direct_call_answer.call_id = g_strdup (o->call_id);
          no->direct_call_answer.accept_mode = WZP_CALL_ACCEPT_REJECT;
          send_sig (s, g_steal_pointer (&no));
          call_event (s, "call:refused_unencrypted", "caller", g_variant_new_string (
              o->caller_fingerprint ? o->caller_fingerprint : ""), NULL);
          return;
        }
      }
      s->incoming_call_id = g_strdup (msg->direct_call_offer.call_id);
      g_mutex_lock (&s->lock);
      g_free (s->peer_fp);
      s->peer_fp = g_strdup (msg->direct_call_offer.caller_fingerprint);
      g_mutex_unlock (&s->lock);
      set_state (s, WZP_SESSION_STATE_RINGING);
      early_dial_relay (s, s->incoming_call_id);
      g_signal_emit (s, signals[SIG_INCOMING_CALL], 0, msg->direct_call_offer.caller_fingerprint,
                     msg->direct_call_offer.caller_alias);
      if (s->auto_answer)
        do_answer (s, TRUE);
      break;
    case WZP_SIGNAL_DIRECT_CALL_ANSWER:
      on_direct_answer (s, &msg->direct_call_answer);
      break;
    case WZP_SIGNAL_CALL_RINGING:
      s->rang = TRUE;
      set_state (s, WZP_SESSION_STATE_RINGING);
      call_event (s, "call:ringing", NULL);
      break;
    case WZP_SIGNAL_CALL_SETUP:
      if (s->test_setup_delay_ms) {
        call_setup_later (s, msg);
      } else if (s->awaiting_answer && wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED) {
        g_clear_pointer (&s->pending_setup, wzp_signal_free);
        s->pending_setup = wzp_signal_copy (msg);
        cancel_timer (&s->answer_timer);
        s->answer_timer = session_timeout (s, ANSWER_AFTER_SETUP_MS, on_answer_missing, s, NULL);
      } else
        on_call_setup (s, &msg->call_setup);
      break;
    case WZP_SIGNAL_MEDIA_PATH_REPORT:
      /* only the report for this call counts (upstream takes any, §9 #13) */
      if (g_strcmp0 (msg->media_path_report.call_id, s->call_id) != 0)
        return;
      neg_event (s, NEG_EV_PEER_REPORT, msg->media_path_report.direct_ok);
      break;
    case WZP_SIGNAL_HANGUP:
      if (msg->hangup.call_id && s->call_id && g_ascii_strcasecmp (msg->hangup.call_id, s->call_id) != 0)
        return;
      on_hangup (s, msg->hangup.reason);
      break;
    default:
      break;
  }
}

static void
on_sig_established (WzpConnection *c, WzpSession *s)
{
  call_event (s, "signal:connected", "relay", g_variant_new_string (wzp_connection_get_remote_address (c)), NULL);
  send_token (s, c);
  send_sig (s, register_msg (s));
}

static void on_signal (WzpConnection *c, const WzpSignal *msg, WzpSession *s);
static void on_sig_closed (WzpConnection *c, const GError *why, WzpSession *s);
static void schedule_reregister (WzpSession *s);

static gboolean
connect_signal (WzpSession *s, GError **error)
{
  s->sig = wzp_endpoint_connect (s->ep, s->relay_addr, "_signal", s->relay_fp, error);
  if (s->sig == NULL)
    return FALSE;
  g_signal_connect (s->sig, "established", G_CALLBACK (on_sig_established), s);
  g_signal_connect (s->sig, "signal", G_CALLBACK (on_signal), s);
  g_signal_connect (s->sig, "closed", G_CALLBACK (on_sig_closed), s);
  return TRUE;
}

/* Losing _signal (protocol §6.1 step 6) ends nothing that does not need
 * the relay: an idle registration, or a call whose media runs on the
 * direct path, registers again with back-off (1 s doubling to 30 s). */
static gboolean
can_reregister (WzpSession *s)
{
  WzpSessionState st = wzp_session_get_state (s);

  if (!s->registered_once)
    return FALSE;
  return st == WZP_SESSION_STATE_REGISTERED ||
         (st == WZP_SESSION_STATE_ACTIVE && s->neg == NEG_DECIDED && s->send_path == WZP_MEDIA_PATH_DIRECT);
}

static gboolean
do_reregister (gpointer data)
{
  WzpSession *s = data;
  g_autoptr (GError) error = NULL;

  g_clear_pointer (&s->rereg_timer, g_source_unref);
  drop_conn (s, &s->sig, "reconnect");
  s->reregistering = TRUE;
  call_event (s, "signal:reconnecting", NULL);
  if (!connect_signal (s, &error))
    schedule_reregister (s);
  return G_SOURCE_REMOVE;
}

static void
schedule_reregister (WzpSession *s)
{
  guint delay = s->rereg_delay_ms ? s->rereg_delay_ms : REREGISTER_FIRST_MS;

  cancel_timer (&s->rereg_timer);
  s->rereg_delay_ms = MIN (delay * 2, REREGISTER_MAX_MS);
  s->rereg_timer = session_timeout (s, delay, do_reregister, s, NULL);
}

static void
on_sig_closed (WzpConnection *c, const GError *why, WzpSession *s)
{
  const gchar *peer_reason = wzp_connection_get_peer_close (c, NULL, NULL);

  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED)
    return;
  if (g_strcmp0 (peer_reason, "auth-failed") == 0 ||
      g_strcmp0 (peer_reason, "expected AuthToken") == 0)
    fail (s, WZP_SESSION_ERROR_NOT_AUTHORIZED, "the relay at %s refused our token: check the token "
          "property (this relay validates tokens)", s->relay);
  else if (g_error_matches (why, WZP_QUIC_ERROR, WZP_QUIC_ERROR_PIN_MISMATCH))
    fail (s, WZP_SESSION_ERROR_NOT_AUTHORIZED, "%s", why->message);
  else if (g_strcmp0 (peer_reason, "register-refused") == 0)
    fail (s, WZP_SESSION_ERROR_REGISTRATION, "the relay at %s refused the registration", s->relay);
  else if (can_reregister (s)) {
    call_event (s, "signal:lost", "reason", g_variant_new_string (why->message), NULL);
    schedule_reregister (s);
  } else if (g_strcmp0 (peer_reason, "shutdown") == 0 && s->registered_once)
    fail (s, WZP_SESSION_ERROR_RELAY_ENDED, "the relay at %s shut down", s->relay);
  else if (!s->registered_once)
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "cannot reach the relay at %s: %s", s->relay,
          why->message);
  else
    fail (s, WZP_SESSION_ERROR_RELAY_LOST, "lost the relay at %s: %s", s->relay, why->message);
}

/* ---- life cycle ------------------------------------------------------------ */

void
drop_conn (WzpSession *s, WzpConnection **c, const gchar *reason)
{
  if (*c == NULL)
    return;
  g_signal_handlers_disconnect_by_data (*c, s);
  wzp_connection_set_datagram_handler (*c, NULL, NULL, NULL);
  wzp_connection_close (*c, 0, reason);
  g_clear_object (c);
}

/* every timer of the call that is not the race's (race_stop() has those) */
static void
cancel_call_timers (WzpSession *s)
{
  cancel_timer (&s->rereg_timer);
  cancel_timer (&s->media_watch);
  cancel_timer (&s->ring_timer);
  cancel_timer (&s->answer_timer);
  g_clear_pointer (&s->pending_setup, wzp_signal_free);
}

void
end_call (WzpSession *s, GError *why)
{
  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED) {
    g_clear_error (&why);
    return;
  }
  cancel_call_timers (s);
  race_stop (s);
  drop_conn (s, &s->relay_conn, "hangup");
  /* the reason first: whoever sees the state ENDED can read why */
  g_mutex_lock (&s->lock);
  if (why && s->end_error == NULL)
    s->end_error = g_error_copy (why);
  g_mutex_unlock (&s->lock);
  if (why) {
    call_event (s, "call:ended", "reason", g_variant_new_string (why->message), NULL);
    g_signal_emit (s, signals[SIG_ERROR], 0, why);
    g_error_free (why);
  }
  set_state (s, WZP_SESSION_STATE_ENDED);
  wzp_session_interrupt (s);
}

static gboolean
do_start (gpointer data)
{
  WzpSession *s = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) bind = NULL;
  g_autofree gchar *bind_text = NULL;
  WzpEndpointSettings settings;
  guint8 seed[32];
  gboolean v6;

  /* a host name is resolved here, on the session's thread, never in a
   * state change */
  s->relay_addr = wzp_socket_address_resolve (s->relay, &error);
  if (s->relay_addr == NULL) {
    fail (s, WZP_SESSION_ERROR_RELAY_NOT_FOUND, "%s", error->message);
    return G_SOURCE_REMOVE;
  }
  v6 = g_socket_address_get_family (s->relay_addr) == G_SOCKET_FAMILY_IPV6;

  /* one dual-stack socket reaches an IPv4 relay and IPv6 peers alike; where
   * IPv6 is off, an IPv4 socket does for an IPv4 relay */
  wzp_endpoint_settings_init (&settings);
  settings.handshake_timeout_ms = s->handshake_timeout_ms;
  /* a peer that only listens sends no media, but its QUIC stack acknowledges
   * ours and answers keep-alives: a connection that hears nothing for the
   * media timeout is gone. The idle timeout in effect is the smaller of both
   * sides', so a relay also drops our call-room connection that soon after we
   * vanish, and tells the other side (RoomUpdate). */
  if (s->media_timeout_ms) {
    settings.idle_timeout_ms = CLAMP (s->media_timeout_ms, IDLE_TIMEOUT_MIN_MS, settings.idle_timeout_ms);
    settings.keep_alive_ms = MIN (settings.keep_alive_ms, settings.idle_timeout_ms / 3);
  }
  bind_text = g_strdup_printf ("[::]:%u", s->local_port);
  bind = wzp_socket_address_parse (bind_text, NULL);
  s->ep = wzp_endpoint_new (bind, s->ctx, &settings, &error);
  if (s->ep == NULL && !v6) {
    g_clear_error (&error);
    g_clear_object (&bind);
    g_free (bind_text);
    bind_text = g_strdup_printf ("0.0.0.0:%u", s->local_port);
    bind = wzp_socket_address_parse (bind_text, NULL);
    s->ep = wzp_endpoint_new (bind, s->ctx, &settings, &error);
  }
  /* our certificate is our identity key: a peer that dials us, or that we
   * dial, checks it against the key that signed the offer or answer */
  wzp_identity_get_signing_seed (s->identity, seed);
  if (s->ep == NULL || !wzp_endpoint_listen (s->ep, seed, &error)) {
    sodium_memzero (seed, sizeof seed);
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "cannot open a UDP socket: %s", error->message);
    return G_SOURCE_REMOVE;
  }
  sodium_memzero (seed, sizeof seed);
  wzp_endpoint_set_ask_call_certificates (s->ep, TRUE);
  g_signal_connect (s->ep, "incoming", G_CALLBACK (on_incoming), s);
  if (s->test_block_direct)
    wzp_endpoint_set_test_filter (s->ep, test_block_all_but_relay, s);
  if (g_strcmp0 (s->mode, "room") == 0) {
    s->room_name = g_ascii_strdown (s->room ? s->room : "default", -1);
    s->setup_taken = TRUE;      /* a room needs no answer: admitted is active */
    s->call_started_us = g_get_monotonic_time ();
    set_state (s, WZP_SESSION_STATE_CONNECTING);
    call_event (s, "connect:start", "room", g_variant_new_string (s->room_name), NULL);
    dial_relay (s, s->relay_addr, s->room_name);
    neg_event (s, NEG_EV_ROOM, FALSE);
    set_path (s, WZP_MEDIA_PATH_RELAY);
    return G_SOURCE_REMOVE;
  }
  set_state (s, WZP_SESSION_STATE_REGISTERING);
  if (!connect_signal (s, &error))
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "cannot dial the relay: %s", error->message);
  return G_SOURCE_REMOVE;
}

static gpointer
session_thread (gpointer data)
{
  WzpSession *s = data;

  g_main_context_push_thread_default (s->ctx);
  g_main_context_invoke (s->ctx, do_start, s);
  g_main_loop_run (s->loop);
  /* leave cleanly: tell the relay, close everything */
  if (s->sig && s->call_id && wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED)
    send_sig (s, wzp_signal_new_hangup (WZP_HANGUP_NORMAL, s->call_id));
  end_call (s, NULL);
  /* whatever a late signal may have started after the end */
  cancel_call_timers (s);
  race_stop (s);
  drop_conn (s, &s->sig, "hangup");
  if (s->ep) {
    g_signal_handlers_disconnect_by_data (s->ep, s);
    wzp_endpoint_shutdown (s->ep, 0, "hangup");
    g_clear_object (&s->ep);
  }
  while (g_main_context_iteration (s->ctx, FALSE));
  g_main_context_pop_thread_default (s->ctx);
  return NULL;
}

gboolean
wzp_session_start (WzpSession *s, GError **error)
{
  g_autoptr (GError) local = NULL;

  g_return_val_if_fail (s->thread == NULL, FALSE);
  if (s->relay == NULL) {
    g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID,
                 "set relay to the relay's address, e.g. relay.example.org:4433, "
                 "127.0.0.1:4433 or [::1]:4433");
    return FALSE;
  }
  if (g_strcmp0 (s->encryption, "auto") != 0 && g_strcmp0 (s->encryption, "required") != 0 &&
      g_strcmp0 (s->encryption, "off") != 0) {
    g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID,
                 "encryption=\"%s\": expected auto, required or off", s->encryption);
    return FALSE;
  }
  if (!wzp_socket_address_check (s->relay, &local)) {
    g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID, "relay: %s", local->message);
    return FALSE;
  }
  if (s->identity == NULL) {
    WzpIdentity *id;

    if (s->identity_hex)
      id = wzp_identity_new_from_hex (s->identity_hex, error);
    else if (s->identity_file)
      id = wzp_identity_load_or_create (s->identity_file, NULL, error);
    else
      id = wzp_identity_new_random ();
    if (id == NULL)
      return FALSE;
    g_mutex_lock (&s->lock);
    s->identity = id;
    g_mutex_unlock (&s->lock);
  }
  s->ctx = g_main_context_new ();
  s->loop = g_main_loop_new (s->ctx, FALSE);
  s->thread = g_thread_new ("wzp-session", session_thread, g_object_ref (s));
  return TRUE;
}

static gboolean
quit_loop (gpointer data)
{
  WzpSession *s = data;

  g_main_loop_quit (s->loop);
  return G_SOURCE_REMOVE;
}

void
wzp_session_stop (WzpSession *s)
{
  if (s->thread == NULL)
    return;
  g_main_context_invoke (s->ctx, quit_loop, s);
  g_thread_join (s->thread);
  s->thread = NULL;
  g_object_unref (s);           /* the thread's reference */
}

typedef struct {
  WzpSession *s;
  gchar *target;
  gboolean accept;
} Job;

static gboolean
run_place_call (gpointer data)
{
  Job *j = data;

  if (j->s->own_reflexive || wzp_session_get_state (j->s) == WZP_SESSION_STATE_REGISTERED)
    do_place_call (j->s, j->target);
  else {
    g_free (j->s->call_target);
    j->s->call_target = g_strdup (j->target);   /* placed once registered */
  }
  return G_SOURCE_REMOVE;
}

static gboolean
run_answer (gpointer data)
{
  Job *j = data;

  do_answer (j->s, j->accept);
  return G_SOURCE_REMOVE;
}

static gboolean
run_hangup (gpointer data)
{
  Job *j = data;

  if (j->s->sig && j->s->call_id)
    send_sig (j->s, wzp_signal_new_hangup (WZP_HANGUP_NORMAL, j->s->call_id));
  end_call (j->s, g_error_new_literal (WZP_SESSION_ERROR, WZP_SESSION_ERROR_HUNG_UP, "hung up locally"));
  return G_SOURCE_REMOVE;
}

static void
job_free (gpointer data)
{
  Job *j = data;

  g_object_unref (j->s);
  g_free (j->target);
  g_free (j);
}

static void
invoke (WzpSession *s, GSourceFunc func, const gchar *target, gboolean accept)
{
  Job *j = g_new0 (Job, 1);

  j->s = g_object_ref (s);
  j->target = g_strdup (target);
  j->accept = accept;
  g_main_context_invoke_full (s->ctx, G_PRIORITY_DEFAULT, func, j, job_free);
}

void
wzp_session_place_call (WzpSession *s, const gchar *target)
{
  g_return_if_fail (s->ctx != NULL);
  invoke (s, run_place_call, target, FALSE);
}

void
wzp_session_answer (WzpSession *s, gboolean accept)
{
  g_return_if_fail (s->ctx != NULL);
  invoke (s, run_answer, NULL, accept);
}

void
wzp_session_hangup (WzpSession *s)
{
  if (s->ctx)
    invoke (s, run_hangup, NULL, FALSE);
}

GError *
wzp_session_dup_end_error (WzpSession *s)
{
  GError *e;

  g_mutex_lock (&s->lock);
  e = s->end_error ? g_error_copy (s->end_error) : NULL;
  g_mutex_unlock (&s->lock);
  return e;
}

gchar *
wzp_session_dup_fingerprint (WzpSession *s)
{
  gchar *fp;

  g_mutex_lock (&s->lock);
  fp = s->identity ? g_strdup (wzp_identity_get_fingerprint (s->identity)) : NULL;
  g_mutex_unlock (&s->lock);
  return fp;
}

gchar *
wzp_session_dup_call_id (WzpSession *s)
{
  gchar *id;

  g_mutex_lock (&s->lock);
  id = g_strdup (s->call_id);
  g_mutex_unlock (&s->lock);
  return id;
}

gchar *
wzp_session_dup_peer_fingerprint (WzpSession *s)
{
  gchar *fp;

  g_mutex_lock (&s->lock);
  fp = g_strdup (s->peer_fp);
  g_mutex_unlock (&s->lock);
  return fp;
}

const gchar *
wzp_session_error_nick (WzpSessionError code)
{
  static const gchar *const nicks[] = {
    [WZP_SESSION_ERROR_RELAY_UNREACHABLE] = "relay-unreachable",
    [WZP_SESSION_ERROR_REGISTRATION] = "registration-refused",
    [WZP_SESSION_ERROR_PEER_UNREACHABLE] = "not-found",
    [WZP_SESSION_ERROR_REJECTED] = "declined",
    [WZP_SESSION_ERROR_HUNG_UP] = "hung-up",
    [WZP_SESSION_ERROR_MEDIA] = "media-failed",
    [WZP_SESSION_ERROR_INVALID] = "invalid-setting",
    [WZP_SESSION_ERROR_NO_ANSWER] = "no-answer",
    [WZP_SESSION_ERROR_BUSY] = "busy",
    [WZP_SESSION_ERROR_PEER_LOST] = "peer-lost",
    [WZP_SESSION_ERROR_RELAY_LOST] = "relay-lost",
    [WZP_SESSION_ERROR_NOT_AUTHORIZED] = "not-authorized",
    [WZP_SESSION_ERROR_RELAY_ENDED] = "relay-ended",
    [WZP_SESSION_ERROR_RELAY_NOT_FOUND] = "relay-not-found",
    [WZP_SESSION_ERROR_NOT_ENCRYPTED] = "not-encrypted",
  };

  return (guint) code < G_N_ELEMENTS (nicks) && nicks[code] ? nicks[code] : "error";
}

WzpSessionState
wzp_session_get_state (WzpSession *s)
{
  WzpSessionState st;

  g_mutex_lock (&s->lock);
  st = s->state;
  g_mutex_unlock (&s->lock);
  return st;
}

WzpMediaPath
wzp_session_get_negotiated_path (WzpSession *s)
{
  WzpMediaPath p;

  g_mutex_lock (&s->lock);
  p = s->path;
  g_mutex_unlock (&s->lock);
  return p;
}

void
wzp_session_get_stats (WzpSession *s, WzpSessionStats *stats)
{
  g_mutex_lock (&s->lock);
  *stats = s->stats;
  g_mutex_unlock (&s->lock);
}

/* ---- GObject --------------------------------------------------------------- */

WzpSession *
wzp_session_new (void)
{
  return g_object_new (WZP_TYPE_SESSION, NULL);
}

static void
wzp_session_init (WzpSession *s)
{
  g_mutex_init (&s->lock);
  s->direct = TRUE;
  s->send_report = TRUE;
  s->report_timeout_ms = 3000;
  s->direct_timeout_ms = 2000;
  s->media_timeout_ms = MEDIA_TIMEOUT_DEFAULT_MS;
  s->handshake_timeout_ms = WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS;
  s->ring_timeout_ms = WZP_SESSION_RING_TIMEOUT_DEFAULT_MS;
  s->mode = g_strdup ("call");
  s->encryption = g_strdup ("auto");
  s->advice_codec = WZP_CODEC_OPUS24K;
  wzp_tier_controller_init (&s->tier);
  s->rx = g_async_queue_new_full ((GDestroyNotify) wzp_media_frame_free);
  s->tx = g_async_queue_new_full ((GDestroyNotify) g_bytes_unref);
}

static void
wzp_session_finalize (GObject *object)
{
  WzpSession *s = WZP_SESSION (object);

  wzp_session_stop (s);
  g_clear_error (&s->end_error);
  g_free (s->relay);
  g_free (s->identity_file);
  g_free (s->identity_hex);
  g_free (s->alias);
  g_free (s->mode);
  g_free (s->room);
  g_free (s->call_target);
  g_free (s->relay_fp);
  g_free (s->token);
  g_free (s->encryption);
  g_clear_pointer (&s->pending_setup, wzp_signal_free);
  wzp_e2e_clear (&s->e2e);
  sodium_memzero (s->eph_secret, sizeof s->eph_secret);
  g_free (s->own_reflexive);
  g_free (s->call_id);
  g_free (s->room_name);
  g_strfreev (s->participants);
  g_clear_object (&s->delayed_relay);
  g_free (s->peer_fp);
  g_free (s->incoming_call_id);
  g_clear_object (&s->relay_addr);
  if (s->identity)
    wzp_identity_unref (s->identity);
  if (s->loop)
    g_main_loop_unref (s->loop);
  if (s->ctx)
    g_main_context_unref (s->ctx);
  g_async_queue_unref (s->rx);
  g_async_queue_unref (s->tx);
  g_mutex_clear (&s->lock);
  G_OBJECT_CLASS (wzp_session_parent_class)->finalize (object);
}

static void
wzp_session_set_property (GObject *object, guint id, const GValue *value, GParamSpec *pspec)
{
  WzpSession *s = WZP_SESSION (object);
  gchar **str = NULL;

  switch (id) {
    case PROP_RELAY: str = &s->relay; break;
    case PROP_IDENTITY_FILE: str = &s->identity_file; break;
    case PROP_IDENTITY_HEX: str = &s->identity_hex; break;
    case PROP_ALIAS: str = &s->alias; break;
    case PROP_MODE: str = &s->mode; break;
    case PROP_ROOM: str = &s->room; break;
    case PROP_CALL_TARGET: str = &s->call_target; break;
    case PROP_RELAY_FINGERPRINT: str = &s->relay_fp; break;
    case PROP_TOKEN: str = &s->token; break;
    case PROP_ENCRYPTION: str = &s->encryption; break;
    case PROP_AUTO_ANSWER: s->auto_answer = g_value_get_boolean (value); return;
    case PROP_DIRECT: s->direct = g_value_get_boolean (value); return;
    case PROP_SEND_PATH_REPORT: s->send_report = g_value_get_boolean (value); return;
    case PROP_REPORT_TIMEOUT_MS: s->report_timeout_ms = g_value_get_uint (value); return;
    case PROP_DIRECT_TIMEOUT_MS: s->direct_timeout_ms = g_value_get_uint (value); return;
    case PROP_LOCAL_PORT: s->local_port = g_value_get_uint (value); return;
    case PROP_MEDIA_TIMEOUT_MS: s->media_timeout_ms = g_value_get_uint (value); return;
    case PROP_HANDSHAKE_TIMEOUT_MS: s->handshake_timeout_ms = g_value_get_uint (value); return;
    case PROP_RING_TIMEOUT_MS: s->ring_timeout_ms = g_value_get_uint (value); return;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
      return;
  }
  g_free (*str);
  *str = g_value_dup_string (value);
}

static void
wzp_session_get_property (GObject *object, guint id, GValue *value, GParamSpec *pspec)
{
  WzpSession *s = WZP_SESSION (object);

  switch (id) {
    case PROP_RELAY: g_value_set_string (value, s->relay); break;
    case PROP_IDENTITY_FILE: g_value_set_string (value, s->identity_file); break;
    case PROP_IDENTITY_HEX: g_value_set_string (value, NULL); break;   /* a secret */
    case PROP_ALIAS: g_value_set_string (value, s->alias); break;
    case PROP_MODE: g_value_set_string (value, s->mode); break;
    case PROP_ROOM: g_value_set_string (value, s->room); break;
    case PROP_CALL_TARGET: g_value_set_string (value, s->call_target); break;
    case PROP_RELAY_FINGERPRINT: g_value_set_string (value, s->relay_fp); break;
    case PROP_TOKEN: g_value_set_string (value, NULL); break;   /* a secret */
    case PROP_ENCRYPTION: g_value_set_string (value, s->encryption); break;
    case PROP_AUTO_ANSWER: g_value_set_boolean (value, s->auto_answer); break;
    case PROP_DIRECT: g_value_set_boolean (value, s->direct); break;
    case PROP_SEND_PATH_REPORT: g_value_set_boolean (value, s->send_report); break;
    case PROP_REPORT_TIMEOUT_MS: g_value_set_uint (value, s->report_timeout_ms); break;
    case PROP_DIRECT_TIMEOUT_MS: g_value_set_uint (value, s->direct_timeout_ms); break;
    case PROP_LOCAL_PORT: g_value_set_uint (value, s->local_port); break;
    case PROP_MEDIA_TIMEOUT_MS: g_value_set_uint (value, s->media_timeout_ms); break;
    case PROP_STATS: {
      WzpSessionStats st;
      GVariantDict d;
      wzp_session_get_stats (s, &st);
      g_variant_dict_init (&d, NULL);
      g_variant_dict_insert (&d, "state", "s", wzp_session_state_name (wzp_session_get_state (s)));
      g_variant_dict_insert (&d, "path", "s", wzp_media_path_name (st.path));
      g_variant_dict_insert (&d, "frames-sent", "t", st.frames_sent);
      g_variant_dict_insert (&d, "frames-received", "t", st.frames_received);
      g_variant_dict_insert (&d, "frames-dropped", "t", st.frames_dropped);
      g_variant_dict_insert (&d, "bytes-sent", "t", st.bytes_sent);
      g_variant_dict_insert (&d, "bytes-received", "t", st.bytes_received);
      g_variant_dict_insert (&d, "rtt-us", "t", st.rtt_us);
      g_variant_dict_insert (&d, "jitter-us", "t", st.jitter_us);
      g_variant_dict_insert (&d, "reports-sent", "t", st.reports_sent);
      g_variant_dict_insert (&d, "reports-received", "t", st.reports_received);
      g_variant_dict_insert (&d, "setup-us", "x", st.setup_us);
      g_variant_dict_insert (&d, "encrypted", "b", st.encrypted);
      g_variant_dict_insert (&d, "peer-authenticated", "b", st.peer_authenticated);
      g_variant_dict_insert (&d, "frames-auth-failed", "t", st.frames_auth_failed);
      g_variant_dict_insert (&d, "frames-replayed", "t", st.frames_replayed);
      g_value_take_variant (value, g_variant_ref_sink (g_variant_dict_end (&d)));
      break;
    }
    case PROP_HANDSHAKE_TIMEOUT_MS: g_value_set_uint (value, s->handshake_timeout_ms); break;
    case PROP_RING_TIMEOUT_MS: g_value_set_uint (value, s->ring_timeout_ms); break;
    case PROP_STATE: g_value_set_int (value, wzp_session_get_state (s)); break;
    case PROP_NEGOTIATED_PATH: g_value_set_int (value, wzp_session_get_negotiated_path (s)); break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void
wzp_session_class_init (WzpSessionClass *klass)
{
  GObjectClass *oc = G_OBJECT_CLASS (klass);
  GParamFlags rw = G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS;
  GParamFlags ro = G_PARAM_READABLE | G_PARAM_STATIC_STRINGS;

  oc->finalize = wzp_session_finalize;
  oc->set_property = wzp_session_set_property;
  oc->get_property = wzp_session_get_property;
  props[PROP_RELAY] = g_param_spec_string ("relay", "Relay", "Relay address, host:port", NULL, rw);
  props[PROP_IDENTITY_FILE] = g_param_spec_string ("identity-file", "Identity file",
      "Seed file (created when missing)", NULL, rw);
  props[PROP_IDENTITY_HEX] = g_param_spec_string ("identity-hex", "Identity",
      "Seed as 64 hex digits", NULL, rw);
  props[PROP_ALIAS] = g_param_spec_string ("alias", "Alias", "Display name", NULL, rw);
  props[PROP_MODE] = g_param_spec_string ("mode", "Mode", "\"call\" or \"room\"", "call", rw);
  props[PROP_ROOM] = g_param_spec_string ("room", "Room", "Room name (room mode)", NULL, rw);
  props[PROP_CALL_TARGET] = g_param_spec_string ("call-target", "Call target",
      "Fingerprint to call once registered", NULL, rw);
  props[PROP_AUTO_ANSWER] = g_param_spec_boolean ("auto-answer", "Auto-answer",
      "Accept incoming calls", FALSE, rw);
  props[PROP_RELAY_FINGERPRINT] = g_param_spec_string ("relay-fingerprint", "Relay fingerprint",
      "Expected TLS fingerprint of the relay", NULL, rw);
  props[PROP_DIRECT] = g_param_spec_boolean ("direct", "Direct", "Race a direct path", TRUE, rw);
  props[PROP_SEND_PATH_REPORT] = g_param_spec_boolean ("send-path-report", "Send path report",
      "Send MediaPathReport (FALSE imitates peers that predate it)", TRUE, rw);
  props[PROP_REPORT_TIMEOUT_MS] = g_param_spec_uint ("report-timeout-ms", "Report timeout",
      "Wait for the peer's MediaPathReport", 1, 60000, 3000, rw);
  props[PROP_DIRECT_TIMEOUT_MS] = g_param_spec_uint ("direct-timeout-ms", "Direct timeout",
      "Limit of the direct race", 1, 60000, 2000, rw);
  props[PROP_LOCAL_PORT] = g_param_spec_uint ("local-port", "Local port", "UDP port (0 = any)",
      0, 65535, 0, rw);
  props[PROP_MEDIA_TIMEOUT_MS] = g_param_spec_uint ("media-timeout-ms", "Media timeout",
      "End a call when the peer's media stops this long (0: never)", 0, 600000, MEDIA_TIMEOUT_DEFAULT_MS, rw);
  props[PROP_STATS] = g_param_spec_variant ("stats", "Statistics",
      "Counters as a{sv}: state, path, frames and bytes sent/received/dropped, rtt-us, "
      "jitter-us, reports-sent, setup-us", G_VARIANT_TYPE_VARDICT, NULL, ro);
  props[PROP_STATE] = g_param_spec_int ("state", "State", "WzpSessionState", 0,
      WZP_SESSION_STATE_ENDED, 0, ro);
  props[PROP_NEGOTIATED_PATH] = g_param_spec_int ("negotiated-path", "Negotiated path",
      "WzpMediaPath the call uses: decided by the reports, then where the call converges", 0,
      WZP_MEDIA_PATH_RELAY, 0, ro);
  props[PROP_HANDSHAKE_TIMEOUT_MS] = g_param_spec_uint ("handshake-timeout-ms", "Handshake timeout",
      "Give up a QUIC handshake (relay or peer) after this long", 100, 600000,
      WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS, rw);
  props[PROP_RING_TIMEOUT_MS] = g_param_spec_uint ("ring-timeout-ms", "Ring timeout",
      "A call we place that is not answered this long ends with no-answer (0: the relay's limit)",
      0, 600000, WZP_SESSION_RING_TIMEOUT_DEFAULT_MS, rw);
  props[PROP_ENCRYPTION] = g_param_spec_string ("encryption", "Encryption",
      "End-to-end media encryption: auto (when the peer can), required (refuse a peer that "
      "cannot), off", "auto", rw);
  props[PROP_TOKEN] = g_param_spec_string ("token", "Token",
      "Authentication token for relays that validate tokens (sent as AuthToken)", NULL, rw);
  g_object_class_install_properties (oc, N_PROPS, props);

  /* "state-changed" (WzpSessionState): session thread. */
  signals[SIG_STATE_CHANGED] = g_signal_new ("state-changed", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_INT);
  /* "incoming-call" (fingerprint, alias or NULL): session thread; answer
   * with wzp_session_answer(). */
  signals[SIG_INCOMING_CALL] = g_signal_new ("incoming-call", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_STRING);
  /* "call-event" (step, GVariant a{sv}): session thread; upstream's step names. */
  signals[SIG_CALL_EVENT] = g_signal_new ("call-event", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_VARIANT);
  /* "error" (const GError *): session thread; the call has ended. */
  signals[SIG_ERROR] = g_signal_new ("error", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL, G_TYPE_NONE, 1, G_TYPE_ERROR);
}
