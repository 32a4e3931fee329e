/* WzpSession: signalling, the dual-path race and the MediaPathReport
 * negotiation (see wzp-session.h and docs/negotiation.md). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session.h"
#include "wzp-config.h"
#include "wzp-quic.h"
#include "wzp-signal.h"

#include <string.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

G_DEFINE_QUARK (wzp-session-error-quark, wzp_session_error)

#define RX_QUEUE_MAX 256
#define RELAY_GRACE_MS 2000
#define PUNCH_INTERVAL_MS 20
#define REREGISTER_FIRST_MS 1000
#define REREGISTER_MAX_MS 30000
#define MAX_LOCAL_CANDIDATES 8
#define MAX_EARLY_DIALS 2

static WzpMediaFrame interrupt_marker;

struct _WzpSession {
  GObject parent;

  /* configuration (before start) */
  gchar *relay, *identity_file, *identity_hex, *alias, *mode, *room, *call_target, *relay_fp;
  gchar *token;               /* AuthToken for relays with --auth-url */
  gboolean auto_answer, direct, send_report;
  guint report_timeout_ms, direct_timeout_ms, local_port;
  guint media_timeout_ms;     /* the peer's media stopped this long: the call ends */
  /* test-only fault injection */
  gboolean test_block_direct;
  guint test_report_delay_ms;
  guint test_relay_delay_ms;
  guint test_setup_delay_ms;
  GSocketAddress *delayed_relay;  /* where the delayed relay dial goes */

  /* shared with other threads, under lock */
  GMutex lock;
  WzpSessionState state;
  WzpMediaPath path;          /* negotiated */
  WzpSessionStats stats;
  guint16 seq;
  GAsyncQueue *rx;            /* WzpMediaFrame* */
  GAsyncQueue *tx;            /* GBytes* packets to send */
  gchar **participants;       /* fingerprints from the last RoomUpdate */

  /* the session thread's own */
  GThread *thread;
  GMainContext *ctx;
  GMainLoop *loop;
  WzpIdentity *identity;
  WzpEndpoint *ep;
  GSocketAddress *relay_addr;
  WzpConnection *sig;
  gchar *own_reflexive;
  gchar *call_id;
  gchar *room_name;           /* call-<id> or the room */
  gchar *peer_fp;
  gchar *incoming_call_id;
  gboolean rang;
  WzpConnection *relay_conn;
  gboolean relay_admitted;
  WzpConnection *direct_conn;
  GPtrArray *dials;           /* WzpConnection*: the dialer's attempts */
  GPtrArray *early_dials;     /* WzpConnection*: the peer's dials that came before our CallSetup */
  gboolean race_running, direct_done, direct_ok, report_sent, have_peer_report, peer_direct_ok;
  gboolean decided;
  gboolean heard_direct;      /* the peer's media has arrived on the direct path */
  guint grace_rounds;         /* relay grace periods waited for that */
  GSource *direct_timer, *report_timer;
  GSource *punch_timer;       /* the Acceptor's hole punching */
  GSource *rereg_timer;       /* re-registration after losing _signal */
  GSource *media_watch;       /* checks that the peer's media still comes */
  guint rereg_delay_ms;
  gboolean registered_once, reregistering;
  GPtrArray *punch_targets;   /* GSocketAddress* */
  gint64 call_started_us;
  gboolean first_send, first_recv;
  guint64 frames_since_report;
  gint64 last_arrival_us;
  guint32 last_arrival_ts;
  gdouble jitter_us;
  WzpMediaPath send_path;     /* where frames go now */
};

G_DEFINE_TYPE (WzpSession, wzp_session, G_TYPE_OBJECT)

enum {
  PROP_0, PROP_RELAY, PROP_IDENTITY_FILE, PROP_IDENTITY_HEX, PROP_ALIAS, PROP_MODE, PROP_ROOM,
  PROP_CALL_TARGET, PROP_AUTO_ANSWER, PROP_RELAY_FINGERPRINT, PROP_DIRECT, PROP_SEND_PATH_REPORT,
  PROP_REPORT_TIMEOUT_MS, PROP_DIRECT_TIMEOUT_MS, PROP_MEDIA_TIMEOUT_MS, PROP_STATS, PROP_LOCAL_PORT, PROP_STATE, PROP_NEGOTIATED_PATH,
  PROP_TEST_BLOCK_DIRECT, PROP_TEST_REPORT_DELAY_MS, PROP_TEST_RELAY_DELAY_MS, PROP_TEST_SETUP_DELAY_MS, PROP_TOKEN, N_PROPS
};
static GParamSpec *props[N_PROPS];

enum { SIG_STATE_CHANGED, SIG_INCOMING_CALL, SIG_CALL_EVENT, SIG_ERROR, N_SIGNALS };
static guint signals[N_SIGNALS];

G_DEFINE_BOXED_TYPE (WzpMediaFrame, wzp_media_frame, wzp_media_frame_copy, wzp_media_frame_free)

WzpMediaFrame *
wzp_media_frame_copy (const WzpMediaFrame *f)
{
  WzpMediaFrame *c = g_memdup2 (f, sizeof *f);

  if (c->payload)
    g_bytes_ref (c->payload);
  return c;
}

