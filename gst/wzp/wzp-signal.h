/* wzp-signal: SignalMessage (protocol §2) as typed C values, JSON encoding
 * byte-identical to upstream's serde_json output, and the 4-byte
 * length-prefixed framing.
 *
 * Ownership: a WzpSignal owns every string, list and nested message it
 * points to; wzp_signal_free() releases them all. Strings are UTF-8.
 * After wzp_signal_from_json() every list is non-NULL (possibly empty) and
 * every required signature is non-NULL; optional values are NULL when
 * absent. When encoding, a NULL list or required signature counts as empty.
 */
#pragma once

#include <glib.h>
#include "wzp-wire.h"

G_BEGIN_DECLS

#define WZP_SIGNAL_MAX_FRAME (1024 * 1024)
/* Deeper JSON is refused before parsing (nesting of objects/arrays). */
#define WZP_SIGNAL_MAX_DEPTH 32

#define WZP_SIGNAL_ERROR (wzp_signal_error_quark ())
GQuark wzp_signal_error_quark (void);

typedef enum {
  WZP_SIGNAL_ERROR_INVALID_JSON,    /* not JSON, not UTF-8, too deep */
  WZP_SIGNAL_ERROR_UNKNOWN_VARIANT, /* well-formed, but a variant we do not know: skippable */
  WZP_SIGNAL_ERROR_INVALID_MESSAGE, /* wrong shape, type, range, missing field */
  WZP_SIGNAL_ERROR_TOO_LARGE,       /* frame length over the limit */
  WZP_SIGNAL_ERROR_TRUNCATED,       /* input ended inside a frame */
} WzpSignalError;

/* The variants, in the order of protocol §2.4. */
typedef enum {
  WZP_SIGNAL_CALL_OFFER,
  WZP_SIGNAL_CALL_ANSWER,
  WZP_SIGNAL_ICE_CANDIDATE,
  WZP_SIGNAL_REKEY,
  WZP_SIGNAL_QUALITY_UPDATE,
  WZP_SIGNAL_LOSS_RECOVERY_UPDATE,
  WZP_SIGNAL_PING,
  WZP_SIGNAL_PONG,
  WZP_SIGNAL_HANGUP,
  WZP_SIGNAL_AUTH_TOKEN,
  WZP_SIGNAL_HOLD,
  WZP_SIGNAL_UNHOLD,
  WZP_SIGNAL_MUTE,
  WZP_SIGNAL_UNMUTE,
  WZP_SIGNAL_TRANSFER,
  WZP_SIGNAL_TRANSFER_ACK,
  WZP_SIGNAL_PRESENCE_UPDATE,
  WZP_SIGNAL_ROUTE_QUERY,
  WZP_SIGNAL_ROUTE_RESPONSE,
  WZP_SIGNAL_SESSION_FORWARD,
  WZP_SIGNAL_SESSION_FORWARD_ACK,
  WZP_SIGNAL_ROOM_UPDATE,
  WZP_SIGNAL_FEDERATION_HELLO,
  WZP_SIGNAL_GLOBAL_ROOM_ACTIVE,
  WZP_SIGNAL_GLOBAL_ROOM_INACTIVE,
  WZP_SIGNAL_REGISTER_PRESENCE,
  WZP_SIGNAL_REGISTER_PRESENCE_ACK,
  WZP_SIGNAL_DIRECT_CALL_OFFER,
  WZP_SIGNAL_DIRECT_CALL_ANSWER,
  WZP_SIGNAL_CALL_SETUP,
  WZP_SIGNAL_CALL_RINGING,
  WZP_SIGNAL_REFLECT,
  WZP_SIGNAL_REFLECT_RESPONSE,
  WZP_SIGNAL_MEDIA_PATH_REPORT,
  WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD,
  WZP_SIGNAL_QUALITY_DIRECTIVE,
} WzpSignalType;

