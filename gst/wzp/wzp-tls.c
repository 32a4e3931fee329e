/* wzp-tls: TLS 1.3 for QUIC (see wzp-tls.h): the certificate contexts, the
 * TLS side of each connection, and ngtcp2's crypto callbacks. The handshake
 * runs through the OpenSSL 3.0 compatibility layer (wzp-tls-compat.c); the
 * packets' protection is wzp-quic-crypto.c's. */
#define G_LOG_DOMAIN "wzp-tls"

#include "wzp-tls.h"
#include "wzp-tls-compat.h"
#include "wzp-quic-crypto.h"

#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

G_DEFINE_QUARK (wzp-tls-error-quark, wzp_tls_error)

#define IV_LEN WZP_CRYPTO_IV_LEN
#define ALERT_UNEXPECTED_MESSAGE 10
#define ALERT_MISSING_EXTENSION 109
#define ALERT_NO_APPLICATION_PROTOCOL 120
#define TLS_NEW_SESSION_TICKET 4     /* handshake message types */
#define TLS_KEY_UPDATE 24

/* ---- sessions ------------------------------------------------------------ */

struct _WzpTlsContext {
  gint ref_count;
  SSL_CTX *ssl_ctx;
  gboolean server;
  X509 *cert;
  EVP_PKEY *pkey;
  gchar fingerprint[WZP_TLS_FINGERPRINT_STRLEN];
  gboolean ask_call_certificates; /* request the client's certificate on "call-*" too */
};

struct _WzpTlsSession {
  WzpTlsContext *ctx;
  SSL *ssl;
  ngtcp2_conn *conn;
  gboolean server;
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
  guint8 peer_pk[32];         /* the peer certificate's Ed25519 key, when it is one */
  gboolean has_peer_pk;
  gchar *error;
  WzpTlsClientHelloFunc hello_func;
  gpointer hello_data;
  /* the state of the 1-RTT keys we read with (wzp_tls_session_prefetch) */
  WzpCryptoRange rx_keys[WZP_CRYPTO_PREFETCH];
};

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
  return SSL_get_app_data (ssl);
}

static ngtcp2_encryption_level
ngtcp2_level (WzpTlsLevel level)
{
  switch (level) {
    case WZP_TLS_LEVEL_INITIAL:
      return NGTCP2_ENCRYPTION_LEVEL_INITIAL;
    case WZP_TLS_LEVEL_EARLY_DATA:
      return NGTCP2_ENCRYPTION_LEVEL_0RTT;
    case WZP_TLS_LEVEL_HANDSHAKE:
      return NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE;
    case WZP_TLS_LEVEL_APPLICATION:
    default:
      return NGTCP2_ENCRYPTION_LEVEL_1RTT;
  }
}

static WzpTlsLevel
tls_level (ngtcp2_encryption_level level)
{
  switch (level) {
    case NGTCP2_ENCRYPTION_LEVEL_INITIAL:
      return WZP_TLS_LEVEL_INITIAL;
    case NGTCP2_ENCRYPTION_LEVEL_0RTT:
      return WZP_TLS_LEVEL_EARLY_DATA;
    case NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE:
      return WZP_TLS_LEVEL_HANDSHAKE;
    case NGTCP2_ENCRYPTION_LEVEL_1RTT:
    default:
      return WZP_TLS_LEVEL_APPLICATION;
  }
}

/* Hands our transport parameters, as ngtcp2 has them now, to the layer. */
static gboolean
set_local_transport_params (WzpTlsSession *s)
{
  guint8 tp[WZP_TLS_TP_MAX];
  ngtcp2_ssize n = ngtcp2_conn_encode_local_transport_params (s->conn, tp, sizeof tp);

  return n > 0 && wzp_tls_compat_set_transport_params (s->ssl, tp, (gsize) n);
}

