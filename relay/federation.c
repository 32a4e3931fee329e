/* Federation (protocol §5.9): links between relays over QUIC with SNI
 * "_federation", FederationHello, cross-relay direct calls wrapped in
 * FederatedSignalForward (offers, answers, rejects, hangups and
 * MediaPathReports), and media of call-* and global rooms bridged as
 * room-hash-tagged datagrams with a dedup window and a per-room rate limit.
 *
 * Trust, beyond upstream: a link we dial is pinned to the fingerprint the
 * configuration gives for that peer; a relay dialling us is asked for its
 * certificate, and its hello must name the certificate it presented and a
 * configured peer or trusted fingerprint. A relay that presents no
 * certificate (upstream's do not) is trusted by upstream's rule: its source
 * IP is a configured peer's, or its hello names a trusted fingerprint; such
 * links are counted as unverified. */
#define G_LOG_DOMAIN "wzp-relay"

#include "relay-private.h"
#include "wzp-wire.h"

#include <string.h>

#define HELLO_TIMEOUT_MS 5000
#define RETRY_FIRST_MS 5000
#define RETRY_MAX_MS 300000
#define DEDUP_WINDOW_US (2 * G_USEC_PER_SEC)
#define ROOM_RATE_PER_SECOND 500
#define TAG_SIZE WZP_ROOM_HASH_SIZE
#define STALE_US (15 * G_USEC_PER_SEC)

struct _Link {
  WzpFederation *fed;
  WzpConnection *conn;
  const WzpFederationPeer *cfg;  /* outbound: the configured peer */
  gboolean outbound;
  gboolean up;                   /* hello sent (outbound) or accepted (inbound) */
  gboolean verified;             /* trusted by a certificate, not by an address */
  gchar *fp;                     /* normalised TLS fingerprint of the peer */
  gchar *label;
  guint timer;                   /* inbound: hello deadline */
  gint64 last_seen;              /* any signal or datagram */
  GHashTable *rooms;             /* canonical global room -> GPtrArray of WzpRoomParticipant*:
                                  * everyone reachable through this link */
};

typedef struct {
  gint64 window_start;
  guint count;
} RoomRate;

struct _WzpFederation {
  WzpRelay *relay;
  GPtrArray *links;              /* Link* (owned) */
  GHashTable *retry;             /* const WzpFederationPeer* -> RetryState* */
  GHashTable *seen;              /* dedup key (guint64 in a pointer-sized box) -> gint64 */
  GHashTable *rates;             /* room hash (hex) -> RoomRate* */
  gchar *own_fp;
  guint sweep;
  gchar **hashed;                /* hash_room_name of each configured global room */
  guint8 (*global_tags)[TAG_SIZE];/* room_hash of each configured global room */
};

typedef struct {
  WzpFederation *fed;
  const WzpFederationPeer *cfg;
  guint delay_ms;
  guint timer;
} RetryState;

/* colons out, lower case: how upstream compares fingerprints */
static gchar *
norm_fp (const gchar *fp)
{
  GString *s = g_string_new (NULL);

  for (; fp && *fp; fp++)
    if (*fp != ':')
      g_string_append_c (s, g_ascii_tolower (*fp));
  return g_string_free (s, FALSE);
}

static const WzpFederationPeer *
configured_peer_by_fp (WzpFederation *f, const gchar *nfp)
{
  GPtrArray *peers = f->relay->settings.fed_peers;

  for (guint i = 0; peers && i < peers->len; i++) {
    const WzpFederationPeer *p = g_ptr_array_index (peers, i);
    g_autofree gchar *n = norm_fp (p->fingerprint);
    if (g_strcmp0 (n, nfp) == 0)
      return p;
  }
  return NULL;
}

static const WzpFederationPeer *
configured_peer_by_ip (WzpFederation *f, const gchar *ip)
{
  GPtrArray *peers = f->relay->settings.fed_peers;

  for (guint i = 0; peers && i < peers->len; i++) {
    const WzpFederationPeer *p = g_ptr_array_index (peers, i);
    g_autofree gchar *pip = relay_source_ip (p->url);
    if (g_strcmp0 (pip, ip) == 0)
      return p;
  }
  return NULL;
}

static gboolean
trusted_fp (WzpFederation *f, const gchar *nfp)
{
  gchar **t = f->relay->settings.fed_trusted;

  for (guint i = 0; t && t[i]; i++) {
    g_autofree gchar *n = norm_fp (t[i]);
    if (g_strcmp0 (n, nfp) == 0)
      return TRUE;
  }
  return FALSE;
}