void
wzp_media_frame_free (WzpMediaFrame *f)
{
  if (f == NULL || f == &interrupt_marker)
    return;
  g_bytes_unref (f->payload);
  g_free (f);
}

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

static GSource *
session_timeout (WzpSession *s, guint ms, GSourceFunc func, gpointer data, GDestroyNotify destroy)
{
  GSource *src = g_timeout_source_new (ms);

  g_source_set_callback (src, func, data, destroy);
  g_source_attach (src, s->ctx);
  return src;
}

static void
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
static void
call_event (WzpSession *s, const gchar *step, ...)
{
  GVariantBuilder b;
  va_list ap;
  const gchar *key;
  g_autoptr (GVariant) dict = NULL;
  g_autofree gchar *text = NULL;

  g_variant_builder_init (&b, G_VARIANT_TYPE_VARDICT);
  va_start (ap, step);
  while ((key = va_arg (ap, const gchar *)) != NULL)
    g_variant_builder_add (&b, "{sv}", key, va_arg (ap, GVariant *));
  va_end (ap);
  dict = g_variant_ref_sink (g_variant_builder_end (&b));
  text = g_variant_print (dict, FALSE);
  g_debug ("%s %s", step, text);
  g_signal_emit (s, signals[SIG_CALL_EVENT], 0, step, dict);
}

static void
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

static void end_call (WzpSession *s, GError *why);
static void drop_conn (WzpSession *s, WzpConnection **c, const gchar *reason);

static void
fail (WzpSession *s, WzpSessionError code, const gchar *fmt, ...)
{
  va_list ap;
  GError *e;

  va_start (ap, fmt);
  e = g_error_new_valist (WZP_SESSION_ERROR, code, fmt, ap);
  va_end (ap);
  end_call (s, e);
}

static void
send_sig (WzpSession *s, WzpSignal *msg)
{
  g_autoptr (GError) error = NULL;

  if (s->sig && !wzp_connection_send_signal (s->sig, msg, &error))
    g_debug ("signal not sent: %s", error->message);
  wzp_signal_free (msg);
}

/* ---- media ----------------------------------------------------------------- */

static WzpConnection *
media_conn (WzpSession *s)
{
  if (s->send_path == WZP_MEDIA_PATH_DIRECT)
    return s->direct_conn;
  if (s->send_path == WZP_MEDIA_PATH_RELAY)
    return s->relay_admitted ? s->relay_conn : NULL;
  return NULL;
}

static gboolean
flush_tx (gpointer data)
{
  WzpSession *s = data;
  GBytes *pkt;

  while ((pkt = g_async_queue_try_pop (s->tx)) != NULL) {
    WzpConnection *c = media_conn (s);
    gsize len;
    const guint8 *d = g_bytes_get_data (pkt, &len);

    /* a QualityReport on every 50th frame (protocol §3.3), from what this
     * connection measured: datagram loss, smoothed RTT, interarrival jitter */
    if (c && ++s->frames_since_report >= 50 && len >= WZP_MEDIA_HEADER_SIZE && !(d[0] & 0x02)) {
      WzpConnectionStats cs;
      WzpQualityReport qr;
      WzpMediaPacket parsed;
      guint8 *withqr = g_malloc (len + WZP_QUALITY_REPORT_SIZE);

      wzp_connection_get_stats (c, &cs);
      qr = wzp_quality_report_from_stats (cs.datagrams_sent ? 100.0 * cs.datagrams_lost / cs.datagrams_sent : 0,
                                          (guint) (cs.rtt_us / 1000), (guint) (s->jitter_us / 1000));
      if (wzp_media_packet_parse (d, len, &parsed, NULL)) {
        gsize n = wzp_media_packet_write (&parsed.header, parsed.payload, parsed.payload_len, &qr,
                                          withqr, len + WZP_QUALITY_REPORT_SIZE);
        g_bytes_unref (pkt);
        pkt = g_bytes_new_take (withqr, n);
        d = g_bytes_get_data (pkt, &len);
        s->frames_since_report = 0;
        g_mutex_lock (&s->lock);
        s->stats.reports_sent++;
        s->stats.rtt_us = cs.rtt_us;
        g_mutex_unlock (&s->lock);
      } else {
        g_free (withqr);
      }
    }

    if (c && wzp_connection_send_datagram (c, d, len, NULL)) {
      g_mutex_lock (&s->lock);
      s->stats.frames_sent++;
      s->stats.bytes_sent += len;
      g_mutex_unlock (&s->lock);
      if (!s->first_send) {
        s->first_send = TRUE;
        call_event (s, "media:first_send", "path", g_variant_new_string (wzp_media_path_name (s->send_path)), NULL);
      }
    } else {
      g_mutex_lock (&s->lock);
      s->stats.frames_dropped++;
      g_mutex_unlock (&s->lock);
    }
    g_bytes_unref (pkt);
  }
  return G_SOURCE_REMOVE;
}

/* The path the call's media takes: the negotiated one, then wherever the
 * call converges (following the peer to direct, or back to the relay when
 * the direct connection closes). */
static void
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

