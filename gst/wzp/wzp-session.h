/* WzpSession: one WZP call (or room membership) with exactly one agreed media
 * path (protocol §5.5, §6; docs/negotiation.md). No GStreamer.
 *
 * Threading: the session runs its own thread and GMainContext; the endpoint
 * and every connection live there. Public functions may be called from any
 * thread. Signals are emitted from the session's thread.
 */
#pragma once

#include <gio/gio.h>

#include "wzp-identity.h"
#include "wzp-wire.h"

G_BEGIN_DECLS

/* received frames the session holds for the application at most; older
 * ones are dropped */
#define WZP_SESSION_RX_QUEUE_MAX 256

#define WZP_SESSION_ERROR (wzp_session_error_quark ())
GQuark wzp_session_error_quark (void);

typedef enum {
  WZP_SESSION_ERROR_RELAY_UNREACHABLE,
  WZP_SESSION_ERROR_REGISTRATION,
  WZP_SESSION_ERROR_PEER_UNREACHABLE,   /* the callee is not registered */
  WZP_SESSION_ERROR_REJECTED,
  WZP_SESSION_ERROR_HUNG_UP,
  WZP_SESSION_ERROR_MEDIA,              /* no media path could be set up */
  WZP_SESSION_ERROR_INVALID,            /* bad property value */
  WZP_SESSION_ERROR_NO_ANSWER,          /* the callee did not answer before the ring timeout */
  WZP_SESSION_ERROR_BUSY,               /* the callee is busy */
  WZP_SESSION_ERROR_PEER_LOST,          /* the other side's media stopped */
  WZP_SESSION_ERROR_RELAY_LOST,         /* the relay went away during the call */
  WZP_SESSION_ERROR_NOT_AUTHORIZED,     /* token refused, or not the pinned relay certificate */
  WZP_SESSION_ERROR_RELAY_ENDED,        /* the relay ended the call (shutting down, or a fault) */
  WZP_SESSION_ERROR_RELAY_NOT_FOUND,    /* the relay's host name does not resolve */
  WZP_SESSION_ERROR_NOT_ENCRYPTED,      /* encryption=required, and the peer cannot */
} WzpSessionError;

/* A short machine-readable name of @code ("relay-unreachable", "hung-up",
 * "no-answer", ...), as the elements' wzp-call-ended message gives it. */
const gchar *wzp_session_error_nick (WzpSessionError code);

typedef enum {
  WZP_SESSION_STATE_IDLE,
  WZP_SESSION_STATE_REGISTERING,
  WZP_SESSION_STATE_REGISTERED,
  WZP_SESSION_STATE_CALLING,
  WZP_SESSION_STATE_RINGING,
  WZP_SESSION_STATE_CONNECTING,
  WZP_SESSION_STATE_ACTIVE,
  WZP_SESSION_STATE_ENDED,
} WzpSessionState;

typedef enum {
  WZP_MEDIA_PATH_NONE,
  WZP_MEDIA_PATH_DIRECT,
  WZP_MEDIA_PATH_RELAY,
} WzpMediaPath;

/* A received media frame. */
typedef struct {
  guint16 seq;
  guint32 timestamp;        /* media clock, ms */
  WzpCodecId codec;
  gint64 received_us;       /* monotonic */
  WzpMediaPath path;
  gboolean has_quality;     /* the sender attached a QualityReport */
  WzpQualityReport quality;
  GBytes *payload;
} WzpMediaFrame;

#define WZP_TYPE_MEDIA_FRAME (wzp_media_frame_get_type ())
GType wzp_media_frame_get_type (void);
WzpMediaFrame *wzp_media_frame_copy (const WzpMediaFrame *frame);
void wzp_media_frame_free (WzpMediaFrame *frame);

#define WZP_TYPE_SESSION (wzp_session_get_type ())
G_DECLARE_FINAL_TYPE (WzpSession, wzp_session, WZP, SESSION, GObject)

/* Properties (construct or set before start):
 *   relay             "host:port" of the relay (numeric, IPv4 or [IPv6])
 *   identity          a WzpIdentity (boxed pointer) — or identity-file / identity-hex
 *   alias             display name sent to the relay
 *   mode              "call" or "room"
 *   room              room name (room mode)
 *   call-target       fingerprint to call once registered (call mode)
 *   auto-answer       accept incoming calls without the application
 *   relay-fingerprint pin for the relay's TLS certificate
 *   direct            race a direct path (default TRUE)
 *   send-path-report  send MediaPathReport (default TRUE; FALSE imitates old peers)
 *   report-timeout-ms wait for the peer's report (3000)
 *   direct-timeout-ms limit of the direct race (2000)
 *   media-timeout-ms  the peer's media stops this long: the call ends (10000; 0 never)
 *   handshake-timeout-ms every QUIC handshake's limit (10000)
 *   encryption        "auto" (seal media end to end when the peer can),
 *                     "required" (a peer that cannot: the call ends, or is
 *                     refused), "off"
 *   ring-timeout-ms   a call we place not answered this long ends with
 *                     WZP_SESSION_ERROR_NO_ANSWER (30000; 0: the relay's limit)
 *   local-port        UDP port of the shared socket (0 = any)
 *   state, negotiated-path (read-only; the path decided by the MediaPathReport
 *                     rule, then the one the call converges to: direct when
 *                     it follows the peer's media there, relay when the
 *                     direct connection closes)
 */
WzpSession *wzp_session_new (void);

#define WZP_SESSION_HANDSHAKE_TIMEOUT_DEFAULT_MS 10000
#define WZP_SESSION_RING_TIMEOUT_DEFAULT_MS 30000

