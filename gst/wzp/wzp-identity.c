/* wzp-identity: keys, fingerprints, signatures (protocol §4). libsodium does
 * Ed25519/X25519/ChaCha20-Poly1305, OpenSSL's EVP_KDF does HKDF. */
#include "wzp-identity.h"
#include "wzp-util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sodium.h>

G_DEFINE_QUARK (wzp-identity-error-quark, wzp_identity_error)

struct _WzpIdentity {
  gint ref_count;
  guint8 seed[WZP_SEED_SIZE];
  guint8 sign_sk[crypto_sign_SECRETKEYBYTES];
  guint8 sign_pk[WZP_KEY_SIZE];
  guint8 x25519_sk[WZP_KEY_SIZE];
  guint8 x25519_pk[WZP_KEY_SIZE];
  guint8 tls_seed[WZP_KEY_SIZE];
  guint8 tls_pk[WZP_KEY_SIZE];
  guint8 fp[WZP_FINGERPRINT_SIZE];
  gchar fp_str[WZP_FINGERPRINT_STRLEN];
};

static void
ensure_sodium (void)
{
  static gsize initialized = 0;

  if (g_once_init_enter (&initialized)) {
    if (sodium_init () < 0)
      g_error ("libsodium failed to initialise");
    g_once_init_leave (&initialized, 1);
  }
}

gboolean
wzp_hkdf_sha256 (const guint8 *salt, gsize salt_len, const guint8 *ikm, gsize ikm_len,
                 const gchar *info, guint8 *out, gsize out_len)
{
  EVP_KDF *kdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
  EVP_KDF_CTX *ctx;
  OSSL_PARAM params[5], *p = params;
  gboolean ok;

  if (kdf == NULL)
    return FALSE;
  ctx = EVP_KDF_CTX_new (kdf);
  EVP_KDF_free (kdf);
  if (ctx == NULL)
    return FALSE;
  *p++ = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST, (char *) "SHA256", 0);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY, (void *) ikm, ikm_len);
  if (salt && salt_len)
    *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT, (void *) salt, salt_len);
  *p++ = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO, (void *) info,
                                            info ? strlen (info) : 0);
  *p = OSSL_PARAM_construct_end ();
  ok = EVP_KDF_derive (ctx, out, out_len, params) == 1;
  EVP_KDF_CTX_free (ctx);
  return ok;
}

static void
sha256 (const guint8 *data, gsize len, guint8 out[32])
{
  crypto_hash_sha256 (out, data, len);
}

void
wzp_fingerprint_bytes (const guint8 public_key[WZP_KEY_SIZE], guint8 out[WZP_FINGERPRINT_SIZE])
{
  guint8 digest[32];

  ensure_sodium ();
  sha256 (public_key, WZP_KEY_SIZE, digest);
  memcpy (out, digest, WZP_FINGERPRINT_SIZE);
}

static void
format_fingerprint (const guint8 fp[WZP_FINGERPRINT_SIZE], gchar out[WZP_FINGERPRINT_STRLEN])
{
  static const gchar hex[] = "0123456789abcdef";
  gchar *o = out;

  for (guint i = 0; i < WZP_FINGERPRINT_SIZE; i++) {
    if (i > 0 && i % 2 == 0)
      *o++ = ':';
    *o++ = hex[fp[i] >> 4];
    *o++ = hex[fp[i] & 0xf];
  }
  *o = '\0';
}

void
wzp_fingerprint_string (const guint8 public_key[WZP_KEY_SIZE], gchar out[WZP_FINGERPRINT_STRLEN])
{
  guint8 fp[WZP_FINGERPRINT_SIZE];

  wzp_fingerprint_bytes (public_key, fp);
  format_fingerprint (fp, out);
}

gboolean
wzp_fingerprint_is_valid (const gchar *s)
{
  if (s == NULL || strlen (s) != WZP_FINGERPRINT_STRLEN - 1)
    return FALSE;
  for (guint i = 0; i < WZP_FINGERPRINT_STRLEN - 1; i++) {
    if (i % 5 == 4) {
      if (s[i] != ':')
        return FALSE;
    } else if (!g_ascii_isxdigit (s[i]) || g_ascii_isupper (s[i])) {
      return FALSE;
    }
  }
  return TRUE;
}

void
wzp_tls_fingerprint (const guint8 *der, gsize len, gchar out[WZP_TLS_FINGERPRINT_STRLEN])
{
  static const gchar hex[] = "0123456789abcdef";
  guint8 digest[32];

  ensure_sodium ();
  sha256 (der, len, digest);
  for (guint i = 0; i < 32; i++) {
    out[3 * i] = hex[digest[i] >> 4];
    out[3 * i + 1] = hex[digest[i] & 0xf];
    out[3 * i + 2] = i == 31 ? '\0' : ':';
  }
}

