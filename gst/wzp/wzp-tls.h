/* wzp-tls: TLS 1.3 for QUIC: certificate contexts, the TLS side of each
 * connection and the crypto callbacks ngtcp2 needs. Three files:
 *   wzp-tls.c          this API and ngtcp2's callbacks
 *   wzp-tls-compat.c   QUIC on OpenSSL 3.0's TLS (no QUIC API there), behind
 *                      an SSL_QUIC_METHOD-shaped interface; goes when
 *                      OpenSSL >= 3.5's QUIC TLS API is used
 *   wzp-quic-crypto.c  packet protection: AEAD, header protection, HKDF
 * Internal to libwzp (not installed): nothing above wzp-quic knows it.
 */
#pragma once

#include <glib.h>
#include <ngtcp2/ngtcp2.h>

#include "wzp-identity.h"

G_BEGIN_DECLS

#define WZP_TLS_ERROR (wzp_tls_error_quark ())
GQuark wzp_tls_error_quark (void);

typedef enum {
  WZP_TLS_ERROR_FAILED,           /* the TLS library failed */
  WZP_TLS_ERROR_HANDSHAKE,        /* the peer's handshake was refused */
  WZP_TLS_ERROR_PIN_MISMATCH,     /* the server's certificate is not the pinned one */
} WzpTlsError;

/* A certificate + configuration shared by many connections. */
typedef struct _WzpTlsContext WzpTlsContext;

/* A client context: offers ALPN "wzp", accepts any server certificate
 * (Ed25519 or ECDSA P-256), records its fingerprint. */
WzpTlsContext *wzp_tls_context_new_client (GError **error);
/* A server context whose self-signed Ed25519 certificate (SAN localhost) is
 * made from @ed25519_seed: the same seed always gives the same certificate.
 * NULL seed: a fresh random key. */
WzpTlsContext *wzp_tls_context_new_server (const guint8 *ed25519_seed, GError **error);
/* A client context presents @server's certificate when a server asks for
 * one (relays dialling "_federation"). */
gboolean wzp_tls_context_use_identity_of (WzpTlsContext *client, WzpTlsContext *server);
WzpTlsContext *wzp_tls_context_ref (WzpTlsContext *ctx);
void wzp_tls_context_unref (WzpTlsContext *ctx);
/* Our certificate's fingerprint (server contexts), 95-char colon hex. */
const gchar *wzp_tls_context_get_fingerprint (WzpTlsContext *ctx);
/* DER bytes of our certificate (server contexts). */
GBytes *wzp_tls_context_get_certificate (WzpTlsContext *ctx);

/* The TLS side of one QUIC connection. */
typedef struct _WzpTlsSession WzpTlsSession;

/* @sni: client only; NULL sends no server_name. Attaches itself to @conn as
 * its TLS native handle. */
WzpTlsSession *wzp_tls_session_new (WzpTlsContext *ctx, ngtcp2_conn *conn,
                                    gboolean server, const gchar *sni, GError **error);
void wzp_tls_session_free (WzpTlsSession *session);

/* Server: the SNI the client sent ("" when none). */
const gchar *wzp_tls_session_get_sni (WzpTlsSession *session);
/* Fingerprint of the peer's certificate, NULL when it sent none. */
const gchar *wzp_tls_session_get_peer_fingerprint (WzpTlsSession *session);
/* The raw Ed25519 key of the peer's certificate; FALSE when it sent none or
 * it is not Ed25519. */
gboolean wzp_tls_session_get_peer_public_key (WzpTlsSession *session, guint8 out[32]);
/* A server context asks clients whose SNI starts "call-" for a certificate
 * too (a gst-wzp endpoint's direct path), besides "_federation". */
void wzp_tls_context_set_ask_call_certificates (WzpTlsContext *ctx, gboolean ask);
/* The handshake failure, if any, as a sentence. */
const gchar *wzp_tls_session_get_error (WzpTlsSession *session);

/* Server: @func runs when the ClientHello arrives, before the server's
 * transport parameters are sent, with its server name (not NUL-terminated,
 * NULL when none); it may change @conn's local transport parameters. */
typedef void (*WzpTlsClientHelloFunc) (ngtcp2_conn *conn, const gchar *sni, gsize len,
                                       gpointer data);
void wzp_tls_session_set_client_hello_func (WzpTlsSession *session, WzpTlsClientHelloFunc func,
                                            gpointer data);

/* Asks the CPU for the state of the session's 1-RTT packet protection of
 * what it receives (our own allocations) before a packet is read. */
void wzp_tls_session_prefetch (const WzpTlsSession *session);

/* Fills @cb with every crypto callback ngtcp2 needs (initial keys, CRYPTO
 * data, AEAD, header protection, key update, retry, version negotiation,
 * rand, path challenge data). */
void wzp_tls_fill_callbacks (ngtcp2_callbacks *cb, gboolean server);
/* Client only: sets the Retry integrity AEAD on a new connection. */
gboolean wzp_tls_setup_client_conn (ngtcp2_conn *conn);

/* Random bytes and stateless reset tokens: wzp-quic-crypto.h. */

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpTlsContext, wzp_tls_context_unref)

G_END_DECLS
