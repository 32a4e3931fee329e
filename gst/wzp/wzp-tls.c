/* wzp-tls: QUIC's TLS 1.3 on stock OpenSSL 3.0 (see wzp-tls.h), and the
 * crypto callbacks ngtcp2 needs, over OpenSSL EVP (AES-256-GCM packet
 * protection over libsodium where the CPU has AES-NI). */
#define G_LOG_DOMAIN "wzp-tls"

#include "wzp-tls.h"
#include "wzp-util.h"

#include <string.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AESNI 1
#endif

G_DEFINE_QUARK (wzp-tls-error-quark, wzp_tls_error)

#define TP_EXTENSION 0x39
#define TP_MAX 512              /* our encoded transport parameters */
#define TAG_LEN 16
#define IV_LEN 12
#define MAX_SECRET 64
#define RECORD_CHUNK 16384
#define ALERT_UNEXPECTED_MESSAGE 10
#define ALERT_MISSING_EXTENSION 109
#define ALERT_NO_APPLICATION_PROTOCOL 120
#define TLS_NEW_SESSION_TICKET 4     /* handshake message types */
#define TLS_KEY_UPDATE 24

/* ---- cipher suites ------------------------------------------------------- */

typedef struct {
  guint32 id;                 /* SSL_CIPHER_get_id() */
  EVP_CIPHER *aead;
  EVP_CIPHER *hp;
  EVP_MD *md;
  gsize keylen;
  guint64 max_encryption;
  guint64 max_decryption_failure;
} Suite;

enum { SUITE_AES128, SUITE_AES256, SUITE_CHACHA, N_SUITES };

static Suite suites[N_SUITES];
static EVP_KDF *hkdf;
static gboolean sodium_gcm;     /* libsodium's AES-256-GCM runs on this CPU */
#ifdef HAVE_AESNI
static gboolean aesni_hp;       /* header protection with the AES instructions */
static gboolean aesni_known_answers (void);
#endif

static gboolean
ensure_crypto (void)
{
  static gsize done = 0;
  static gboolean ok = FALSE;

  if (g_once_init_enter (&done)) {
    suites[SUITE_AES128] = (Suite) { 0x03001301, EVP_CIPHER_fetch (NULL, "AES-128-GCM", NULL),
      EVP_CIPHER_fetch (NULL, "AES-128-ECB", NULL), EVP_MD_fetch (NULL, "SHA256", NULL), 16,
      1ULL << 23, 1ULL << 52 };
    suites[SUITE_AES256] = (Suite) { 0x03001302, EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL),
      EVP_CIPHER_fetch (NULL, "AES-256-ECB", NULL), EVP_MD_fetch (NULL, "SHA384", NULL), 32,
      1ULL << 23, 1ULL << 52 };
    suites[SUITE_CHACHA] = (Suite) { 0x03001303, EVP_CIPHER_fetch (NULL, "ChaCha20-Poly1305", NULL),
      EVP_CIPHER_fetch (NULL, "ChaCha20", NULL), EVP_MD_fetch (NULL, "SHA256", NULL), 32,
      1ULL << 62, 1ULL << 36 };
    hkdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
    /* WZP_PACKET_CRYPTO=openssl keeps every packet on OpenSSL (a test
     * crosses the two implementations with it) */
    sodium_gcm = sodium_init () >= 0 && crypto_aead_aes256gcm_is_available () &&
        g_strcmp0 (g_getenv ("WZP_PACKET_CRYPTO"), "openssl") != 0;
#ifdef HAVE_AESNI
    aesni_hp = __builtin_cpu_supports ("aes") &&
        g_strcmp0 (g_getenv ("WZP_PACKET_CRYPTO"), "openssl") != 0;
    if (aesni_hp && !aesni_known_answers ()) {
      g_critical ("AES-NI header protection fails FIPS 197's known answers; using OpenSSL");
      aesni_hp = FALSE;
    }
#endif
    ok = hkdf != NULL;
    for (guint i = 0; i < N_SUITES; i++)
      ok = ok && suites[i].aead && suites[i].hp && suites[i].md;
    if (!ok)
      g_critical ("OpenSSL lacks a cipher QUIC needs (AES-GCM, ChaCha20-Poly1305, HKDF)");
    g_once_init_leave (&done, 1);
  }
  return ok;
}

static const Suite *
suite_for_cipher (const SSL_CIPHER *cipher)
{
  guint32 id = cipher ? SSL_CIPHER_get_id (cipher) : 0;

  for (guint i = 0; i < N_SUITES; i++)
    if (suites[i].id == id)
      return &suites[i];
  return NULL;
}

static void
suite_to_ngtcp2 (const Suite *s, ngtcp2_crypto_ctx *ctx)
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

/* RFC 8446 §7.1 HKDF-Expand-Label with an empty context. */
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
 * per packet, it skips the EVP layer's re-initialisation for each nonce,
 * half of what sealing a small packet costs there), else an EVP context. */
typedef struct {
  EVP_CIPHER_CTX *evp;
  crypto_aead_aes256gcm_state *gcm;     /* 16-byte aligned */
  /* Keys of the next key phase, which ngtcp2 derives ahead and a connection
   * may never use: libsodium's state (512 bytes) is expanded from this key
   * at first use. An idle relay connection saves two of them. */
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
 * AES-ECB (or ChaCha20). With AES-NI the round keys live here and the block
 * goes through the AES instructions; EVP reaches the same instructions
 * through three allocations (context, provider context, key schedule) that
 * are cold by the next packet of a connection, which cost as much as the
 * AEAD. ChaCha20, and CPUs without AES-NI, keep the EVP context. */
typedef struct {
  guint8 rk[15][16];            /* AES round keys */
  guint rounds;                 /* 10 or 14 with AES-NI, else 0 */
  EVP_CIPHER_CTX *evp;
} Hp;

#ifdef HAVE_AESNI
__attribute__ ((target ("aes"))) static inline __m128i
aes_expand (__m128i key, __m128i assist)
{
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  key = _mm_xor_si128 (key, _mm_slli_si128 (key, 4));
  return _mm_xor_si128 (key, assist);
}

/* FIPS 197 key expansion, with the AES-NI key-generation assist */
__attribute__ ((target ("aes"))) static void
aesni_key (Hp *h, const guint8 *key, gsize keylen)
{
  __m128i k[15];

#define NEXT128(i, rcon) \
  k[i] = aes_expand (k[i - 1], _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (k[i - 1], rcon), 0xff))
#define NEXT256(i, rcon) \
  k[i] = aes_expand (k[i - 2], _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (k[i - 1], rcon), 0xff)); \
  if (i < 14) \
    k[i + 1] = aes_expand (k[i - 1], _mm_shuffle_epi32 (_mm_aeskeygenassist_si128 (k[i], 0), 0xaa))
  k[0] = _mm_loadu_si128 ((const __m128i *) key);
  if (keylen == 16) {
    NEXT128 (1, 0x01); NEXT128 (2, 0x02); NEXT128 (3, 0x04); NEXT128 (4, 0x08);
    NEXT128 (5, 0x10); NEXT128 (6, 0x20); NEXT128 (7, 0x40); NEXT128 (8, 0x80);
    NEXT128 (9, 0x1b); NEXT128 (10, 0x36);
    h->rounds = 10;
  } else {
    k[1] = _mm_loadu_si128 ((const __m128i *) (key + 16));
    NEXT256 (2, 0x01); NEXT256 (4, 0x02); NEXT256 (6, 0x04); NEXT256 (8, 0x08);
    NEXT256 (10, 0x10); NEXT256 (12, 0x20); NEXT256 (14, 0x40);
    h->rounds = 14;
  }
