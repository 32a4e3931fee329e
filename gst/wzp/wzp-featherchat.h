/* The featherChat call-signal bridge (protocol §4.6): a WZP signal carried
 * inside featherChat's WireMessage::CallSignal, whose payload is the JSON
 * string {"signal":<SignalMessage>,"relay_addr":<string|null>,"room":<string|null>}
 * and whose signal_type is a CallSignalType. */
#pragma once

#include "wzp-signal.h"

G_BEGIN_DECLS

typedef enum {
  WZP_CALL_SIGNAL_OFFER,
  WZP_CALL_SIGNAL_ANSWER,
  WZP_CALL_SIGNAL_ICE_CANDIDATE,
  WZP_CALL_SIGNAL_HANGUP,
  WZP_CALL_SIGNAL_RINGING,
  WZP_CALL_SIGNAL_HOLD,
  WZP_CALL_SIGNAL_UNHOLD,
  WZP_CALL_SIGNAL_MUTE,
  WZP_CALL_SIGNAL_UNMUTE,
  WZP_CALL_SIGNAL_TRANSFER,
  WZP_CALL_SIGNAL_REJECT,     /* featherChat's own; never produced from a WZP signal */
  WZP_CALL_SIGNAL_BUSY,       /* likewise */
} WzpCallSignalType;

/* featherChat's name ("Offer", "IceCandidate", ...). */
const gchar *wzp_call_signal_type_name (WzpCallSignalType type);
/* The CallSignalType a WZP variant travels as (Offer for everything unmapped). */
WzpCallSignalType wzp_featherchat_signal_type (WzpSignalType type);

/* The payload string; NULL with @error when the signal cannot be encoded.
 * @relay_addr and @room may be NULL (encoded as null). */
gchar *wzp_featherchat_encode (const WzpSignal *signal, const gchar *relay_addr,
                               const gchar *room, GError **error);
/* Parses a payload; @relay_addr and @room (may be NULL) receive the extra
 * members (NULL when null or absent). */
WzpSignal *wzp_featherchat_decode (const gchar *payload, gsize len, gchar **relay_addr,
                                   gchar **room, GError **error);

G_END_DECLS
