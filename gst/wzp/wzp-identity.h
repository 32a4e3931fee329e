/* wzp-identity: seeds, keys, fingerprints and signatures (protocol §4).
 *
 * A 32-byte seed derives, by HKDF-SHA256 without salt, the Ed25519 identity
 * key ("warzone-ed25519"), an X25519 key ("warzone-x25519") and the relay's
 * TLS key ("wzp-tls-ed25519"). The fingerprint is SHA-256(identity public
 * key)[0..16] as 8 colon-separated groups of 4 lowercase hex digits.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define WZP_SEED_SIZE 32
#define WZP_KEY_SIZE 32
#define WZP_SIGNATURE_SIZE 64
#define WZP_FINGERPRINT_SIZE 16
/* "xxxx:xxxx:...:xxxx" + NUL */
#define WZP_FINGERPRINT_STRLEN 40
/* 32 colon-separated hex pairs + NUL */
#define WZP_TLS_FINGERPRINT_STRLEN 96

#define WZP_IDENTITY_ERROR (wzp_identity_error_quark ())
GQuark wzp_identity_error_quark (void);

typedef enum {
  WZP_IDENTITY_ERROR_INVALID_SEED,  /* seed text is not 64 hex digits */
  WZP_IDENTITY_ERROR_IO,            /* the seed file cannot be read or written */
  WZP_IDENTITY_ERROR_EXISTS,        /* refusing to overwrite a seed file */
  WZP_IDENTITY_ERROR_CRYPTO,        /* the crypto library failed */
} WzpIdentityError;

typedef struct _WzpIdentity WzpIdentity;

WzpIdentity *wzp_identity_new_from_seed (const guint8 seed[WZP_SEED_SIZE]);
WzpIdentity *wzp_identity_new_random (void);
/* Parses 64 hex digits (surrounding whitespace allowed). */
WzpIdentity *wzp_identity_new_from_hex (const gchar *hex, GError **error);
/* Reads a seed file (64 hex digits, whitespace trimmed). */
WzpIdentity *wzp_identity_load (const gchar *path, GError **error);
/* Writes the seed as hex to a new file with mode 0600; fails when @path
 * already exists. */
gboolean wzp_identity_save (const WzpIdentity *identity, const gchar *path, GError **error);
/* Loads @path, or creates it with a random seed when it does not exist.
 * A file that exists but is malformed is an error, never overwritten. */
WzpIdentity *wzp_identity_load_or_create (const gchar *path, gboolean *created, GError **error);

WzpIdentity *wzp_identity_ref (WzpIdentity *identity);
void wzp_identity_unref (WzpIdentity *identity);

const guint8 *wzp_identity_get_seed (const WzpIdentity *identity);
const guint8 *wzp_identity_get_public_key (const WzpIdentity *identity);
const guint8 *wzp_identity_get_x25519_public_key (const WzpIdentity *identity);
const guint8 *wzp_identity_get_x25519_secret_key (const WzpIdentity *identity);
/* The relay's TLS certificate key (32-byte Ed25519 seed) and its public key. */
const guint8 *wzp_identity_get_tls_secret_key (const WzpIdentity *identity);
const guint8 *wzp_identity_get_tls_public_key (const WzpIdentity *identity);
const guint8 *wzp_identity_get_fingerprint_bytes (const WzpIdentity *identity);
/* The Ed25519 seed of the identity key (RFC 8032's private key): a TLS
 * certificate made from it carries the identity key itself. */
void wzp_identity_get_signing_seed (const WzpIdentity *identity, guint8 out[32]);
const gchar *wzp_identity_get_fingerprint (const WzpIdentity *identity);

void wzp_identity_sign (const WzpIdentity *identity,
                        const guint8 *msg, gsize len,
                        guint8 signature[WZP_SIGNATURE_SIZE]);