/* The link to send to for a peer: an outbound one first (pinned). */
static Link *
link_for (WzpFederation *f, const gchar *nfp)
{
  Link *best = NULL;

  for (guint i = 0; nfp && i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    if (!l->up || g_strcmp0 (l->fp, nfp) != 0)
      continue;
    if (l->outbound)
      return l;
    best = l;
  }
  return best;
}

static void
link_send (Link *l, const WzpSignal *inner)
{
  g_autoptr (WzpSignal) m = wzp_signal_new (WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD);

  m->federated_signal_forward.inner = wzp_signal_copy (inner);
  m->federated_signal_forward.origin_relay_fp = g_strdup (l->fed->own_fp);
  if (wzp_connection_send_signal (l->conn, m, NULL))
    l->fed->relay->n.fed_signals_sent++;
}

gboolean
federation_send (WzpRelay *r, const gchar *link_fp, const WzpSignal *inner)
{
  Link *l = r->fed ? link_for (r->fed, link_fp) : NULL;

  if (l == NULL)
    return FALSE;
  link_send (l, inner);
  return TRUE;
}

gboolean
federation_offer (WzpRelay *r, const WzpSignal *offer)
{
  g_autoptr (GHashTable) done = g_hash_table_new (g_str_hash, g_str_equal);
  WzpFederation *f = r->fed;
  gboolean sent = FALSE;

  for (guint i = 0; f && i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    Link *best = l->up ? link_for (f, l->fp) : NULL;
    if (best == NULL || g_hash_table_contains (done, best->fp))
      continue;
    g_hash_table_add (done, best->fp);
    link_send (best, offer);
    sent = TRUE;
  }
  return sent;
}

/* ---- forwarded signals ------------------------------------------------------ */

/* A call whose other party is behind link @l; NULL unless it is. */
static Call *
remote_call (WzpRelay *r, Link *l, const gchar *call_id)
{
  Call *c = relay_call_lookup (r, call_id);

  if (c == NULL)
    return NULL;
  /* the answer to an offer we sent everywhere fixes the link */
  if (c->link_fp == NULL && c->remote_callee && !c->active)
    return c;
  return g_strcmp0 (c->link_fp, l->fp) == 0 ? c : NULL;
}

static void
on_forwarded_offer (Link *l, const WzpSignal *msg)
{
  WzpRelay *r = l->fed->relay;
  const WzpDirectCallOffer *o = &msg->direct_call_offer;
  Peer *target = relay_hub_lookup (r, o->target_fingerprint);
  Call *c;

  /* single hop, and a signed offer must verify (upstream does not check) */
  if (target == NULL || relay_call_lookup (r, o->call_id) ||
      (relay_sig_len (o->signature) > 0 && !relay_verify_offer (o)) ||
      strlen (o->call_id) == 0 || strlen (o->call_id) > 128) {
    r->n.fed_signals_dropped++;
    return;
  }
  c = relay_call_new (r, o->call_id, o->caller_fingerprint, o->target_fingerprint);
  c->caller_reflexive = g_strdup (o->caller_reflexive_addr);
  c->caller_local = relay_copy_list (o->caller_local_addrs);
  c->link_fp = g_strdup (l->fp);
  c->remote_caller = TRUE;
  relay_send_signal (target, msg);
}

static void
on_forwarded_answer (Link *l, const WzpSignal *msg)
{
  WzpRelay *r = l->fed->relay;
  const WzpDirectCallAnswer *a = &msg->direct_call_answer;
  Call *c = remote_call (r, l, a->call_id);
  Peer *caller;
  g_autoptr (WzpSignal) setup = NULL;

  if (c == NULL || !c->remote_callee || c->active) {
    r->n.fed_signals_dropped++;
    return;
  }
  caller = relay_hub_lookup (r, c->caller);
  if (a->accept_mode == WZP_CALL_ACCEPT_REJECT) {
    r->n.calls_rejected++;
    relay_send_hangup (caller, WZP_HANGUP_DECLINED, c->call_id);
    relay_call_end (r, c);
    return;
  }
  g_free (c->link_fp);
  c->link_fp = g_strdup (l->fp);
  relay_call_activate (r, c, a->callee_reflexive_addr, a->callee_local_addrs);
  relay_send_signal (caller, msg);
  setup = relay_call_setup_for (r, c, c->callee_reflexive, c->callee_local);
  relay_send_signal (caller, setup);
}

static void
on_forwarded_hangup (Link *l, const WzpSignal *msg)
{
  WzpRelay *r = l->fed->relay;
  Call *c = remote_call (r, l, msg->hangup.call_id);

  /* upstream drops these: a reject or a hangup never reaches the far side */
  if (c == NULL) {
    r->n.fed_signals_dropped++;
    return;
  }
  relay_send_signal (relay_hub_lookup (r, c->remote_caller ? c->callee : c->caller), msg);
  relay_call_end (r, c);
}