/* Installs the packet keys of one direction's new @secret in ngtcp2. */
static int
install_secret (SSL *ssl, WzpTlsLevel tls_lvl, const SSL_CIPHER *cipher, const guint8 *secret,
                gsize len, gboolean write)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  ngtcp2_encryption_level level = ngtcp2_level (tls_lvl);
  const WzpCryptoSuite *suite = cipher ? wzp_crypto_suite_by_tls_id (SSL_CIPHER_get_id (cipher)) : NULL;
  WzpPacketKeys k;
  int rv;

  if (s == NULL || s->failed)
    return 0;
  if (suite == NULL || len > WZP_CRYPTO_MAX_SECRET) {
    session_fail (s, "TLS negotiated a cipher suite QUIC cannot use");
    return 0;
  }
  if (!s->crypto_ctx_set) {
    ngtcp2_crypto_ctx cctx;
    wzp_crypto_suite_to_ngtcp2 (suite, &cctx);
    ngtcp2_conn_set_crypto_ctx (s->conn, &cctx);
    s->crypto_ctx_set = TRUE;
  }
  if (!wzp_crypto_keys_derive (suite, secret, len, write, TRUE, &k)) {
    session_fail (s, "cannot derive QUIC packet keys");
    return 0;
  }
  if (level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE)
    rv = write ? ngtcp2_conn_install_tx_handshake_key (s->conn, &k.aead, k.iv, IV_LEN, &k.hp) :
        ngtcp2_conn_install_rx_handshake_key (s->conn, &k.aead, k.iv, IV_LEN, &k.hp);
  else
    rv = write ? ngtcp2_conn_install_tx_key (s->conn, secret, len, &k.aead, k.iv, IV_LEN, &k.hp) :
        ngtcp2_conn_install_rx_key (s->conn, secret, len, &k.aead, k.iv, IV_LEN, &k.hp);
  if (rv != 0) {
    wzp_crypto_keys_free (&k);
    session_fail (s, "ngtcp2 refused a key: %s", ngtcp2_strerror (rv));
    return 0;
  }
  if (level == NGTCP2_ENCRYPTION_LEVEL_1RTT && !write)
    wzp_crypto_prefetch_ranges (&k.aead, &k.hp, s->rx_keys);
  /* a server's transport parameters are complete once the client's are
   * read; its EncryptedExtensions follow this secret */
  if (s->server && write && level == NGTCP2_ENCRYPTION_LEVEL_HANDSHAKE &&
      !set_local_transport_params (s)) {
    session_fail (s, "cannot encode our QUIC transport parameters");
    return 0;
  }
  return 1;
}

static int
set_read_secret (SSL *ssl, WzpTlsLevel level, const SSL_CIPHER *cipher, const guint8 *secret,
                 gsize len)
{
  return install_secret (ssl, level, cipher, secret, len, FALSE);
}

static int
set_write_secret (SSL *ssl, WzpTlsLevel level, const SSL_CIPHER *cipher, const guint8 *secret,
                  gsize len)
{
  return install_secret (ssl, level, cipher, secret, len, TRUE);
}

static int
add_handshake_data (SSL *ssl, WzpTlsLevel level, const guint8 *data, gsize len)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  int rv;

  if (s == NULL)
    return 0;
  rv = ngtcp2_conn_submit_crypto_data (s->conn, ngtcp2_level (level), data, len);
  if (rv != 0) {
    session_fail (s, "cannot queue handshake data: %s", ngtcp2_strerror (rv));
    return 0;
  }
  return 1;
}

static int
send_alert (SSL *ssl, WzpTlsLevel level, guint8 alert)
{
  WzpTlsSession *s = session_of_ssl (ssl);

  if (s == NULL)
    return 0;
  ngtcp2_conn_set_tls_alert (s->conn, alert);
  session_fail (s, "TLS alert %u (%s) sent", alert, SSL_alert_desc_string_long (alert));
  return 1;
}