#undef NEXT128
#undef NEXT256
  for (guint i = 0; i <= h->rounds; i++)
    _mm_storeu_si128 ((__m128i *) h->rk[i], k[i]);
  sodium_memzero (k, sizeof k);
}

__attribute__ ((target ("aes"))) static void
aesni_block (const Hp *h, const guint8 *in, guint8 *out)
{
  __m128i x = _mm_xor_si128 (_mm_loadu_si128 ((const __m128i *) in),
                             _mm_loadu_si128 ((const __m128i *) h->rk[0]));

  for (guint i = 1; i < h->rounds; i++)
    x = _mm_aesenc_si128 (x, _mm_loadu_si128 ((const __m128i *) h->rk[i]));
  x = _mm_aesenclast_si128 (x, _mm_loadu_si128 ((const __m128i *) h->rk[h->rounds]));
  _mm_storeu_si128 ((__m128i *) out, x);
}
#endif

#ifdef HAVE_AESNI
/* FIPS 197 appendix C.1 and C.3: the AES instructions path gives the
 * standard's answers, or header protection stays on EVP */
static gboolean
aesni_known_answers (void)
{
  static const guint8 want128[16] = { 0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
                                      0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a };
  static const guint8 want256[16] = { 0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf,
                                      0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49, 0x60, 0x89 };
  guint8 key[32], pt[16], out[16];
  Hp h = { 0 };
  gboolean ok;

  for (guint i = 0; i < 32; i++)
    key[i] = (guint8) i;
  for (guint i = 0; i < 16; i++)
    pt[i] = (guint8) (i * 0x11);
  aesni_key (&h, key, 16);
  aesni_block (&h, pt, out);
  ok = memcmp (out, want128, 16) == 0;
  aesni_key (&h, key, 32);
  aesni_block (&h, pt, out);
  ok = ok && memcmp (out, want256, 16) == 0;
  sodium_memzero (&h, sizeof h);
  return ok;
}
#endif

static void
hp_free (Hp *h)
{
  if (h == NULL)
    return;
  EVP_CIPHER_CTX_free (h->evp);
  sodium_memzero (h, sizeof *h);
  g_free (h);
}

static Hp *
hp_new (const EVP_CIPHER *cipher, const guint8 *key)
{
  Hp *h = g_new0 (Hp, 1);

#ifdef HAVE_AESNI
  if (aesni_hp && cipher != suites[SUITE_CHACHA].hp) {
    aesni_key (h, key, (gsize) EVP_CIPHER_get_key_length (cipher));
    return h;
  }
#endif
  h->evp = EVP_CIPHER_CTX_new ();
  if (h->evp == NULL || EVP_EncryptInit_ex (h->evp, cipher, NULL, key, NULL) != 1) {
    hp_free (h);
    return NULL;
  }
  EVP_CIPHER_CTX_set_padding (h->evp, 0);
  return h;
}

/* The QUIC packet protection of one direction derived from @secret. */
typedef struct {
  ngtcp2_crypto_aead_ctx aead;
  ngtcp2_crypto_cipher_ctx hp;
  guint8 iv[IV_LEN];
} Keys;

static gboolean
keys_derive (const Suite *s, const guint8 *secret, gsize secretlen, gboolean encrypt,
             gboolean with_hp, Keys *k)
{
  guint8 key[32], hp[32];
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
  if (!ok) {
    aead_free (k->aead.native_handle);
    hp_free (k->hp.native_handle);
    memset (k, 0, sizeof *k);
  }
  return ok;
}

static void
keys_free (Keys *k)
{
  aead_free (k->aead.native_handle);
  hp_free (k->hp.native_handle);
  memset (k, 0, sizeof *k);
}

/* ---- sessions ------------------------------------------------------------ */

struct _WzpTlsContext {
  gint ref_count;
  SSL_CTX *ssl_ctx;
  gboolean server;
  X509 *cert;
  EVP_PKEY *pkey;
  gchar fingerprint[WZP_TLS_FINGERPRINT_STRLEN];
};

struct _WzpTlsSession {
  WzpTlsContext *ctx;
  SSL *ssl;
  ngtcp2_conn *conn;
  gboolean server;
  ngtcp2_encryption_level write_level;
  /* OpenSSL reads the peer's CRYPTO data as TLS records protected with the
   * peer's current secret: this is that record protection. */
  EVP_CIPHER_CTX *record;
  guint8 record_iv[IV_LEN];
  guint64 record_seq;
  gboolean crypto_ctx_set;
  gboolean got_transport_params;
  gboolean handshake_done;
  gboolean failed;
  /* post-handshake messages: the header being read, the body left to skip */
  guint8 post_header[4];
  guint post_header_len;
  guint32 post_body_left;
  gchar *sni;
  gchar *peer_fp;
  gchar *error;
  WzpTlsHot *hot;               /* wzp_tls_session_set_hot() */
};

static int session_index = -1;

void
wzp_tls_session_set_hot (WzpTlsSession *s, WzpTlsHot *hot)
{
  s->hot = hot;
}