static void
on_forwarded_report (Link *l, WzpSignal *msg)
{
  WzpRelay *r = l->fed->relay;
  Call *c = remote_call (r, l, msg->media_path_report.call_id);

  if (c == NULL) {
    r->n.path_reports_dropped++;
    return;
  }
  r->n.path_reports_forwarded++;
  if (c->remote_caller)
    c->caller_direct_ok = msg->media_path_report.direct_ok;
  else
    c->callee_direct_ok = msg->media_path_report.direct_ok;
  relay_send_signal (relay_hub_lookup (r, c->remote_caller ? c->callee : c->caller), msg);
}

static void
on_forward (Link *l, const WzpFederatedSignalForward *fw)
{
  WzpRelay *r = l->fed->relay;
  g_autofree gchar *origin = norm_fp (fw->origin_relay_fp);

  r->n.fed_signals_received++;
  if (g_strcmp0 (origin, l->fed->own_fp) == 0 || fw->inner == NULL) {
    r->n.fed_signals_dropped++;     /* our own, come back round a loop */
    return;
  }
  switch (fw->inner->type) {
    case WZP_SIGNAL_DIRECT_CALL_OFFER:
      on_forwarded_offer (l, fw->inner);
      break;
    case WZP_SIGNAL_DIRECT_CALL_ANSWER:
      on_forwarded_answer (l, fw->inner);
      break;
    case WZP_SIGNAL_HANGUP:
      on_forwarded_hangup (l, fw->inner);
      break;
    case WZP_SIGNAL_MEDIA_PATH_REPORT:
      on_forwarded_report (l, fw->inner);
      break;
    case WZP_SIGNAL_CALL_RINGING: {
      Call *c = remote_call (r, l, fw->inner->call_ringing.call_id);
      if (c && c->remote_callee)
        relay_send_signal (relay_hub_lookup (r, c->caller), fw->inner);
      break;
    }
    default:
      r->n.fed_signals_dropped++;
  }
}

/* ---- media ------------------------------------------------------------------ */

/* The name a room has on the wire between relays: the configured global
 * room it matches (raw or hashed, §1.6), else its own (call-* rooms). */
static const gchar *
canonical_room (WzpRelay *r, const gchar *name)
{
  gchar **g = r->settings.global_rooms;

  for (guint i = 0; g && g[i]; i++)
    if (g_ascii_strcasecmp (g[i], name) == 0 || g_ascii_strcasecmp (r->fed->hashed[i], name) == 0)
      return g[i];
  return g_str_has_prefix (name, "call-") ? name : NULL;
}

/* Whether @room is shared with other relays; its canonical name and tag are
 * worked out on first use (hashing per datagram would be wasted work). */
static gboolean
room_shared (WzpRelay *r, Room *room)
{
  if (room->fed_state == FED_UNKNOWN) {
    room->canon = canonical_room (r, room->name);
    room->fed_state = room->canon ? FED_SHARED : FED_LOCAL;
    if (room->canon)
      wzp_room_hash (room->canon, room->tag);
  }
  return room->fed_state == FED_SHARED;
}

static gboolean
room_is_global (WzpRelay *r, Room *room)
{
  return room_shared (r, room) && !room->call_room;
}

void
federation_room_datagram (WzpRelay *r, Room *room, const guint8 *data, gsize len)
{
  WzpFederation *f = r->fed;
  guint8 buf[TAG_SIZE + ROOM_DATAGRAM_MAX];

  if (f == NULL || len > sizeof buf - TAG_SIZE || !room_shared (r, room))
    return;
  memcpy (buf, room->tag, TAG_SIZE);
  memcpy (buf + TAG_SIZE, data, len);
  if (room->call_room) {
    /* a call room goes to the relay of the call's other party only */
    Call *c = relay_call_lookup (r, room->name + 5);
    Link *l = c && c->link_fp ? link_for (f, c->link_fp) : NULL;
    if (l && wzp_connection_send_datagram (l->conn, buf, len + TAG_SIZE, NULL))
      r->n.fed_datagrams_sent++;
    return;
  }
  for (guint i = 0; i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    if (l->up && link_for (f, l->fp) == l &&
        wzp_connection_send_datagram (l->conn, buf, len + TAG_SIZE, NULL))
      r->n.fed_datagrams_sent++;
  }
}

static guint64
dedup_key (const guint8 *d, gsize len)
{
  guint64 k = 0, fold = 0;

  memcpy (&k, d, TAG_SIZE);
  k ^= ((guint64) d[TAG_SIZE + 2] << 8 | d[TAG_SIZE + 3]) << 48;   /* seq */
  for (gsize i = 0; i < 16 && TAG_SIZE + i < len; i++)
    fold ^= (guint64) d[TAG_SIZE + i] << (8 * (i % 8));
  return k ^ fold;
}

