/* wzp-quic-crypto: QUIC packet protection over OpenSSL EVP, and AES-256-GCM
 * over libsodium where the CPU runs it (see wzp-quic-crypto.h). */
#define G_LOG_DOMAIN "wzp-tls"

#include "wzp-quic-crypto.h"

#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sodium.h>

#define TAG_LEN WZP_CRYPTO_TAG_LEN
#define IV_LEN WZP_CRYPTO_IV_LEN

struct _WzpCryptoSuite {
  guint32 id;                   /* SSL_CIPHER_get_id() */
  EVP_CIPHER *aead;
  EVP_CIPHER *hp;
  EVP_MD *md;
  gsize keylen;
  guint64 max_encryption;
  guint64 max_decryption_failure;
};

enum { SUITE_AES128, SUITE_AES256, SUITE_CHACHA, N_SUITES };

static WzpCryptoSuite suites[N_SUITES];
static EVP_KDF *hkdf;
static gboolean sodium_gcm;     /* libsodium's AES-256-GCM runs on this CPU */

/* RFC 9001 §5.2 and §5.8 */
static const guint8 initial_salt_v1[] = {
  0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
  0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

static const guint8 retry_key_v1[] = {
  0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
};

gboolean
wzp_crypto_init (void)
{
  static gsize done = 0;
  static gboolean ok = FALSE;

  if (g_once_init_enter (&done)) {
    suites[SUITE_AES128] = (WzpCryptoSuite) { 0x03001301, EVP_CIPHER_fetch (NULL, "AES-128-GCM", NULL),
      EVP_CIPHER_fetch (NULL, "AES-128-ECB", NULL), EVP_MD_fetch (NULL, "SHA256", NULL), 16,
      1ULL << 23, 1ULL << 52 };
    suites[SUITE_AES256] = (WzpCryptoSuite) { 0x03001302, EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL),
      EVP_CIPHER_fetch (NULL, "AES-256-ECB", NULL), EVP_MD_fetch (NULL, "SHA384", NULL), 32,
      1ULL << 23, 1ULL << 52 };
    suites[SUITE_CHACHA] = (WzpCryptoSuite) { 0x03001303,
      EVP_CIPHER_fetch (NULL, "ChaCha20-Poly1305", NULL), EVP_CIPHER_fetch (NULL, "ChaCha20", NULL),
      EVP_MD_fetch (NULL, "SHA256", NULL), 32, 1ULL << 62, 1ULL << 36 };
    hkdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
    /* WZP_PACKET_CRYPTO=openssl keeps every packet on OpenSSL (a test
     * crosses the two implementations with it) */
    sodium_gcm = sodium_init () >= 0 && crypto_aead_aes256gcm_is_available () &&
        g_strcmp0 (g_getenv ("WZP_PACKET_CRYPTO"), "openssl") != 0;
    ok = hkdf != NULL;
    for (guint i = 0; i < N_SUITES; i++)
      ok = ok && suites[i].aead && suites[i].hp && suites[i].md;
    if (!ok)
      g_critical ("OpenSSL lacks a cipher QUIC needs (AES-GCM, ChaCha20-Poly1305, HKDF)");
    g_once_init_leave (&done, 1);
  }
  return ok;
}

const WzpCryptoSuite *
wzp_crypto_suite_by_tls_id (guint32 id)
{
  for (guint i = 0; i < N_SUITES; i++)
    if (suites[i].id == id)
      return &suites[i];
  return NULL;
}

const WzpCryptoSuite *
wzp_crypto_suite_of_ctx (const ngtcp2_crypto_ctx *c)
{
  for (guint i = 0; c && i < N_SUITES; i++)
    if (c->aead.native_handle == suites[i].aead)
      return &suites[i];
  return NULL;
}

const WzpCryptoSuite *
wzp_crypto_initial_suite (void)
{
  return &suites[SUITE_AES128];
}

