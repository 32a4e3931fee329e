/* wzp-session-relay: the relay path of a call and of a room. The CallOffer
 * that joins a relay room (a call's call-<id> or a named room), the early
 * join while a call rings, CallSetup, who is in the room, and the relay
 * connection's end (docs/negotiation.md, step 0 and the relay path). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"
#include "wzp-identity.h"

#include <string.h>

static WzpSignal *
call_offer (WzpSession *s)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_CALL_OFFER);
  guint8 secret[32], sig[64];

  memcpy (m->call_offer.identity_pub, wzp_identity_get_public_key (s->identity), 32);
  wzp_x25519_keypair_new (secret, m->call_offer.ephemeral_pub);
  wzp_sign_call_offer (s->identity, m->call_offer.ephemeral_pub, sig);
  m->call_offer.signature = g_bytes_new (sig, sizeof sig);
  m->call_offer.supported_profiles = g_array_new (FALSE, FALSE, sizeof (WzpQualityProfile));
  g_array_append_val (m->call_offer.supported_profiles, WZP_PROFILE_GOOD);
  m->call_offer.alias = g_strdup (s->alias);
  memset (secret, 0, sizeof secret);
  return m;
}


/* With a token, AuthToken goes first on every relay connection (§5.2). */
void
send_token (WzpSession *s, WzpConnection *c)
{
  g_autoptr (WzpSignal) t = NULL;

  if (s->token == NULL)
    return;
  t = wzp_signal_new (WZP_SIGNAL_AUTH_TOKEN);
  t->auth_token.token = g_strdup (s->token);
  wzp_connection_send_signal (c, t, NULL);
}

static void
on_relay_established (WzpConnection *c, WzpSession *s)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpSignal) offer = call_offer (s);

  send_token (s, c);
  wzp_connection_send_signal (c, offer, &error);
}

/* Who is in the room (room mode, and call-<id> rooms): one call event
 * with parallel fingerprint/alias lists, kept for wzp_session_dup_participants(). */
static gboolean
peer_left (gpointer data)
{
  WzpSession *s = data;

  if (wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED && !s->peer_in_room)
    fail (s, WZP_SESSION_ERROR_PEER_LOST, "the other side left the call (its connection to the "
          "relay ended)");
  return G_SOURCE_REMOVE;
}

static void
on_room_update (WzpSession *s, const WzpRoomUpdate *u)
{
  GVariantBuilder fps, aliases, relays;
  GPtrArray *list = g_ptr_array_new_with_free_func (g_free);

  g_variant_builder_init (&fps, G_VARIANT_TYPE_STRING_ARRAY);
  g_variant_builder_init (&aliases, G_VARIANT_TYPE_STRING_ARRAY);
  g_variant_builder_init (&relays, G_VARIANT_TYPE_STRING_ARRAY);
  for (guint i = 0; u->participants && i < u->participants->len; i++) {
    const WzpRoomParticipant *p = g_ptr_array_index (u->participants, i);
    g_variant_builder_add (&fps, "s", p->fingerprint);
    g_variant_builder_add (&aliases, "s", p->alias ? p->alias : "");
    g_variant_builder_add (&relays, "s", p->relay_label ? p->relay_label : "");
    g_ptr_array_add (list, g_strdup (p->fingerprint));
  }
  g_ptr_array_add (list, NULL);
  g_mutex_lock (&s->lock);
  g_strfreev (s->participants);
  s->participants = (gchar **) g_ptr_array_free (list, FALSE);
  g_mutex_unlock (&s->lock);
  call_event (s, "room:update", "count", g_variant_new_uint32 (u->count),
              "fingerprints", g_variant_builder_end (&fps),
              "aliases", g_variant_builder_end (&aliases),
              "relays", g_variant_builder_end (&relays), NULL);
  /* A call's relay room that had both parties and now has one, while the
   * call uses the relay: the other side's connection to the relay ended (it
   * hung up without a Hangup reaching us, or vanished and the relay timed it
   * out). A peer that moved to direct leaves only once we are heard there,
   * and then we are not on the relay. */
  if (g_strcmp0 (s->mode, "room") == 0)
    return;
  if (u->count >= 2)
    s->peer_in_room = TRUE;
  else if (s->peer_in_room && s->send_path == WZP_MEDIA_PATH_RELAY && s->neg == NEG_DECIDED) {
    /* its Hangup, if it sent one, comes on _signal and may come later */
    s->peer_in_room = FALSE;
    g_source_unref (session_timeout (s, PEER_LEFT_GRACE_MS, peer_left, g_object_ref (s),
                                     g_object_unref));
  }
}