static gboolean
on_media_watch (gpointer data)
{
  WzpSession *s = data;

  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ACTIVE &&
      g_get_monotonic_time () - s->last_arrival_us > (gint64) s->media_timeout_ms * 1000) {
    g_clear_pointer (&s->media_watch, g_source_unref);
    end_call (s, g_error_new (WZP_SESSION_ERROR, WZP_SESSION_ERROR_MEDIA,
                              "no media from the other side for %.1f s: it is gone or its "
                              "network dropped", s->media_timeout_ms / 1000.0));
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

static void
on_media (WzpConnection *c, const guint8 *data, gsize len, gpointer user_data)
{
  WzpSession *s = user_data;
  WzpMediaPacket pkt;
  WzpMediaFrame *f;
  WzpMediaPath via = c == s->direct_conn ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY;

  if (!wzp_media_packet_parse (data, len, &pkt, NULL))
    return;
  if (via == WZP_MEDIA_PATH_DIRECT)
    s->heard_direct = TRUE;
  /* the peer's media arriving on the direct path means the peer decided
   * direct: follow it there (never away from it), so that a split decision
   * (an old peer, a late report) converges instead of going silent. A peer
   * that decided relay closes its direct connection, which moves us back. */
  if (s->decided && via == WZP_MEDIA_PATH_DIRECT && s->send_path != WZP_MEDIA_PATH_DIRECT) {
    call_event (s, "media:follow_peer", "path", g_variant_new_string ("direct"), NULL);
    s->send_path = WZP_MEDIA_PATH_DIRECT;
    set_path (s, WZP_MEDIA_PATH_DIRECT);
  }
  f = g_new0 (WzpMediaFrame, 1);
  f->seq = pkt.header.seq;
  f->timestamp = pkt.header.timestamp;
  f->codec = pkt.header.codec;
  f->received_us = g_get_monotonic_time ();
  f->path = via;
  f->has_quality = pkt.header.has_quality;
  f->quality = pkt.quality;
  f->payload = g_bytes_new (pkt.payload, pkt.payload_len);
  /* RFC 3550 interarrival jitter against the sender's media clock */
  if (s->last_arrival_us) {
    gdouble d = (gdouble) (f->received_us - s->last_arrival_us) -
        (gdouble) (guint32) (f->timestamp - s->last_arrival_ts) * 1000.0;
    s->jitter_us += (ABS (d) - s->jitter_us) / 16.0;
  }
  s->last_arrival_us = f->received_us;
  s->last_arrival_ts = f->timestamp;
  g_mutex_lock (&s->lock);
  s->stats.frames_received++;
  s->stats.bytes_received += len;
  s->stats.jitter_us = (guint64) s->jitter_us;
  if (!s->first_recv && s->call_started_us)
    s->stats.setup_us = f->received_us - s->call_started_us;
  if (g_async_queue_length (s->rx) >= RX_QUEUE_MAX) {
    wzp_media_frame_free (g_async_queue_try_pop (s->rx));
    s->stats.frames_dropped++;
  }
  g_mutex_unlock (&s->lock);
  g_async_queue_push (s->rx, f);
  if (!s->first_recv) {
    s->first_recv = TRUE;
    call_event (s, "media:first_recv", "path", g_variant_new_string (wzp_media_path_name (via)), NULL);
    /* from now on silence from the peer ends a call (not a room: members
     * come and go there) */
    if (s->media_timeout_ms && g_strcmp0 (s->mode, "room") != 0 && s->media_watch == NULL)
      s->media_watch = session_timeout (s, MAX (s->media_timeout_ms / 4, 50), on_media_watch, s, NULL);
  }
}

/* ---- the relay path (rooms and call-<id>) ------------------------------ */

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

static void decide (WzpSession *s);

/* With a token, AuthToken goes first on every relay connection (§5.2). */
static void
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
  call_event (s, "connect:relay_admitted", NULL);
  /* audio first: use the relay until (and unless) direct is agreed */
  if (s->send_path == WZP_MEDIA_PATH_NONE)
    s->send_path = WZP_MEDIA_PATH_RELAY;
  set_state (s, WZP_SESSION_STATE_ACTIVE);
  flush_tx (s);
}

static void
on_relay_closed (WzpConnection *c, const GError *why, WzpSession *s)
{
  if (c != s->relay_conn)
    return;
  s->relay_admitted = FALSE;
  if (s->send_path == WZP_MEDIA_PATH_RELAY && !(s->direct_conn && s->decided))
    fail (s, WZP_SESSION_ERROR_MEDIA, "the relay media connection closed: %s", why->message);
}

static void
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

/* ---- the direct race and the negotiation -------------------------------- */

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

static void
send_report (WzpSession *s)
{
  if (s->report_sent)
    return;
  s->report_sent = TRUE;
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
  if (!s->have_peer_report) {
    call_event (s, "connect:peer_report_timeout", NULL);
    s->have_peer_report = TRUE;
    s->peer_direct_ok = FALSE;
    decide (s);
  }
  return G_SOURCE_REMOVE;
}

/* ---- candidates and hole punching ---------------------------------------- */

static void
stop_punching (WzpSession *s)
{
  cancel_timer (&s->punch_timer);
  g_clear_pointer (&s->punch_targets, g_ptr_array_unref);
}

