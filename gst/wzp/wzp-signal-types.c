/* wzp-signal-types: the field tables of every SignalMessage variant, and
 * what can be done from the tables alone: create, free, copy, compare. */
#define G_LOG_DOMAIN "wzp-signal"

#include "wzp-signal-private.h"

#include <stddef.h>
#include <string.h>

const WzpQualityProfile WZP_PROFILE_GOOD = { WZP_CODEC_OPUS24K, 0.2f, 20, 5 };
const WzpQualityProfile WZP_PROFILE_DEGRADED = { WZP_CODEC_OPUS6K, 0.5f, 40, 10 };
const WzpQualityProfile WZP_PROFILE_CATASTROPHIC = { WZP_CODEC_CODEC2_1200, 1.0f, 40, 8 };
const WzpQualityProfile WZP_PROFILE_STUDIO_32K = { WZP_CODEC_OPUS32K, 0.1f, 20, 5 };
const WzpQualityProfile WZP_PROFILE_STUDIO_48K = { WZP_CODEC_OPUS48K, 0.1f, 20, 5 };
const WzpQualityProfile WZP_PROFILE_STUDIO_64K = { WZP_CODEC_OPUS64K, 0.1f, 20, 5 };

/* ---- the tables --------------------------------------------------------- */

#define F(var, field, kind, flav) \
  { #field, WZP_FK_##kind, WZP_FF_##flav, (guint16) offsetof (WzpSignal, var.field) }
#define V(name, fields) { name, fields, G_N_ELEMENTS (fields) }
#define UNIT(name) { name, NULL, 0 }

static const WzpFieldDesc call_offer_f[] = {
  F (call_offer, identity_pub, KEY, REQUIRED),
  F (call_offer, ephemeral_pub, KEY, REQUIRED),
  F (call_offer, signature, BYTES, REQUIRED),
  F (call_offer, supported_profiles, PROFILES, REQUIRED),
  F (call_offer, alias, STR, NULLABLE),
};
static const WzpFieldDesc call_answer_f[] = {
  F (call_answer, identity_pub, KEY, REQUIRED),
  F (call_answer, ephemeral_pub, KEY, REQUIRED),
  F (call_answer, signature, BYTES, REQUIRED),
  F (call_answer, chosen_profile, PROFILE, REQUIRED),
};
static const WzpFieldDesc ice_candidate_f[] = {
  F (ice_candidate, candidate, STR, REQUIRED),
};
static const WzpFieldDesc rekey_f[] = {
  F (rekey, new_ephemeral_pub, KEY, REQUIRED),
  F (rekey, signature, BYTES, REQUIRED),
};
static const WzpFieldDesc quality_update_f[] = {
  F (quality_update, report, REPORT, REQUIRED),
  F (quality_update, recommended_profile, PROFILE, REQUIRED),
};
static const WzpFieldDesc loss_recovery_update_f[] = {
  F (loss_recovery_update, dred_reconstructions, U64, DEFAULT),
  F (loss_recovery_update, classical_plc_invocations, U64, DEFAULT),
  F (loss_recovery_update, frames_decoded, U64, DEFAULT),
};
static const WzpFieldDesc ping_f[] = {
  F (ping, timestamp_ms, U64, REQUIRED),
};
static const WzpFieldDesc pong_f[] = {
  F (pong, timestamp_ms, U64, REQUIRED),
};
static const WzpFieldDesc hangup_f[] = {
  F (hangup, reason, HANGUP_REASON, REQUIRED),
  F (hangup, call_id, STR, OPTIONAL),
};
static const WzpFieldDesc auth_token_f[] = {
  F (auth_token, token, STR, REQUIRED),
};
static const WzpFieldDesc transfer_f[] = {
  F (transfer, target_fingerprint, STR, REQUIRED),
  F (transfer, relay_addr, STR, NULLABLE),
};
static const WzpFieldDesc presence_update_f[] = {
  F (presence_update, fingerprints, STRS, REQUIRED),
  F (presence_update, relay_addr, STR, REQUIRED),
};
static const WzpFieldDesc route_query_f[] = {
  F (route_query, fingerprint, STR, REQUIRED),
  F (route_query, ttl, U8, REQUIRED),
};
static const WzpFieldDesc route_response_f[] = {
  F (route_response, fingerprint, STR, REQUIRED),
  F (route_response, found, BOOL, REQUIRED),
  F (route_response, relay_chain, STRS, REQUIRED),
};
static const WzpFieldDesc session_forward_f[] = {
  F (session_forward, session_id, STR, REQUIRED),
  F (session_forward, target_fingerprint, STR, REQUIRED),
  F (session_forward, source_relay, STR, REQUIRED),
};
static const WzpFieldDesc session_forward_ack_f[] = {
  F (session_forward_ack, session_id, STR, REQUIRED),
  F (session_forward_ack, room_name, STR, REQUIRED),
};
static const WzpFieldDesc room_update_f[] = {
  F (room_update, count, U32, REQUIRED),
  F (room_update, participants, PARTICIPANTS, REQUIRED),
};
static const WzpFieldDesc federation_hello_f[] = {
  F (federation_hello, tls_fingerprint, STR, REQUIRED),
};
static const WzpFieldDesc global_room_active_f[] = {
  F (global_room_active, room, STR, REQUIRED),
  F (global_room_active, participants, PARTICIPANTS, DEFAULT),
};
static const WzpFieldDesc global_room_inactive_f[] = {
  F (global_room_inactive, room, STR, REQUIRED),
};
static const WzpFieldDesc register_presence_f[] = {
  F (register_presence, identity_pub, KEY, REQUIRED),
  F (register_presence, signature, BYTES, REQUIRED),
  F (register_presence, alias, STR, NULLABLE),
};
static const WzpFieldDesc register_presence_ack_f[] = {
  F (register_presence_ack, success, BOOL, REQUIRED),
  F (register_presence_ack, error, STR, OPTIONAL),
  F (register_presence_ack, relay_build, STR, OPTIONAL),
};
static const WzpFieldDesc direct_call_offer_f[] = {
  F (direct_call_offer, caller_fingerprint, STR, REQUIRED),
  F (direct_call_offer, caller_alias, STR, NULLABLE),
  F (direct_call_offer, target_fingerprint, STR, REQUIRED),
  F (direct_call_offer, call_id, STR, REQUIRED),
  F (direct_call_offer, identity_pub, KEY, REQUIRED),
  F (direct_call_offer, ephemeral_pub, KEY, REQUIRED),
  F (direct_call_offer, signature, BYTES, REQUIRED),
  F (direct_call_offer, supported_profiles, PROFILES, REQUIRED),
  F (direct_call_offer, caller_reflexive_addr, STR, OPTIONAL),
  F (direct_call_offer, caller_local_addrs, STRS, OPTIONAL_EMPTY),
  F (direct_call_offer, caller_build_version, STR, OPTIONAL),
};
static const WzpFieldDesc direct_call_answer_f[] = {
  F (direct_call_answer, call_id, STR, REQUIRED),
  F (direct_call_answer, accept_mode, ACCEPT_MODE, REQUIRED),
  F (direct_call_answer, identity_pub, KEY_OPT, OPTIONAL),
  F (direct_call_answer, ephemeral_pub, KEY_OPT, OPTIONAL),
  F (direct_call_answer, signature, BYTES, OPTIONAL),
  F (direct_call_answer, chosen_profile, PROFILE_OPT, OPTIONAL),
  F (direct_call_answer, callee_reflexive_addr, STR, OPTIONAL),
  F (direct_call_answer, callee_local_addrs, STRS, OPTIONAL_EMPTY),
  F (direct_call_answer, callee_build_version, STR, OPTIONAL),
};
static const WzpFieldDesc call_setup_f[] = {
  F (call_setup, call_id, STR, REQUIRED),
  F (call_setup, room, STR, REQUIRED),
  F (call_setup, relay_addr, STR, REQUIRED),
  F (call_setup, peer_direct_addr, STR, OPTIONAL),
  F (call_setup, peer_local_addrs, STRS, OPTIONAL_EMPTY),
};
static const WzpFieldDesc call_ringing_f[] = {
  F (call_ringing, call_id, STR, REQUIRED),
};
static const WzpFieldDesc reflect_response_f[] = {
  F (reflect_response, observed_addr, STR, REQUIRED),
};
static const WzpFieldDesc media_path_report_f[] = {
  F (media_path_report, call_id, STR, REQUIRED),
  F (media_path_report, direct_ok, BOOL, REQUIRED),
  F (media_path_report, race_winner, STR, DEFAULT),
};
static const WzpFieldDesc federated_signal_forward_f[] = {
  F (federated_signal_forward, inner, SIGNAL, REQUIRED),
  F (federated_signal_forward, origin_relay_fp, STR, REQUIRED),
};
static const WzpFieldDesc quality_directive_f[] = {
  F (quality_directive, recommended_profile, PROFILE, REQUIRED),
  F (quality_directive, reason, STR, OPTIONAL),
};

static const WzpVariantDesc variants[WZP_SIGNAL_N_TYPES] = {
  [WZP_SIGNAL_CALL_OFFER] = V ("CallOffer", call_offer_f),
  [WZP_SIGNAL_CALL_ANSWER] = V ("CallAnswer", call_answer_f),
  [WZP_SIGNAL_ICE_CANDIDATE] = V ("IceCandidate", ice_candidate_f),
  [WZP_SIGNAL_REKEY] = V ("Rekey", rekey_f),
  [WZP_SIGNAL_QUALITY_UPDATE] = V ("QualityUpdate", quality_update_f),
  [WZP_SIGNAL_LOSS_RECOVERY_UPDATE] = V ("LossRecoveryUpdate", loss_recovery_update_f),
  [WZP_SIGNAL_PING] = V ("Ping", ping_f),
  [WZP_SIGNAL_PONG] = V ("Pong", pong_f),
  [WZP_SIGNAL_HANGUP] = V ("Hangup", hangup_f),
  [WZP_SIGNAL_AUTH_TOKEN] = V ("AuthToken", auth_token_f),
  [WZP_SIGNAL_HOLD] = UNIT ("Hold"),
  [WZP_SIGNAL_UNHOLD] = UNIT ("Unhold"),
  [WZP_SIGNAL_MUTE] = UNIT ("Mute"),
  [WZP_SIGNAL_UNMUTE] = UNIT ("Unmute"),
  [WZP_SIGNAL_TRANSFER] = V ("Transfer", transfer_f),
  [WZP_SIGNAL_TRANSFER_ACK] = UNIT ("TransferAck"),
  [WZP_SIGNAL_PRESENCE_UPDATE] = V ("PresenceUpdate", presence_update_f),
  [WZP_SIGNAL_ROUTE_QUERY] = V ("RouteQuery", route_query_f),
  [WZP_SIGNAL_ROUTE_RESPONSE] = V ("RouteResponse", route_response_f),
  [WZP_SIGNAL_SESSION_FORWARD] = V ("SessionForward", session_forward_f),
  [WZP_SIGNAL_SESSION_FORWARD_ACK] = V ("SessionForwardAck", session_forward_ack_f),
  [WZP_SIGNAL_ROOM_UPDATE] = V ("RoomUpdate", room_update_f),
  [WZP_SIGNAL_FEDERATION_HELLO] = V ("FederationHello", federation_hello_f),
  [WZP_SIGNAL_GLOBAL_ROOM_ACTIVE] = V ("GlobalRoomActive", global_room_active_f),
  [WZP_SIGNAL_GLOBAL_ROOM_INACTIVE] = V ("GlobalRoomInactive", global_room_inactive_f),
  [WZP_SIGNAL_REGISTER_PRESENCE] = V ("RegisterPresence", register_presence_f),
  [WZP_SIGNAL_REGISTER_PRESENCE_ACK] = V ("RegisterPresenceAck", register_presence_ack_f),
  [WZP_SIGNAL_DIRECT_CALL_OFFER] = V ("DirectCallOffer", direct_call_offer_f),
  [WZP_SIGNAL_DIRECT_CALL_ANSWER] = V ("DirectCallAnswer", direct_call_answer_f),
  [WZP_SIGNAL_CALL_SETUP] = V ("CallSetup", call_setup_f),
  [WZP_SIGNAL_CALL_RINGING] = V ("CallRinging", call_ringing_f),
  [WZP_SIGNAL_REFLECT] = UNIT ("Reflect"),
  [WZP_SIGNAL_REFLECT_RESPONSE] = V ("ReflectResponse", reflect_response_f),
  [WZP_SIGNAL_MEDIA_PATH_REPORT] = V ("MediaPathReport", media_path_report_f),
  [WZP_SIGNAL_FEDERATED_SIGNAL_FORWARD] = V ("FederatedSignalForward",
                                             federated_signal_forward_f),
  [WZP_SIGNAL_QUALITY_DIRECTIVE] = V ("QualityDirective", quality_directive_f),
};

static const gchar *const accept_mode_names[] = { "Reject", "AcceptTrusted", "AcceptGeneric" };
static const gchar *const hangup_reason_names[] = {
  "Normal", "Busy", "Declined", "Timeout", "Error",
};

const WzpVariantDesc *
wzp_signal_variant_desc (WzpSignalType type)
{
  return (guint) type < WZP_SIGNAL_N_TYPES ? &variants[type] : NULL;
}

const gchar *
wzp_signal_type_name (WzpSignalType type)
{
  return (guint) type < WZP_SIGNAL_N_TYPES ? variants[type].name : NULL;
}

gboolean
wzp_signal_type_from_name (const gchar *name, WzpSignalType *type)
{
  for (guint i = 0; name && i < WZP_SIGNAL_N_TYPES; i++) {
    if (strcmp (variants[i].name, name) == 0) {
      *type = (WzpSignalType) i;
      return TRUE;
    }
  }
  return FALSE;
}

const gchar *
wzp_call_accept_mode_to_string (WzpCallAcceptMode mode)
{
  return (guint) mode < G_N_ELEMENTS (accept_mode_names) ? accept_mode_names[mode] : NULL;
}

const gchar *
wzp_hangup_reason_to_string (WzpHangupReason reason)
{
  return (guint) reason < G_N_ELEMENTS (hangup_reason_names) ? hangup_reason_names[reason] : NULL;
}

static gint
enum_from_name (const gchar *const *names, guint n, const gchar *s)
{
  for (guint i = 0; s && i < n; i++)
    if (strcmp (names[i], s) == 0)
      return (gint) i;
  return -1;
}

gboolean
wzp_call_accept_mode_from_string (const gchar *s, WzpCallAcceptMode *mode)
{
  gint v = enum_from_name (accept_mode_names, G_N_ELEMENTS (accept_mode_names), s);

  if (v >= 0)
    *mode = (WzpCallAcceptMode) v;
  return v >= 0;
}

gboolean
wzp_hangup_reason_from_string (const gchar *s, WzpHangupReason *reason)
{
  gint v = enum_from_name (hangup_reason_names, G_N_ELEMENTS (hangup_reason_names), s);

  if (v >= 0)
    *reason = (WzpHangupReason) v;
  return v >= 0;
}

/* ---- life cycle ---------------------------------------------------------- */

WzpRoomParticipant *
wzp_room_participant_new (const gchar *fingerprint, const gchar *alias, const gchar *relay_label)
{
  WzpRoomParticipant *p = g_new0 (WzpRoomParticipant, 1);

  p->fingerprint = g_strdup (fingerprint);
  p->alias = g_strdup (alias);
  p->relay_label = g_strdup (relay_label);
  return p;
}

void
wzp_room_participant_free (WzpRoomParticipant *p)
{
  if (p == NULL)
    return;
  g_free (p->fingerprint);
  g_free (p->alias);
  g_free (p->relay_label);
  g_free (p);
}

GPtrArray *
wzp_signal_new_str_list (void)
{
  return g_ptr_array_new_with_free_func (g_free);
}

GPtrArray *
wzp_signal_new_participant_list (void)
{
  return g_ptr_array_new_with_free_func ((GDestroyNotify) wzp_room_participant_free);
}

GArray *
wzp_signal_new_profile_list (void)
{
  return g_array_new (FALSE, TRUE, sizeof (WzpQualityProfile));
}

WzpSignal *
wzp_signal_new (WzpSignalType type)
{
  WzpSignal *msg;

  g_return_val_if_fail ((guint) type < WZP_SIGNAL_N_TYPES, NULL);
  msg = g_new0 (WzpSignal, 1);
  msg->type = type;
  return msg;
}

static void
field_clear (WzpSignal *msg, const WzpFieldDesc *fd)
{
  gpointer p = WZP_FIELD_PTR (msg, fd);

  switch (fd->kind) {
    case WZP_FK_STR:
    case WZP_FK_KEY_OPT:
    case WZP_FK_PROFILE_OPT:
      g_clear_pointer ((gpointer *) p, g_free);
      break;
    case WZP_FK_BYTES:
      g_clear_pointer ((GBytes **) p, g_bytes_unref);
      break;
    case WZP_FK_PROFILES:
      g_clear_pointer ((GArray **) p, g_array_unref);
      break;
    case WZP_FK_STRS:
    case WZP_FK_PARTICIPANTS:
      g_clear_pointer ((GPtrArray **) p, g_ptr_array_unref);
      break;
    case WZP_FK_SIGNAL:
      g_clear_pointer ((WzpSignal **) p, wzp_signal_free);
      break;
    default:
      break;
  }
}

void
wzp_signal_free (WzpSignal *msg)
{
  const WzpVariantDesc *vd;

  if (msg == NULL)
    return;
  vd = wzp_signal_variant_desc (msg->type);
  for (guint i = 0; vd && i < vd->n_fields; i++)
    field_clear (msg, &vd->fields[i]);
  g_free (msg);
}

static GPtrArray *
copy_str_list (const GPtrArray *src)
{
  GPtrArray *dst = wzp_signal_new_str_list ();

  for (guint i = 0; src && i < src->len; i++)
    g_ptr_array_add (dst, g_strdup (g_ptr_array_index (src, i)));
  return dst;
}

static GPtrArray *
copy_participants (const GPtrArray *src)
{
  GPtrArray *dst = wzp_signal_new_participant_list ();

  for (guint i = 0; src && i < src->len; i++) {
    const WzpRoomParticipant *p = g_ptr_array_index (src, i);
    g_ptr_array_add (dst, wzp_room_participant_new (p->fingerprint, p->alias, p->relay_label));
  }
  return dst;
}

WzpSignal *
wzp_signal_copy (const WzpSignal *msg)
{
  const WzpVariantDesc *vd;
  WzpSignal *copy;

  g_return_val_if_fail (msg != NULL, NULL);
  vd = wzp_signal_variant_desc (msg->type);
  g_return_val_if_fail (vd != NULL, NULL);
  copy = g_memdup2 (msg, sizeof *msg);
  for (guint i = 0; i < vd->n_fields; i++) {
    const WzpFieldDesc *fd = &vd->fields[i];
    gpointer p = WZP_FIELD_PTR (copy, fd);

    switch (fd->kind) {
      case WZP_FK_STR:
        *(gchar **) p = g_strdup (*(gchar **) p);
        break;
      case WZP_FK_KEY_OPT:
        if (*(guint8 **) p)
          *(guint8 **) p = g_memdup2 (*(guint8 **) p, 32);
        break;
      case WZP_FK_PROFILE_OPT:
        if (*(WzpQualityProfile **) p)
          *(WzpQualityProfile **) p = g_memdup2 (*(WzpQualityProfile **) p,
                                                 sizeof (WzpQualityProfile));
        break;
      case WZP_FK_BYTES:
        if (*(GBytes **) p)
          g_bytes_ref (*(GBytes **) p);
        break;
      case WZP_FK_PROFILES:
        if (*(GArray **) p) {
          GArray *src = *(GArray **) p, *dst = wzp_signal_new_profile_list ();
          g_array_append_vals (dst, src->data, src->len);
          *(GArray **) p = dst;
        }
        break;
      case WZP_FK_STRS:
        if (*(GPtrArray **) p)
          *(GPtrArray **) p = copy_str_list (*(GPtrArray **) p);
        break;
      case WZP_FK_PARTICIPANTS:
        if (*(GPtrArray **) p)
          *(GPtrArray **) p = copy_participants (*(GPtrArray **) p);
        break;
      case WZP_FK_SIGNAL:
        if (*(WzpSignal **) p)
          *(WzpSignal **) p = wzp_signal_copy (*(WzpSignal **) p);
        break;
      default:
        break;
    }
  }
  return copy;
}

/* ---- equality -------------------------------------------------------------- */

static gboolean
profile_equal (const WzpQualityProfile *a, const WzpQualityProfile *b)
{
  return a->codec == b->codec && a->fec_ratio == b->fec_ratio &&
      a->frame_duration_ms == b->frame_duration_ms &&
      a->frames_per_block == b->frames_per_block;
}

static gboolean
bytes_equal (GBytes *a, GBytes *b, gboolean null_is_empty)
{
  if (null_is_empty) {
    gsize la = a ? g_bytes_get_size (a) : 0, lb = b ? g_bytes_get_size (b) : 0;
    return la == lb && (la == 0 || g_bytes_equal (a, b));
  }
  if (a == NULL || b == NULL)
    return a == b;
  return g_bytes_equal (a, b);
}

static gboolean
str_list_equal (const GPtrArray *a, const GPtrArray *b)
{
  guint la = a ? a->len : 0, lb = b ? b->len : 0;

  if (la != lb)
    return FALSE;
  for (guint i = 0; i < la; i++)
    if (g_strcmp0 (g_ptr_array_index (a, i), g_ptr_array_index (b, i)) != 0)
      return FALSE;
  return TRUE;
}

static gboolean
participants_equal (const GPtrArray *a, const GPtrArray *b)
{
  guint la = a ? a->len : 0, lb = b ? b->len : 0;

  if (la != lb)
    return FALSE;
  for (guint i = 0; i < la; i++) {
    const WzpRoomParticipant *x = g_ptr_array_index (a, i), *y = g_ptr_array_index (b, i);
    if (g_strcmp0 (x->fingerprint, y->fingerprint) || g_strcmp0 (x->alias, y->alias) ||
        g_strcmp0 (x->relay_label, y->relay_label))
      return FALSE;
  }
  return TRUE;
}

static gboolean
field_equal (const WzpSignal *a, const WzpSignal *b, const WzpFieldDesc *fd)
{
  gconstpointer pa = WZP_FIELD_PTR (a, fd), pb = WZP_FIELD_PTR (b, fd);

  switch (fd->kind) {
    case WZP_FK_STR:
      if (fd->flavour == WZP_FF_DEFAULT)
        return g_strcmp0 (*(gchar **) pa ? *(gchar **) pa : "",
                          *(gchar **) pb ? *(gchar **) pb : "") == 0;
      return g_strcmp0 (*(gchar **) pa, *(gchar **) pb) == 0;
    case WZP_FK_U64:
      return *(guint64 *) pa == *(guint64 *) pb;
    case WZP_FK_U32:
      return *(guint32 *) pa == *(guint32 *) pb;
    case WZP_FK_U8:
      return *(guint8 *) pa == *(guint8 *) pb;
    case WZP_FK_BOOL:
      return !*(gboolean *) pa == !*(gboolean *) pb;
    case WZP_FK_KEY:
      return memcmp (pa, pb, 32) == 0;
    case WZP_FK_KEY_OPT: {
      const guint8 *ka = *(guint8 **) pa, *kb = *(guint8 **) pb;
      return (ka == NULL || kb == NULL) ? ka == kb : memcmp (ka, kb, 32) == 0;
    }
    case WZP_FK_BYTES:
      return bytes_equal (*(GBytes **) pa, *(GBytes **) pb, fd->flavour == WZP_FF_REQUIRED);
    case WZP_FK_ACCEPT_MODE:
    case WZP_FK_HANGUP_REASON:
      return *(gint *) pa == *(gint *) pb;
    case WZP_FK_PROFILE:
      return profile_equal (pa, pb);
    case WZP_FK_PROFILE_OPT: {
      const WzpQualityProfile *x = *(WzpQualityProfile **) pa, *y = *(WzpQualityProfile **) pb;
      return (x == NULL || y == NULL) ? x == y : profile_equal (x, y);
    }
    case WZP_FK_PROFILES: {
      const GArray *x = *(GArray **) pa, *y = *(GArray **) pb;
      guint lx = x ? x->len : 0, ly = y ? y->len : 0;
      if (lx != ly)
        return FALSE;
      for (guint i = 0; i < lx; i++)
        if (!profile_equal (&g_array_index (x, WzpQualityProfile, i),
                            &g_array_index (y, WzpQualityProfile, i)))
          return FALSE;
      return TRUE;
    }
    case WZP_FK_STRS:
      return str_list_equal (*(GPtrArray **) pa, *(GPtrArray **) pb);
    case WZP_FK_PARTICIPANTS:
      return participants_equal (*(GPtrArray **) pa, *(GPtrArray **) pb);
    case WZP_FK_REPORT:
      return memcmp (pa, pb, sizeof (WzpQualityReport)) == 0;
    case WZP_FK_SIGNAL:
      return wzp_signal_equal (*(WzpSignal **) pa, *(WzpSignal **) pb);
    default:
      g_assert_not_reached ();
  }
}

gboolean
wzp_signal_equal (const WzpSignal *a, const WzpSignal *b)
{
  const WzpVariantDesc *vd;

  if (a == NULL || b == NULL)
    return a == b;
  if (a->type != b->type)
    return FALSE;
  vd = wzp_signal_variant_desc (a->type);
  for (guint i = 0; vd && i < vd->n_fields; i++)
    if (!field_equal (a, b, &vd->fields[i]))
      return FALSE;
  return vd != NULL;
}