gchar **
wzp_session_dup_participants (WzpSession *s)
{
  gchar **out;

  g_mutex_lock (&s->lock);
  out = g_strdupv (s->participants);
  g_mutex_unlock (&s->lock);
  return out;
}

/* Admitted to the call's relay room, and the call is answered: audio
 * first, through the relay until (and unless) direct is agreed */
static void
relay_active (WzpSession *s)
{
  if (s->send_path == WZP_MEDIA_PATH_NONE)
    s->send_path = WZP_MEDIA_PATH_RELAY;
  set_state (s, WZP_SESSION_STATE_ACTIVE);
  flush_tx (s);
}

static void
on_relay_signal (WzpConnection *c, const WzpSignal *msg, WzpSession *s)
{
  if (msg->type == WZP_SIGNAL_ROOM_UPDATE) {
    on_room_update (s, &msg->room_update);
    return;
  }
  if (msg->type == WZP_SIGNAL_QUALITY_DIRECTIVE) {
    /* the relay's advice for the room's weakest link (§5.3.4): passed on */
    const WzpQualityProfile *pr = &msg->quality_directive.recommended_profile;

    if ((guint) pr->codec < WZP_CODEC_COUNT && pr->codec != WZP_CODEC_COMFORT_NOISE)
      g_atomic_int_set (&s->advice_codec, pr->codec);
    call_event (s, "quality:directive", "codec", g_variant_new_string (wzp_codec_id_to_string (pr->codec)),
                "frame_duration_ms", g_variant_new_uint32 (pr->frame_duration_ms),
                "reason", g_variant_new_string (msg->quality_directive.reason ? msg->quality_directive.reason : ""),
                NULL);
    return;
  }
  if (msg->type != WZP_SIGNAL_CALL_ANSWER || s->relay_admitted)
    return;
  if (!wzp_verify_call_answer (msg->call_answer.identity_pub, msg->call_answer.ephemeral_pub,
                               g_bytes_get_data (msg->call_answer.signature, NULL),
                               g_bytes_get_size (msg->call_answer.signature))) {
    fail (s, WZP_SESSION_ERROR_MEDIA, "the relay's CallAnswer signature does not verify");
    return;
  }
  s->relay_admitted = TRUE;
  call_event (s, "connect:relay_admitted", "early", g_variant_new_boolean (!s->setup_taken), NULL);
  /* joined while the call rang: media waits for the answer (CallSetup) */
  if (s->setup_taken)
    relay_active (s);
}

static void
on_relay_closed (WzpConnection *c, const GError *why, WzpSession *s)
{
  if (c != s->relay_conn)
    return;
  s->relay_admitted = FALSE;
  if (s->send_path != WZP_MEDIA_PATH_RELAY || (s->direct_conn && s->neg == NEG_DECIDED))
    return;
  if (g_strcmp0 (wzp_connection_get_peer_close (c, NULL, NULL), "shutdown") == 0)
    fail (s, WZP_SESSION_ERROR_RELAY_ENDED, "the relay at %s shut down", s->relay);
  else
    fail (s, WZP_SESSION_ERROR_RELAY_LOST, "lost the relay's media connection: %s", why->message);
}

void
dial_relay (WzpSession *s, GSocketAddress *addr, const gchar *room)
{
  g_autoptr (GError) error = NULL;

  s->relay_conn = wzp_endpoint_connect (s->ep, addr, room, s->relay_fp, &error);
  if (s->relay_conn == NULL) {
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "cannot dial the relay: %s", error->message);
    return;
  }
  g_signal_connect (s->relay_conn, "established", G_CALLBACK (on_relay_established), s);
  g_signal_connect (s->relay_conn, "signal", G_CALLBACK (on_relay_signal), s);
  g_signal_connect (s->relay_conn, "closed", G_CALLBACK (on_relay_closed), s);
  wzp_connection_set_datagram_handler (s->relay_conn, on_media, s, NULL);
}

/* test-relay-delay-ms: a slow relay leg */
static gboolean
dial_relay_late (gpointer data)
{
  WzpSession *s = data;

  if (s->room_name && s->relay_conn == NULL && wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED)
    dial_relay (s, s->delayed_relay, s->room_name);
  return G_SOURCE_REMOVE;
}

static void seed_initial_rtt (WzpSession *s);