void
wzp_crypto_suite_to_ngtcp2 (const WzpCryptoSuite *s, ngtcp2_crypto_ctx *ctx)
{
  memset (ctx, 0, sizeof *ctx);
  ctx->aead.native_handle = s->aead;
  ctx->aead.max_overhead = TAG_LEN;
  ctx->md.native_handle = s->md;
  ctx->hp.native_handle = s->hp;
  ctx->max_encryption = s->max_encryption;
  ctx->max_decryption_failure = s->max_decryption_failure;
}

/* ---- HKDF ------------------------------------------------------------------ */

static gboolean
hkdf_run (const EVP_MD *md, const gchar *mode, const guint8 *key, gsize keylen,
          const guint8 *salt, gsize saltlen, const guint8 *info, gsize infolen,
          guint8 *out, gsize outlen)
{
  EVP_KDF_CTX *kctx = EVP_KDF_CTX_new (hkdf);
  OSSL_PARAM params[6], *p = params;
  gboolean ok;

  if (kctx == NULL)
    return FALSE;
  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_MODE, (char *) mode, 0);
  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, (char *) EVP_MD_get0_name (md), 0);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) key, keylen);
  if (salt)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) salt, saltlen);
  if (info)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info, infolen);
  *p = OSSL_PARAM_construct_end ();
  ok = EVP_KDF_derive (kctx, out, outlen, params) == 1;
  EVP_KDF_CTX_free (kctx);
  return ok;
}

static gboolean
expand_label (const EVP_MD *md, const guint8 *secret, gsize secretlen, const gchar *label,
              guint8 *out, gsize outlen)
{
  guint8 info[2 + 1 + 255 + 1];
  gsize l = strlen (label), n = 0;

  info[n++] = (guint8) (outlen >> 8);
  info[n++] = (guint8) outlen;
  info[n++] = (guint8) (6 + l);
  memcpy (info + n, "tls13 ", 6);
  n += 6;
  memcpy (info + n, label, l);
  n += l;
  info[n++] = 0;
  return hkdf_run (md, "EXPAND_ONLY", secret, secretlen, NULL, 0, info, n, out, outlen);
}

gboolean
wzp_crypto_expand_label (const WzpCryptoSuite *s, const guint8 *secret, gsize secretlen,
                         const gchar *label, guint8 *out, gsize outlen)
{
  return expand_label (s->md, secret, secretlen, label, out, outlen);
}

/* ---- AEAD and header-protection contexts --------------------------------- */

static EVP_CIPHER_CTX *
aead_ctx_new (const EVP_CIPHER *cipher, const guint8 *key, gboolean encrypt)
{
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new ();

  if (ctx == NULL ||
      EVP_CipherInit_ex (ctx, cipher, NULL, NULL, NULL, encrypt) != 1 ||
      EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_AEAD_SET_IVLEN, IV_LEN, NULL) != 1 ||
      EVP_CipherInit_ex (ctx, NULL, NULL, key, NULL, encrypt) != 1) {
    EVP_CIPHER_CTX_free (ctx);
    return NULL;
  }
  return ctx;
}

/* A packet protection context: libsodium's precomputed AES-256-GCM state
 * where it can (AES-256-GCM is what OpenSSL and rustls clients offer first;
 * per packet, it skips the EVP layer's re-initialisation for each nonce),
 * else an EVP context. */
typedef struct {
  EVP_CIPHER_CTX *evp;
  crypto_aead_aes256gcm_state *gcm;     /* 16-byte aligned */
  /* Keys of the next key phase, which ngtcp2 derives ahead and a connection
   * may never use: libsodium's state is expanded from this key at first
   * use. An idle relay connection saves two of them. */
  gboolean deferred;
  guint8 key[32];
} Aead;

static void
aead_free (Aead *a)
{
  if (a == NULL)
    return;
  EVP_CIPHER_CTX_free (a->evp);
  if (a->gcm) {
    sodium_memzero (a->gcm, sizeof *a->gcm);
    g_aligned_free (a->gcm);
  }
  sodium_memzero (a->key, sizeof a->key);
  g_free (a);
}

static void
aead_expand (Aead *a)
{
  a->gcm = g_aligned_alloc (1, sizeof *a->gcm, 16);
  crypto_aead_aes256gcm_beforenm (a->gcm, a->key);
  sodium_memzero (a->key, sizeof a->key);
  a->deferred = FALSE;
}