static gboolean
rate_ok (WzpFederation *f, const guint8 *tag)
{
  gint64 key;
  RoomRate *rr;
  gint64 now = g_get_monotonic_time ();

  memcpy (&key, tag, sizeof key);
  rr = g_hash_table_lookup (f->rates, &key);
  if (rr == NULL) {
    rr = g_new0 (RoomRate, 1);
    g_hash_table_insert (f->rates, g_memdup2 (&key, sizeof key), rr);
  }
  if (now - rr->window_start >= G_USEC_PER_SEC) {
    rr->window_start = now;
    rr->count = 0;
  }
  return ++rr->count <= ROOM_RATE_PER_SECOND;
}

static void
on_link_datagram (WzpConnection *conn, const guint8 *d, gsize len, gpointer data)
{
  Link *l = data;
  WzpFederation *f = l->fed;
  WzpRelay *r = f->relay;
  GHashTableIter it;
  gpointer v;
  Room *room = NULL;
  guint64 key;
  gint64 now = g_get_monotonic_time (), *seen;
  gboolean global_hit = FALSE;

  r->n.fed_datagrams_received++;
  l->last_seen = now;
  if (!l->up || len < TAG_SIZE + WZP_MEDIA_HEADER_SIZE ||
      ((d[TAG_SIZE] >> 2) & 0xf) >= WZP_CODEC_COUNT) {
    r->n.fed_datagrams_dropped++;
    return;
  }
  key = dedup_key (d, len);
  seen = g_hash_table_lookup (f->seen, &key);
  if (seen && now - *seen < DEDUP_WINDOW_US) {
    r->n.fed_datagrams_duplicate++;
    return;
  }
  g_hash_table_iter_init (&it, r->rooms);
  while (room == NULL && g_hash_table_iter_next (&it, NULL, &v)) {
    Room *cand = v;
    if (room_shared (r, cand) && memcmp (cand->tag, d, TAG_SIZE) == 0)
      room = cand;
  }
  {
    /* no local member: still a configured global room to pass on */
    gchar **g = r->settings.global_rooms;
    for (guint i = 0; room == NULL && !global_hit && g && g[i]; i++)
      global_hit = memcmp (f->global_tags[i], d, TAG_SIZE) == 0;
  }
  if ((room == NULL && !global_hit) || !rate_ok (f, d)) {
    r->n.fed_datagrams_dropped++;
    return;
  }
  {
    gint64 *stamp = g_new (gint64, 1);
    guint64 *k = g_new (guint64, 1);
    *stamp = now;
    *k = key;
    g_hash_table_replace (f->seen, k, stamp);
  }
  for (guint i = 0; room && i < room->members->len; i++) {
    Peer *m = g_ptr_array_index (room->members, i);
    if (wzp_connection_send_datagram (m->conn, d + TAG_SIZE, len - TAG_SIZE, NULL)) {
      r->n.datagrams_forwarded++;
      r->n.bytes_forwarded += len - TAG_SIZE;
    }
  }
  /* global rooms span chains of relays: pass it on (the dedup window
   * stops it coming back) */
  if (global_hit || room_is_global (r, room)) {
    for (guint i = 0; i < f->links->len; i++) {
      Link *o = g_ptr_array_index (f->links, i);
      if (o->up && g_strcmp0 (o->fp, l->fp) != 0 && link_for (f, o->fp) == o &&
          wzp_connection_send_datagram (o->conn, d, len, NULL))
        r->n.fed_datagrams_sent++;
    }
  }
}

/* ---- global rooms (§5.9.2) -------------------------------------------------- */

/* The configured global room @name (a local room name, raw or hashed)
 * stands for; NULL when it is not one. */
static const gchar *
global_room (WzpRelay *r, const gchar *name)
{
  return name && !g_str_has_prefix (name, "call-") ? canonical_room (r, name) : NULL;
}

static GPtrArray *
participants_new (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_room_participant_free);
}

/* Everyone in @canon known here, except what came through @except: the
 * local members (labelled with this relay's label) and every other link's
 * list. Announcing that to a link (split horizon) keeps chains of relays
 * exact: each link's list is what is reachable through it. */
