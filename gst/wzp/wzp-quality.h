/* The adaptive quality tiers (protocol §5.3.4): a report's loss and RTT
 * give a tier, and a controller with hysteresis decides when a
 * participant's tier changes. Relays use it on the QualityReport trailers
 * of a room to tell every member the weakest link's profile. */
#pragma once

#include "wzp-signal.h"

G_BEGIN_DECLS

/* worst to best */
typedef enum {
  WZP_TIER_CATASTROPHIC,
  WZP_TIER_DEGRADED,
  WZP_TIER_GOOD,
  WZP_TIER_STUDIO_32K,
  WZP_TIER_STUDIO_48K,
  WZP_TIER_STUDIO_64K,
} WzpTier;

/* "unknown network" thresholds: loss ≥ 15 % or RTT ≥ 200 ms Catastrophic;
 * ≥ 5 % / 100 ms Degraded; ≥ 2 % / 80 ms Good; ≥ 1 % / 50 ms Studio32k;
 * RTT ≥ 30 ms Studio48k; else Studio64k. */
WzpTier wzp_tier_classify (double loss_percent, guint rtt_ms);
/* A call's tier, which our sender chooses for itself: loss moves it as
 * wzp_tier_classify() does, while RTT alone only keeps it from the Studio
 * tiers and never takes it below Good. A long path with little loss (a
 * satellite link: 600 ms) has the bandwidth for Opus 24k; the lower rates
 * and Codec2 would only cost quality. */
WzpTier wzp_tier_classify_call (double loss_percent, guint rtt_ms);
/* Upstream's names: "Catastrophic", "Degraded", "Good", "Studio32k", ... */
const gchar *wzp_tier_name (WzpTier tier);
const WzpQualityProfile *wzp_tier_profile (WzpTier tier);

typedef struct {
  WzpTier tier;
  guint worse, better;          /* consecutive reports below / above the tier */
} WzpTierController;

/* Starts at Good. */
void wzp_tier_controller_init (WzpTierController *c);
/* One report: 3 consecutive worse reports jump to the observed tier; 5
 * consecutive better ones move one step up below Good, 10 at or above it.
 * Returns TRUE when the tier changed. (Upstream's 30 s upward probe is not
 * implemented.) */
gboolean wzp_tier_controller_feed (WzpTierController *c, double loss_percent, guint rtt_ms);
/* The same with the report's tier already classified. */
gboolean wzp_tier_controller_feed_tier (WzpTierController *c, WzpTier seen);

G_END_DECLS
