/* The WzpSession's own parts, shared by its units (not installed):
 *   wzp-session.c     the GObject, signalling, life cycle
 *   wzp-session-relay.c the relay path: joining a relay room, CallSetup, the room
 *   wzp-session-secure.c end to end: the peer's signatures, sealing the media
 *   wzp-race.c        the dual-path race, the report and the decision
 *   wzp-candidates.c  the addresses we offer and the Acceptor's hole punching
 *   wzp-session-media.c the media plane
 *   wzp-session-test.c  fault injection for tests
 * Everything here runs on the session's thread. */
#pragma once

#include "wzp-session.h"
#include "wzp-config.h"
#include "wzp-quic.h"
#include "wzp-signal.h"
#include "wzp-e2e.h"
#include "wzp-quality.h"

G_BEGIN_DECLS

/* The negotiation of a call's media path; transitions: neg_event(). */
typedef enum {
  NEG_IDLE,                     /* no CallSetup yet, no report */
  NEG_PEER_EARLY,               /* the peer's report came before our CallSetup */
  NEG_RACING,                   /* our race runs; no result on either side */
  NEG_AWAIT_PEER,               /* our result is known and reported; the peer's is awaited */
  NEG_AWAIT_LOCAL,              /* the peer's report is in; our race still runs */
  NEG_DECIDED,                  /* the path is chosen (rooms: at once, the relay) */
} NegState;

typedef enum {
  NEG_EV_RACE_START,            /* CallSetup: the race begins */
  NEG_EV_DIRECT_RESULT,         /* our direct path was reached, or not */
  NEG_EV_PEER_REPORT,           /* the peer's MediaPathReport for this call */
  NEG_EV_REPORT_TIMEOUT,        /* report-timeout-ms passed without it */
  NEG_EV_ROOM,                  /* a room: no race, the relay path */
} NegEvent;

#define RX_QUEUE_MAX WZP_SESSION_RX_QUEUE_MAX
#define RELAY_GRACE_MS 2000
/* grace periods the relay path is kept while the peer is not heard on direct */
#define MAX_GRACE_ROUNDS 15
/* a QualityReport trailer on every this many frames (protocol §3.3) */
#define QUALITY_REPORT_EVERY 50
/* the peer's media is checked this often: a quarter of the media timeout, at
 * least this many ms */
#define MEDIA_WATCH_MIN_MS 50
#define MEDIA_TIMEOUT_DEFAULT_MS 10000
/* the shortest QUIC idle timeout the media timeout may set (keep-alives go
 * at a third of it) */
#define IDLE_TIMEOUT_MIN_MS 1500
/* the largest media datagram we open: a QUIC packet holds no larger one */
#define RX_DATAGRAM_MAX 1500
/* how long a CallSetup that overtook the DirectCallAnswer waits for it */
#define ANSWER_AFTER_SETUP_MS 2000
/* the other party left the call's relay room: its Hangup is waited for this long */
#define PEER_LEFT_GRACE_MS 500
#define PUNCH_INTERVAL_MS 20
#define REREGISTER_FIRST_MS 1000
#define REREGISTER_MAX_MS 30000
#define MAX_LOCAL_CANDIDATES 8
#define MAX_EARLY_DIALS 2

struct _WzpSession {
  GObject parent;

  /* configuration (before start) */
  gchar *relay, *identity_file, *identity_hex, *alias, *mode, *room, *call_target, *relay_fp;
  gchar *token;               /* AuthToken for relays with --auth-url */
  gboolean auto_answer, direct, send_report;
  guint report_timeout_ms, direct_timeout_ms, local_port;
  guint media_timeout_ms;     /* the peer's media stopped this long: the call ends */
  guint handshake_timeout_ms; /* every QUIC handshake of the session's endpoint */
  guint ring_timeout_ms;      /* a call we place, unanswered this long, ends (0: the relay decides) */
  gchar *encryption;          /* "auto", "required", "off" */
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
  gboolean peer_in_room;      /* the call's relay room has held both parties */
  WzpConnection *relay_conn;
  gboolean relay_admitted;
  gboolean relay_early;       /* relay_conn was dialled while the call rang */
  gboolean setup_taken;       /* this call's CallSetup has been taken */
  WzpConnection *direct_conn;
  GPtrArray *dials;           /* WzpConnection*: the dialer's attempts */
  GPtrArray *early_dials;     /* WzpConnection*: the peer's dials that came before our CallSetup */
  NegState neg;               /* the negotiation (wzp-race.c) */
  gboolean direct_ok, peer_direct_ok;   /* our race's result, the peer's report */
  gboolean heard_direct;      /* the peer's media has arrived on the direct path */
  guint grace_rounds;         /* relay grace periods waited for that */
  GSource *direct_timer, *report_timer;
  GSource *punch_timer;       /* the Acceptor's hole punching */
  GSource *rereg_timer;       /* re-registration after losing _signal */
  GSource *media_watch;       /* checks that the peer's media still comes */
  GSource *ring_timer;        /* ring-timeout-ms of a call we place */
  /* end-to-end protection (wzp-e2e.h): our ephemeral key for this call, the
   * offer's and the answer's public ones, whether the peer proved its
   * identity key (its signature) and whether media is sealed */
  guint8 eph_secret[32], offer_eph[32], answer_eph[32];
  guint8 peer_identity_pub[32];
  gboolean peer_e2e;          /* the peer signed in the e2e form: media is sealed with it */
  gboolean peer_authenticated; /* ... with the key of the fingerprint it goes by */
  /* a caller acts on CallSetup only after the answer: signals travel on
   * separate streams, and whether media is sealed must be known before any
   * arrives */
  gboolean awaiting_answer;
  WzpSignal *pending_setup;
  GSource *answer_timer;      /* CallSetup waits this long for the answer */
  gboolean e2e_on;
  WzpE2e e2e;
  guint rereg_delay_ms;
  gboolean registered_once, reregistering;
  GPtrArray *punch_targets;   /* GSocketAddress* */
  gint64 call_started_us;
  gboolean first_send, first_recv;
  guint64 frames_since_report;
  /* what to send (read by wzpsink from its streaming thread: atomics):
   * the codec of the relay's QualityDirective (rooms) or of the tier the
   * peer's QualityReports give (calls, §5.3.4), and the loss in tenths of
   * a percent, the larger of the peer's report and our own connection's */
  gint advice_codec;
  gint advice_loss_permille;
  gint own_loss_permille;
  WzpTierController tier;       /* session thread */
  gint64 last_arrival_us;
  guint32 last_arrival_ts;
  gdouble jitter_us;
  WzpMediaPath send_path;     /* where frames go now */
  GError *end_error;          /* why the call ended (under lock) */
};