#define WZP_SIGNAL_N_TYPES (WZP_SIGNAL_QUALITY_DIRECTIVE + 1)

typedef enum {
  WZP_CALL_ACCEPT_REJECT,
  WZP_CALL_ACCEPT_TRUSTED,
  WZP_CALL_ACCEPT_GENERIC,
} WzpCallAcceptMode;

typedef enum {
  WZP_HANGUP_NORMAL,
  WZP_HANGUP_BUSY,
  WZP_HANGUP_DECLINED,
  WZP_HANGUP_TIMEOUT,
  WZP_HANGUP_ERROR,
} WzpHangupReason;

typedef struct {
  WzpCodecId codec;
  gfloat fec_ratio;
  guint8 frame_duration_ms;
  guint8 frames_per_block;
} WzpQualityProfile;

/* Named profiles of protocol §2.3. */
extern const WzpQualityProfile WZP_PROFILE_GOOD;
extern const WzpQualityProfile WZP_PROFILE_DEGRADED;
extern const WzpQualityProfile WZP_PROFILE_CATASTROPHIC;
extern const WzpQualityProfile WZP_PROFILE_STUDIO_32K;
extern const WzpQualityProfile WZP_PROFILE_STUDIO_48K;
extern const WzpQualityProfile WZP_PROFILE_STUDIO_64K;

typedef struct {
  gchar *fingerprint;   /* required */
  gchar *alias;         /* nullable */
  gchar *relay_label;   /* nullable */
} WzpRoomParticipant;

WzpRoomParticipant *wzp_room_participant_new (const gchar *fingerprint,
                                              const gchar *alias,
                                              const gchar *relay_label);
void wzp_room_participant_free (WzpRoomParticipant *p);

/* Lists: GPtrArray of gchar* / WzpRoomParticipant* (with free functions),
 * GArray of WzpQualityProfile. Signatures and byte vectors: GBytes. */

typedef struct {
  guint8 identity_pub[32];
  guint8 ephemeral_pub[32];
  GBytes *signature;
  GArray *supported_profiles;
  gchar *alias;
} WzpCallOffer;

typedef struct {
  guint8 identity_pub[32];
  guint8 ephemeral_pub[32];
  GBytes *signature;
  WzpQualityProfile chosen_profile;
} WzpCallAnswer;

typedef struct {
  gchar *candidate;
} WzpIceCandidate;

typedef struct {
  guint8 new_ephemeral_pub[32];
  GBytes *signature;
} WzpRekey;

typedef struct {
  WzpQualityReport report;
  WzpQualityProfile recommended_profile;
} WzpQualityUpdate;

typedef struct {
  guint64 dred_reconstructions;
  guint64 classical_plc_invocations;
  guint64 frames_decoded;
} WzpLossRecoveryUpdate;

typedef struct {
  guint64 timestamp_ms;
} WzpPing;

typedef struct {
  WzpHangupReason reason;
  gchar *call_id;           /* optional */
} WzpHangup;

typedef struct {
  gchar *token;
} WzpAuthToken;

typedef struct {
  gchar *target_fingerprint;
  gchar *relay_addr;        /* nullable */
} WzpTransfer;

typedef struct {
  GPtrArray *fingerprints;
  gchar *relay_addr;
} WzpPresenceUpdate;

typedef struct {
  gchar *fingerprint;
  guint8 ttl;
} WzpRouteQuery;

typedef struct {
  gchar *fingerprint;
  gboolean found;
  GPtrArray *relay_chain;
} WzpRouteResponse;

typedef struct {
  gchar *session_id;
  gchar *target_fingerprint;
  gchar *source_relay;
} WzpSessionForward;

typedef struct {
  gchar *session_id;
  gchar *room_name;
} WzpSessionForwardAck;

typedef struct {
  guint32 count;
  GPtrArray *participants;
} WzpRoomUpdate;

