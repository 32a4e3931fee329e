/* The relay's internal types, shared by relay.c (rooms, hub, calls) and
 * federation.c (links between relays). */
#pragma once

#include <stdio.h>
#include "relay.h"
#include "auth.h"
#include "wzp-quality.h"

/* ---- types ------------------------------------------------------------------ */

typedef enum {
  PEER_AWAIT_AUTH,       /* auth on: the first message must be AuthToken */
  PEER_AUTH_PENDING,     /* the auth server is deciding */
  PEER_AWAIT_OFFER,      /* room connection before its CallOffer */
  PEER_IN_ROOM,
  PEER_AWAIT_REGISTER,   /* _signal before RegisterPresence */
  PEER_REGISTERED,
  PEER_DONE,             /* ping, version, refused, closing */
} PeerState;

typedef struct _Room Room;

typedef struct {
  WzpRelay *relay;
  WzpConnection *conn;
  PeerState state;
  gchar *room_name;
  Room *room;
  /* the other members' connections, rebuilt at every join and leave: the
   * forwarding of a datagram reads these, not the room (fewer cache misses) */
  guint n_fwd;
  WzpConnection **fwd;    /* fwd_few, or allocated for bigger rooms */
  WzpConnection *fwd_few[3];
  gchar *fingerprint;
  gchar *key_fp;          /* fingerprint of the registered key (differs with auth) */
  gchar *alias;
  gchar *source;          /* remote IP, for the per-address limit */
  guint timer;            /* handshake or registration deadline */
  gboolean is_signal;     /* a _signal connection (else a room) */
  gchar *auth_fp;         /* identity given by the auth server */
  gchar *auth_alias;
  GCancellable *auth_cancel;
  GQueue held;            /* messages that came while auth was pending */
  gint64 window_start;    /* signal rate limit: one-second windows */
  guint window_count;
  WzpTierController quality;  /* from its QualityReport trailers (§5.3.4) */
  gboolean has_report;        /* the last trailer, for the per-session gauges */
  gdouble report_loss_pct;
  guint report_rtt_ms, report_jitter_ms;
} Peer;

/* the largest media datagram a room forwards (a received UDP packet is at
 * most this, so no DATAGRAM frame in it is larger) */
#define ROOM_DATAGRAM_MAX 2048

/* federation.c's view of a room, worked out once */
typedef enum {
  FED_UNKNOWN,                  /* not yet worked out */
  FED_LOCAL,                    /* this relay's only */
  FED_SHARED,                   /* shared with other relays under @canon, tagged @tag */
} FedState;

struct _Room {
  WzpRelay *relay;
  WzpTier tier;           /* the weakest member's, last announced */
  FedState fed_state;
  const gchar *canon;
  guint8 tag[8];
  gchar *name;
  gboolean call_room;
  GPtrArray *members;     /* Peer*, borrowed */
};

typedef struct {
  WzpRelay *relay;
  gchar *call_id;
  gchar *key;             /* lowercased call_id: room names arrive lowercased */
  gchar *caller;
  gchar *callee;
  gboolean active;
  gchar *caller_reflexive;
  GPtrArray *caller_local;
  gchar *callee_reflexive;
  GPtrArray *callee_local;
  guint timer;            /* ring timeout, then lifetime */
  gint caller_direct_ok, callee_direct_ok;  /* from MediaPathReports: -1 unknown */
  /* cross-relay calls (federation.c): the other party is behind a link */
  gchar *link_fp;         /* normalised TLS fingerprint of that relay */
  gboolean remote_caller, remote_callee;
} Call;

typedef struct {
  guint64 connections_total;
  guint64 refused_room_name;
  guint64 refused_limit;
  guint64 handshake_failures;
  guint64 register_failures;
  guint64 forged_signatures;
  guint64 datagrams_in;
  guint64 datagrams_forwarded;
  guint64 bytes_forwarded;
  guint64 datagrams_malformed;
  guint64 path_reports_forwarded;
  guint64 path_reports_dropped;
  guint64 signals_rate_limited;
  guint64 signals_unexpected;
  guint64 calls_offered;
  guint64 calls_unreachable;
  guint64 calls_rejected;
  guint64 calls_timed_out;
  guint64 calls_refused;
  guint64 hangups;
  guint64 reflects;
  guint64 auth_ok;
  guint64 auth_fail;
  guint64 quality_directives;
  guint64 fed_links_accepted;
  guint64 fed_links_refused;
  guint64 fed_links_unverified;
  guint64 fed_signals_sent;
  guint64 fed_signals_received;
  guint64 fed_signals_dropped;
  guint64 fed_datagrams_sent;
  guint64 fed_datagrams_received;
  guint64 fed_datagrams_duplicate;
  guint64 fed_datagrams_dropped;
} Counters;