static int
got_transport_params (SSL *ssl, const guint8 *params, gsize len)
{
  WzpTlsSession *s = session_of_ssl (ssl);
  int rv;

  if (s == NULL)
    return 0;
  rv = ngtcp2_conn_decode_and_set_remote_transport_params (s->conn, params, len);
  if (rv != 0) {
    session_fail (s, "the peer's QUIC transport parameters are invalid: %s", ngtcp2_strerror (rv));
    return 0;
  }
  s->got_transport_params = TRUE;
  return 1;
}

static const WzpQuicMethod quic_method = {
  set_read_secret, set_write_secret, add_handshake_data, send_alert, got_transport_params,
};

/* Client certificates are only asked for, never required, and any is
 * taken: what matters is its fingerprint, checked by the application. */
static int
accept_any_cert (int preverify_ok, X509_STORE_CTX *store)
{
  return 1;
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
  const gchar *sni;
  gsize snilen = 0;

  if (!wzp_tls_compat_client_hello_is_quic (ssl)) {
    *al = ALERT_MISSING_EXTENSION;
    return SSL_CLIENT_HELLO_ERROR;
  }
  sni = client_hello_sni (ssl, &snilen);
  if (sni && snilen == 11 && g_ascii_strncasecmp (sni, "_federation", 11) == 0)
    SSL_set_verify (ssl, SSL_VERIFY_PEER, accept_any_cert);
  /* a peer dialling our direct path shows its certificate, if it has one:
   * gst-wzp peers prove their identity key with it; a client without one
   * (upstream's) sends none and goes on */
  else if (s && s->ctx->ask_call_certificates && sni && snilen > 5 && g_ascii_strncasecmp (sni, "call-", 5) == 0)
    SSL_set_verify (ssl, SSL_VERIFY_PEER, accept_any_cert);
  /* the endpoint may set its transport parameters by the server name */
  if (s && s->hello_func)
    s->hello_func (s->conn, sni, snilen, s->hello_data);
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

  if (!wzp_crypto_init ()) {
    g_set_error_literal (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED,
                         "OpenSSL lacks the ciphers QUIC needs");
    return NULL;
  }
  ctx = SSL_CTX_new (server ? TLS_server_method () : TLS_client_method ());
  if (ctx == NULL) {
    g_autofree gchar *msg = openssl_error ();
    g_set_error (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED, "cannot create a TLS context: %s", msg);
    return NULL;
  }
  SSL_CTX_set_session_cache_mode (ctx, SSL_SESS_CACHE_OFF);
  /* record buffers (2 x 16 KiB) only while a flight is being read/written */
  SSL_CTX_set_mode (ctx, SSL_MODE_RELEASE_BUFFERS);
  /* Like upstream we accept any certificate; fingerprints are recorded and
   * may be pinned. OpenSSL still checks the CertificateVerify signature. */
  SSL_CTX_set_verify (ctx, SSL_VERIFY_NONE, NULL);
  if (!wzp_tls_compat_ctx_init (ctx, &quic_method)) {
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
    wzp_crypto_random (seed, sizeof seed);
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

/* Once the handshake is done OpenSSL has no more work in QUIC: we send no
 * session tickets and keep none, and key updates are derived from the
 * secrets ngtcp2 holds. Its state (the SSL object, its record buffers and our
 * record protection, some 45 KiB) is freed, so an established connection
 * costs a relay only ngtcp2's and our own memory. */
static void
release_tls (WzpTlsSession *s)
{
  if (s->ssl == NULL)
    return;
  wzp_tls_compat_ssl_clear (s->ssl);
  SSL_set_app_data (s->ssl, NULL);
  g_clear_pointer (&s->ssl, SSL_free);
}

WzpTlsSession *
wzp_tls_session_new (WzpTlsContext *ctx, ngtcp2_conn *conn, gboolean server, const gchar *sni,
                     GError **error)
{
  WzpTlsSession *s;
  g_return_val_if_fail (ctx->server == server, NULL);
  s = g_new0 (WzpTlsSession, 1);
  s->ctx = wzp_tls_context_ref (ctx);
  s->conn = conn;
  s->server = server;
  s->ssl = SSL_new (ctx->ssl_ctx);
  if (s->ssl)
    SSL_set_app_data (s->ssl, s);
  if (s->ssl == NULL || !wzp_tls_compat_ssl_init (s->ssl) ||
      (!server && !set_local_transport_params (s))) {
    wzp_tls_session_free (s);
    g_set_error_literal (error, WZP_TLS_ERROR, WZP_TLS_ERROR_FAILED, "cannot create a TLS session");
    return NULL;
  }
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
  release_tls (s);
  wzp_tls_context_unref (s->ctx);
  g_free (s->sni);
  g_free (s->peer_fp);
  g_free (s->error);
  g_free (s);
}

void
wzp_tls_session_set_client_hello_func (WzpTlsSession *s, WzpTlsClientHelloFunc func,
                                       gpointer data)
{
  s->hello_func = func;
  s->hello_data = data;
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

gboolean
wzp_tls_session_get_peer_public_key (WzpTlsSession *s, guint8 out[32])
{
  if (!s->has_peer_pk)
    return FALSE;
  memcpy (out, s->peer_pk, 32);
  return TRUE;
}

void
wzp_tls_context_set_ask_call_certificates (WzpTlsContext *ctx, gboolean ask)
{
  ctx->ask_call_certificates = ask;
}

const gchar *
wzp_tls_session_get_error (WzpTlsSession *s)
{
  return s->error;
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
    EVP_PKEY *pk = X509_get0_pubkey (peer);
    size_t pklen = sizeof s->peer_pk;

    s->peer_fp = g_malloc (WZP_TLS_FINGERPRINT_STRLEN);
    cert_fingerprint (peer, s->peer_fp);
    s->has_peer_pk = pk && EVP_PKEY_id (pk) == EVP_PKEY_ED25519 &&
        EVP_PKEY_get_raw_public_key (pk, s->peer_pk, &pklen) == 1 && pklen == sizeof s->peer_pk;
  }
  s->handshake_done = TRUE;
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

/* Initial keys from the client's first destination connection ID. */
static int
install_initial_keys (ngtcp2_conn *conn, const ngtcp2_cid *dcid, gboolean server, gboolean vneg,
                      guint32 version)
{
  WzpPacketKeys rx, tx;
  ngtcp2_crypto_ctx cctx;
  int rv;

  if (!wzp_crypto_initial_keys (dcid, server, &rx, &tx))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!vneg) {
    wzp_crypto_suite_to_ngtcp2 (wzp_crypto_initial_suite (), &cctx);
    ngtcp2_conn_set_initial_crypto_ctx (conn, &cctx);
    rv = ngtcp2_conn_install_initial_key (conn, &rx.aead, rx.iv, &rx.hp, &tx.aead, tx.iv, &tx.hp, IV_LEN);
  } else {
    rv = ngtcp2_conn_install_vneg_initial_key (conn, version, &rx.aead, rx.iv, &rx.hp, &tx.aead,
                                               tx.iv, &tx.hp, IV_LEN);
  }
  if (rv != 0) {
    wzp_crypto_keys_free (&rx);
    wzp_crypto_keys_free (&tx);
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
  if (!wzp_tls_compat_provide_data (s->ssl, tls_level (level), data, datalen)) {
    session_fail (s, "cannot hand the peer's handshake data to TLS");
    return NGTCP2_ERR_CRYPTO;
  }
  return drive (s);
}

static int
encrypt_cb (uint8_t *dest, const ngtcp2_crypto_aead *aead, const ngtcp2_crypto_aead_ctx *aead_ctx,
            const uint8_t *plaintext, size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
            const uint8_t *aad, size_t aadlen)
{
  return wzp_crypto_seal (dest, aead_ctx, plaintext, plaintextlen, nonce, aad, aadlen);
}

static int
decrypt_cb (uint8_t *dest, const ngtcp2_crypto_aead *aead, const ngtcp2_crypto_aead_ctx *aead_ctx,
            const uint8_t *ciphertext, size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
            const uint8_t *aad, size_t aadlen)
{
  return wzp_crypto_open (dest, aead_ctx, ciphertext, ciphertextlen, nonce, aad, aadlen);
}

static int
update_key_cb (ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
               ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
               ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
               const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
               size_t secretlen, void *user_data)
{
  const WzpCryptoSuite *s = wzp_crypto_suite_of_ctx (ngtcp2_conn_get_crypto_ctx (conn));
  WzpPacketKeys rx, tx;

  if (s == NULL ||
      !wzp_crypto_expand_label (s, current_rx_secret, secretlen, "quic ku", rx_secret, secretlen) ||
      !wzp_crypto_expand_label (s, current_tx_secret, secretlen, "quic ku", tx_secret, secretlen) ||
      !wzp_crypto_keys_derive (s, rx_secret, secretlen, FALSE, FALSE, &rx))
    return NGTCP2_ERR_CALLBACK_FAILURE;
  if (!wzp_crypto_keys_derive (s, tx_secret, secretlen, TRUE, FALSE, &tx)) {
    wzp_crypto_keys_free (&rx);
    return NGTCP2_ERR_CALLBACK_FAILURE;
  }
  *rx_aead_ctx = rx.aead;
  *tx_aead_ctx = tx.aead;
  memcpy (rx_iv, rx.iv, IV_LEN);
  memcpy (tx_iv, tx.iv, IV_LEN);
  return 0;
}

/* Forgets the prefetch ranges of keys being freed: after a key update the
 * first phase's entries empty, and the new keys are not prefetched. */
static void
forget_keys (ngtcp2_conn *conn, const ngtcp2_crypto_aead_ctx *aead,
             const ngtcp2_crypto_cipher_ctx *hp)
{
  WzpTlsSession *s = conn ? ngtcp2_conn_get_tls_native_handle (conn) : NULL;
  WzpCryptoRange gone[WZP_CRYPTO_PREFETCH];
  static const ngtcp2_crypto_aead_ctx no_aead;
  static const ngtcp2_crypto_cipher_ctx no_hp;

  if (s == NULL)
    return;
  wzp_crypto_prefetch_ranges (aead ? aead : &no_aead, hp ? hp : &no_hp, gone);
  for (guint i = 0; i < G_N_ELEMENTS (s->rx_keys); i++)
    for (guint j = 0; j < WZP_CRYPTO_PREFETCH; j++)
      if (gone[j].addr && s->rx_keys[i].addr == gone[j].addr)
        s->rx_keys[i] = (WzpCryptoRange) { NULL, 0 };
}

static void
delete_aead_ctx_cb (ngtcp2_conn *conn, ngtcp2_crypto_aead_ctx *aead_ctx, void *user_data)
{
  forget_keys (conn, aead_ctx, NULL);
  wzp_crypto_aead_ctx_free (aead_ctx);
}

static void
delete_cipher_ctx_cb (ngtcp2_conn *conn, ngtcp2_crypto_cipher_ctx *cipher_ctx, void *user_data)
{
  forget_keys (conn, NULL, cipher_ctx);
  wzp_crypto_cipher_ctx_free (cipher_ctx);
}

void
wzp_tls_session_prefetch (const WzpTlsSession *s)
{
  for (guint i = 0; i < G_N_ELEMENTS (s->rx_keys); i++) {
    const char *p = s->rx_keys[i].addr;

    for (gsize off = 0; p && off < s->rx_keys[i].len; off += 64)
      __builtin_prefetch (p + off);
  }
}

static void
rand_cb (uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *rand_ctx)
{
  wzp_crypto_random (dest, destlen);
}

static int
path_challenge_cb (ngtcp2_conn *conn, uint8_t *data, void *user_data)
{
  wzp_crypto_random (data, NGTCP2_PATH_CHALLENGE_DATALEN);
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
  cb->hp_mask = wzp_crypto_hp_mask;
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

  if (!wzp_crypto_retry_aead (&aead, &actx))
    return FALSE;
  ngtcp2_conn_set_retry_aead (conn, &aead, &actx);
  return TRUE;
}

