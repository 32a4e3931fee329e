/* wzp-quic-crypto: QUIC packet protection (RFC 9001 §5) over OpenSSL EVP
 * and libsodium: the cipher suites, HKDF, the AEAD and header-protection
 * contexts handed to ngtcp2, Initial and Retry keys, stateless reset tokens.
 * No TLS here: wzp-tls.c feeds it the secrets the handshake yields. Every
 * context is made once per key, so nothing is allocated per packet.
 * Internal to libwzp (not installed). */
#pragma once

#include <glib.h>
#include <ngtcp2/ngtcp2.h>

G_BEGIN_DECLS

#define WZP_CRYPTO_TAG_LEN 16
#define WZP_CRYPTO_IV_LEN 12
#define WZP_CRYPTO_MAX_SECRET 64
#define WZP_CRYPTO_MAX_KEY 32

/* One TLS 1.3 cipher suite QUIC can use. */
typedef struct _WzpCryptoSuite WzpCryptoSuite;

/* Fetches the ciphers, digests and HKDF once; FALSE when OpenSSL lacks one. */
G_GNUC_INTERNAL gboolean wzp_crypto_init (void);
/* The suite of a TLS cipher (SSL_CIPHER_get_id()), NULL when QUIC cannot
 * use it. */
G_GNUC_INTERNAL const WzpCryptoSuite *wzp_crypto_suite_by_tls_id (guint32 id);
/* The suite a connection's crypto context names, NULL for none. */
G_GNUC_INTERNAL const WzpCryptoSuite *wzp_crypto_suite_of_ctx (const ngtcp2_crypto_ctx *ctx);
G_GNUC_INTERNAL void wzp_crypto_suite_to_ngtcp2 (const WzpCryptoSuite *s, ngtcp2_crypto_ctx *ctx);

/* RFC 8446 §7.1 HKDF-Expand-Label with an empty context. */
G_GNUC_INTERNAL gboolean wzp_crypto_expand_label (const WzpCryptoSuite *s, const guint8 *secret,
                                                  gsize secretlen, const gchar *label,
                                                  guint8 *out, gsize outlen);

/* The packet protection of one direction: AEAD context, header-protection
 * context and IV, as ngtcp2 takes them. */
typedef struct {
  ngtcp2_crypto_aead_ctx aead;
  ngtcp2_crypto_cipher_ctx hp;
  guint8 iv[WZP_CRYPTO_IV_LEN];
} WzpPacketKeys;

/* Derives the keys of one direction from a traffic @secret. Without
 * @with_hp they are the next key phase's (ngtcp2 keeps one header-protection
 * key for all phases). */
G_GNUC_INTERNAL gboolean wzp_crypto_keys_derive (const WzpCryptoSuite *s, const guint8 *secret,
                                                 gsize secretlen, gboolean encrypt,
                                                 gboolean with_hp, WzpPacketKeys *k);
G_GNUC_INTERNAL void wzp_crypto_keys_free (WzpPacketKeys *k);
/* Both directions' Initial keys from the client's first destination
 * connection ID (RFC 9001 §5.2). */
G_GNUC_INTERNAL gboolean wzp_crypto_initial_keys (const ngtcp2_cid *dcid, gboolean server,
                                                  WzpPacketKeys *rx, WzpPacketKeys *tx);
G_GNUC_INTERNAL const WzpCryptoSuite *wzp_crypto_initial_suite (void);

/* ngtcp2's callbacks over the contexts above. */
G_GNUC_INTERNAL int wzp_crypto_seal (uint8_t *dest, const ngtcp2_crypto_aead_ctx *aead_ctx,
                                     const uint8_t *plaintext, size_t plaintextlen,
                                     const uint8_t *nonce, const uint8_t *aad, size_t aadlen);
G_GNUC_INTERNAL int wzp_crypto_open (uint8_t *dest, const ngtcp2_crypto_aead_ctx *aead_ctx,
                                     const uint8_t *ciphertext, size_t ciphertextlen,
                                     const uint8_t *nonce, const uint8_t *aad, size_t aadlen);
G_GNUC_INTERNAL int wzp_crypto_hp_mask (uint8_t *dest, const ngtcp2_crypto_cipher *hp,
                                        const ngtcp2_crypto_cipher_ctx *hp_ctx,
                                        const uint8_t *sample);
G_GNUC_INTERNAL void wzp_crypto_aead_ctx_free (ngtcp2_crypto_aead_ctx *ctx);
G_GNUC_INTERNAL void wzp_crypto_cipher_ctx_free (ngtcp2_crypto_cipher_ctx *ctx);
/* What protecting a packet with these contexts reads first: our own
 * allocations (the context, libsodium's expanded key) and the head of an
 * OpenSSL context through its handle, as up to WZP_CRYPTO_PREFETCH ranges
 * ({ NULL, 0 } for none), for prefetching. */
#define WZP_CRYPTO_PREFETCH 3
typedef struct {
  gconstpointer addr;
  gsize len;
} WzpCryptoRange;
G_GNUC_INTERNAL void wzp_crypto_prefetch_ranges (const ngtcp2_crypto_aead_ctx *aead,
                                                 const ngtcp2_crypto_cipher_ctx *hp,
                                                 WzpCryptoRange out[WZP_CRYPTO_PREFETCH]);
/* The Retry integrity AEAD (RFC 9001 §5.8) for a client connection. */
G_GNUC_INTERNAL gboolean wzp_crypto_retry_aead (ngtcp2_crypto_aead *aead,
                                                ngtcp2_crypto_aead_ctx *ctx);

/* A TLS 1.3 record protection (the compatibility layer re-wraps CRYPTO
 * data with it): AEAD of @s under the TLS labels "key"/"iv" of @secret. */
typedef struct _WzpRecordKeys WzpRecordKeys;
G_GNUC_INTERNAL WzpRecordKeys *wzp_crypto_record_keys_new (const WzpCryptoSuite *s,
                                                           const guint8 *secret, gsize len);
/* Seals @rec[5 .. 5 + inner) in place after its 5-byte header (the AAD),
 * appending the tag, under the next record number. */
G_GNUC_INTERNAL gboolean wzp_crypto_record_seal (WzpRecordKeys *r, guint8 *rec, gsize inner);
G_GNUC_INTERNAL void wzp_crypto_record_keys_free (WzpRecordKeys *r);

/* Random bytes from OpenSSL's generator. */
G_GNUC_INTERNAL void wzp_crypto_random (guint8 *out, gsize len);
/* The stateless reset token for @cid under @secret (HMAC-SHA256). */
G_GNUC_INTERNAL void wzp_crypto_stateless_reset_token (const guint8 secret[32], const guint8 *cid,
                                                       gsize cidlen,
                                                       guint8 token[NGTCP2_STATELESS_RESET_TOKENLEN]);

G_END_DECLS