static GPtrArray *
participants_except (WzpFederation *f, const gchar *canon, Link *except)
{
  WzpRelay *r = f->relay;
  GPtrArray *out = participants_new ();
  GHashTableIter it;
  gpointer v;

  g_hash_table_iter_init (&it, r->rooms);
  while (g_hash_table_iter_next (&it, NULL, &v)) {
    Room *room = v;
    if (g_strcmp0 (global_room (r, room->name), canon) != 0)
      continue;
    for (guint i = 0; i < room->members->len; i++) {
      Peer *m = g_ptr_array_index (room->members, i);
      g_ptr_array_add (out, wzp_room_participant_new (m->fingerprint, m->alias, r->settings.fed_label));
    }
  }
  for (guint i = 0; i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    GPtrArray *list = l == except ? NULL : g_hash_table_lookup (l->rooms, canon);
    for (guint j = 0; list && j < list->len; j++) {
      const WzpRoomParticipant *p = g_ptr_array_index (list, j);
      g_ptr_array_add (out, wzp_room_participant_new (p->fingerprint, p->alias, p->relay_label));
    }
  }
  return out;
}

/* GlobalRoomActive with what is reachable except through @to, or
 * GlobalRoomInactive when that is nobody. */
static void
announce_to (Link *to, const gchar *canon)
{
  g_autoptr (GPtrArray) list = participants_except (to->fed, canon, to);
  g_autoptr (WzpSignal) m = NULL;

  if (list->len == 0) {
    m = wzp_signal_new (WZP_SIGNAL_GLOBAL_ROOM_INACTIVE);
    m->global_room_inactive.room = g_strdup (canon);
  } else {
    m = wzp_signal_new (WZP_SIGNAL_GLOBAL_ROOM_ACTIVE);
    m->global_room_active.room = g_strdup (canon);
    m->global_room_active.participants = g_steal_pointer (&list);
  }
  if (wzp_connection_send_signal (to->conn, m, NULL))
    to->fed->relay->n.fed_signals_sent++;
}

static void
announce (WzpFederation *f, const gchar *canon, Link *except)
{
  for (guint i = 0; i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    if (l->up && l != except)
      announce_to (l, canon);
  }
}

/* The local rooms standing for @canon hear the merged member list. */
static void
push_room_updates (WzpFederation *f, const gchar *canon)
{
  WzpRelay *r = f->relay;
  GHashTableIter it;
  gpointer v;

  g_hash_table_iter_init (&it, r->rooms);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (g_strcmp0 (global_room (r, ((Room *) v)->name), canon) == 0)
      relay_room_broadcast_update (v);
}

void
federation_add_remote_participants (WzpRelay *r, const gchar *room_name, GPtrArray *out)
{
  const gchar *canon = r->fed ? global_room (r, room_name) : NULL;

  for (guint i = 0; canon && i < r->fed->links->len; i++) {
    Link *l = g_ptr_array_index (r->fed->links, i);
    GPtrArray *list = g_hash_table_lookup (l->rooms, canon);
    for (guint j = 0; list && j < list->len; j++) {
      const WzpRoomParticipant *p = g_ptr_array_index (list, j);
      g_ptr_array_add (out, wzp_room_participant_new (p->fingerprint, p->alias, p->relay_label));
    }
  }
}

void
federation_room_changed (WzpRelay *r, const gchar *room_name)
{
  const gchar *canon = r->fed ? global_room (r, room_name) : NULL;

  if (canon)
    announce (r->fed, canon, NULL);
}

static void
on_global_room (Link *l, const WzpSignal *msg, gboolean active)
{
  WzpFederation *f = l->fed;
  const gchar *name = active ? msg->global_room_active.room : msg->global_room_inactive.room;
  const gchar *canon = global_room (f->relay, name);

  if (canon == NULL) {
    f->relay->n.fed_signals_dropped++;   /* not a global room here */
    return;
  }
  if (active && msg->global_room_active.participants) {
    GPtrArray *list = participants_new ();
    GPtrArray *in = msg->global_room_active.participants;
    for (guint i = 0; i < in->len && i < 4096; i++) {
      const WzpRoomParticipant *p = g_ptr_array_index (in, i);
      g_ptr_array_add (list, wzp_room_participant_new (p->fingerprint, p->alias,
                                                       p->relay_label ? p->relay_label : l->label));
    }
    g_hash_table_replace (l->rooms, g_strdup (canon), list);
  } else {
    g_hash_table_remove (l->rooms, canon);
  }
  announce (f, canon, l);
  push_room_updates (f, canon);
}

/* A link gone or silent: what was reachable through it is not any more. */
static void
forget_link_rooms (Link *l)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer k;

  g_hash_table_iter_init (&it, l->rooms);
  while (g_hash_table_iter_next (&it, &k, NULL))
    g_ptr_array_add (names, g_strdup (k));
  g_hash_table_remove_all (l->rooms);
  for (guint i = 0; i < names->len; i++) {
    announce (l->fed, g_ptr_array_index (names, i), l);
    push_room_updates (l->fed, g_ptr_array_index (names, i));
  }
}

