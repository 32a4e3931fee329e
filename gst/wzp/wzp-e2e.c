/* End-to-end media protection (wzp-e2e.h). */
#include "wzp-e2e.h"
#include "wzp-wire.h"

#include <string.h>
#include <sodium.h>

#define E2E_OFFER_CONTEXT "wzp-e2e-1 offer"
#define E2E_ANSWER_CONTEXT "wzp-e2e-1 answer"

G_STATIC_ASSERT (WZP_E2E_TAG_SIZE == crypto_aead_chacha20poly1305_ietf_ABYTES);
G_STATIC_ASSERT (WZP_E2E_REPLAY_WINDOW == 128);

GByteArray *
wzp_e2e_offer_bytes (gboolean e2e, const guint8 ephemeral_pub[32], const gchar *target,
                     const gchar *call_id)
{
  GByteArray *b = g_byte_array_new ();

  if (e2e)
    g_byte_array_append (b, (const guint8 *) E2E_OFFER_CONTEXT, sizeof E2E_OFFER_CONTEXT);
  g_byte_array_append (b, ephemeral_pub, 32);
  g_byte_array_append (b, (const guint8 *) target, strlen (target));
  g_byte_array_append (b, (const guint8 *) call_id, strlen (call_id));
  return b;
}

GByteArray *
wzp_e2e_answer_bytes (const guint8 answer_ephemeral[32], const guint8 offer_ephemeral[32],
                      const gchar *call_id)
{
  GByteArray *b = g_byte_array_new ();

  g_byte_array_append (b, (const guint8 *) E2E_ANSWER_CONTEXT, sizeof E2E_ANSWER_CONTEXT);
  g_byte_array_append (b, answer_ephemeral, 32);
  g_byte_array_append (b, offer_ephemeral, 32);
  g_byte_array_append (b, (const guint8 *) call_id, strlen (call_id));
  return b;
}

gboolean
wzp_e2e_verify_offer (const guint8 identity_pub[32], const guint8 ephemeral_pub[32],
                      const gchar *target, const gchar *call_id, const guint8 *signature,
                      gsize signature_len, gboolean *e2e)
{
  for (gint form = 1; form >= 0; form--) {
    g_autoptr (GByteArray) b = wzp_e2e_offer_bytes (form, ephemeral_pub, target, call_id);

    if (wzp_ed25519_verify (identity_pub, b->data, b->len, signature, signature_len)) {
      if (e2e)
        *e2e = form;
      return TRUE;
    }
  }
  return FALSE;
}

gboolean
wzp_e2e_init (WzpE2e *e, gboolean caller, const guint8 own_secret[32],
              const guint8 offer_ephemeral[32], const guint8 answer_ephemeral[32],
              const gchar *call_id)
{
  guint8 ikm[96];
  guint8 c2c[32], c2r[32];
  gboolean ok;

  memset (e, 0, sizeof *e);
  if (sodium_init () < 0 ||
      crypto_scalarmult (ikm, own_secret, caller ? answer_ephemeral : offer_ephemeral) != 0)
    return FALSE;
  /* both public keys in the input: a key is bound to this offer and answer */
  memcpy (ikm + 32, offer_ephemeral, 32);
  memcpy (ikm + 64, answer_ephemeral, 32);
  ok = wzp_hkdf_sha256 ((const guint8 *) call_id, strlen (call_id), ikm, sizeof ikm,
                        "wzp-e2e-1 caller to callee", c2c, sizeof c2c) &&
      wzp_hkdf_sha256 ((const guint8 *) call_id, strlen (call_id), ikm, sizeof ikm,
                       "wzp-e2e-1 callee to caller", c2r, sizeof c2r);
  memcpy (e->tx_key, caller ? c2c : c2r, 32);
  memcpy (e->rx_key, caller ? c2r : c2c, 32);
  sodium_memzero (ikm, sizeof ikm);
  sodium_memzero (c2c, sizeof c2c);
  sodium_memzero (c2r, sizeof c2r);
  return ok;
}

void
wzp_e2e_clear (WzpE2e *e)
{
  sodium_memzero (e, sizeof *e);
}

guint64
wzp_e2e_extend_index (guint64 ref, guint16 seq)
{
  guint64 cand = (ref & ~(guint64) 0xffff) | seq;

  /* the candidate within half the 16-bit space of @ref */
  if (cand > ref && cand - ref > 0x8000 && cand >= 0x10000)
    cand -= 0x10000;
  else if (cand < ref && ref - cand > 0x8000)
    cand += 0x10000;
  return cand;
}

static void
nonce_for (guint64 index, guint8 nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES])
{
  memset (nonce, 0, 4);
  for (guint i = 0; i < 8; i++)
    nonce[4 + i] = (guint8) (index >> (56 - 8 * i));
}