/* Starts the session thread: registers (call mode) or joins (room mode). */
gboolean wzp_session_start (WzpSession *session, GError **error);
/* Calls @target (a fingerprint) once registered. */
void wzp_session_place_call (WzpSession *session, const gchar *target);
/* Answers the pending incoming call. */
void wzp_session_answer (WzpSession *session, gboolean accept);
/* Ends the call (Hangup with call_id) and the session; returns at once. */
void wzp_session_hangup (WzpSession *session);
/* Stops the thread; blocks until it has ended (bounded: at most ~1 s). */
void wzp_session_stop (WzpSession *session);

/**
 * wzp_session_send_media:
 * @session: the session
 * @frame: (array length=len): one encoded frame
 * @len: its length in bytes
 * @codec: the codec id for the media header
 * @timestamp_ms: the media clock (§3.5)
 *
 * Queues one encoded frame for sending; never blocks on the network.
 * Returns: FALSE when no media path is up yet (the frame is dropped and counted).
 */
gboolean wzp_session_send_media (WzpSession *session, const guint8 *frame, gsize len,
                                 WzpCodecId codec, guint32 timestamp_ms);
/**
 * wzp_session_get_send_advice:
 * @session: the session
 * @loss_permille: (out) (optional): the loss the media path has, in tenths
 *   of a percent: the larger of the peer's last report and our own measure
 *
 * What a sender that owns its encoder should send now: the codec (and so
 * the frame duration) of the relay's last QualityDirective in a room, or of
 * the tier the peer's QualityReports give in a call (protocol §5.3.4, with
 * upstream's hysteresis); Opus24k (GOOD) until either says otherwise.
 * Returns: the codec id.
 */
WzpCodecId wzp_session_get_send_advice (WzpSession *session, guint *loss_permille);

/**
 * wzp_session_recv_media:
 * @session: the session
 * @deadline_us: monotonic time (g_get_monotonic_time()) to wait until; -1 = forever
 *
 * Waits for a received frame.
 * Returns: (transfer full) (nullable): the frame, or NULL on timeout or after
 * wzp_session_interrupt().
 */
WzpMediaFrame *wzp_session_recv_media (WzpSession *session, gint64 deadline_us);
/* Wakes a thread blocked in wzp_session_recv_media() (GstBaseSrc::unlock). */
void wzp_session_interrupt (WzpSession *session);

/**
 * wzp_session_dup_participants:
 * @session: the session
 *
 * Fingerprints of the room's members from the relay's last RoomUpdate (room
 * mode). Also emitted as the call event "room:update" (count, fingerprints,
 * aliases).
 * Returns: (transfer full) (nullable) (array zero-terminated=1): the list,
 * NULL before the first RoomUpdate
 */
gchar **wzp_session_dup_participants (WzpSession *session);

WzpSessionState wzp_session_get_state (WzpSession *session);
WzpMediaPath wzp_session_get_negotiated_path (WzpSession *session);
const gchar *wzp_session_state_name (WzpSessionState state);
const gchar *wzp_media_path_name (WzpMediaPath path);

/* Counters, for the elements' stats. */
typedef struct {
  guint64 frames_sent;
  guint64 frames_received;
  guint64 frames_dropped;     /* no path yet, or the receive queue was full */
  guint64 bytes_sent;
  guint64 bytes_received;
  guint64 rtt_us;
  guint64 jitter_us;          /* interarrival jitter of received frames (RFC 3550) */
  guint64 reports_sent;       /* QualityReport trailers attached */
  WzpMediaPath path;
  gint64 setup_us;            /* from place/answer to the first frame received */
  gboolean encrypted;         /* media is sealed end to end (both sides gst-wzp) */
  gboolean peer_authenticated; /* the peer signed the offer/answer with the key of its fingerprint */
  guint64 frames_auth_failed; /* dropped: not sealed with the peer's key, or altered */
  guint64 frames_replayed;    /* dropped: seen before, or older than the replay window */
  guint64 direct_refused;     /* direct connections refused: not the peer's identity key */
  guint64 frames_repair;      /* FEC repair packets received (not decoded; §3.6) */
  guint64 reports_received;   /* the peer's QualityReport trailers taken in */
} WzpSessionStats;

/**
 * wzp_session_get_stats:
 * @session: the session
 * @stats: (out caller-allocates): filled with the counters
 */
void wzp_session_get_stats (WzpSession *session, WzpSessionStats *stats);

/**
 * wzp_session_dup_end_error:
 * @session: a #WzpSession
 *
 * Why the call ended, once the state is ENDED: a #WZP_SESSION_ERROR (code
 * WZP_SESSION_ERROR_HUNG_UP when either side hung up). %NULL before.
 *
 * Returns: (transfer full) (nullable): the reason
 */
GError *wzp_session_dup_end_error (WzpSession *session);

/**
 * wzp_session_dup_fingerprint:
 * @session: a #WzpSession
 *
 * Our identity's fingerprint (what a caller dials), once wzp_session_start()
 * has loaded or made the identity; %NULL before.
 *
 * Returns: (transfer full) (nullable): the fingerprint
 */
gchar *wzp_session_dup_fingerprint (WzpSession *session);

/**
 * wzp_session_dup_call_id:
 * @session: a #WzpSession
 *
 * The current (or last) call's id, once an offer was sent or accepted.
 *
 * Returns: (transfer full) (nullable): the call id
 */
gchar *wzp_session_dup_call_id (WzpSession *session);

/**
 * wzp_session_dup_peer_fingerprint:
 * @session: a #WzpSession
 *
 * The other side's fingerprint: the callee we dial, or the caller that
 * offered us a call. %NULL before either.
 *
 * Returns: (transfer full) (nullable): the fingerprint
 */
gchar *wzp_session_dup_peer_fingerprint (WzpSession *session);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpMediaFrame, wzp_media_frame_free)

G_END_DECLS
