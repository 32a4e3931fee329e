/* wzp-session-secure: end to end, who the peer is and whether the call's
 * media is sealed: the signatures of offer and answer, and the keys from the
 * two ephemeral halves (docs/negotiation.md, "Security"). */
#define G_LOG_DOMAIN "wzp-session"

#include "wzp-session-private.h"
#include "wzp-identity.h"

#include <sodium.h>
#include <string.h>

gboolean
encryption_off (WzpSession *s)
{
  return g_strcmp0 (s->encryption, "off") == 0;
}

gboolean
encryption_required (WzpSession *s)
{
  return g_strcmp0 (s->encryption, "required") == 0;
}

/* The peer seals media when its signature verifies in the e2e form (both
 * sides decide this alike from the same two signatures); it is also
 * authenticated when the signing key's fingerprint is the one it goes by
 * (behind a relay with token auth, the auth server's names are not key
 * fingerprints: sealed, but not authenticated). */
void
peer_signed (WzpSession *s, const guint8 identity_pub[32], const gchar *fingerprint, gboolean e2e_verified)
{
  gchar fp[WZP_FINGERPRINT_STRLEN];

  wzp_fingerprint_string (identity_pub, fp);
  s->peer_e2e = e2e_verified;
  s->peer_authenticated = e2e_verified && fingerprint && g_ascii_strcasecmp (fp, fingerprint) == 0;
  memcpy (s->peer_identity_pub, identity_pub, 32);
}

/* Both ephemeral keys known and both sides able: media is sealed from now on. */
void
start_e2e (WzpSession *s, gboolean caller)
{
  s->e2e_on = wzp_e2e_init (&s->e2e, caller, s->eph_secret, s->offer_eph, s->answer_eph, s->call_id);
  sodium_memzero (s->eph_secret, sizeof s->eph_secret);
  g_mutex_lock (&s->lock);
  s->stats.encrypted = s->e2e_on;
  s->stats.peer_authenticated = s->peer_authenticated;
  g_mutex_unlock (&s->lock);
  call_event (s, "call:secured", "encrypted", g_variant_new_boolean (s->e2e_on),
              "peer_authenticated", g_variant_new_boolean (s->peer_authenticated), NULL);
}

void
secure_from_answer (WzpSession *s, const WzpDirectCallAnswer *a)
{
  gboolean verified = FALSE;

  if (a->identity_pub && a->ephemeral_pub && a->signature && !encryption_off (s)) {
    g_autoptr (GByteArray) b = wzp_e2e_answer_bytes (a->ephemeral_pub, s->offer_eph, s->call_id);
    gsize len;
    const guint8 *sig = g_bytes_get_data (a->signature, &len);

    verified = wzp_ed25519_verify (a->identity_pub, b->data, b->len, sig, len);
  }
  if (a->identity_pub)
    peer_signed (s, a->identity_pub, s->call_target ? s->call_target : s->peer_fp, verified);
  if (s->peer_e2e) {
    memcpy (s->answer_eph, a->ephemeral_pub, 32);
    start_e2e (s, TRUE);
    return;
  }
  call_event (s, "call:secured", "encrypted", g_variant_new_boolean (FALSE),
              "peer_authenticated", g_variant_new_boolean (FALSE), NULL);
  if (encryption_required (s)) {
    send_sig (s, wzp_signal_new_hangup (WZP_HANGUP_NORMAL, s->call_id));
    fail (s, WZP_SESSION_ERROR_NOT_ENCRYPTED, "the callee %s cannot encrypt end to end (an upstream "
          "client, or encryption=off there), and encryption=required here", s->call_target ? s->call_target : "");
  }
}