/* The associated data: the header and the trailer as they travel. */
static gsize
associated (const guint8 *packet, gsize len, gboolean trailer, guint8 ad[WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE])
{
  memcpy (ad, packet, WZP_MEDIA_HEADER_SIZE);
  if (!trailer)
    return WZP_MEDIA_HEADER_SIZE;
  memcpy (ad + WZP_MEDIA_HEADER_SIZE, packet + len - WZP_QUALITY_REPORT_SIZE, WZP_QUALITY_REPORT_SIZE);
  return WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE;
}

gsize
wzp_e2e_seal (WzpE2e *e, const guint8 *packet, gsize len, guint8 *out)
{
  WzpMediaPacket p;
  guint8 nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  guint8 ad[WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE];
  gsize adlen;
  guint64 index;

  if (!wzp_media_packet_parse (packet, len, &p, NULL))
    return 0;
  index = e->tx_next ? wzp_e2e_extend_index (e->tx_next, p.header.seq) : p.header.seq;
  e->tx_next = index + 1;
  nonce_for (index, nonce);
  adlen = associated (packet, len, p.header.has_quality, ad);
  memcpy (out, packet, WZP_MEDIA_HEADER_SIZE);
  crypto_aead_chacha20poly1305_ietf_encrypt_detached (out + WZP_MEDIA_HEADER_SIZE,
      out + WZP_MEDIA_HEADER_SIZE + p.payload_len, NULL, p.payload, p.payload_len, ad, adlen,
      NULL, nonce, e->tx_key);
  if (p.header.has_quality)
    memcpy (out + WZP_MEDIA_HEADER_SIZE + p.payload_len + WZP_E2E_TAG_SIZE,
            packet + len - WZP_QUALITY_REPORT_SIZE, WZP_QUALITY_REPORT_SIZE);
  return len + WZP_E2E_TAG_SIZE;
}

/* bit @i of the window: index rx_top - i */
static gboolean
window_has (const WzpE2e *e, guint64 i)
{
  return (e->rx_seen[i / 64] >> (i % 64)) & 1;
}

static void
window_advance (WzpE2e *e, guint64 index)
{
  if (!e->rx_any) {
    e->rx_any = TRUE;
    e->rx_top = index;
    e->rx_seen[0] = 1;
    e->rx_seen[1] = 0;
    return;
  }
  if (index > e->rx_top) {
    guint64 d = index - e->rx_top;

    if (d >= 128) {
      e->rx_seen[0] = e->rx_seen[1] = 0;
    } else if (d >= 64) {
      e->rx_seen[1] = e->rx_seen[0] << (d - 64);
      e->rx_seen[0] = 0;
    } else {
      e->rx_seen[1] = (e->rx_seen[1] << d) | (e->rx_seen[0] >> (64 - d));
      e->rx_seen[0] <<= d;
    }
    e->rx_seen[0] |= 1;
    e->rx_top = index;
  } else {
    guint64 i = e->rx_top - index;
    e->rx_seen[i / 64] |= (guint64) 1 << (i % 64);
  }
}

WzpE2eResult
wzp_e2e_open (WzpE2e *e, const guint8 *packet, gsize len, guint8 *out, gsize *out_len)
{
  WzpMediaPacket p;
  guint8 nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
  guint8 ad[WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE];
  gsize adlen, plain;
  guint64 index;

  if (!wzp_media_packet_parse (packet, len, &p, NULL) || p.payload_len < WZP_E2E_TAG_SIZE)
    return WZP_E2E_MALFORMED;
  index = e->rx_any ? wzp_e2e_extend_index (e->rx_top, p.header.seq) : p.header.seq;
  if (e->rx_any && index <= e->rx_top &&
      (e->rx_top - index >= WZP_E2E_REPLAY_WINDOW || window_has (e, e->rx_top - index)))
    return WZP_E2E_REPLAY;
  plain = p.payload_len - WZP_E2E_TAG_SIZE;
  nonce_for (index, nonce);
  adlen = associated (packet, len, p.header.has_quality, ad);
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached (out + WZP_MEDIA_HEADER_SIZE, NULL,
          p.payload, plain, p.payload + plain, ad, adlen, nonce, e->rx_key) != 0)
    return WZP_E2E_AUTH_FAILED;
  window_advance (e, index);
  memcpy (out, packet, WZP_MEDIA_HEADER_SIZE);
  if (p.header.has_quality)
    memcpy (out + WZP_MEDIA_HEADER_SIZE + plain, packet + len - WZP_QUALITY_REPORT_SIZE,
            WZP_QUALITY_REPORT_SIZE);
  *out_len = len - WZP_E2E_TAG_SIZE;
  return WZP_E2E_OK;
}