gboolean
wzp_tls_fingerprint_equal (const gchar *a, const gchar *b)
{
  if (a == NULL || b == NULL)
    return FALSE;
  for (;;) {
    while (*a == ':')
      a++;
    while (*b == ':')
      b++;
    if (*a == '\0' || *b == '\0')
      return *a == *b;
    if (g_ascii_tolower (*a) != g_ascii_tolower (*b))
      return FALSE;
    a++;
    b++;
  }
}

WzpIdentity *
wzp_identity_new_from_seed (const guint8 seed[WZP_SEED_SIZE])
{
  WzpIdentity *id;
  guint8 sign_seed[WZP_KEY_SIZE];
  guint8 tls_sk[crypto_sign_SECRETKEYBYTES];

  ensure_sodium ();
  id = g_new0 (WzpIdentity, 1);
  id->ref_count = 1;
  memcpy (id->seed, seed, WZP_SEED_SIZE);
  if (!wzp_hkdf_sha256 (NULL, 0, seed, WZP_SEED_SIZE, "warzone-ed25519", sign_seed, 32) ||
      !wzp_hkdf_sha256 (NULL, 0, seed, WZP_SEED_SIZE, "warzone-x25519", id->x25519_sk, 32) ||
      !wzp_hkdf_sha256 (NULL, 0, seed, WZP_SEED_SIZE, "wzp-tls-ed25519", id->tls_seed, 32))
    g_error ("HKDF-SHA256 is not available from OpenSSL");
  crypto_sign_seed_keypair (id->sign_pk, id->sign_sk, sign_seed);
  crypto_scalarmult_base (id->x25519_pk, id->x25519_sk);
  crypto_sign_seed_keypair (id->tls_pk, tls_sk, id->tls_seed);
  wzp_fingerprint_bytes (id->sign_pk, id->fp);
  format_fingerprint (id->fp, id->fp_str);
  sodium_memzero (sign_seed, sizeof sign_seed);
  sodium_memzero (tls_sk, sizeof tls_sk);
  return id;
}

WzpIdentity *
wzp_identity_new_random (void)
{
  guint8 seed[WZP_SEED_SIZE];
  WzpIdentity *id;

  ensure_sodium ();
  randombytes_buf (seed, sizeof seed);
  id = wzp_identity_new_from_seed (seed);
  sodium_memzero (seed, sizeof seed);
  return id;
}

WzpIdentity *
wzp_identity_new_from_hex (const gchar *hex, GError **error)
{
  g_autofree gchar *trimmed = g_strstrip (g_strdup (hex ? hex : ""));
  guint8 seed[WZP_SEED_SIZE];
  WzpIdentity *id;

  if (!wzp_hex_decode_exact (trimmed, seed, sizeof seed)) {
    g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_INVALID_SEED,
                 "a seed must be exactly 64 hex digits (32 bytes); got %" G_GSIZE_FORMAT
                 " characters", strlen (trimmed));
    sodium_memzero (trimmed, strlen (trimmed));
    return NULL;
  }
  sodium_memzero (trimmed, strlen (trimmed));
  id = wzp_identity_new_from_seed (seed);
  sodium_memzero (seed, sizeof seed);
  return id;
}

WzpIdentity *
wzp_identity_load (const gchar *path, GError **error)
{
  g_autofree gchar *text = NULL;
  g_autoptr (GError) local = NULL;
  gsize len = 0;
  WzpIdentity *id;

  if (!g_file_get_contents (path, &text, &len, &local)) {
    g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_IO,
                 "cannot read identity file %s: %s", path, local->message);
    return NULL;
  }
  if (len > 4096 || strlen (text) != len) {
    g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_INVALID_SEED,
                 "identity file %s is not a seed file (expected 64 hex digits)", path);
    sodium_memzero (text, len);
    return NULL;
  }
  id = wzp_identity_new_from_hex (text, &local);
  sodium_memzero (text, len);
  if (id == NULL) {
    g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_INVALID_SEED,
                 "identity file %s is malformed: %s; fix or remove it "
                 "(it is never overwritten)", path, local->message);
    return NULL;
  }
  return id;
}