/* Plain Ed25519 verification; FALSE for a signature of the wrong size. */
gboolean wzp_ed25519_verify (const guint8 public_key[WZP_KEY_SIZE],
                             const guint8 *msg, gsize len,
                             const guint8 *signature, gsize signature_len);

/* Fingerprint of any Ed25519 public key. */
void wzp_fingerprint_bytes (const guint8 public_key[WZP_KEY_SIZE],
                            guint8 out[WZP_FINGERPRINT_SIZE]);
void wzp_fingerprint_string (const guint8 public_key[WZP_KEY_SIZE],
                             gchar out[WZP_FINGERPRINT_STRLEN]);
/* TRUE when @s has the exact 39-character fingerprint form. */
gboolean wzp_fingerprint_is_valid (const gchar *s);

/* §1.3: SHA-256 of a DER certificate as colon-separated lowercase hex. */
void wzp_tls_fingerprint (const guint8 *der, gsize len, gchar out[WZP_TLS_FINGERPRINT_STRLEN]);
/* Compares two TLS fingerprints ignoring ':' and case. */
gboolean wzp_tls_fingerprint_equal (const gchar *a, const gchar *b);

/* HKDF-SHA256 (RFC 5869); @salt may be NULL for "no salt". */
gboolean wzp_hkdf_sha256 (const guint8 *salt, gsize salt_len,
                          const guint8 *ikm, gsize ikm_len,
                          const gchar *info,
                          guint8 *out, gsize out_len);

/* §4.4: the room-connection handshake. */
void wzp_x25519_keypair_new (guint8 secret[WZP_KEY_SIZE], guint8 public_key[WZP_KEY_SIZE]);
void wzp_x25519_public_key (const guint8 secret[WZP_KEY_SIZE], guint8 public_key[WZP_KEY_SIZE]);
/* Signature over ephemeral_pub || "call-offer" (or "call-answer"). */
void wzp_sign_call_offer (const WzpIdentity *identity,
                          const guint8 ephemeral_pub[WZP_KEY_SIZE],
                          guint8 signature[WZP_SIGNATURE_SIZE]);
void wzp_sign_call_answer (const WzpIdentity *identity,
                           const guint8 ephemeral_pub[WZP_KEY_SIZE],
                           guint8 signature[WZP_SIGNATURE_SIZE]);
gboolean wzp_verify_call_offer (const guint8 identity_pub[WZP_KEY_SIZE],
                                const guint8 ephemeral_pub[WZP_KEY_SIZE],
                                const guint8 *signature, gsize signature_len);
gboolean wzp_verify_call_answer (const guint8 identity_pub[WZP_KEY_SIZE],
                                 const guint8 ephemeral_pub[WZP_KEY_SIZE],
                                 const guint8 *signature, gsize signature_len);
/* session_key = HKDF(X25519(own secret, peer public), "warzone-session-key");
 * sas = u32_be(HKDF(same, "warzone-sas-code", 4)) mod 10000.
 * FALSE when the shared secret is all zeros (a low-order peer key). */
gboolean wzp_session_derive (const guint8 own_secret[WZP_KEY_SIZE],
                             const guint8 peer_public[WZP_KEY_SIZE],
                             guint8 session_key[WZP_KEY_SIZE],
                             guint *sas);

/* §4.5: upstream's unused media session, kept for reference and tests.
 * Never used on the wire against upstream peers. */
void wzp_legacy_session_id (const guint8 session_key[WZP_KEY_SIZE], guint8 out[4]);
void wzp_legacy_nonce (const guint8 session_id[4], guint32 counter, guint8 direction,
                       guint8 nonce[12]);
/* ChaCha20-Poly1305: writes len + 16 bytes (ciphertext || tag) to @out. */
void wzp_legacy_seal (const guint8 key[WZP_KEY_SIZE], const guint8 nonce[12],
                      const guint8 *aad, gsize aad_len,
                      const guint8 *plaintext, gsize len, guint8 *out);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpIdentity, wzp_identity_unref)

G_END_DECLS