static gboolean
on_punch (gpointer data)
{
  WzpSession *s = data;

  for (guint i = 0; i < s->punch_targets->len; i++)
    wzp_endpoint_send_punch (s->ep, g_ptr_array_index (s->punch_targets, i));
  return G_SOURCE_CONTINUE;
}

/* The Acceptor sends a 1-byte datagram to each of the peer's candidates
 * every 20 ms until the dial arrives or the direct limit passes: its own NAT
 * then lets the Dialer's packets in (upstream's Acceptor sends nothing, and
 * address-restricted NATs drop the dial). */
static void
start_punching (WzpSession *s, GPtrArray *candidates)
{
  stop_punching (s);
  s->punch_targets = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < candidates->len; i++) {
    GSocketAddress *a = wzp_socket_address_parse (g_ptr_array_index (candidates, i), NULL);
    if (a && wzp_endpoint_can_reach (s->ep, a))
      g_ptr_array_add (s->punch_targets, a);
    else
      g_clear_object (&a);
  }
  if (s->punch_targets->len == 0)
    return;
  on_punch (s);
  s->punch_timer = session_timeout (s, PUNCH_INTERVAL_MS, on_punch, s, NULL);
}

/* Host addresses the peer may reach us on (protocol §6.2): IPv4 and IPv6
 * global or unique-local addresses of the interfaces that are up, with our
 * port. Link-local and loopback addresses are left out, and so is
 * everything when the relay itself is on loopback (both ends are on this
 * host, and the reflexive address is enough). */
static GPtrArray *
local_candidates (WzpSession *s)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  GInetAddress *relay = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (s->relay_addr));
  g_autoptr (GInetSocketAddress) local = wzp_endpoint_get_local_address (s->ep);
  gboolean v6 = g_socket_address_get_family (G_SOCKET_ADDRESS (local)) == G_SOCKET_FAMILY_IPV6;
  guint16 port = wzp_endpoint_get_port (s->ep);
  struct ifaddrs *ifs = NULL;

  if (!s->direct || g_inet_address_get_is_loopback (relay) || getifaddrs (&ifs) != 0)
    return out;
  for (struct ifaddrs *i = ifs; i && out->len < MAX_LOCAL_CANDIDATES; i = i->ifa_next) {
    g_autoptr (GSocketAddress) sa = NULL;
    GInetAddress *a;

    if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    if (i->ifa_addr->sa_family == AF_INET)
      sa = g_socket_address_new_from_native (i->ifa_addr, sizeof (struct sockaddr_in));
    else if (i->ifa_addr->sa_family == AF_INET6 && v6)
      sa = g_socket_address_new_from_native (i->ifa_addr, sizeof (struct sockaddr_in6));
    if (sa == NULL)
      continue;
    a = g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sa));
    if (g_inet_address_get_is_loopback (a) || g_inet_address_get_is_link_local (a) ||
        g_inet_address_get_is_any (a) || g_inet_address_get_is_multicast (a))
      continue;
    {
      g_autofree gchar *host = g_inet_address_to_string (a);
      gchar *text = g_inet_address_get_family (a) == G_SOCKET_FAMILY_IPV6
                        ? g_strdup_printf ("[%s]:%u", host, port)
                        : g_strdup_printf ("%s:%u", host, port);
      if (g_ptr_array_find_with_equal_func (out, text, g_str_equal, NULL) ||
          g_strcmp0 (text, s->own_reflexive) == 0)
        g_free (text);
      else
        g_ptr_array_add (out, text);
    }
  }
  freeifaddrs (ifs);
  return out;
}

static void
direct_done (WzpSession *s, gboolean ok)
{
  if (s->direct_done)
    return;
  s->direct_done = TRUE;
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
  /* report as soon as our direct result is known */
  send_report (s);
  if (s->have_peer_report)
    decide (s);
  else if (s->report_timer == NULL)
    s->report_timer = session_timeout (s, s->report_timeout_ms, on_report_timeout, s, NULL);
}

static gboolean
on_direct_timeout (gpointer data)
{
  WzpSession *s = data;

  g_clear_pointer (&s->direct_timer, g_source_unref);
  direct_done (s, FALSE);
  return G_SOURCE_REMOVE;
}

