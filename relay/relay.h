/* WzpRelay: the relay's state and protocol logic (protocol §5): SNI
 * dispatch, rooms (SFU), the `_signal` hub, the direct-call registry,
 * Reflect and MediaPathReport forwarding. No GStreamer, no HTTP (see
 * metrics.c), no command line (see main.c). */
#pragma once

#include "wzp-identity.h"
#include "wzp-quic.h"

G_BEGIN_DECLS

typedef struct {
  gchar *advertise;              /* relay_addr in CallSetup */
  gboolean require_signatures;   /* refuse unsigned RegisterPresence/DirectCallOffer */
  guint register_timeout_ms;     /* RegisterPresence must come within: 10000 */
  guint handshake_timeout_ms;    /* AuthToken/CallOffer must come within: 10000 */
  guint ring_timeout_ms;         /* unanswered offers end after: 30000 */
  guint call_lifetime_ms;        /* any registry entry ends after: 86400000 */
  guint max_rooms;               /* 1000 */
  guint max_room_members;        /* 64 (call-* rooms: 2) */
  guint max_conns_per_address;   /* 64 */
  guint max_signals_per_second;  /* per connection: 50 */
  guint max_pending_calls;       /* per identity: 8 */
  gchar *auth_url;               /* featherChat-style token validation, or NULL */
  /* federation (protocol §5.9; docs/relay.md) */
  GPtrArray *fed_peers;          /* WzpFederationPeer*: relays to dial */
  gchar **fed_trusted;           /* TLS fingerprints that may dial us */
  gchar **global_rooms;          /* rooms that span the federation */
  guint fed_retry_ms;            /* first reconnect delay: 5000 */
  gchar *fed_label;              /* this relay's label in other relays' RoomUpdates */
  gboolean fed_require_certificates; /* refuse relays that present no TLS certificate */
  gchar **probe_targets;         /* relays to probe (§5.10) */
  guint probe_interval_ms;       /* one Ping per: 1000 */
} WzpRelaySettings;

typedef struct {
  gchar *name;                   /* the NAME of its [peer:NAME] group */
  gchar *url;                    /* ip:port */
  gchar *fingerprint;            /* its TLS fingerprint, pinned when we dial */
  gchar *label;                  /* shown to participants; default NAME */
} WzpFederationPeer;

WzpFederationPeer *wzp_federation_peer_new (const gchar *name, const gchar *url,
                                            const gchar *fingerprint, const gchar *label);
void wzp_federation_peer_free (WzpFederationPeer *peer);

void wzp_relay_settings_init (WzpRelaySettings *s);
void wzp_relay_settings_clear (WzpRelaySettings *s);

typedef struct _WzpRelay WzpRelay;

/* Takes the endpoint (listening already) and the relay's identity. Fails
 * only for a bad auth URL. */
WzpRelay *wzp_relay_new (WzpEndpoint *endpoint, WzpIdentity *identity,
                         const WzpRelaySettings *settings, GError **error);
void wzp_relay_free (WzpRelay *relay);
/* Hangs up every call, closes every connection with reason "shutdown". */
void wzp_relay_shutdown (WzpRelay *relay);

/* /presence (all, or @fingerprint's), /peers, /route/<fp> as JSON and /mesh
 * as text (protocol §5.11). */
gchar *wzp_relay_presence_json (WzpRelay *relay, const gchar *fingerprint);
gchar *wzp_relay_peers_json (WzpRelay *relay);
gchar *wzp_relay_route_json (WzpRelay *relay, const gchar *fingerprint);
gchar *wzp_relay_mesh_text (WzpRelay *relay);

/* Prometheus text and JSON health for the HTTP side. */
gchar *wzp_relay_metrics_text (WzpRelay *relay);
gchar *wzp_relay_health_json (WzpRelay *relay);

/* TRUE when upstream clients could send @name as an SNI (rustls' DNS-name
 * rules, protocol §1.5). */
gboolean wzp_relay_room_name_valid (const gchar *name);

G_END_DECLS