void
on_call_setup (WzpSession *s, const WzpCallSetup *setup)
{
  g_autoptr (GSocketAddress) relay = wzp_socket_address_parse (setup->relay_addr, NULL);

  /* a CallSetup for a call that has ended already (the answer ended it:
   * encryption=required against a peer that cannot) starts nothing */
  if (g_strcmp0 (setup->call_id, s->call_id) != 0 || wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED)
    return;
  set_state (s, WZP_SESSION_STATE_CONNECTING);
  s->setup_taken = TRUE;
  g_free (s->room_name);
  s->room_name = g_strdup (setup->room);
  call_event (s, "connect:start", "room", g_variant_new_string (setup->room), NULL);
  seed_initial_rtt (s);
  /* joined while the call rang: the room of a call is on the relay we are
   * registered with (§5.5; across federated relays each side joins its own,
   * §5.9.4), so that connection is the one, whatever address CallSetup
   * names; admitted already, media starts now */
  if (s->relay_early && s->relay_conn &&
      wzp_connection_get_state (s->relay_conn) != WZP_CONNECTION_CLOSED &&
      g_strcmp0 (wzp_connection_get_sni (s->relay_conn), setup->room) == 0) {
    if (s->relay_admitted)
      relay_active (s);
  } else if (s->test_relay_delay_ms) {
    drop_conn (s, &s->relay_conn, "not-selected");
    g_clear_object (&s->delayed_relay);
    s->delayed_relay = g_object_ref (relay ? relay : G_SOCKET_ADDRESS (s->relay_addr));
    g_source_unref (session_timeout (s, s->test_relay_delay_ms, dial_relay_late, g_object_ref (s),
                                     g_object_unref));
  } else {
    /* audio first: the relay is dialled at once, no head start for direct */
    drop_conn (s, &s->relay_conn, "not-selected");
    s->relay_admitted = FALSE;
    dial_relay (s, relay ? relay : s->relay_addr, setup->room);
  }
  s->relay_early = FALSE;
  start_race (s, setup);
}

/* The call's connections start from the RTT measured on _signal (twice it,
 * 10 ms at least, RFC 9002's blind 333 ms at most) instead of a guess: on a
 * lossy path a lost handshake packet is sent again after ~3 RTT */
static void
seed_initial_rtt (WzpSession *s)
{
  WzpConnectionStats cs;

  if (s->sig == NULL)
    return;
  wzp_connection_get_stats (s->sig, &cs);
  if (cs.rtt_us)
    wzp_endpoint_set_initial_rtt (s->ep, (guint) CLAMP (cs.rtt_us * 2 / 1000, 10, 333));
}

/* While the call rings, its relay room is joined already (the relay admits
 * both parties from the offer on, §5.6), so that media can flow the moment
 * the call is answered: the handshake and the CallOffer/CallAnswer exchange
 * (two round trips to the relay) are out of the way. Nothing is sent before
 * the answer. A relay that refuses (an upstream relay that only admits
 * answered calls) closes the connection; CallSetup then dials again. */
void
early_dial_relay (WzpSession *s, const gchar *call_id)
{
  g_autofree gchar *room = NULL;

  s->setup_taken = FALSE;
  if (s->test_relay_delay_ms || s->relay_conn || call_id == NULL)
    return;
  room = g_strconcat ("call-", call_id, NULL);
  seed_initial_rtt (s);
  dial_relay (s, s->relay_addr, room);
  s->relay_early = s->relay_conn != NULL;
  s->relay_admitted = FALSE;
  if (s->relay_early)
    call_event (s, "connect:early_relay", "room", g_variant_new_string (room), NULL);
}

/* test-setup-delay-ms: a CallSetup that reaches us late */
typedef struct {
  WzpSession *s;
  WzpSignal *msg;
} DelayedSetup;

static void
delayed_setup_free (gpointer data)
{
  DelayedSetup *d = data;

  g_object_unref (d->s);
  wzp_signal_free (d->msg);
  g_free (d);
}

static gboolean
call_setup_late (gpointer data)
{
  DelayedSetup *d = data;

  if (wzp_session_get_state (d->s) != WZP_SESSION_STATE_ENDED)
    on_call_setup (d->s, &d->msg->call_setup);
  return G_SOURCE_REMOVE;
}

void
call_setup_later (WzpSession *s, const WzpSignal *msg)
{
  DelayedSetup *d = g_new (DelayedSetup, 1);

  d->s = g_object_ref (s);
  d->msg = wzp_signal_copy (msg);
  g_source_unref (session_timeout (s, s->test_setup_delay_ms, call_setup_late, d,
                                   delayed_setup_free));
}