typedef struct {
  gchar *tls_fingerprint;
} WzpFederationHello;

typedef struct {
  gchar *room;
  GPtrArray *participants;
} WzpGlobalRoomActive;

typedef struct {
  gchar *room;
} WzpGlobalRoomInactive;

typedef struct {
  guint8 identity_pub[32];
  GBytes *signature;
  gchar *alias;             /* nullable */
} WzpRegisterPresence;

typedef struct {
  gboolean success;
  gchar *error;             /* optional */
  gchar *relay_build;       /* optional */
} WzpRegisterPresenceAck;

typedef struct {
  gchar *caller_fingerprint;
  gchar *caller_alias;      /* nullable */
  gchar *target_fingerprint;
  gchar *call_id;
  guint8 identity_pub[32];
  guint8 ephemeral_pub[32];
  GBytes *signature;
  GArray *supported_profiles;
  gchar *caller_reflexive_addr;     /* optional */
  GPtrArray *caller_local_addrs;    /* omitted when empty */
  gchar *caller_build_version;      /* optional */
} WzpDirectCallOffer;

typedef struct {
  gchar *call_id;
  WzpCallAcceptMode accept_mode;
  guint8 *identity_pub;             /* optional: NULL or 32 bytes (g_malloc) */
  guint8 *ephemeral_pub;            /* optional: NULL or 32 bytes (g_malloc) */
  GBytes *signature;                /* optional */
  WzpQualityProfile *chosen_profile; /* optional (g_new) */
  gchar *callee_reflexive_addr;     /* optional */
  GPtrArray *callee_local_addrs;    /* omitted when empty */
  gchar *callee_build_version;      /* optional */
} WzpDirectCallAnswer;

typedef struct {
  gchar *call_id;
  gchar *room;
  gchar *relay_addr;
  gchar *peer_direct_addr;          /* optional */
  GPtrArray *peer_local_addrs;      /* omitted when empty */
} WzpCallSetup;

typedef struct {
  gchar *call_id;
} WzpCallRinging;

typedef struct {
  gchar *observed_addr;
} WzpReflectResponse;

typedef struct {
  gchar *call_id;
  gboolean direct_ok;
  gchar *race_winner;       /* "" when absent; always emitted */
} WzpMediaPathReport;

typedef struct _WzpSignal WzpSignal;

typedef struct {
  WzpSignal *inner;
  gchar *origin_relay_fp;
} WzpFederatedSignalForward;

typedef struct {
  WzpQualityProfile recommended_profile;
  gchar *reason;            /* optional */
} WzpQualityDirective;

struct _WzpSignal {
  WzpSignalType type;
  union {
    WzpCallOffer call_offer;
    WzpCallAnswer call_answer;
    WzpIceCandidate ice_candidate;
    WzpRekey rekey;
    WzpQualityUpdate quality_update;
    WzpLossRecoveryUpdate loss_recovery_update;
    WzpPing ping;
    WzpPing pong;
    WzpHangup hangup;
    WzpAuthToken auth_token;
    WzpTransfer transfer;
    WzpPresenceUpdate presence_update;
    WzpRouteQuery route_query;
    WzpRouteResponse route_response;
    WzpSessionForward session_forward;
    WzpSessionForwardAck session_forward_ack;
    WzpRoomUpdate room_update;
    WzpFederationHello federation_hello;
    WzpGlobalRoomActive global_room_active;
    WzpGlobalRoomInactive global_room_inactive;
    WzpRegisterPresence register_presence;
    WzpRegisterPresenceAck register_presence_ack;
    WzpDirectCallOffer direct_call_offer;
    WzpDirectCallAnswer direct_call_answer;
    WzpCallSetup call_setup;
    WzpCallRinging call_ringing;
    WzpReflectResponse reflect_response;
    WzpMediaPathReport media_path_report;
    WzpFederatedSignalForward federated_signal_forward;
    WzpQualityDirective quality_directive;
  };
};

