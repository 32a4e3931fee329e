/* wzp-tls-compat: the OpenSSL 3.0 QUIC compatibility layer (see
 * wzp-tls-compat.h). It relies on OpenSSL 3.0's order of callbacks and its
 * keylog labels; tests/test-quic.c's handshakes against quinn/rustls catch a
 * change. */
#define G_LOG_DOMAIN "wzp-tls"

#include "wzp-tls-compat.h"
#include "wzp-quic-crypto.h"
#include "wzp-util.h"

#include <string.h>

#define RECORD_CHUNK 16384
#define RECORD_HEADER 5

/* What the layer keeps per handshake. */
typedef struct {
  const WzpQuicMethod *method;
  WzpTlsLevel write_level;
  /* OpenSSL reads the peer's CRYPTO data as TLS records protected with the
   * peer's current secret: this is that record protection. */
  WzpRecordKeys *record;
  guint8 tp[WZP_TLS_TP_MAX];
  gsize tp_len;
  gboolean failed;
} Compat;

static int compat_index = -1;
static int method_index = -1;

static Compat *
compat_of (const SSL *ssl)
{
  return SSL_get_ex_data (ssl, compat_index);
}

static const SSL_CIPHER *
cipher_of (const SSL *ssl)
{
  const SSL_CIPHER *c = SSL_get_current_cipher (ssl);

  return c ? c : SSL_get_pending_cipher (ssl);
}

static void
keylog_cb (const SSL *cssl, const char *line)
{
  static const struct { const gchar *label; WzpTlsLevel level; gboolean client; } labels[] = {
    { "CLIENT_HANDSHAKE_TRAFFIC_SECRET", WZP_TLS_LEVEL_HANDSHAKE, TRUE },
    { "SERVER_HANDSHAKE_TRAFFIC_SECRET", WZP_TLS_LEVEL_HANDSHAKE, FALSE },
    { "CLIENT_TRAFFIC_SECRET_0", WZP_TLS_LEVEL_APPLICATION, TRUE },
    { "SERVER_TRAFFIC_SECRET_0", WZP_TLS_LEVEL_APPLICATION, FALSE },
  };
  SSL *ssl = (SSL *) cssl;
  Compat *c = compat_of (ssl);
  g_auto (GStrv) parts = NULL;
  guint8 secret[WZP_CRYPTO_MAX_SECRET];
  gsize len;

  if (c == NULL || c->failed)
    return;
  parts = g_strsplit (line, " ", 3);
  if (g_strv_length (parts) != 3)
    return;
  len = strlen (parts[2]) / 2;
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++) {
    const SSL_CIPHER *cipher = cipher_of (ssl);
    /* our own secrets protect what we write */
    gboolean write = labels[i].client != (gboolean) SSL_is_server (ssl);
    int ok;

    if (strcmp (parts[0], labels[i].label) != 0)
      continue;
    if (len > WZP_CRYPTO_MAX_SECRET || !wzp_hex_decode_exact (parts[2], secret, len)) {
      c->failed = TRUE;
      return;
    }
    if (write) {
      ok = c->method->set_write_secret (ssl, labels[i].level, cipher, secret, len);
      c->write_level = labels[i].level;
    } else {
      /* the record protection OpenSSL expects for what the peer sends next */
      const WzpCryptoSuite *suite = cipher ? wzp_crypto_suite_by_tls_id (SSL_CIPHER_get_id (cipher)) : NULL;

      ok = c->method->set_read_secret (ssl, labels[i].level, cipher, secret, len);
      g_clear_pointer (&c->record, wzp_crypto_record_keys_free);
      if (ok && suite)
        c->record = wzp_crypto_record_keys_new (suite, secret, len);
      ok = ok && c->record;
    }
    c->failed = !ok;
    OPENSSL_cleanse (secret, sizeof secret);
    OPENSSL_cleanse (parts[2], strlen (parts[2]));
    return;
  }
}

static void
message_cb (int write_p, int version, int content_type, const void *buf, size_t len,
            SSL *ssl, void *arg)
{
  Compat *c = compat_of (ssl);

  if (!write_p || c == NULL)
    return;
  if (content_type == SSL3_RT_HANDSHAKE) {
    if (!c->method->add_handshake_data (ssl, c->write_level, buf, len))
      c->failed = TRUE;
  } else if (content_type == SSL3_RT_ALERT && len >= 2) {
    c->method->send_alert (ssl, c->write_level, ((const guint8 *) buf)[1]);
    c->failed = TRUE;
  }
}

static int
tp_add_cb (SSL *ssl, unsigned int ext_type, unsigned int context, const unsigned char **out,
           size_t *outlen, X509 *x, size_t chainidx, int *al, void *add_arg)
{
  Compat *c = compat_of (ssl);

  if (c == NULL)
    return 0;
  if (c->tp_len == 0) {
    *al = SSL_AD_INTERNAL_ERROR;
    return -1;
  }
  /* held only until OpenSSL has copied it into the handshake message */
  *out = g_memdup2 (c->tp, c->tp_len);
  *outlen = c->tp_len;
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
  Compat *c = compat_of (ssl);

  if (c == NULL)
    return 0;
  if (!c->method->got_transport_params (ssl, in, inlen)) {
    *al = SSL_AD_ILLEGAL_PARAMETER;
    return 0;
  }
  return 1;
}