static Aead *
aead_new (const EVP_CIPHER *cipher, const guint8 *key, gboolean encrypt, gboolean defer)
{
  Aead *a = g_new0 (Aead, 1);

  if (cipher == suites[SUITE_AES256].aead && sodium_gcm) {
    memcpy (a->key, key, sizeof a->key);
    a->deferred = TRUE;
    if (!defer)
      aead_expand (a);
    return a;
  }
  a->evp = aead_ctx_new (cipher, key, encrypt);
  if (a->evp == NULL) {
    aead_free (a);
    return NULL;
  }
  return a;
}

/* A header-protection context: one 16-byte sample per packet through
 * AES-ECB or ChaCha20, on an EVP context made once per key. */
static EVP_CIPHER_CTX *
hp_new (const EVP_CIPHER *cipher, const guint8 *key)
{
  EVP_CIPHER_CTX *h = EVP_CIPHER_CTX_new ();

  if (h == NULL || EVP_EncryptInit_ex (h, cipher, NULL, key, NULL) != 1) {
    EVP_CIPHER_CTX_free (h);
    return NULL;
  }
  EVP_CIPHER_CTX_set_padding (h, 0);
  return h;
}

gboolean
wzp_crypto_keys_derive (const WzpCryptoSuite *s, const guint8 *secret, gsize secretlen,
                        gboolean encrypt, gboolean with_hp, WzpPacketKeys *k)
{
  guint8 key[WZP_CRYPTO_MAX_KEY], hp[WZP_CRYPTO_MAX_KEY];
  gboolean ok;

  memset (k, 0, sizeof *k);
  ok = expand_label (s->md, secret, secretlen, "quic key", key, s->keylen) &&
      expand_label (s->md, secret, secretlen, "quic iv", k->iv, IV_LEN) &&
      (!with_hp || expand_label (s->md, secret, secretlen, "quic hp", hp, s->keylen));
  if (ok) {
    /* keys without header protection are the next key phase's */
    k->aead.native_handle = aead_new (s->aead, key, encrypt, !with_hp);
    k->hp.native_handle = with_hp ? hp_new (s->hp, hp) : NULL;
    ok = k->aead.native_handle && (!with_hp || k->hp.native_handle);
  }
  OPENSSL_cleanse (key, sizeof key);
  OPENSSL_cleanse (hp, sizeof hp);
  if (!ok)
    wzp_crypto_keys_free (k);
  return ok;
}

void
wzp_crypto_keys_free (WzpPacketKeys *k)
{
  wzp_crypto_aead_ctx_free (&k->aead);
  wzp_crypto_cipher_ctx_free (&k->hp);
  memset (k, 0, sizeof *k);
}

gboolean
wzp_crypto_initial_keys (const ngtcp2_cid *dcid, gboolean server, WzpPacketKeys *rx,
                         WzpPacketKeys *tx)
{
  const WzpCryptoSuite *s = &suites[SUITE_AES128];
  guint8 initial[32], client_secret[32], server_secret[32];
  gboolean ok;

  ok = wzp_crypto_init () &&
      hkdf_run (s->md, "EXTRACT_ONLY", dcid->data, dcid->datalen, initial_salt_v1,
                sizeof initial_salt_v1, NULL, 0, initial, sizeof initial) &&
      expand_label (s->md, initial, 32, "client in", client_secret, 32) &&
      expand_label (s->md, initial, 32, "server in", server_secret, 32) &&
      wzp_crypto_keys_derive (s, server ? client_secret : server_secret, 32, FALSE, TRUE, rx);
  if (ok && !wzp_crypto_keys_derive (s, server ? server_secret : client_secret, 32, TRUE, TRUE, tx)) {
    wzp_crypto_keys_free (rx);
    ok = FALSE;
  }
  OPENSSL_cleanse (initial, 32);
  OPENSSL_cleanse (client_secret, 32);
  OPENSSL_cleanse (server_secret, 32);
  return ok;
}

/* ---- per packet ---------------------------------------------------------- */