/* End of a grace period: close the connection we do not send on. */
static gboolean
close_unused (gpointer data)
{
  WzpSession *s = data;

  if (s->send_path != WZP_MEDIA_PATH_RELAY && s->relay_conn && s->direct_conn) {
    /* break the relay only once the peer is heard on direct: a peer that
     * decided relay (a late or lost report) still sends there, and must not
     * lose its frames or, when it later closes the direct path, find us
     * without one (bounded: 15 grace periods) */
    if (!s->heard_direct && ++s->grace_rounds < 15) {
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

static void
decide (WzpSession *s)
{
  gboolean use_direct;

  if (s->decided || !s->direct_done || !s->have_peer_report)
    return;
  s->decided = TRUE;
  cancel_timer (&s->report_timer);
  use_direct = s->direct_ok && s->peer_direct_ok && s->direct_conn != NULL;
  set_path (s, use_direct ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY);
  call_event (s, "connect:path_negotiated", "use_direct", g_variant_new_boolean (use_direct),
              "local_direct_ok", g_variant_new_boolean (s->direct_ok),
              "peer_direct_ok", g_variant_new_boolean (s->peer_direct_ok),
              "chosen_path", g_variant_new_string (use_direct ? "Direct" : "Relay"), NULL);
  /* make-before-break: send on the chosen path now, keep hearing the other
   * one for a grace period (the peer may still be on it) */
  s->send_path = use_direct ? WZP_MEDIA_PATH_DIRECT : WZP_MEDIA_PATH_RELAY;
  if (use_direct)
    set_state (s, WZP_SESSION_STATE_ACTIVE);
  g_source_unref (session_timeout (s, RELAY_GRACE_MS, close_unused, g_object_ref (s),
                                   g_object_unref));
  flush_tx (s);
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

static void
adopt_direct (WzpSession *s, WzpConnection *c)
{
  if (s->direct_conn || s->direct_done)
    return;
  s->direct_conn = g_object_ref (c);
  g_signal_connect (c, "closed", G_CALLBACK (on_direct_closed), s);
  wzp_connection_set_datagram_handler (c, on_media, s, NULL);
  direct_done (s, TRUE);
}

static void
on_dial_established (WzpConnection *c, WzpSession *s)
{
  adopt_direct (s, c);
}

/* Acceptor: the peer's dial arrives on the shared socket. */
static void
on_incoming (WzpEndpoint *ep, WzpConnection *c, WzpSession *s)
{
  g_autofree gchar *want = s->room_name ? g_strconcat ("call-", s->room_name, NULL) : NULL;
  const gchar *sni = wzp_connection_get_sni (c);

  /* The relay sends CallSetup to both sides at once, but they may hear it
   * far apart (different links, federated relays, a busy host) while the
   * two are close to each other: the peer's dial can come before our own
   * CallSetup. Keep it (named after this call, at most MAX_EARLY_DIALS) until
   * then. */
  if (!s->race_running && s->call_id && sni && g_str_has_suffix (sni, s->call_id) &&
      wzp_session_get_state (s) != WZP_SESSION_STATE_ENDED &&
      (s->early_dials == NULL || s->early_dials->len < MAX_EARLY_DIALS)) {
    if (s->early_dials == NULL)
      s->early_dials = g_ptr_array_new_with_free_func (g_object_unref);
    g_ptr_array_add (s->early_dials, g_object_ref (c));
    call_event (s, "connect:early_dial", "address",
                g_variant_new_string (wzp_connection_get_remote_address (c)), NULL);
    return;
  }
  if (!s->race_running || g_strcmp0 (sni, want) != 0) {
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

static void
start_race (WzpSession *s, const WzpCallSetup *setup)
{
  gint role;
  g_autoptr (GPtrArray) candidates = g_ptr_array_new_with_free_func (g_free);
  g_autofree gchar *sni = g_strconcat ("call-", setup->room, NULL);

  s->race_running = TRUE;
  call_event (s, "connect:dual_path_race_start", NULL);
  if (!s->direct || !s->own_reflexive || !setup->peer_direct_addr ||
      (role = strcmp (s->own_reflexive, setup->peer_direct_addr)) == 0) {
    call_event (s, "connect:dual_path_skipped", NULL);
    direct_done (s, FALSE);
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
    direct_done (s, FALSE);
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

static void
on_call_setup (WzpSession *s, const WzpCallSetup *setup)
{
  g_autoptr (GSocketAddress) relay = wzp_socket_address_parse (setup->relay_addr, NULL);

  if (g_strcmp0 (setup->call_id, s->call_id) != 0)
    return;
  set_state (s, WZP_SESSION_STATE_CONNECTING);
  g_free (s->room_name);
  s->room_name = g_strdup (setup->room);
  call_event (s, "connect:start", "room", g_variant_new_string (setup->room), NULL);
  /* the call's connections start from the RTT measured on _signal (twice
   * it, 10 ms at least, RFC 9002's blind 333 ms at most) instead of a guess:
   * on a lossy path a lost handshake packet is sent again after ~3 RTT */
  if (s->sig) {
    WzpConnectionStats cs;
    wzp_connection_get_stats (s->sig, &cs);
    if (cs.rtt_us)
      wzp_endpoint_set_initial_rtt (s->ep, (guint) CLAMP (cs.rtt_us * 2 / 1000, 10, 333));
  }
  /* audio first: the relay is dialled at once, no head start for direct */
  if (s->test_relay_delay_ms) {
    g_clear_object (&s->delayed_relay);
    s->delayed_relay = g_object_ref (relay ? relay : G_SOCKET_ADDRESS (s->relay_addr));
    g_source_unref (session_timeout (s, s->test_relay_delay_ms, dial_relay_late, g_object_ref (s),
                                     g_object_unref));
  } else
    dial_relay (s, relay ? relay : s->relay_addr, setup->room);
  start_race (s, setup);
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

static void
do_place_call (WzpSession *s, const gchar *target)
{
  WzpSignal *m = wzp_signal_new (WZP_SIGNAL_DIRECT_CALL_OFFER);
  WzpDirectCallOffer *o = &m->direct_call_offer;
  g_autoptr (GByteArray) signed_bytes = g_byte_array_new ();
  guint8 secret[32], sig[64];

  g_free (s->call_id);
  s->call_id = g_strdup_printf ("%016" G_GINT64_MODIFIER "x", g_get_real_time () * 1000 +
                                g_random_int_range (0, 1000));
  g_free (s->peer_fp);
  s->peer_fp = g_strdup (target);
  s->call_started_us = g_get_monotonic_time ();
  o->caller_fingerprint = g_strdup (wzp_identity_get_fingerprint (s->identity));
  o->caller_alias = g_strdup (s->alias);
  o->target_fingerprint = g_strdup (target);
  o->call_id = g_strdup (s->call_id);
  memcpy (o->identity_pub, wzp_identity_get_public_key (s->identity), 32);
  wzp_x25519_keypair_new (secret, o->ephemeral_pub);
  g_byte_array_append (signed_bytes, o->ephemeral_pub, 32);
  g_byte_array_append (signed_bytes, (const guint8 *) target, strlen (target));
  g_byte_array_append (signed_bytes, (const guint8 *) s->call_id, strlen (s->call_id));
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
  call_event (s, "call:offer_sent", "call_id", g_variant_new_string (s->call_id),
              "target", g_variant_new_string (target), NULL);
  send_sig (s, m);
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
  if (accept) {
    g_free (s->call_id);
    s->call_id = g_strdup (s->incoming_call_id);
    s->call_started_us = g_get_monotonic_time ();
  }
  g_clear_pointer (&s->incoming_call_id, g_free);
  call_event (s, accept ? "call:accepted" : "call:rejected", NULL);
  send_sig (s, m);
}

static void
on_signal (WzpConnection *c, const WzpSignal *msg, WzpSession *s)
{
  switch (msg->type) {
    case WZP_SIGNAL_REGISTER_PRESENCE_ACK:
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
      s->incoming_call_id = g_strdup (msg->direct_call_offer.call_id);
      g_free (s->peer_fp);
      s->peer_fp = g_strdup (msg->direct_call_offer.caller_fingerprint);
      set_state (s, WZP_SESSION_STATE_RINGING);
      g_signal_emit (s, signals[SIG_INCOMING_CALL], 0, msg->direct_call_offer.caller_fingerprint,
                     msg->direct_call_offer.caller_alias);
      if (s->auto_answer)
        do_answer (s, TRUE);
      break;
    case WZP_SIGNAL_CALL_RINGING:
      s->rang = TRUE;
      set_state (s, WZP_SESSION_STATE_RINGING);
      call_event (s, "call:ringing", NULL);
      break;
    case WZP_SIGNAL_CALL_SETUP:
      if (s->test_setup_delay_ms) {
        DelayedSetup *d = g_new (DelayedSetup, 1);
        d->s = g_object_ref (s);
        d->msg = wzp_signal_copy (msg);
        g_source_unref (session_timeout (s, s->test_setup_delay_ms, call_setup_late, d,
                                         delayed_setup_free));
      } else
        on_call_setup (s, &msg->call_setup);
      break;
    case WZP_SIGNAL_MEDIA_PATH_REPORT:
      /* only the report for this call counts (upstream takes any, §9 #13) */
      if (g_strcmp0 (msg->media_path_report.call_id, s->call_id) != 0 || s->have_peer_report)
        return;
      s->have_peer_report = TRUE;
      s->peer_direct_ok = msg->media_path_report.direct_ok;
      call_event (s, "connect:peer_report_received", "direct_ok",
                  g_variant_new_boolean (s->peer_direct_ok), NULL);
      decide (s);
      break;
    case WZP_SIGNAL_HANGUP:
      if (msg->hangup.call_id && s->call_id && g_ascii_strcasecmp (msg->hangup.call_id, s->call_id) != 0)
        return;
      if (msg->hangup.reason == WZP_HANGUP_DECLINED)
        fail (s, WZP_SESSION_ERROR_REJECTED, "the callee rejected the call");
      else if (wzp_session_get_state (s) == WZP_SESSION_STATE_CALLING && !s->rang)
        fail (s, WZP_SESSION_ERROR_PEER_UNREACHABLE,
              "the callee is not registered on this relay: check the fingerprint");
      else
        end_call (s, g_error_new_literal (WZP_SESSION_ERROR, WZP_SESSION_ERROR_HUNG_UP,
                                          "the other side hung up"));
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
         (st == WZP_SESSION_STATE_ACTIVE && s->decided && s->send_path == WZP_MEDIA_PATH_DIRECT);
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
    fail (s, WZP_SESSION_ERROR_REGISTRATION, "the relay at %s refused our token: check the token "
          "property (this relay validates tokens)", s->relay);
  else if (g_strcmp0 (peer_reason, "register-refused") == 0)
    fail (s, WZP_SESSION_ERROR_REGISTRATION, "the relay at %s refused the registration", s->relay);
  else if (can_reregister (s)) {
    call_event (s, "signal:lost", "reason", g_variant_new_string (why->message), NULL);
    schedule_reregister (s);
  } else
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "lost the relay at %s: %s", s->relay, why->message);
}

/* ---- life cycle ------------------------------------------------------------ */

static void
drop_conn (WzpSession *s, WzpConnection **c, const gchar *reason)
{
  if (*c == NULL)
    return;
  g_signal_handlers_disconnect_by_data (*c, s);
  wzp_connection_set_datagram_handler (*c, NULL, NULL, NULL);
  wzp_connection_close (*c, 0, reason);
  g_clear_object (c);
}

static void
end_call (WzpSession *s, GError *why)
{
  if (wzp_session_get_state (s) == WZP_SESSION_STATE_ENDED) {
    g_clear_error (&why);
    return;
  }
  cancel_timer (&s->direct_timer);
  cancel_timer (&s->report_timer);
  cancel_timer (&s->rereg_timer);
  cancel_timer (&s->media_watch);
  stop_punching (s);
  drop_conn (s, &s->relay_conn, "hangup");
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
  /* the reason first: whoever sees the state ENDED can read why */
  if (why) {
    call_event (s, "call:ended", "reason", g_variant_new_string (why->message), NULL);
    g_signal_emit (s, signals[SIG_ERROR], 0, why);
    g_error_free (why);
  }
  set_state (s, WZP_SESSION_STATE_ENDED);
  wzp_session_interrupt (s);
}

static guint16
sockaddr_port (const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return ntohs (((const struct sockaddr_in *) sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs (((const struct sockaddr_in6 *) sa)->sin6_port);
  return 0;
}

/* test-block-direct: only the relay's port gets through (every peer of a
 * test runs on loopback, so the port tells the relay apart) */
static gboolean
block_all_but_relay (const struct sockaddr *remote, gboolean sending, gpointer data)
{
  WzpSession *s = data;

  return sockaddr_port (remote) !=
         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (s->relay_addr));
}

static gboolean
do_start (gpointer data)
{
  WzpSession *s = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GSocketAddress) bind = NULL;
  g_autofree gchar *bind_text = NULL;
  gboolean v6 = g_socket_address_get_family (s->relay_addr) == G_SOCKET_FAMILY_IPV6;

  /* one dual-stack socket reaches an IPv4 relay and IPv6 peers alike; where
   * IPv6 is off, an IPv4 socket does for an IPv4 relay */
  bind_text = g_strdup_printf ("[::]:%u", s->local_port);
  bind = wzp_socket_address_parse (bind_text, NULL);
  s->ep = wzp_endpoint_new (bind, s->ctx, NULL, &error);
  if (s->ep == NULL && !v6) {
    g_clear_error (&error);
    g_clear_object (&bind);
    g_free (bind_text);
    bind_text = g_strdup_printf ("0.0.0.0:%u", s->local_port);
    bind = wzp_socket_address_parse (bind_text, NULL);
    s->ep = wzp_endpoint_new (bind, s->ctx, NULL, &error);
  }
  if (s->ep == NULL || !wzp_endpoint_listen (s->ep, NULL, &error)) {
    fail (s, WZP_SESSION_ERROR_RELAY_UNREACHABLE, "cannot open a UDP socket: %s", error->message);
    return G_SOURCE_REMOVE;
  }
  g_signal_connect (s->ep, "incoming", G_CALLBACK (on_incoming), s);
  if (s->test_block_direct)
    wzp_endpoint_set_test_filter (s->ep, block_all_but_relay, s);
  if (g_strcmp0 (s->mode, "room") == 0) {
    s->room_name = g_ascii_strdown (s->room ? s->room : "default", -1);
    s->call_started_us = g_get_monotonic_time ();
    set_state (s, WZP_SESSION_STATE_CONNECTING);
    call_event (s, "connect:start", "room", g_variant_new_string (s->room_name), NULL);
    dial_relay (s, s->relay_addr, s->room_name);
    s->decided = TRUE;
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
  g_return_val_if_fail (s->thread == NULL, FALSE);
  if (s->relay == NULL || (s->relay_addr = wzp_socket_address_parse (s->relay, NULL)) == NULL) {
    g_set_error (error, WZP_SESSION_ERROR, WZP_SESSION_ERROR_INVALID,
                 "set relay to the relay's address, e.g. 127.0.0.1:4433 or [::1]:4433");
    return FALSE;
  }
  if (s->identity == NULL) {
    if (s->identity_hex)
      s->identity = wzp_identity_new_from_hex (s->identity_hex, error);
    else if (s->identity_file)
      s->identity = wzp_identity_load_or_create (s->identity_file, NULL, error);
    else
      s->identity = wzp_identity_new_random ();
    if (s->identity == NULL)
      return FALSE;
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

gboolean
wzp_session_send_media (WzpSession *s, const guint8 *frame, gsize len, WzpCodecId codec,
                        guint32 timestamp_ms)
{
  WzpMediaHeader h = { .codec = codec, .timestamp = timestamp_ms };
  guint8 *buf;
  gsize n;
  WzpSessionState st;

  g_mutex_lock (&s->lock);
  st = s->state;
  h.seq = s->seq++;
  if (st != WZP_SESSION_STATE_ACTIVE) {
    s->stats.frames_dropped++;
    g_mutex_unlock (&s->lock);
    return FALSE;
  }
  g_mutex_unlock (&s->lock);
  buf = g_malloc (wzp_media_packet_size (len, FALSE));
  n = wzp_media_packet_write (&h, frame, len, NULL, buf, wzp_media_packet_size (len, FALSE));
  g_async_queue_push (s->tx, g_bytes_new_take (buf, n));
  g_main_context_invoke_full (s->ctx, G_PRIORITY_HIGH, flush_tx, g_object_ref (s), g_object_unref);
  return TRUE;
}

WzpMediaFrame *
wzp_session_recv_media (WzpSession *s, gint64 deadline_us)
{
  WzpMediaFrame *f;

  if (deadline_us < 0)
    f = g_async_queue_pop (s->rx);
  else {
    gint64 wait = deadline_us - g_get_monotonic_time ();
    f = g_async_queue_timeout_pop (s->rx, wait > 0 ? (guint64) wait : 0);
  }
  return f == &interrupt_marker ? NULL : f;
}

void
wzp_session_interrupt (WzpSession *s)
{
  g_async_queue_push (s->rx, &interrupt_marker);
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
  s->media_timeout_ms = 10000;
  s->mode = g_strdup ("call");
  s->rx = g_async_queue_new_full ((GDestroyNotify) wzp_media_frame_free);
  s->tx = g_async_queue_new_full ((GDestroyNotify) g_bytes_unref);
}

static void
wzp_session_finalize (GObject *object)
{
  WzpSession *s = WZP_SESSION (object);

  wzp_session_stop (s);
  g_free (s->relay);
  g_free (s->identity_file);
  g_free (s->identity_hex);
  g_free (s->alias);
  g_free (s->mode);
  g_free (s->room);
  g_free (s->call_target);
  g_free (s->relay_fp);
  g_free (s->token);
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
    case PROP_AUTO_ANSWER: s->auto_answer = g_value_get_boolean (value); return;
    case PROP_DIRECT: s->direct = g_value_get_boolean (value); return;
    case PROP_SEND_PATH_REPORT: s->send_report = g_value_get_boolean (value); return;
    case PROP_REPORT_TIMEOUT_MS: s->report_timeout_ms = g_value_get_uint (value); return;
    case PROP_DIRECT_TIMEOUT_MS: s->direct_timeout_ms = g_value_get_uint (value); return;
    case PROP_LOCAL_PORT: s->local_port = g_value_get_uint (value); return;
    case PROP_MEDIA_TIMEOUT_MS: s->media_timeout_ms = g_value_get_uint (value); return;
    case PROP_TEST_BLOCK_DIRECT: s->test_block_direct = g_value_get_boolean (value); return;
    case PROP_TEST_REPORT_DELAY_MS: s->test_report_delay_ms = g_value_get_uint (value); return;
    case PROP_TEST_RELAY_DELAY_MS: s->test_relay_delay_ms = g_value_get_uint (value); return;
    case PROP_TEST_SETUP_DELAY_MS: s->test_setup_delay_ms = g_value_get_uint (value); return;
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
      g_variant_dict_insert (&d, "setup-us", "x", st.setup_us);
      g_value_take_variant (value, g_variant_ref_sink (g_variant_dict_end (&d)));
      break;
    }
    case PROP_TEST_BLOCK_DIRECT: g_value_set_boolean (value, s->test_block_direct); break;
    case PROP_TEST_REPORT_DELAY_MS: g_value_set_uint (value, s->test_report_delay_ms); break;
    case PROP_TEST_RELAY_DELAY_MS: g_value_set_uint (value, s->test_relay_delay_ms); break;
    case PROP_TEST_SETUP_DELAY_MS: g_value_set_uint (value, s->test_setup_delay_ms); break;
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
      "End a call when the peer's media stops this long (0: never)", 0, 600000, 10000, rw);
  props[PROP_STATS] = g_param_spec_variant ("stats", "Statistics",
      "Counters as a{sv}: state, path, frames and bytes sent/received/dropped, rtt-us, "
      "jitter-us, reports-sent, setup-us", G_VARIANT_TYPE_VARDICT, NULL, ro);
  props[PROP_STATE] = g_param_spec_int ("state", "State", "WzpSessionState", 0,
      WZP_SESSION_STATE_ENDED, 0, ro);
  props[PROP_NEGOTIATED_PATH] = g_param_spec_int ("negotiated-path", "Negotiated path",
      "WzpMediaPath the call uses: decided by the reports, then where the call converges", 0,
      WZP_MEDIA_PATH_RELAY, 0, ro);
  props[PROP_TEST_BLOCK_DIRECT] = g_param_spec_boolean ("test-block-direct", "Test: block direct",
      "Fault injection for tests: drop every packet not to or from the relay", FALSE, rw);
  props[PROP_TEST_REPORT_DELAY_MS] = g_param_spec_uint ("test-report-delay-ms", "Test: report delay",
      "Fault injection for tests: send our MediaPathReport this late", 0, 60000, 0, rw);
  props[PROP_TEST_RELAY_DELAY_MS] = g_param_spec_uint ("test-relay-delay-ms", "Test: relay delay",
      "Fault injection for tests: dial the relay's call room this late", 0, 60000, 0, rw);
  props[PROP_TEST_SETUP_DELAY_MS] = g_param_spec_uint ("test-setup-delay-ms", "Test: setup delay",
      "Fault injection for tests: act on the relay's CallSetup this late", 0, 60000, 0, rw);
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