gboolean
wzp_tls_compat_ctx_init (SSL_CTX *ctx, const WzpQuicMethod *method)
{
  if (compat_index < 0) {
    compat_index = SSL_get_ex_new_index (0, NULL, NULL, NULL, NULL);
    method_index = SSL_CTX_get_ex_new_index (0, NULL, NULL, NULL, NULL);
  }
  SSL_CTX_set_ex_data (ctx, method_index, (gpointer) method);
  SSL_CTX_set_min_proto_version (ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version (ctx, TLS1_3_VERSION);
  /* QUIC has no ChangeCipherSpec, no 0-RTT here, and we keep no tickets */
  SSL_CTX_clear_options (ctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
  SSL_CTX_set_options (ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets (ctx, 0);
  SSL_CTX_set_max_early_data (ctx, 0);
  SSL_CTX_set_keylog_callback (ctx, keylog_cb);
  return SSL_CTX_add_custom_ext (ctx, WZP_TLS_TP_EXTENSION,
                                 SSL_EXT_CLIENT_HELLO | SSL_EXT_TLS1_3_ENCRYPTED_EXTENSIONS,
                                 tp_add_cb, tp_free_cb, NULL, tp_parse_cb, NULL) == 1;
}

gboolean
wzp_tls_compat_ssl_init (SSL *ssl)
{
  Compat *c;
  BIO *rbio = BIO_new (BIO_s_mem ());
  BIO *wbio = BIO_new (BIO_s_null ());  /* OpenSSL's own records are not used */

  if (rbio == NULL || wbio == NULL) {
    BIO_free (rbio);
    BIO_free (wbio);
    return FALSE;
  }
  SSL_set_bio (ssl, rbio, wbio);
  c = g_new0 (Compat, 1);
  c->method = SSL_CTX_get_ex_data (SSL_get_SSL_CTX (ssl), method_index);
  c->write_level = WZP_TLS_LEVEL_INITIAL;
  SSL_set_ex_data (ssl, compat_index, c);
  SSL_set_msg_callback (ssl, message_cb);
  SSL_set_quiet_shutdown (ssl, 1);
  return c->method != NULL;
}

void
wzp_tls_compat_ssl_clear (SSL *ssl)
{
  Compat *c = compat_of (ssl);

  if (c == NULL)
    return;
  SSL_set_ex_data (ssl, compat_index, NULL);
  wzp_crypto_record_keys_free (c->record);
  g_free (c);
}

gboolean
wzp_tls_compat_set_transport_params (SSL *ssl, const guint8 *params, gsize len)
{
  Compat *c = compat_of (ssl);

  if (c == NULL || len > sizeof c->tp)
    return FALSE;
  memcpy (c->tp, params, len);
  c->tp_len = len;
  return TRUE;
}

gboolean
wzp_tls_compat_client_hello_is_quic (SSL *ssl)
{
  const unsigned char *ext;
  size_t len;

  return SSL_client_hello_get0_ext (ssl, WZP_TLS_TP_EXTENSION, &ext, &len) == 1;
}

/* Plaintext records at the Initial level, otherwise protected with the
 * peer's current secret (inner type handshake, outer header 17 03 03 as
 * AAD, nonce = iv ^ record number). */
gboolean
wzp_tls_compat_provide_data (SSL *ssl, WzpTlsLevel level, const guint8 *data, gsize len)
{
  Compat *c = compat_of (ssl);
  BIO *rbio = SSL_get_rbio (ssl);
  guint8 rec[RECORD_HEADER + RECORD_CHUNK + 1 + WZP_CRYPTO_TAG_LEN];

  if (c == NULL || c->failed)
    return FALSE;
  while (len > 0) {
    gsize n = MIN (len, RECORD_CHUNK);
    gboolean plain = level == WZP_TLS_LEVEL_INITIAL;
    gsize total = plain ? n : n + 1 + WZP_CRYPTO_TAG_LEN;

    if (!plain && c->record == NULL)
      return FALSE;             /* handshake data before its keys */
    rec[0] = plain ? SSL3_RT_HANDSHAKE : SSL3_RT_APPLICATION_DATA;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (guint8) (total >> 8);
    rec[4] = (guint8) total;
    memcpy (rec + RECORD_HEADER, data, n);
    if (!plain) {
      rec[RECORD_HEADER + n] = SSL3_RT_HANDSHAKE;
      if (!wzp_crypto_record_seal (c->record, rec, n + 1))
        return FALSE;
    }
    BIO_write (rbio, rec, (int) (RECORD_HEADER + total));
    data += n;
    len -= n;
  }
  return TRUE;
}