/* A link that comes up hears every global room we know of. */
static void
announce_all_to (Link *l)
{
  WzpRelay *r = l->fed->relay;
  gchar **g = r->settings.global_rooms;

  for (guint i = 0; g && g[i]; i++) {
    g_autoptr (GPtrArray) list = participants_except (l->fed, g[i], l);
    if (list->len > 0)
      announce_to (l, g[i]);
  }
}

/* ---- links ------------------------------------------------------------------ */

static void schedule_retry (WzpFederation *f, const WzpFederationPeer *cfg);

static void
link_free (Link *l)
{
  if (l->timer)
    g_source_remove (l->timer);
  if (l->conn) {
    g_signal_handlers_disconnect_by_data (l->conn, l);
    wzp_connection_set_datagram_handler (l->conn, NULL, NULL, NULL);
    wzp_connection_close (l->conn, 0, "shutdown");
    g_object_unref (l->conn);
  }
  g_hash_table_destroy (l->rooms);
  g_free (l->fp);
  g_free (l->label);
  g_free (l);
}

static void
link_drop (Link *l, const gchar *reason)
{
  WzpFederation *f = l->fed;
  const WzpFederationPeer *cfg = l->outbound ? l->cfg : NULL;

  g_message ("federation link %s %s: %s", l->outbound ? "to" : "from",
             l->label ? l->label : wzp_connection_get_remote_address (l->conn), reason);
  /* closing emits "closed", which must not drop this link a second time */
  g_signal_handlers_disconnect_by_data (l->conn, l);
  wzp_connection_set_datagram_handler (l->conn, NULL, NULL, NULL);
  wzp_connection_close (l->conn, 0, reason);
  l->up = FALSE;
  forget_link_rooms (l);
  g_ptr_array_remove (f->links, l);
  if (cfg)
    schedule_retry (f, cfg);
}

static void
on_link_signal (WzpConnection *conn, const WzpSignal *msg, gpointer data)
{
  Link *l = data;
  WzpFederation *f = l->fed;

  l->last_seen = g_get_monotonic_time ();
  if (!l->up) {
    /* inbound: the first message must be the hello */
    g_autofree gchar *hello = NULL, *cert = NULL, *ip = NULL;
    const WzpFederationPeer *cfg;
    const gchar *why = NULL;

    if (l->outbound || msg->type != WZP_SIGNAL_FEDERATION_HELLO) {
      link_drop (l, "expected FederationHello");
      return;
    }
    hello = norm_fp (msg->federation_hello.tls_fingerprint);
    cert = norm_fp (wzp_connection_get_peer_fingerprint (conn));
    ip = relay_source_ip (wzp_connection_get_remote_address (conn));
    cfg = configured_peer_by_fp (f, hello);
    if (*cert) {
      if (g_strcmp0 (cert, hello) != 0)
        why = "its hello names another certificate than the one it presented";
      else if (cfg == NULL && !trusted_fp (f, hello))
        why = "its certificate is not configured";
      l->verified = why == NULL;
    } else if (f->relay->settings.fed_require_certificates) {
      why = "it presented no certificate and this relay requires one (require-certificates)";
    } else {
      /* no certificate: upstream's rule (address, or a trusted hello) */
      if (configured_peer_by_ip (f, ip) == NULL && !trusted_fp (f, hello))
        why = "it is not configured";
      else
        f->relay->n.fed_links_unverified++;
    }
    if (why) {
      f->relay->n.fed_links_refused++;
      g_warning ("refused a federation link from %s: %s. To trust it, add to the configuration:\n"
                 "[peer:NAME]\nurl = %s:PORT\nfingerprint = %s",
                 wzp_connection_get_remote_address (conn), why, ip,
                 msg->federation_hello.tls_fingerprint ? msg->federation_hello.tls_fingerprint : "");
      link_drop (l, "untrusted");
      return;
    }
    if (l->timer) {
      g_source_remove (l->timer);
      l->timer = 0;
    }
    l->fp = g_steal_pointer (&hello);
    l->label = g_strdup (cfg && cfg->label ? cfg->label : wzp_connection_get_remote_address (conn));
    l->up = TRUE;
    f->relay->n.fed_links_accepted++;
    g_message ("federation link from %s (%s) up%s", l->label, wzp_connection_get_remote_address (conn),
               l->verified ? "" : ", trusted by address only");
    announce_all_to (l);
    return;
  }
  if (msg->type == WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD)
    on_forward (l, &msg->federated_signal_forward);
  else if (msg->type == WZP_SIGNAL_GLOBAL_ROOM_ACTIVE)
    on_global_room (l, msg, TRUE);
  else if (msg->type == WZP_SIGNAL_GLOBAL_ROOM_INACTIVE)
    on_global_room (l, msg, FALSE);
  else
    f->relay->n.fed_signals_dropped++;
}

