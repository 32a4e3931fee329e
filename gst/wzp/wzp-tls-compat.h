/* wzp-tls-compat: QUIC's TLS 1.3 on stock OpenSSL 3.0, which has no QUIC
 * API. The way nginx and HAProxy do it: the keylog callback yields each
 * traffic secret, the message callback each handshake message OpenSSL
 * writes (its own records are discarded), the peer's CRYPTO data goes back
 * in as TLS records, and transport parameters travel in extension 0x39.
 *
 * The interface is shaped like BoringSSL's SSL_QUIC_METHOD (and OpenSSL
 * 3.5's QUIC TLS callbacks), so that this file can be deleted when the
 * native API is used: wzp-tls.c only speaks to it through the functions
 * below. Internal to libwzp (not installed). */
#pragma once

#include <glib.h>
#include <openssl/ssl.h>

G_BEGIN_DECLS

#define WZP_TLS_TP_EXTENSION 0x39
/* the most our encoded transport parameters take */
#define WZP_TLS_TP_MAX 512

/* ssl_encryption_level_t */
typedef enum {
  WZP_TLS_LEVEL_INITIAL,
  WZP_TLS_LEVEL_EARLY_DATA,
  WZP_TLS_LEVEL_HANDSHAKE,
  WZP_TLS_LEVEL_APPLICATION,
} WzpTlsLevel;

/* SSL_QUIC_METHOD, plus the peer's transport parameters as they arrive.
 * Each returns 1 on success, 0 to fail the handshake. */
typedef struct {
  int (*set_read_secret) (SSL *ssl, WzpTlsLevel level, const SSL_CIPHER *cipher,
                          const guint8 *secret, gsize len);
  int (*set_write_secret) (SSL *ssl, WzpTlsLevel level, const SSL_CIPHER *cipher,
                           const guint8 *secret, gsize len);
  int (*add_handshake_data) (SSL *ssl, WzpTlsLevel level, const guint8 *data, gsize len);
  int (*send_alert) (SSL *ssl, WzpTlsLevel level, guint8 alert);
  int (*got_transport_params) (SSL *ssl, const guint8 *params, gsize len);
} WzpQuicMethod;

/* Configures @ctx for QUIC: TLS 1.3 only, no middlebox compatibility, no
 * tickets or early data, the secrets and the transport parameters
 * extension routed to @method (which must outlive @ctx). */
G_GNUC_INTERNAL gboolean wzp_tls_compat_ctx_init (SSL_CTX *ctx, const WzpQuicMethod *method);
/* Makes @ssl a QUIC handshake of @ctx (after SSL_new). */
G_GNUC_INTERNAL gboolean wzp_tls_compat_ssl_init (SSL *ssl);
/* Frees what the layer keeps for @ssl; call before SSL_free(). */
G_GNUC_INTERNAL void wzp_tls_compat_ssl_clear (SSL *ssl);
/* Our transport parameters, sent in the ClientHello or the server's
 * EncryptedExtensions; a server may set them again from its ClientHello
 * callback. */
G_GNUC_INTERNAL gboolean wzp_tls_compat_set_transport_params (SSL *ssl, const guint8 *params,
                                                              gsize len);
/* Server, in a ClientHello callback: whether the client sent transport
 * parameters (without them it is not QUIC). */
G_GNUC_INTERNAL gboolean wzp_tls_compat_client_hello_is_quic (SSL *ssl);
/* SSL_provide_quic_data: the peer's CRYPTO data at @level, in order. The
 * handshake then goes on with SSL_do_handshake(). */
G_GNUC_INTERNAL gboolean wzp_tls_compat_provide_data (SSL *ssl, WzpTlsLevel level,
                                                      const guint8 *data, gsize len);

G_END_DECLS