gboolean
wzp_identity_save (const WzpIdentity *identity, const gchar *path, GError **error)
{
  gchar line[WZP_SEED_SIZE * 2 + 2];
  g_autofree gchar *hex = wzp_hex_encode (identity->seed, WZP_SEED_SIZE);
  gsize off = 0, len;
  int fd, saved;

  len = (gsize) g_snprintf (line, sizeof line, "%s\n", hex);
  sodium_memzero (hex, strlen (hex));
  fd = g_open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    saved = errno;
    g_set_error (error, WZP_IDENTITY_ERROR,
                 saved == EEXIST ? WZP_IDENTITY_ERROR_EXISTS : WZP_IDENTITY_ERROR_IO,
                 "cannot create identity file %s: %s", path, g_strerror (saved));
    sodium_memzero (line, sizeof line);
    return FALSE;
  }
  while (off < len) {
    gssize n = write (fd, line + off, len - off);

    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      saved = errno;
      close (fd);
      g_unlink (path);
      sodium_memzero (line, sizeof line);
      g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_IO,
                   "cannot write identity file %s: %s", path, g_strerror (saved));
      return FALSE;
    }
    off += (gsize) n;
  }
  sodium_memzero (line, sizeof line);
  if (fsync (fd) != 0 || close (fd) != 0) {
    saved = errno;
    g_set_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_IO,
                 "cannot write identity file %s: %s", path, g_strerror (saved));
    return FALSE;
  }
  return TRUE;
}

WzpIdentity *
wzp_identity_load_or_create (const gchar *path, gboolean *created, GError **error)
{
  g_autoptr (GError) local = NULL;
  WzpIdentity *id;

  if (created)
    *created = FALSE;
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return wzp_identity_load (path, error);
  id = wzp_identity_new_random ();
  if (!wzp_identity_save (id, path, &local)) {
    wzp_identity_unref (id);
    /* Someone else created it meanwhile: use theirs. */
    if (g_error_matches (local, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_EXISTS))
      return wzp_identity_load (path, error);
    g_propagate_error (error, g_steal_pointer (&local));
    return NULL;
  }
  if (created)
    *created = TRUE;
  return id;
}

WzpIdentity *
wzp_identity_ref (WzpIdentity *identity)
{
  g_atomic_int_inc (&identity->ref_count);
  return identity;
}

void
wzp_identity_unref (WzpIdentity *identity)
{
  if (identity && g_atomic_int_dec_and_test (&identity->ref_count)) {
    sodium_memzero (identity, sizeof *identity);
    g_free (identity);
  }
}

const guint8 *
wzp_identity_get_seed (const WzpIdentity *identity)
{
  return identity->seed;
}

const guint8 *
wzp_identity_get_public_key (const WzpIdentity *identity)
{
  return identity->sign_pk;
}

const guint8 *
wzp_identity_get_x25519_public_key (const WzpIdentity *identity)
{
  return identity->x25519_pk;
}

const guint8 *
wzp_identity_get_x25519_secret_key (const WzpIdentity *identity)
{
  return identity->x25519_sk;
}

void
wzp_identity_get_signing_seed (const WzpIdentity *identity, guint8 out[32])
{
  crypto_sign_ed25519_sk_to_seed (out, identity->sign_sk);
}

const guint8 *
wzp_identity_get_tls_secret_key (const WzpIdentity *identity)
{
  return identity->tls_seed;
}

const guint8 *
wzp_identity_get_tls_public_key (const WzpIdentity *identity)
{
  return identity->tls_pk;
}

const guint8 *
wzp_identity_get_fingerprint_bytes (const WzpIdentity *identity)
{
  return identity->fp;
}

const gchar *
wzp_identity_get_fingerprint (const WzpIdentity *identity)
{
  return identity->fp_str;
}

void
wzp_identity_sign (const WzpIdentity *identity, const guint8 *msg, gsize len,
                   guint8 signature[WZP_SIGNATURE_SIZE])
{
  crypto_sign_detached (signature, NULL, msg, len, identity->sign_sk);
}

gboolean
wzp_ed25519_verify (const guint8 public_key[WZP_KEY_SIZE], const guint8 *msg, gsize len,
                    const guint8 *signature, gsize signature_len)
{
  ensure_sodium ();
  if (signature == NULL || signature_len != WZP_SIGNATURE_SIZE)
    return FALSE;
  return crypto_sign_verify_detached (signature, msg, len, public_key) == 0;
}

void
wzp_x25519_keypair_new (guint8 secret[WZP_KEY_SIZE], guint8 public_key[WZP_KEY_SIZE])
{
  ensure_sodium ();
  randombytes_buf (secret, WZP_KEY_SIZE);
  crypto_scalarmult_base (public_key, secret);
}