static void
on_link_closed (WzpConnection *conn, const GError *why, gpointer data)
{
  Link *l = data;

  link_drop (l, why->message);
}

static void
on_link_established (WzpConnection *conn, gpointer data)
{
  Link *l = data;
  g_autoptr (WzpSignal) hello = wzp_signal_new (WZP_SIGNAL_FEDERATION_HELLO);
  RetryState *rs = g_hash_table_lookup (l->fed->retry, l->cfg);

  hello->federation_hello.tls_fingerprint =
      g_strdup (wzp_endpoint_get_fingerprint (l->fed->relay->endpoint));
  wzp_connection_send_signal (conn, hello, NULL);
  l->up = TRUE;
  if (rs)
    rs->delay_ms = 0;             /* back-off starts over after a success */
  g_message ("federation link to %s (%s) up", l->label, l->cfg->url);
  announce_all_to (l);
}

static Link *
link_new (WzpFederation *f, WzpConnection *conn, gboolean outbound)
{
  Link *l = g_new0 (Link, 1);

  l->fed = f;
  l->conn = g_object_ref (conn);
  l->outbound = outbound;
  l->last_seen = g_get_monotonic_time ();
  l->rooms = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  g_ptr_array_add (f->links, l);
  g_signal_connect (conn, "signal", G_CALLBACK (on_link_signal), l);
  g_signal_connect (conn, "closed", G_CALLBACK (on_link_closed), l);
  wzp_connection_set_datagram_handler (conn, on_link_datagram, l, NULL);
  return l;
}

static void
dial (WzpFederation *f, const WzpFederationPeer *cfg)
{
  g_autoptr (GSocketAddress) addr = wzp_socket_address_parse (cfg->url, NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpConnection) conn = NULL;
  Link *l;

  if (addr)
    conn = wzp_endpoint_connect (f->relay->endpoint, addr, "_federation", cfg->fingerprint, &error);
  if (conn == NULL) {
    g_warning ("federation peer %s: cannot dial %s: %s", cfg->name, cfg->url,
               error ? error->message : "not an address");
    schedule_retry (f, cfg);
    return;
  }
  l = link_new (f, conn, TRUE);
  l->cfg = cfg;
  l->fp = norm_fp (cfg->fingerprint);
  l->label = g_strdup (cfg->label ? cfg->label : cfg->name);
  g_signal_connect (conn, "established", G_CALLBACK (on_link_established), l);
}

static gboolean
on_retry (gpointer data)
{
  RetryState *rs = data;

  rs->timer = 0;
  dial (rs->fed, rs->cfg);
  return G_SOURCE_REMOVE;
}

static void
retry_free (RetryState *rs)
{
  if (rs->timer)
    g_source_remove (rs->timer);
  g_free (rs);
}

/* 5 s, doubling to 300 s; reset when a link comes up */
static void
schedule_retry (WzpFederation *f, const WzpFederationPeer *cfg)
{
  RetryState *rs = g_hash_table_lookup (f->retry, cfg);

  if (rs == NULL) {
    rs = g_new0 (RetryState, 1);
    rs->fed = f;
    rs->cfg = cfg;
    g_hash_table_insert (f->retry, (gpointer) cfg, rs);
  }
  if (rs->timer)
    return;
  rs->delay_ms = rs->delay_ms ? MIN (rs->delay_ms * 2, RETRY_MAX_MS)
                              : (f->relay->settings.fed_retry_ms ? f->relay->settings.fed_retry_ms
                                                                 : RETRY_FIRST_MS);
  rs->timer = g_timeout_add (rs->delay_ms, on_retry, rs);
}

static gboolean
on_hello_deadline (gpointer data)
{
  Link *l = data;

  l->timer = 0;
  l->fed->relay->n.fed_links_refused++;
  link_drop (l, "hello-timeout");
  return G_SOURCE_REMOVE;
}

void
federation_accept (WzpRelay *r, WzpConnection *conn)
{
  Link *l;

  if (r->fed == NULL) {
    wzp_connection_close (conn, 0, "unsupported");
    return;
  }
  l = link_new (r->fed, conn, FALSE);
  l->timer = g_timeout_add (HELLO_TIMEOUT_MS, on_hello_deadline, l);
}