/* Names the state of a direction's new 1-RTT keys in s->hot. */
static void
hot_name (WzpTlsSession *s, gboolean write, const Aead *a, const Hp *h)
{
  WzpTlsHot *hot = s->hot ? s->hot + (write ? WZP_TLS_HOT_KEYS / 2 : 0) : NULL;

  if (hot == NULL)
    return;
  hot[0] = (WzpTlsHot) { a, sizeof *a };
  hot[1] = (WzpTlsHot) { a->gcm, a->gcm ? sizeof *a->gcm : 0 };
  hot[2] = (WzpTlsHot) { h, sizeof *h };
}

/* Forgets state at @addr, which is being freed. */
static void
hot_forget (ngtcp2_conn *conn, gconstpointer addr)
{
  WzpTlsSession *s = conn ? ngtcp2_conn_get_tls_native_handle (conn) : NULL;

  for (guint i = 0; addr && s && s->hot && i < WZP_TLS_HOT_KEYS; i++)
    if (s->hot[i].addr == addr)
      s->hot[i] = (WzpTlsHot) { NULL, 0 };
}

static void G_GNUC_PRINTF (2, 3)
session_fail (WzpTlsSession *s, const gchar *fmt, ...)
{
  va_list ap;

  s->failed = TRUE;
  if (s->error)
    return;
  va_start (ap, fmt);
  s->error = g_strdup_vprintf (fmt, ap);
  va_end (ap);
}

static WzpTlsSession *
session_of_ssl (const SSL *ssl)
{
  return SSL_get_ex_data (ssl, session_index);
}

static gboolean
install_secret (WzpTlsSession *s, ngtcp2_encryption_level level, gboolean write,
                const guint8 *secret, gsize len)
{
  const Suite *suite = suite_for_cipher (SSL_get_current_cipher (s->ssl));
  Keys k;
  int rv;

  if (suite == NULL)
    suite = suite_for_cipher (SSL_get_pending_cipher (s->ssl));
  if (suite == NULL || len > MAX_SECRET) {
    session_fail (s, "TLS negotiated a cipher suite QUIC cannot use");
    return FALSE;
  }
  if (!s->crypto_ctx_set) {
    ngtcp2_crypto_ctx cctx;
    suite_to_ngtcp2 (suite, &cctx);
    ngtcp2_conn_set_crypto_ctx (s->conn, &cctx);
    s->crypto_ctx_set = TRUE;
  }
  if (!keys_derive (suite, secret, len, write, TRUE, &k)) {
    session_fail (s, "cannot derive QUIC packet keys");
    return FALSE;
  }
  if (level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE)
    rv = write ? ngtcp2_conn_install_tx_handshake_key (s->conn, &k.aead, k.iv, IV_LEN, &k.hp) :
        ngtcp2_conn_install_rx_handshake_key (s->conn, &k.aead, k.iv, IV_LEN, &k.hp);
  else
    rv = write ? ngtcp2_conn_install_tx_key (s->conn, secret, len, &k.aead, k.iv, IV_LEN, &k.hp) :
        ngtcp2_conn_install_rx_key (s->conn, secret, len, &k.aead, k.iv, IV_LEN, &k.hp);
  if (rv != 0) {
    keys_free (&k);
    session_fail (s, "ngtcp2 refused a key: %s", ngtcp2_strerror (rv));
    return FALSE;
  }
  if (level == NGTCP2_ENCRYPTION_LEVEL_1RTT)
    hot_name (s, write, k.aead.native_handle, k.hp.native_handle);
  if (write) {
    s->write_level = level;
  } else {
    /* the record protection OpenSSL expects for what the peer sends next */
    guint8 key[32];
    gboolean ok = expand_label (suite->md, secret, len, "key", key, suite->keylen) &&
        expand_label (suite->md, secret, len, "iv", s->record_iv, IV_LEN);

    EVP_CIPHER_CTX_free (s->record);
    s->record = ok ? aead_ctx_new (suite->aead, key, TRUE) : NULL;
    s->record_seq = 0;
    OPENSSL_cleanse (key, sizeof key);
    if (s->record == NULL) {
      session_fail (s, "cannot derive TLS record keys");
      return FALSE;
    }
  }
  return TRUE;
}

static void
keylog_cb (const SSL *ssl, const char *line)
{
  static const struct { const gchar *label; ngtcp2_encryption_level level; gboolean client; } labels[] = {
    { "CLIENT_HANDSHAKE_TRAFFIC_SECRET", NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE, TRUE },
    { "SERVER_HANDSHAKE_TRAFFIC_SECRET", NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE, FALSE },
    { "CLIENT_TRAFFIC_SECRET_0", NGTCP2_ENCRYPTION_LEVEL_1RTT, TRUE },
    { "SERVER_TRAFFIC_SECRET_0", NGTCP2_ENCRYPTION_LEVEL_1RTT, FALSE },
  };
  WzpTlsSession *s = session_of_ssl (ssl);
  g_auto (GStrv) parts = NULL;
  guint8 secret[MAX_SECRET];
  gsize len;

  if (s == NULL || s->failed)
    return;
  parts = g_strsplit (line, " ", 3);
  if (g_strv_length (parts) != 3)
    return;
  len = strlen (parts[2]) / 2;
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++) {
    if (strcmp (parts[0], labels[i].label) != 0)
      continue;
    if (len > MAX_SECRET || !wzp_hex_decode_exact (parts[2], secret, len)) {
      session_fail (s, "unexpected TLS secret format from OpenSSL");
      return;
    }
    /* our own secrets protect what we write */
    install_secret (s, labels[i].level, labels[i].client != s->server, secret, len);
    OPENSSL_cleanse (secret, sizeof secret);
    OPENSSL_cleanse (parts[2], strlen (parts[2]));
    return;
  }
}

static void
message_cb (int write_p, int version, int content_type, const void *buf, size_t len,
            SSL *ssl, void *arg)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  int rv;

  if (!write_p || s == NULL)
    return;
  if (content_type == SSL3_RT_HANDSHAKE) {
    rv = ngtcp2_conn_submit_crypto_data (s->conn, s->write_level, buf, len);
    if (rv != 0)
      session_fail (s, "cannot queue handshake data: %s", ngtcp2_strerror (rv));
  } else if (content_type == SSL3_RT_ALERT && len >= 2) {
    const guint8 *alert = buf;
    ngtcp2_conn_set_tls_alert (s->conn, alert[1]);
    session_fail (s, "TLS alert %u (%s) sent", alert[1], SSL_alert_desc_string_long (alert[1]));
  }
}