void
wzp_x25519_public_key (const guint8 secret[WZP_KEY_SIZE], guint8 public_key[WZP_KEY_SIZE])
{
  ensure_sodium ();
  crypto_scalarmult_base (public_key, secret);
}

/* ephemeral_pub || label: what CallOffer/CallAnswer sign (§4.3). */
static gsize
handshake_message (const guint8 ephemeral_pub[WZP_KEY_SIZE], const gchar *label, guint8 out[48])
{
  gsize l = strlen (label);

  memcpy (out, ephemeral_pub, WZP_KEY_SIZE);
  memcpy (out + WZP_KEY_SIZE, label, l);
  return WZP_KEY_SIZE + l;
}

void
wzp_sign_call_offer (const WzpIdentity *identity, const guint8 ephemeral_pub[WZP_KEY_SIZE],
                     guint8 signature[WZP_SIGNATURE_SIZE])
{
  guint8 msg[48];

  wzp_identity_sign (identity, msg, handshake_message (ephemeral_pub, "call-offer", msg),
                     signature);
}

void
wzp_sign_call_answer (const WzpIdentity *identity, const guint8 ephemeral_pub[WZP_KEY_SIZE],
                      guint8 signature[WZP_SIGNATURE_SIZE])
{
  guint8 msg[48];

  wzp_identity_sign (identity, msg, handshake_message (ephemeral_pub, "call-answer", msg),
                     signature);
}

gboolean
wzp_verify_call_offer (const guint8 identity_pub[WZP_KEY_SIZE],
                       const guint8 ephemeral_pub[WZP_KEY_SIZE],
                       const guint8 *signature, gsize signature_len)
{
  guint8 msg[48];

  return wzp_ed25519_verify (identity_pub, msg,
                             handshake_message (ephemeral_pub, "call-offer", msg),
                             signature, signature_len);
}

gboolean
wzp_verify_call_answer (const guint8 identity_pub[WZP_KEY_SIZE],
                        const guint8 ephemeral_pub[WZP_KEY_SIZE],
                        const guint8 *signature, gsize signature_len)
{
  guint8 msg[48];

  return wzp_ed25519_verify (identity_pub, msg,
                             handshake_message (ephemeral_pub, "call-answer", msg),
                             signature, signature_len);
}

gboolean
wzp_session_derive (const guint8 own_secret[WZP_KEY_SIZE], const guint8 peer_public[WZP_KEY_SIZE],
                    guint8 session_key[WZP_KEY_SIZE], guint *sas)
{
  guint8 shared[WZP_KEY_SIZE], sas_bytes[4];
  gboolean ok;

  ensure_sodium ();
  if (crypto_scalarmult (shared, own_secret, peer_public) != 0)
    return FALSE;
  ok = wzp_hkdf_sha256 (NULL, 0, shared, sizeof shared, "warzone-session-key",
                        session_key, WZP_KEY_SIZE) &&
      wzp_hkdf_sha256 (NULL, 0, shared, sizeof shared, "warzone-sas-code", sas_bytes, 4);
  sodium_memzero (shared, sizeof shared);
  if (ok && sas)
    *sas = (((guint32) sas_bytes[0] << 24) | ((guint32) sas_bytes[1] << 16) |
            ((guint32) sas_bytes[2] << 8) | sas_bytes[3]) % 10000;
  return ok;
}

void
wzp_legacy_session_id (const guint8 session_key[WZP_KEY_SIZE], guint8 out[4])
{
  guint8 digest[32];

  ensure_sodium ();
  sha256 (session_key, WZP_KEY_SIZE, digest);
  memcpy (out, digest, 4);
}

void
wzp_legacy_nonce (const guint8 session_id[4], guint32 counter, guint8 direction, guint8 nonce[12])
{
  memcpy (nonce, session_id, 4);
  nonce[4] = (guint8) (counter >> 24);
  nonce[5] = (guint8) (counter >> 16);
  nonce[6] = (guint8) (counter >> 8);
  nonce[7] = (guint8) counter;
  nonce[8] = direction;
  nonce[9] = nonce[10] = nonce[11] = 0;
}

void
wzp_legacy_seal (const guint8 key[WZP_KEY_SIZE], const guint8 nonce[12],
                 const guint8 *aad, gsize aad_len, const guint8 *plaintext, gsize len,
                 guint8 *out)
{
  ensure_sodium ();
  crypto_aead_chacha20poly1305_ietf_encrypt (out, NULL, plaintext, len, aad, aad_len,
                                             NULL, nonce, key);
}