static gboolean
sweep_seen (gpointer data)
{
  WzpFederation *f = data;
  GHashTableIter it;
  gpointer v;
  gint64 now = g_get_monotonic_time ();

  g_hash_table_iter_init (&it, f->seen);
  while (g_hash_table_iter_next (&it, NULL, &v))
    if (now - *(gint64 *) v >= DEDUP_WINDOW_US)
      g_hash_table_iter_remove (&it);
  /* a link silent for 15 s no longer vouches for its participants; each
   * relay says again every 2 s who is reachable through it, so a live link
   * is never silent while a global room has members */
  for (guint i = 0; i < f->links->len; i++) {
    Link *l = g_ptr_array_index (f->links, i);
    if (now - l->last_seen > STALE_US && g_hash_table_size (l->rooms) > 0)
      forget_link_rooms (l);
    if (l->up)
      announce_all_to (l);
  }
  return G_SOURCE_CONTINUE;
}

static guint
u64_hash (gconstpointer k)
{
  guint64 v = *(const guint64 *) k;
  return (guint) (v ^ (v >> 32));
}

static gboolean
u64_equal (gconstpointer a, gconstpointer b)
{
  return *(const guint64 *) a == *(const guint64 *) b;
}

WzpFederation *
federation_new (WzpRelay *r)
{
  WzpFederation *f;
  GPtrArray *peers = r->settings.fed_peers;

  if ((peers == NULL || peers->len == 0) && r->settings.fed_trusted == NULL &&
      r->settings.global_rooms == NULL)
    return NULL;
  f = g_new0 (WzpFederation, 1);
  f->relay = r;
  f->links = g_ptr_array_new_with_free_func ((GDestroyNotify) link_free);
  f->retry = g_hash_table_new_full (NULL, NULL, NULL, (GDestroyNotify) retry_free);
  f->seen = g_hash_table_new_full (u64_hash, u64_equal, g_free, g_free);
  f->rates = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  {
    guint n = r->settings.global_rooms ? g_strv_length (r->settings.global_rooms) : 0;
    f->hashed = g_new0 (gchar *, n + 1);
    f->global_tags = g_malloc0 ((n + 1) * sizeof *f->global_tags);
    for (guint i = 0; i < n; i++) {
      f->hashed[i] = g_malloc (WZP_ROOM_NAME_HASH_LEN);
      wzp_hash_room_name (r->settings.global_rooms[i], f->hashed[i]);
      wzp_room_hash (r->settings.global_rooms[i], f->global_tags[i]);
    }
  }
  f->own_fp = norm_fp (wzp_endpoint_get_fingerprint (r->endpoint));
  f->sweep = g_timeout_add_seconds (2, sweep_seen, f);
  for (guint i = 0; peers && i < peers->len; i++)
    dial (f, g_ptr_array_index (peers, i));
  return f;
}

void
federation_free (WzpFederation *f)
{
  if (f == NULL)
    return;
  g_source_remove (f->sweep);
  g_hash_table_destroy (f->retry);
  g_ptr_array_unref (f->links);
  g_hash_table_destroy (f->seen);
  g_hash_table_destroy (f->rates);
  g_strfreev (f->hashed);
  g_free (f->global_tags);
  g_free (f->own_fp);
  g_free (f);
}

guint
federation_links_up (WzpRelay *r)
{
  guint n = 0;

  for (guint i = 0; r->fed && i < r->fed->links->len; i++)
    n += ((Link *) g_ptr_array_index (r->fed->links, i))->up;
  return n;
}

/* Per configured peer: up, and the link's smoothed RTT. */
void
federation_peer_metrics (WzpRelay *r, GString *s)
{
  GPtrArray *peers = r->settings.fed_peers;

  if (r->fed == NULL || peers == NULL || peers->len == 0)
    return;
  g_string_append (s, "# HELP wzp_federation_peer_status 1 when a link to the peer is up.\n"
                   "# TYPE wzp_federation_peer_status gauge\n");
  for (guint i = 0; i < peers->len; i++) {
    const WzpFederationPeer *p = g_ptr_array_index (peers, i);
    g_autofree gchar *n = norm_fp (p->fingerprint);
    g_string_append_printf (s, "wzp_federation_peer_status{peer=\"%s\"} %d\n", p->name,
                            link_for (r->fed, n) != NULL);
  }
  g_string_append (s, "# HELP wzp_federation_peer_rtt_ms Smoothed RTT of the link to the peer (ms).\n"
                   "# TYPE wzp_federation_peer_rtt_ms gauge\n");
  for (guint i = 0; i < peers->len; i++) {
    const WzpFederationPeer *p = g_ptr_array_index (peers, i);
    g_autofree gchar *n = norm_fp (p->fingerprint);
    Link *l = link_for (r->fed, n);
    WzpConnectionStats st = { 0 };
    if (l)
      wzp_connection_get_stats (l->conn, &st);
    g_string_append_printf (s, "wzp_federation_peer_rtt_ms{peer=\"%s\"} %.3f\n", p->name,
                            l ? st.rtt_us / 1000.0 : 0.0);
  }
}