static int
tp_add_cb (SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
           size_t *outlen, X509 *x, size_t chainidx, int *al, void *add_arg)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  guint8 *tp;
  ngtcp2_ssize n;

  if (s == NULL)
    return 0;
  /* held only until OpenSSL has copied it into the handshake message */
  tp = g_malloc (TP_MAX);
  n = ngtcp2_conn_encode_local_transport_params (s->conn, tp, TP_MAX);
  if (n < 0) {
    g_free (tp);
    *al = SSL_AD_INTERNAL_ERROR;
    return -1;
  }
  *out = tp;
  *outlen = (size_t) n;
  return 1;
}

static void
tp_free_cb (SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *out,
            void *add_arg)
{
  g_free ((gpointer) out);
}

static int
tp_parse_cb (SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char *in,
             size_t inlen, X509 *x, size_t chainidx, int *al, void *parse_arg)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  int rv;

  if (s == NULL)
    return 0;
  rv = ngtcp2_conn_decode_and_set_remote_transport_params (s->conn, in, inlen);
  if (rv != 0) {
    session_fail (s, "the peer's QUIC transport parameters are invalid: %s", ngtcp2_strerror (rv));
    *al = SSL_AD_ILLEGAL_PARAMETER;
    return 0;
  }
  s->got_transport_params = TRUE;
  return 1;
}

/* Client certificates are only asked for, never required, and any is
 * taken: what matters is its fingerprint, checked by the application. */
static int
accept_any_cert (int preverify_ok, X509_STORE_CTX *store)
{
  return 1;
}

/* The host_name of the ClientHello's server_name extension equals @want. */
gboolean
wzp_tls_sni_is_signalling (const gchar *sni, gsize len)
{
  static const gchar *const names[] = { "_signal", "_probe", "ping", "version" };

  for (guint i = 0; sni && i < G_N_ELEMENTS (names); i++)
    if (len == strlen (names[i]) && g_ascii_strncasecmp (sni, names[i], len) == 0)
      return TRUE;
  return FALSE;
}

/* The server name of a ClientHello, not NUL-terminated; NULL when none. */
static const gchar *
client_hello_sni (SSL *ssl, gsize *len)
{
  const unsigned char *ext;
  size_t extlen, n;

  /* list length (2), then entries: type (1), name length (2), name */
  if (!SSL_client_hello_get0_ext (ssl, TLSEXT_TYPE_server_name, &ext, &extlen) || extlen < 5 ||
      ext[2] != TLSEXT_NAMETYPE_host_name)
    return NULL;
  n = ((size_t) ext[3] << 8) | ext[4];
  if (5 + n > extlen)
    return NULL;
  *len = n;
  return (const gchar *) ext + 5;
}

/* A ClientHello without QUIC transport parameters is not QUIC. A relay
 * dialling "_federation" is asked for its certificate, so that the link is
 * trusted by the key the peer proves it holds (upstream trusts a source IP). */
static int
client_hello_cb (SSL *ssl, int *al, void *arg)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  const unsigned char *ext;
  const gchar *sni;
  size_t len;
  gsize snilen = 0;

  if (!SSL_client_hello_get0_ext (ssl, TP_EXTENSION, &ext, &len)) {
    *al = ALERT_MISSING_EXTENSION;
    return SSL_CLIENT_HELLO_ERROR;
  }
  sni = client_hello_sni (ssl, &snilen);
  if (sni && snilen == 11 && g_ascii_strncasecmp (sni, "_federation", 11) == 0)
    SSL_set_verify (ssl, SSL_VERIFY_PEER, accept_any_cert);
  if (s && wzp_tls_sni_is_signalling (sni, snilen)) {
    /* no media on it: announce ngtcp2's usual acknowledgement delay */
    ngtcp2_transport_params p = *ngtcp2_conn_get_local_transport_params (s->conn);

    p.max_ack_delay = NGTCP2_DEFAULT_MAX_ACK_DELAY;
    ngtcp2_conn_set_local_transport_params (s->conn, &p);
  }
  return SSL_CLIENT_HELLO_SUCCESS;
}