int
wzp_crypto_seal (uint8_t *dest, const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
                 size_t plaintextlen, const uint8_t *nonce, const uint8_t *aad, size_t aadlen)
{
  Aead *a = aead_ctx->native_handle;
  EVP_CIPHER_CTX *ctx = a->evp;
  int len = 0, fin = 0;

  if (G_UNLIKELY (a->deferred))
    aead_expand (a);
  if (a->gcm)
    return crypto_aead_aes256gcm_encrypt_detached_afternm (dest, dest + plaintextlen, NULL,
                                                           plaintext, plaintextlen, aad, aadlen,
                                                           NULL, nonce, a->gcm) == 0 ?
        0 : NGTCP2_ERR_CALLBACK_FAILURE;
  if (EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, nonce) != 1 ||
      EVP_EncryptUpdate (ctx, NULL, &len, aad, (int) aadlen) != 1 ||
      EVP_EncryptUpdate (ctx, dest, &len, plaintext, (int) plaintextlen) != 1 ||
      EVP_EncryptFinal_ex (ctx, dest + len, &fin) != 1 ||
      EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, dest + plaintextlen) != 1)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return 0;
}

int
wzp_crypto_open (uint8_t *dest, const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
                 size_t ciphertextlen, const uint8_t *nonce, const uint8_t *aad, size_t aadlen)
{
  Aead *a = aead_ctx->native_handle;
  EVP_CIPHER_CTX *ctx = a->evp;
  size_t n;
  int len = 0, fin = 0;

  if (ciphertextlen < TAG_LEN)
    return NGTCP2_ERR_DECRYPT;
  n = ciphertextlen - TAG_LEN;
  if (G_UNLIKELY (a->deferred))
    aead_expand (a);
  if (a->gcm)
    return crypto_aead_aes256gcm_decrypt_detached_afternm (dest, NULL, ciphertext, n,
                                                           ciphertext + n, aad, aadlen, nonce,
                                                           a->gcm) == 0 ? 0 : NGTCP2_ERR_DECRYPT;
  if (EVP_DecryptInit_ex (ctx, NULL, NULL, NULL, nonce) != 1 ||
      EVP_CIPHER_CTX_ctrl (ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, (guint8 *) ciphertext + n) != 1 ||
      EVP_DecryptUpdate (ctx, NULL, &len, aad, (int) aadlen) != 1 ||
      EVP_DecryptUpdate (ctx, dest, &len, ciphertext, (int) n) != 1 ||
      EVP_DecryptFinal_ex (ctx, dest + len, &fin) != 1)
    return NGTCP2_ERR_DECRYPT;
  return 0;
}

