/* wzp-tls: TLS 1.3 for QUIC on stock OpenSSL 3.0, and ngtcp2's crypto
 * callbacks over OpenSSL EVP. The only file that knows OpenSSL's TLS.
 *
 * OpenSSL 3.0 has no QUIC API, so the handshake runs through a compatibility
 * layer: the keylog callback yields each traffic secret, the message callback
 * yields each handshake message OpenSSL writes (its own records are
 * discarded), peer CRYPTO data is re-wrapped as TLS records for OpenSSL to
 * read, and transport parameters travel in extension 0x39. A native
 * OpenSSL >= 3.5 QUIC backend can replace this file behind the same API.
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
/* The handshake failure, if any, as a sentence. */
const gchar *wzp_tls_session_get_error (WzpTlsSession *session);

/* What protecting and unprotecting each 1-RTT packet reads, as address and
 * length, for prefetching: for the keys of each direction (received first,
 * then sent), the AEAD context, its expanded key and the header-protection
 * key; { NULL, 0 } where there is none to name (keys not installed yet, a
 * cipher that keeps its state inside OpenSSL). */
#define WZP_TLS_HOT_KEYS 6
typedef struct {
  gconstpointer addr;
  gsize len;
} WzpTlsHot;

/* The session keeps @hot[WZP_TLS_HOT_KEYS] up to date as 1-RTT keys are
 * installed and freed, until it is freed or this is called with NULL.
 * Keys of later phases are not named: after a key update the first
 * phase's entries go back to { NULL, 0 } as ngtcp2 frees those keys. */
void wzp_tls_session_set_hot (WzpTlsSession *session, WzpTlsHot *hot);

/* Fills @cb with every crypto callback ngtcp2 needs (initial keys, CRYPTO
 * data, AEAD, header protection, key update, retry, version negotiation,
 * rand, path challenge data). */
void wzp_tls_fill_callbacks (ngtcp2_callbacks *cb, gboolean server);
/* Client only: sets the Retry integrity AEAD on a new connection. */
gboolean wzp_tls_setup_client_conn (ngtcp2_conn *conn);

/* Random bytes from OpenSSL's generator. */
void wzp_tls_random (guint8 *out, gsize len);
/* Whether a connection with this server name carries signalling only, never
 * media (`_signal`, `_probe`, `ping`, `version`; any case): such a connection
 * announces ngtcp2's default max_ack_delay and never holds acknowledgements
 * back (docs/quic.md), so a lost message is sent again sooner. */
gboolean wzp_tls_sni_is_signalling (const gchar *sni, gsize len);
/* The stateless reset token for @cid under @secret (HMAC-SHA256). */
void wzp_tls_stateless_reset_token (const guint8 secret[32], const guint8 *cid, gsize cidlen,
                                    guint8 token[NGTCP2_STATELESS_RESET_TOKENLEN]);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WzpTlsContext, wzp_tls_context_unref)

G_END_DECLS