static int
alpn_select_cb (SSL *ssl, const unsigned char **out, unsigned char *outlen,
                const unsigned char *in, unsigned int inlen, void *arg)
{
  for (unsigned int i = 0; i < inlen; i += 1u + in[i]) {
    if (in[i] == 3 && i + 4 <= inlen && memcmp (in + i + 1, "wzp", 3) == 0) {
      *out = in + i + 1;
      *outlen = 3;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static gchar *
openssl_error (void)
{
  unsigned long e = ERR_get_error ();
  gchar buf[256];

  if (e == 0)
    return g_strdup ("unknown TLS error");
  ERR_error_string_n (e, buf, sizeof buf);
  ERR_clear_error ();
  return g_strdup (buf);
}

static SSL_CTX *
ssl_ctx_new (gboolean server, GError **error)
{
  SSL_CTX *ctx;

  if (!ensure_crypto ()) {
    g_set_error_literal (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED,
                         "OpenSSL lacks the ciphers QUIC needs");
    return NULL;
  }
  if (session_index < 0)
    session_index = SSL_get_ex_new_index (0, NULL, NULL, NULL, NULL);
  ctx = SSL_CTX_new (server ? TLS_server_method () : TLS_client_method ());
  if (ctx == NULL) {
    g_autofree gchar *msg = openssl_error ();
    g_set_error (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED, "cannot create a TLS context: %s", msg);
    return NULL;
  }
  SSL_CTX_set_min_proto_version (ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version (ctx, TLS1_3_VERSION);
  /* QUIC has no ChangeCipherSpec, no 0-RTT and we use no tickets */
  SSL_CTX_clear_options (ctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
  SSL_CTX_set_options (ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets (ctx, 0);
  SSL_CTX_set_max_early_data (ctx, 0);
  SSL_CTX_set_session_cache_mode (ctx, SSL_SESS_CACHE_OFF);
  /* record buffers (2 x 16 KiB) only while a flight is being read/written */
  SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Like upstream we accept any certificate; fingerprints are recorded and
   * may be pinned. OpenSSL still checks the CertificateVerify signature. */
  SSL_CTX_set_verify (ctx, SSL_VERIFY_NONE, NULL);
  SSL_CTX_set_keylog_callback (ctx, keylog_cb);
  if (SSL_CTX_add_custom_ext (ctx, TP_EXTENSION,
                              SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_3_ENCRYPTED_EXTENSIONS,
                              tp_add_cb, tp_free_cb, NULL, tp_parse_cb, NULL) != 1) {
    SSL_CTX_free (ctx);
    g_set_error_literal (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED,
                         "cannot register the QUIC transport parameters extension");
    return NULL;
  }
  if (server) {
    SSL_CTX_set_alpn_select_cb (ctx, alpn_select_cb, NULL);
    SSL_CTX_set_client_hello_cb (ctx, client_hello_cb, NULL);
  }
  return ctx;
}

static WzpTlsContext *
context_new (SSL_CTX *ssl_ctx, gboolean server)
{
  WzpTlsContext *c = g_new0 (WzpTlsContext, 1);

  c->ref_count = 1;
  c->ssl_ctx = ssl_ctx;
  c->server = server;
  return c;
}

WzpTlsContext *
wzp_tls_context_new_client (GError **error)
{
  SSL_CTX *ctx = ssl_ctx_new (FALSE, error);

  return ctx ? context_new (ctx, FALSE) : NULL;
}

/* A self-signed certificate like rcgen's default: fixed far validity,
 * serial from the key, SAN "localhost". Deterministic for a given key. */
static X509 *
make_certificate (EVP_PKEY *pkey)
{
  X509 *x = X509_new ();
  X509_NAME *name;
  X509_EXTENSION *ext;
  X509V3_CTX v3;
  guint8 pub[32], digest[32];
  size_t publen = sizeof pub;
  BIGNUM *bn;
  ASN1_INTEGER *serial;

  if (x == NULL)
    return NULL;
  X509_set_version (x, 2);
  EVP_PKEY_get_raw_public_key (pkey, pub, &publen);
  EVP_Digest (pub, publen, digest, NULL, EVP_sha256 (), NULL);
  digest[0] &= 0x7f;
  bn = BN_bin2bn (digest, 16, NULL);
  serial = BN_to_ASN1_INTEGER (bn, NULL);
  X509_set_serialNumber (x, serial);
  ASN1_INTEGER_free (serial);
  BN_free (bn);
  ASN1_TIME_set_string (X509_getm_notBefore (x), "19750101000000Z");
  ASN1_TIME_set_string (X509_getm_notAfter (x), "40960101000000Z");
  name = X509_get_subject_name (x);
  X509_NAME_add_entry_by_txt (name, "CN", MBSTRING_ASC, (const guint8 *) "wzp", -1, -1, 0);
  X509_set_issuer_name (x, name);
  X509_set_pubkey (x, pkey);
  X509V3_set_ctx_nodb (&v3);
  X509V3_set_ctx (&v3, x, x, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid (NULL, &v3, NID_subject_alt_name, "DNS:localhost");
  if (ext == NULL || !X509_add_ext (x, ext, -1) || X509_sign (x, pkey, NULL) == 0) {
    X509_EXTENSION_free (ext);
    X509_free (x);
    return NULL;
  }
  X509_EXTENSION_free (ext);
  return x;
}

static void
cert_fingerprint (X509 *x, gchar out[WZP_TLS_FINGERPRINT_STRLEN])
{
  guint8 *der = NULL;
  int len = i2d_X509 (x, &der);

  if (len <= 0) {
    out[0] = '\0';
    return;
  }
  wzp_tls_fingerprint (der, (gsize) len, out);
  OPENSSL_free (der);
}

WzpTlsContext *
wzp_tls_context_new_server (const guint8 *ed25519_seed, GError **error)
{
  SSL_CTX *ssl_ctx = ssl_ctx_new (TRUE, error);
  guint8 seed[32];
  EVP_PKEY *pkey;
  X509 *cert;
  WzpTlsContext *c;

  if (ssl_ctx == NULL)
    return NULL;
  if (ed25519_seed)
    memcpy (seed, ed25519_seed, 32);
  else
    wzp_tls_random (seed, sizeof seed);
  pkey = EVP_PKEY_new_raw_private_key (EVP_PKEY_ED25519, NULL, seed, 32);
  OPENSSL_cleanse (seed, sizeof seed);
  cert = pkey ? make_certificate (pkey) : NULL;
  if (cert == NULL || SSL_CTX_use_certificate (ssl_ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey (ssl_ctx, pkey) != 1) {
    g_autofree gchar *msg = openssl_error ();
    g_set_error (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED,
                 "cannot make the TLS certificate: %s", msg);
    X509_free (cert);
    EVP_PKEY_free (pkey);
    SSL_CTX_free (ssl_ctx);
    return NULL;
  }
  c = context_new (ssl_ctx, TRUE);
  c->cert = cert;
  c->pkey = pkey;
  cert_fingerprint (cert, c->fingerprint);
  return c;
}

gboolean
wzp_tls_context_use_identity_of (WzpTlsContext *client, WzpTlsContext *server)
{
  if (server->cert == NULL || server->pkey == NULL)
    return FALSE;
  return SSL_CTX_use_certificate (client->ssl_ctx, server->cert) == 1 &&
         SSL_CTX_use_PrivateKey (client->ssl_ctx, server->pkey) == 1;
}

WzpTlsContext *
wzp_tls_context_ref (WzpTlsContext *ctx)
{
  g_atomic_int_inc (&ctx->ref_count);
  return ctx;
}

void
wzp_tls_context_unref (WzpTlsContext *ctx)
{
  if (ctx && g_atomic_int_dec_and_test (&ctx->ref_count)) {
    SSL_CTX_free (ctx->ssl_ctx);
    X509_free (ctx->cert);
    EVP_PKEY_free (ctx->pkey);
    g_free (ctx);
  }
}

const gchar *
wzp_tls_context_get_fingerprint (WzpTlsContext *ctx)
{
  return ctx->cert ? ctx->fingerprint : NULL;
}

GBytes *
wzp_tls_context_get_certificate (WzpTlsContext *ctx)
{
  guint8 *der = NULL;
  int len;
  GBytes *b;

  if (ctx->cert == NULL || (len = i2d_X509 (ctx->cert, &der)) <= 0)
    return NULL;
  b = g_bytes_new (der, (gsize) len);
  OPENSSL_free (der);
  return b;
}

WzpTlsSession *
wzp_tls_session_new (WzpTlsContext *ctx, ngtcp2_conn *conn, gboolean server, const gchar *sni,
                     GError **error)
{
  WzpTlsSession *s;
  BIO *rbio, *wbio;

  g_return_val_if_fail (ctx->server == server, NULL);
  s = g_new0 (WzpTlsSession, 1);
  s->ctx = wzp_tls_context_ref (ctx);
  s->conn = conn;
  s->server = server;
  s->write_level = NGTCP2_ENCRYPTION_LEVEL_INITIAL;
  s->ssl = SSL_new (ctx->ssl_ctx);
  rbio = BIO_new (BIO_s_mem ());
  wbio = BIO_new (BIO_s_null ());   /* OpenSSL's own records are not used */
  if (s->ssl == NULL || rbio == NULL || wbio == NULL) {
    BIO_free (rbio);
    BIO_free (wbio);
    wzp_tls_session_free (s);
    g_set_error_literal (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED, "cannot create a TLS session");
    return NULL;
  }
  SSL_set_bio (s->ssl, rbio, wbio);
  SSL_set_ex_data (s->ssl, session_index, s);
  SSL_set_msg_callback (s->ssl, message_cb);
  SSL_set_quiet_shutdown (s->ssl, 1);
  if (server) {
    SSL_set_accept_state (s->ssl);
  } else {
    SSL_set_connect_state (s->ssl);
    SSL_set_alpn_protos (s->ssl, (const guint8 *) "\x03wzp", 4);
    if (sni && *sni && SSL_set_tlsext_host_name (s->ssl, sni) != 1) {
      wzp_tls_session_free (s);
      g_set_error (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED, "server name \"%s\" is not usable", sni);
      return NULL;
    }
  }
  ngtcp2_conn_set_tls_native_handle (conn, s);
  return s;
}

void
wzp_tls_session_free (WzpTlsSession *s)
{
  if (s == NULL)
    return;
  if (s->ssl) {
    SSL_set_ex_data (s->ssl, session_index, NULL);
    SSL_free (s->ssl);
  }
  EVP_CIPHER_CTX_free (s->record);
  wzp_tls_context_unref (s->ctx);
  g_free (s->sni);
  g_free (s->peer_fp);
  g_free (s->error);
  g_free (s);
}

const gchar *
wzp_tls_session_get_sni (WzpTlsSession *s)
{
  return s->sni;
}

const gchar *
wzp_tls_session_get_peer_fingerprint (WzpTlsSession *s)
{
  return s->peer_fp;
}

const gchar *
wzp_tls_session_get_error (WzpTlsSession *s)
{
  return s->error;
}

/* Hands CRYPTO data to OpenSSL as TLS records: plaintext at the Initial
 * level, otherwise protected with the peer's current secret (inner type
 * handshake, outer header 17 03 03 as AAD, nonce = iv ^ record number). */
static gboolean
provide_data (WzpTlsSession *s, ngtcp2_encryption_level level, const guint8 *data, gsize len)
{
  BIO *rbio = SSL_get_rbio (s->ssl);
  guint8 rec[5 + RECORD_CHUNK + 1 + TAG_LEN];

  while (len > 0) {
    gsize n = MIN (len, RECORD_CHUNK);

    if (level == NGTCP2_ENCRYPTION_LEVEL_INITIAL) {
      rec[0] = SSL3_RT_HANDSHAKE;
      rec[1] = 3;
      rec[2] = 3;
      rec[3] = (guint8) (n >> 8);
      rec[4] = (guint8) n;
      memcpy (rec + 5, data, n);
      BIO_write (rbio, rec, (int) (5 + n));
    } else {
      guint8 nonce[IV_LEN];
      gsize inner = n + 1, total = inner + TAG_LEN;
      int outl = 0, finl = 0;

      if (s->record == NULL) {
        session_fail (s, "handshake data arrived before its keys");
        return FALSE;
      }
      rec[0] = SSL3_RT_APPLICATION_DATA;
      rec[1] = 3;
      rec[2] = 3;
      rec[3] = (guint8) (total >> 8);
      rec[4] = (guint8) total;
      memcpy (rec + 5, data, n);
      rec[5 + n] = SSL3_RT_HANDSHAKE;
      memcpy (nonce, s->record_iv, IV_LEN);
      for (guint i = 0; i < 8; i++)
        nonce[IV_LEN - 1 - i] ^= (guint8) (s->record_seq >> (8 * i));
      s->record_seq++;
      if (EVP_EncryptInit_ex (s->record, NULL, NULL, NULL, nonce) != 1 ||
          EVP_EncryptUpdate (s->record, NULL, &outl, rec, 5) != 1 ||
          EVP_EncryptUpdate (s->record, rec + 5, &outl, rec + 5, (int) inner) != 1 ||
          EVP_EncryptFinal_ex (s->record, rec + 5 + outl, &finl) != 1 ||
          EVP_CIPHER_CTX_ctrl (s->record, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, rec + 5 + inner) != 1) {
        session_fail (s, "cannot protect a TLS record");
        return FALSE;
      }
      BIO_write (rbio, rec, (int) (5 + total));
    }
    data += n;
    len -= n;
  }
  return TRUE;
}

static void
handshake_finished (WzpTlsSession *s)
{
  const guint8 *alpn = NULL;
  unsigned int alpnlen = 0;
  X509 *peer;
  const gchar *name;

  SSL_get0_alpn_selected (s->ssl, &alpn, &alpnlen);
  if (alpnlen != 3 || memcmp (alpn, "wzp", 3) != 0) {
    ngtcp2_conn_set_tls_alert (s->conn, ALERT_NO_APPLICATION_PROTOCOL);
    session_fail (s, "the peer does not speak ALPN \"wzp\"");
    return;
  }
  if (!s->got_transport_params) {
    ngtcp2_conn_set_tls_alert (s->conn, ALERT_MISSING_EXTENSION);
    session_fail (s, "the peer sent no QUIC transport parameters");
    return;
  }
  name = SSL_get_servername (s->ssl, TLSEXT_NAMETYPE_host_name);
  s->sni = g_strdup (name ? name : "");
  peer = SSL_get0_peer_certificate (s->ssl);
  if (peer) {
    s->peer_fp = g_malloc (WZP_TLS_FINGERPRINT_STRLEN);
    cert_fingerprint (peer, s->peer_fp);
  }
  s->handshake_done = TRUE;
}

/* Once the handshake is done OpenSSL has no more work in QUIC: we send no
 * session tickets and keep none, and key updates are derived from the
 * secrets ngtcp2 holds. Its state (the SSL object, its record buffers and our
 * record protection, some 45 KiB) is freed, so an established connection
 * costs a relay only ngtcp2's and our own memory. */
static void
release_tls (WzpTlsSession *s)
{
  SSL_set_ex_data (s->ssl, session_index, NULL);
  g_clear_pointer (&s->ssl, SSL_free);
  g_clear_pointer (&s->record, EVP_CIPHER_CTX_free);
  OPENSSL_cleanse (s->record_iv, IV_LEN);
}

/* Runs the handshake on what OpenSSL has buffered. Returns an ngtcp2 error
 * code on failure. */
static int
drive (WzpTlsSession *s)
{
  int rv;

  rv = SSL_do_handshake (s->ssl);
  if (rv <= 0) {
    int err = SSL_get_error (s->ssl, rv);

    if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) && !s->failed)
      return 0;
    if (!s->failed || s->error == NULL) {
      g_autofree gchar *msg = openssl_error ();
      session_fail (s, "TLS handshake failed: %s", msg);
    }
    ERR_clear_error ();
    return NGTCP2_ERR_CRYPTO;
  }
  if (s->failed)
    return NGTCP2_ERR_CRYPTO;
  handshake_finished (s);
  if (s->failed)
    return NGTCP2_ERR_CRYPTO;
  ngtcp2_conn_tls_handshake_completed (s->conn);
  release_tls (s);
  return 0;
}

/* ---- ngtcp2 crypto callbacks ------------------------------------------ */

static const guint8 initial_salt_v1[] = {
  0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
  0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a,
};

static const guint8 retry_key_v1[] = {
  0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
};

/* Initial keys from the client's first destination connection ID. */
static int
install_initial_keys (ngtcp2_conn *conn, const ngtcp2_cid *dcid, gboolean server, gboolean vneg,
                      guint32 version)
{
  const Suite *s = &suites[SUITE_AES128];
  guint8 initial[32], client_secret[32], server_secret[32];
  Keys rx, tx;
  ngtcp2_crypto_ctx cctx;
  int rv;

  if (!ensure_crypto () ||
      !hkdf_run (s->md, "EXTRACT_ONLY", dcid->data, dcid->datalen, initial_salt_v1,
                 sizeof initial_salt_v1, NULL, 0, initial, sizeof initial) ||
      !expand_label (s->md, initial, 32, "client in", client_secret, 32) ||
      !expand_label (s->md, initial, 32, "server in", server_secret, 32))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!keys_derive (s, server ? client_secret : server_secret, 32, FALSE, TRUE, &rx))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!keys_derive (s, server ? server_secret : client_secret, 32, TRUE, TRUE, &tx)) {
    keys_free (&rx);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  OPENSSL_cleanse (initial, 32);
  OPENSSL_cleanse (client_secret, 32);
  OPENSSL_cleanse (server_secret, 32);
  if (!vneg) {
    suite_to_ngtcp2 (s, &cctx);
    ngtcp2_conn_set_initial_crypto_ctx (conn, &cctx);
    rv = ngtcp2_conn_install_initial_key (conn, &rx.aead, rx.iv, &rx.hp, &tx.aead, tx.iv, &tx.hp, IV_LEN);
  } else {
    rv = ngtcp2_conn_install_vneg_initial_key (conn, version, &rx.aead, rx.iv, &rx.hp, &tx.aead,
                                               tx.iv, &tx.hp, IV_LEN);
  }
  if (rv != 0) {
    keys_free (&rx);
    keys_free (&tx);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  return 0;
}

static int
client_initial_cb (ngtcp2_conn *conn, void *user_data)
{
  WzpTlsSession *s = ngtcp2_conn_get_tls_native_handle (conn);

  if (install_initial_keys (conn, ngtcp2_conn_get_dcid (conn), FALSE, FALSE, 0) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return drive (s) == 0 ? 0 : NGTCP2_ERR_CALLBACK_FAILURE;
}

static int
recv_client_initial_cb (ngtcp2_conn *conn, const ngtcp2_cid *dcid, void *user_data)
{
  return install_initial_keys (conn, dcid, TRUE, FALSE, 0);
}

static int
recv_retry_cb (ngtcp2_conn *conn, const ngtcp2_pkt_hd *hd, void *user_data)
{
  return install_initial_keys (conn, &hd->scid, FALSE, FALSE, 0);
}

static int
version_negotiation_cb (ngtcp2_conn *conn, uint32_t version, const ngtcp2_cid *client_dcid,
                        void *user_data)
{
  if (version != NGTCP2_PROTO_VER_V1)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  return install_initial_keys (conn, client_dcid, ngtcp2_conn_is_server (conn), TRUE, version);
}

/* CRYPTO data after the handshake: TLS messages, which ngtcp2 delivers in
 * order but cut anywhere. The only one QUIC allows is a server's
 * NewSessionTicket; we keep no tickets, so it is skipped. A KeyUpdate (RFC
 * 9001 §6: a connection error) or anything else ends the connection with
 * the unexpected_message alert. */
static int
post_handshake_data (WzpTlsSession *s, ngtcp2_encryption_level level, const guint8 *data,
                     gsize len)
{
  if (level != NGTCP2_ENCRYPTION_LEVEL_1RTT)
    return 0;                   /* the rest of a flight already taken */
  while (len > 0) {
    gsize n;
    guint type;

    if (s->post_body_left) {
      n = MIN (len, s->post_body_left);
      s->post_body_left -= (guint32) n;
      data += n;
      len -= n;
      continue;
    }
    n = MIN (len, sizeof s->post_header - s->post_header_len);
    memcpy (s->post_header + s->post_header_len, data, n);
    s->post_header_len += (guint) n;
    data += n;
    len -= n;
    if (s->post_header_len < sizeof s->post_header)
      break;
    type = s->post_header[0];
    if (type != TLS_NEW_SESSION_TICKET || s->server) {
      if (type == TLS_KEY_UPDATE)
        session_fail (s, "the peer sent a TLS KeyUpdate, which QUIC forbids (RFC 9001 §6)");
      else
        session_fail (s, "the peer sent TLS message type %u after the handshake", type);
      ngtcp2_conn_set_tls_alert (s->conn, ALERT_UNEXPECTED_MESSAGE);
      return NGTCP2_ERR_CRYPTO;
    }
    s->post_body_left = (guint32) s->post_header[1] << 16 | (guint32) s->post_header[2] << 8 |
        s->post_header[3];
    s->post_header_len = 0;
  }
  return 0;
}

static int
recv_crypto_data_cb (ngtcp2_conn *conn, ngtcp2_encryption_level level, uint64_t offset,
                     const uint8_t *data, size_t datalen, void *user_data)
{
  WzpTlsSession *s = ngtcp2_conn_get_tls_native_handle (conn);

  if (s == NULL)
    return NGTCP2_ERR_CRYPTO;
  if (s->handshake_done)
    return post_handshake_data (s, level, data, datalen);
  if (!provide_data (s, level, data, datalen))
    return NGTCP2_ERR_CRYPTO;
  return drive (s);
}

static int
encrypt_cb (uint8_t *dest, const ngtcp2_crypto_aead *aead, const ngtcp2_crypto_aead_ctx *aead_ctx,
            const uint8_t *plaintext, size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
            const uint8_t *aad, size_t aadlen)
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

static int
decrypt_cb (uint8_t *dest, const ngtcp2_crypto_aead *aead, const ngtcp2_crypto_aead_ctx *aead_ctx,
            const uint8_t *ciphertext, size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
            const uint8_t *aad, size_t aadlen)
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

static int
hp_mask_cb (uint8_t *dest, const ngtcp2_crypto_cipher *hp, const ngtcp2_crypto_cipher_ctx *hp_ctx,
            const uint8_t *sample)
{
  static const guint8 zeros[NGTCP2_HP_MASKLEN];
  const Hp *h = hp_ctx->native_handle;
  EVP_CIPHER_CTX *ctx = h->evp;
  guint8 out[32];
  int len = 0;

#ifdef HAVE_AESNI
  if (h->rounds) {
    aesni_block (h, sample, out);
    memcpy (dest, out, NGTCP2_HP_MASKLEN);
    return 0;
  }
#endif
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

static const Suite *
suite_of_conn (ngtcp2_conn *conn)
{
  const ngtcp2_crypto_ctx *c = ngtcp2_conn_get_crypto_ctx (conn);

  for (guint i = 0; c && i < N_SUITES; i++)
    if (c->aead.native_handle == suites[i].aead)
      return &suites[i];
  return NULL;
}

static int
update_key_cb (ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
               ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
               ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
               const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
               size_t secretlen, void *user_data)
{
  const Suite *s = suite_of_conn (conn);
  Keys rx, tx;

  if (s == NULL ||
      !expand_label (s->md, current_rx_secret, secretlen, "quic ku", rx_secret, secretlen) ||
      !expand_label (s->md, current_tx_secret, secretlen, "quic ku", tx_secret, secretlen) ||
      !keys_derive (s, rx_secret, secretlen, FALSE, FALSE, &rx))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!keys_derive (s, tx_secret, secretlen, TRUE, FALSE, &tx)) {
    keys_free (&rx);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  *rx_aead_ctx = rx.aead;
  *tx_aead_ctx = tx.aead;
  memcpy (rx_iv, rx.iv, IV_LEN);
  memcpy (tx_iv, tx.iv, IV_LEN);
  return 0;
}

static void
delete_aead_ctx_cb (ngtcp2_conn *conn, ngtcp2_crypto_aead_ctx *aead_ctx, void *user_data)
{
  const Aead *a = aead_ctx->native_handle;

  if (a) {
    hot_forget (conn, a->gcm);
    hot_forget (conn, a);
  }
  aead_free (aead_ctx->native_handle);
  aead_ctx->native_handle = NULL;
}

static void
delete_cipher_ctx_cb (ngtcp2_conn *conn, ngtcp2_crypto_cipher_ctx *cipher_ctx, void *user_data)
{
  hot_forget (conn, cipher_ctx->native_handle);
  hp_free (cipher_ctx->native_handle);
  cipher_ctx->native_handle = NULL;
}

void
wzp_tls_random (guint8 *out, gsize len)
{
  if (RAND_bytes (out, (int) len) != 1)
    g_error ("OpenSSL's random generator failed");
}

static void
rand_cb (uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *rand_ctx)
{
  wzp_tls_random (dest, destlen);
}

static int
path_challenge_cb (ngtcp2_conn *conn, uint8_t *data, void *user_data)
{
  wzp_tls_random (data, NGTCP2_PATH_CHALLENGE_DATALEN);
  return 0;
}

void
wzp_tls_fill_callbacks (ngtcp2_callbacks *cb, gboolean server)
{
  if (server)
    cb->recv_client_initial = recv_client_initial_cb;
  else {
    cb->client_initial = client_initial_cb;
    cb->recv_retry = recv_retry_cb;
  }
  cb->recv_crypto_data = recv_crypto_data_cb;
  cb->encrypt = encrypt_cb;
  cb->decrypt = decrypt_cb;
  cb->hp_mask = hp_mask_cb;
  cb->update_key = update_key_cb;
  cb->delete_crypto_aead_ctx = delete_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = delete_cipher_ctx_cb;
  cb->version_negotiation = version_negotiation_cb;
  cb->rand = rand_cb;
  cb->get_path_challenge_data = path_challenge_cb;
}

gboolean
wzp_tls_setup_client_conn (ngtcp2_conn *conn)
{
  ngtcp2_crypto_aead aead = { 0 };
  ngtcp2_crypto_aead_ctx actx = { 0 };

  if (!ensure_crypto ())
    return FALSE;
  aead.native_handle = suites[SUITE_AES128].aead;
  aead.max_overhead = TAG_LEN;
  actx.native_handle = aead_new (suites[SUITE_AES128].aead, retry_key_v1, TRUE, FALSE);
  if (actx.native_handle == NULL)
    return FALSE;
  ngtcp2_conn_set_retry_aead (conn, &aead, &actx);
  return TRUE;
}

void
wzp_tls_stateless_reset_token (const guint8 secret[32], const guint8 *cid, gsize cidlen,
                               guint8 token[NGTCP2_STATELESS_RESET_TOKENLEN])
{
  guint8 mac[EVP_MAX_MD_SIZE];
  unsigned int maclen = 0;

  HMAC (EVP_sha256 (), secret, 32, cid, cidlen, mac, &maclen);
  memcpy (token, mac, NGTCP2_STATELESS_RESET_TOKENLEN);
}
