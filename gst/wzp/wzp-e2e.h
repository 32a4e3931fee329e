/* End-to-end media protection between two gst-wzp endpoints (not installed;
 * docs/negotiation.md, "Security").
 *
 * Capability: the offer's and the answer's Ed25519 signatures, made with the
 * callers' identity keys, are over bytes that start with "wzp-e2e-1": a peer
 * whose signature verifies in that form can encrypt, and no relay can strip
 * the claim without voiding the signature. Those fields (identity_pub,
 * ephemeral_pub, signature) are upstream's own, so they pass upstream relays.
 *
 * Keys: X25519 of the two ephemeral keys the signed offer and answer carry,
 * HKDF-SHA256 with the call id as salt, one key per direction.
 *
 * Packets: the 12-byte header and the quality trailer stay in clear (relays
 * read them) and are the associated data; the payload is sealed with
 * ChaCha20-Poly1305 (IETF, libsodium), nonce = 0^32 || be64(index), where the
 * index is the sender's 64-bit frame counter whose low 16 bits are the
 * header's seq. A 128-frame replay window. */
#pragma once

#include <glib.h>

#include "wzp-identity.h"

G_BEGIN_DECLS

#define WZP_E2E_TAG_SIZE 16
#define WZP_E2E_REPLAY_WINDOW 128

typedef enum {
  WZP_E2E_OK,
  WZP_E2E_AUTH_FAILED,          /* not sealed with the peer's key, or altered */
  WZP_E2E_REPLAY,               /* seen before, or older than the window */
  WZP_E2E_MALFORMED,            /* not a media packet, or too short for a tag */
} WzpE2eResult;

typedef struct {
  guint8 tx_key[32], rx_key[32];
  guint64 tx_next;              /* index of the next frame we seal */
  guint64 rx_top;               /* highest index opened */
  guint64 rx_seen[WZP_E2E_REPLAY_WINDOW / 64];   /* bit i: rx_top - i was opened */
  gboolean rx_any;
} WzpE2e;

/* The bytes a DirectCallOffer's signature covers: the legacy form
 * (ephemeral_pub || target || call_id) or, with @e2e, "wzp-e2e-1 offer" first. */
GByteArray *wzp_e2e_offer_bytes (gboolean e2e, const guint8 ephemeral_pub[32],
                                 const gchar *target, const gchar *call_id);
/* A DirectCallAnswer's: "wzp-e2e-1 answer" || answer eph || offer eph || call_id. */
GByteArray *wzp_e2e_answer_bytes (const guint8 answer_ephemeral[32],
                                  const guint8 offer_ephemeral[32], const gchar *call_id);
/* Whether @signature verifies over the offer in either form; *e2e tells
 * which (the e2e form is tried first). */
gboolean wzp_e2e_verify_offer (const guint8 identity_pub[32], const guint8 ephemeral_pub[32],
                               const gchar *target, const gchar *call_id,
                               const guint8 *signature, gsize signature_len, gboolean *e2e);

/* Derives both directions' keys; FALSE for a low-order peer key. */
gboolean wzp_e2e_init (WzpE2e *e, gboolean caller, const guint8 own_secret[32],
                       const guint8 offer_ephemeral[32], const guint8 answer_ephemeral[32],
                       const gchar *call_id);
void wzp_e2e_clear (WzpE2e *e);

/* The 64-bit index nearest @ref whose low 16 bits are @seq. */
guint64 wzp_e2e_extend_index (guint64 ref, guint16 seq);

/* Seals a whole media datagram (header, payload, optional trailer) into
 * @out (size @len + WZP_E2E_TAG_SIZE); its seq must be the next index's low
 * bits. Returns the bytes written, 0 on a malformed packet. */
gsize wzp_e2e_seal (WzpE2e *e, const guint8 *packet, gsize len, guint8 *out);
/* Opens a sealed datagram into @out (at least @len bytes): header, plain
 * payload, trailer; *out_len is its size. Only an authentic packet moves the
 * replay window. */
WzpE2eResult wzp_e2e_open (WzpE2e *e, const guint8 *packet, gsize len, guint8 *out, gsize *out_len);

G_END_DECLS