/* Name as on the wire ("CallOffer"), or NULL for an invalid type. */
const gchar *wzp_signal_type_name (WzpSignalType type);
gboolean wzp_signal_type_from_name (const gchar *name, WzpSignalType *type);

const gchar *wzp_call_accept_mode_to_string (WzpCallAcceptMode mode);
const gchar *wzp_hangup_reason_to_string (WzpHangupReason reason);
gboolean wzp_call_accept_mode_from_string (const gchar *s, WzpCallAcceptMode *mode);
gboolean wzp_hangup_reason_from_string (const gchar *s, WzpHangupReason *reason);

/* A message of @type with every field zero/empty/absent. */
WzpSignal *wzp_signal_new (WzpSignalType type);
void wzp_signal_free (WzpSignal *msg);
WzpSignal *wzp_signal_copy (const WzpSignal *msg);
gboolean wzp_signal_equal (const WzpSignal *a, const WzpSignal *b);

/* Compact JSON exactly as upstream emits it. NULL (and @error) when the
 * value cannot be encoded: a required string is NULL, a string is not UTF-8,
 * an enum is out of range, or a nested message is missing. */
gchar *wzp_signal_to_json (const WzpSignal *msg, gsize *out_len, GError **error);
/* Parses one message. Unknown variants fail with
 * WZP_SIGNAL_ERROR_UNKNOWN_VARIANT so callers can skip them. */
WzpSignal *wzp_signal_from_json (const gchar *json, gsize len, GError **error);

/* u32_be length || JSON. */
/* FALSE (with @error) when @json nests deeper than WZP_SIGNAL_MAX_DEPTH:
 * checked before any JSON parser sees untrusted input. */
gboolean wzp_json_check_depth (const gchar *json, gsize len, GError **error);
/* @s as a JSON string literal, escaped as serde_json does. */
gchar *wzp_json_quote (const gchar *s, GError **error);
GBytes *wzp_signal_to_frame (const WzpSignal *msg, GError **error);
/* Parses exactly one whole frame (length prefix included); bytes after the
 * frame are ignored, as upstream receivers do. */
WzpSignal *wzp_signal_from_frame (const guint8 *data, gsize len, GError **error);

/* Convenience constructors for common messages. */
WzpSignal *wzp_signal_new_hangup (WzpHangupReason reason, const gchar *call_id);
WzpSignal *wzp_signal_new_media_path_report (const gchar *call_id, gboolean direct_ok,
                                             const gchar *race_winner);

/* Incremental frame reader: feed bytes as they arrive; it buffers at most
 * one frame body and never more than its limit. */
typedef struct _WzpFrameReader WzpFrameReader;

typedef enum {
  WZP_FRAME_NEED_MORE,
  WZP_FRAME_READY,
  WZP_FRAME_ERROR,
} WzpFrameStatus;

/* @max_len 0 means WZP_SIGNAL_MAX_FRAME. */
WzpFrameReader *wzp_frame_reader_new (gsize max_len);
void wzp_frame_reader_free (WzpFrameReader *reader);
/* Consumes bytes up to the end of the current frame and reports how many in
 * @consumed. READY: a frame body is complete; take it with
 * wzp_frame_reader_take() before feeding more. ERROR: the length prefix is
 * over the limit; the reader stays in error. */
WzpFrameStatus wzp_frame_reader_feed (WzpFrameReader *reader,
                                      const guint8 *data, gsize len,
                                      gsize *consumed, GError **error);
/* The completed frame body (JSON bytes); the reader starts a new frame. */
GBytes *wzp_frame_reader_take (WzpFrameReader *reader);
/* TRUE when some bytes of an unfinished frame are buffered. */
gboolean wzp_frame_reader_in_frame (const WzpFrameReader *reader);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpSignal, wzp_signal_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpFrameReader, wzp_frame_reader_free)

G_END_DECLS
