/* Quality tiers (see wzp-quality.h). */
#include "wzp-quality.h"

WzpTier
wzp_tier_classify (double loss, guint rtt)
{
  if (loss >= 15.0 || rtt >= 200)
    return WZP_TIER_CATASTROPHIC;
  if (loss >= 5.0 || rtt >= 100)
    return WZP_TIER_DEGRADED;
  if (loss >= 2.0 || rtt >= 80)
    return WZP_TIER_GOOD;
  if (loss >= 1.0 || rtt >= 50)
    return WZP_TIER_STUDIO_32K;
  if (rtt >= 30)
    return WZP_TIER_STUDIO_48K;
  return WZP_TIER_STUDIO_64K;
}

WzpTier
wzp_tier_classify_call (double loss, guint rtt)
{
  WzpTier by_loss = wzp_tier_classify (loss, 0);

  return MAX (wzp_tier_classify (loss, rtt), MIN (by_loss, WZP_TIER_GOOD));
}

const gchar *
wzp_tier_name (WzpTier tier)
{
  static const gchar *const names[] = { "Catastrophic", "Degraded", "Good", "Studio32k",
                                        "Studio48k", "Studio64k" };
  return (guint) tier < G_N_ELEMENTS (names) ? names[tier] : "Good";
}

const WzpQualityProfile *
wzp_tier_profile (WzpTier tier)
{
  switch (tier) {
    case WZP_TIER_CATASTROPHIC: return &WZP_PROFILE_CATASTROPHIC;
    case WZP_TIER_DEGRADED: return &WZP_PROFILE_DEGRADED;
    case WZP_TIER_STUDIO_32K: return &WZP_PROFILE_STUDIO_32K;
    case WZP_TIER_STUDIO_48K: return &WZP_PROFILE_STUDIO_48K;
    case WZP_TIER_STUDIO_64K: return &WZP_PROFILE_STUDIO_64K;
    default: return &WZP_PROFILE_GOOD;
  }
}

void
wzp_tier_controller_init (WzpTierController *c)
{
  c->tier = WZP_TIER_GOOD;
  c->worse = c->better = 0;
}

gboolean
wzp_tier_controller_feed (WzpTierController *c, double loss, guint rtt)
{
  return wzp_tier_controller_feed_tier (c, wzp_tier_classify (loss, rtt));
}

gboolean
wzp_tier_controller_feed_tier (WzpTierController *c, WzpTier seen)
{
  if (seen < c->tier) {
    c->better = 0;
    if (++c->worse >= 3) {
      c->tier = seen;
      c->worse = 0;
      return TRUE;
    }
  } else if (seen > c->tier) {
    c->worse = 0;
    if (++c->better >= (c->tier < WZP_TIER_GOOD ? 5u : 10u)) {
      c->tier++;
      c->better = 0;
      return TRUE;
    }
  } else {
    c->worse = c->better = 0;
  }
  return FALSE;
}