typedef struct _WzpFederation WzpFederation;
typedef struct _WzpProbes WzpProbes;
typedef struct _Prober Prober;
typedef struct _Link Link;

struct _WzpRelay {
  WzpEndpoint *endpoint;
  WzpIdentity *identity;
  WzpRelaySettings settings;
  GHashTable *peers;      /* WzpConnection* -> Peer* (owned) */
  GHashTable *hub;        /* fingerprint -> Peer* registered on _signal */
  GHashTable *rooms;      /* name -> Room* (owned) */
  GHashTable *calls;      /* lowercased call_id -> Call* (owned) */
  GHashTable *per_address;/* source IP -> GUINT count */
  WzpAuth *auth;
  gulong incoming_id;
  gint64 started_us;
  WzpFederation *fed;     /* NULL without peers, trusted relays or global rooms */
  /* test hooks on call rooms' media, from the environment only (docs/testing.md):
   * WZP_RELAY_TEST_TAP=FILE appends each forwarded datagram (u16 length, bytes);
   * WZP_RELAY_TEST_FLIP_EVERY=N flips a payload bit of every Nth;
   * WZP_RELAY_TEST_REPLAY_EVERY=N forwards every Nth twice */
  FILE *test_tap;
  guint test_flip_every, test_replay_every;
  guint64 test_count;
  WzpProbes *probes;      /* probe.c: probers, responders, presence gossip */
  Counters n;
};

/* relay.c, for federation.c */
G_GNUC_INTERNAL void relay_send_signal (Peer *p, const WzpSignal *msg);
G_GNUC_INTERNAL void relay_send_hangup (Peer *p, WzpHangupReason reason, const gchar *call_id);
G_GNUC_INTERNAL Peer *relay_hub_lookup (WzpRelay *r, const gchar *fp);
G_GNUC_INTERNAL Call *relay_call_lookup (WzpRelay *r, const gchar *call_id);
G_GNUC_INTERNAL Call *relay_call_new (WzpRelay *r, const gchar *call_id, const gchar *caller,
                                      const gchar *callee);
G_GNUC_INTERNAL void relay_call_activate (WzpRelay *r, Call *c, const gchar *callee_reflexive,
                                          const GPtrArray *callee_local);
G_GNUC_INTERNAL void relay_call_end (WzpRelay *r, Call *c);
G_GNUC_INTERNAL WzpSignal *relay_call_setup_for (WzpRelay *r, Call *c, const gchar *reflexive,
                                                 const GPtrArray *local);
G_GNUC_INTERNAL GPtrArray *relay_copy_list (const GPtrArray *src);
G_GNUC_INTERNAL gsize relay_sig_len (GBytes *b);
G_GNUC_INTERNAL gboolean relay_verify_offer (const WzpDirectCallOffer *m);
G_GNUC_INTERNAL gchar *relay_source_ip (const gchar *addr);

/* federation.c */
G_GNUC_INTERNAL WzpFederation *federation_new (WzpRelay *r);
G_GNUC_INTERNAL void federation_free (WzpFederation *f);
G_GNUC_INTERNAL void federation_accept (WzpRelay *r, WzpConnection *conn);
/* Sends @offer wrapped to one link per peer relay; FALSE when there is none. */
G_GNUC_INTERNAL gboolean federation_offer (WzpRelay *r, const WzpSignal *offer);
/* Sends @inner wrapped to the relay @link_fp; FALSE when no link is up. */
G_GNUC_INTERNAL gboolean federation_send (WzpRelay *r, const gchar *link_fp, const WzpSignal *inner);
/* A local member's datagram in @room, to the relays that share the room. */
G_GNUC_INTERNAL void federation_room_datagram (WzpRelay *r, Room *room, const guint8 *data, gsize len);
G_GNUC_INTERNAL guint federation_links_up (WzpRelay *r);
/* A local member joined or left @room_name: tell the links (global rooms). */
G_GNUC_INTERNAL void federation_room_changed (WzpRelay *r, const gchar *room_name);
/* Appends the remote members of @room_name (global rooms) to @out. */
G_GNUC_INTERNAL void federation_add_remote_participants (WzpRelay *r, const gchar *room_name, GPtrArray *out);
G_GNUC_INTERNAL void relay_room_broadcast_update (Room *room);


/* probe.c */
G_GNUC_INTERNAL WzpProbes *probes_new (WzpRelay *r);
G_GNUC_INTERNAL void probes_free (WzpProbes *p);
G_GNUC_INTERNAL void probes_accept (WzpRelay *r, WzpConnection *conn);
G_GNUC_INTERNAL void probes_metrics (WzpRelay *r, GString *s);
G_GNUC_INTERNAL void federation_peer_metrics (WzpRelay *r, GString *s);