/* wzp-session.c */
G_GNUC_INTERNAL GSource *session_timeout (WzpSession *s, guint ms, GSourceFunc func, gpointer data,
                                          GDestroyNotify destroy);
G_GNUC_INTERNAL void cancel_timer (GSource **src);
G_GNUC_INTERNAL void call_event (WzpSession *s, const gchar *step, ...) G_GNUC_NULL_TERMINATED;
G_GNUC_INTERNAL void set_state (WzpSession *s, WzpSessionState state);
G_GNUC_INTERNAL void set_path (WzpSession *s, WzpMediaPath path);
G_GNUC_INTERNAL void send_sig (WzpSession *s, WzpSignal *msg);
G_GNUC_INTERNAL gboolean flush_tx (gpointer data);
G_GNUC_INTERNAL void on_media (WzpConnection *c, const guint8 *data, gsize len, gpointer user_data);
G_GNUC_INTERNAL void end_call (WzpSession *s, GError *why);
G_GNUC_INTERNAL void drop_conn (WzpSession *s, WzpConnection **c, const gchar *reason);
G_GNUC_INTERNAL void fail (WzpSession *s, WzpSessionError code, const gchar *fmt, ...) G_GNUC_PRINTF (3, 4);

/* wzp-session-relay.c */
G_GNUC_INTERNAL void send_token (WzpSession *s, WzpConnection *c);
G_GNUC_INTERNAL void dial_relay (WzpSession *s, GSocketAddress *addr, const gchar *room);
G_GNUC_INTERNAL void early_dial_relay (WzpSession *s, const gchar *call_id);
G_GNUC_INTERNAL void on_call_setup (WzpSession *s, const WzpCallSetup *setup);
/* test-setup-delay-ms: CallSetup taken that much later */
G_GNUC_INTERNAL void call_setup_later (WzpSession *s, const WzpSignal *msg);

/* wzp-race.c */
G_GNUC_INTERNAL void neg_event (WzpSession *s, NegEvent ev, gboolean ok);
G_GNUC_INTERNAL const gchar *neg_state_name (NegState st);
G_GNUC_INTERNAL gboolean neg_race_started (const WzpSession *s);
G_GNUC_INTERNAL void start_race (WzpSession *s, const WzpCallSetup *setup);
G_GNUC_INTERNAL void on_incoming (WzpEndpoint *ep, WzpConnection *c, WzpSession *s);
/* Ends the race and closes its connections (the call ended). */
G_GNUC_INTERNAL void race_stop (WzpSession *s);

/* wzp-session-secure.c */
G_GNUC_INTERNAL gboolean encryption_off (WzpSession *s);
G_GNUC_INTERNAL gboolean encryption_required (WzpSession *s);
G_GNUC_INTERNAL void peer_signed (WzpSession *s, const guint8 identity_pub[32], const gchar *fingerprint,
                                  gboolean e2e_verified);
/* Both ephemeral keys known and both sides able: media is sealed from now on. */
G_GNUC_INTERNAL void start_e2e (WzpSession *s, gboolean caller);
G_GNUC_INTERNAL void secure_from_answer (WzpSession *s, const WzpDirectCallAnswer *a);

/* wzp-session-test.c */
/* test-block-direct: the endpoint's filter that lets only the relay through */
G_GNUC_INTERNAL gboolean test_block_all_but_relay (const struct sockaddr *remote, gboolean sending,
                                                   gpointer data);

/* wzp-candidates.c */
G_GNUC_INTERNAL GPtrArray *local_candidates (WzpSession *s);
G_GNUC_INTERNAL void start_punching (WzpSession *s, GPtrArray *candidates);
G_GNUC_INTERNAL void stop_punching (WzpSession *s);

G_END_DECLS