int
wzp_crypto_hp_mask (uint8_t *dest, const ngtcp2_crypto_cipher *hp,
                    const ngtcp2_crypto_cipher_ctx *hp_ctx, const uint8_t *sample)
{
  static const guint8 zeros[NGTCP2_HP_MASKLEN];
  EVP_CIPHER_CTX *ctx = hp_ctx->native_handle;
  guint8 out[32];
  int len = 0;

  if (hp->native_handle == suites[SUITE_CHACHA].hp) {
    /* the sample is ChaCha20's counter || nonce */
    if (EVP_EncryptInit_ex (ctx, NULL, NULL, NULL, sample) != 1 ||
        EVP_EncryptUpdate (ctx, out, &len, zeros, sizeof zeros) != 1)
      return NGTCP2_ERR_CALLBACK_FAILURE;
  } else if (EVP_EncryptUpdate (ctx, out, &len, sample, NGTCP2_HP_SAMPLELEN) != 1) {
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  memcpy (dest, out, NGTCP2_HP_MASKLEN);
  return 0;
}

void
wzp_crypto_aead_ctx_free (ngtcp2_crypto_aead_ctx *ctx)
{
  aead_free (ctx->native_handle);
  ctx->native_handle = NULL;
}

void
wzp_crypto_cipher_ctx_free (ngtcp2_crypto_cipher_ctx *ctx)
{
  EVP_CIPHER_CTX_free (ctx->native_handle);
  ctx->native_handle = NULL;
}

void
wzp_crypto_prefetch_ranges (const ngtcp2_crypto_aead_ctx *aead, const ngtcp2_crypto_cipher_ctx *hp,
                            WzpCryptoRange out[WZP_CRYPTO_PREFETCH])
{
  const Aead *a = aead->native_handle;

  memset (out, 0, WZP_CRYPTO_PREFETCH * sizeof *out);
  if (a) {
    out[0] = (WzpCryptoRange) { a, sizeof *a };
    if (a->gcm)
      out[1] = (WzpCryptoRange) { a->gcm, sizeof *a->gcm };
    else if (a->evp)
      out[1] = (WzpCryptoRange) { a->evp, 1 };
  }
  if (hp->native_handle)
    out[2] = (WzpCryptoRange) { hp->native_handle, 1 };
}

gboolean
wzp_crypto_retry_aead (ngtcp2_crypto_aead *aead, ngtcp2_crypto_aead_ctx *ctx)
{
  if (!wzp_crypto_init ())
    return FALSE;
  memset (aead, 0, sizeof *aead);
  aead->native_handle = suites[SUITE_AES128].aead;
  aead->max_overhead = TAG_LEN;
  ctx->native_handle = aead_new (suites[SUITE_AES128].aead, retry_key_v1, TRUE, FALSE);
  return ctx->native_handle != NULL;
}

/* ---- TLS record protection ----------------------------------------------- */

struct _WzpRecordKeys {
  EVP_CIPHER_CTX *ctx;
  guint8 iv[IV_LEN];
  guint64 seq;
};

WzpRecordKeys *
wzp_crypto_record_keys_new (const WzpCryptoSuite *s, const guint8 *secret, gsize len)
{
  WzpRecordKeys *r = g_new0 (WzpRecordKeys, 1);
  guint8 key[WZP_CRYPTO_MAX_KEY];

  if (expand_label (s->md, secret, len, "key", key, s->keylen) &&
      expand_label (s->md, secret, len, "iv", r->iv, IV_LEN))
    r->ctx = aead_ctx_new (s->aead, key, TRUE);
  OPENSSL_cleanse (key, sizeof key);
  if (r->ctx == NULL) {
    wzp_crypto_record_keys_free (r);
    return NULL;
  }
  return r;
}

gboolean
wzp_crypto_record_seal (WzpRecordKeys *r, guint8 *rec, gsize inner)
{
  guint8 nonce[IV_LEN];
  int outl = 0, finl = 0;

  memcpy (nonce, r->iv, IV_LEN);
  for (guint i = 0; i < 8; i++)
    nonce[IV_LEN - 1 - i] ^= (guint8) (r->seq >> (8 * i));
  r->seq++;
  return EVP_EncryptInit_ex (r->ctx, NULL, NULL, NULL, nonce) == 1 &&
      EVP_EncryptUpdate (r->ctx, NULL, &outl, rec, 5) == 1 &&
      EVP_EncryptUpdate (r->ctx, rec + 5, &outl, rec + 5, (int) inner) == 1 &&
      EVP_EncryptFinal_ex (r->ctx, rec + 5 + outl, &finl) == 1 &&
      EVP_CIPHER_CTX_ctrl (r->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, rec + 5 + inner) == 1;
}

void
wzp_crypto_record_keys_free (WzpRecordKeys *r)
{
  if (r == NULL)
    return;
  EVP_CIPHER_CTX_free (r->ctx);
  OPENSSL_cleanse (r, sizeof *r);
  g_free (r);
}

/* ---- randomness and tokens ----------------------------------------------- */

void
wzp_crypto_random (guint8 *out, gsize len)
{
  if (RAND_bytes (out, (int) len) != 1)
    g_error ("OpenSSL's random generator failed");
}

void
wzp_crypto_stateless_reset_token (const guint8 secret[32], const guint8 *cid, gsize cidlen,
                                  guint8 token[NGTCP2_STATELESS_RESET_TOKENLEN])
{
  guint8 mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;

  HMAC (EVP_sha256 (), secret, 32, cid, cidlen, mac, &maclen);
  memcpy (token, mac, NGTCP2_STATELESS_RESET_TOKENLEN);
}
