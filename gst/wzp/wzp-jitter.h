/* wzp-jitter: the playout buffer of a call's incoming frames.
 *
 * Frames are ordered by sequence number and each is given a play time on the
 * local clock. The delay the buffer adds follows the measured delay variation
 * (adaptive mode): the target is a high quantile of recent arrival delays
 * (each frame's transit time beyond the fastest one of the last few seconds)
 * plus a margin, bounded by min/max. It rises at once on a late frame and
 * comes back down gradually. The buffer moves its delay in whole frames: one
 * frame of concealment (a gap) to grow, one frame dropped to shrink, a quiet
 * frame when there is one. Because the play times follow the local clock and
 * the delay is kept at its target, a sender whose clock runs fast or slow
 * (±200 ppm) costs a dropped or concealed frame every 100 s, never growth.
 * A hole is waited for until its play time, then reported as a gap (so the
 * decoder conceals it). Late and duplicate frames are dropped and counted.
 * Pure logic: time is passed in (µs, monotonic). */
#pragma once

#include <glib.h>
#include "wzp-session.h"

G_BEGIN_DECLS

typedef struct _WzpJitter WzpJitter;

typedef enum {
  WZP_JITTER_NONE,    /* nothing to release before *wake_us (-1: until a frame comes) */
  WZP_JITTER_FRAME,   /* *frame is the next frame */
  WZP_JITTER_GAP,     /* *gap_frames frames of concealment (lost frames, or added delay) */
} WzpJitterOutput;

typedef struct {
  guint64 pushed;
  guint64 released;
  guint64 lost;        /* never came, or came after their play time */
  guint64 late;        /* came after their play time (dropped) */
  guint64 duplicate;
  guint64 reordered;
  guint64 concealed;   /* gap frames: lost ones and those that added delay */
  guint64 stretched;   /* frames of delay added (concealment) */
  guint64 shrunk;      /* frames dropped to take delay away */
  guint level;         /* frames held now */
  guint target_ms;     /* the delay aimed at, beyond the fastest arrivals */
  guint delay_ms;      /* the delay of the last frame played, beyond the fastest arrivals */
  guint64 skipped;     /* sequence numbers with no media time (FEC repair packets) */
} WzpJitterStats;

/* A fixed delay of @latency_ms (min = max). */
WzpJitter *wzp_jitter_new (guint latency_ms);
/* An adaptive delay between @min_ms and @max_ms. */
WzpJitter *wzp_jitter_new_adaptive (guint min_ms, guint max_ms);
void wzp_jitter_free (WzpJitter *jitter);
/* Takes @frame (its received_us is its arrival). FALSE when it was dropped
 * (late or duplicate). */
gboolean wzp_jitter_push (WzpJitter *jitter, WzpMediaFrame *frame);
WzpJitterOutput wzp_jitter_pop (WzpJitter *jitter, gint64 now_us, WzpMediaFrame **frame,
                                guint *gap_frames, gint64 *wake_us);
/* The play time (µs, the clock of now_us) of what the last pop returned: a
 * frame's, or a gap's start. Consecutive outputs are contiguous: each starts
 * where the one before ended (a gap's length is gap_frames frames of the
 * last frame duration). */
gint64 wzp_jitter_get_play_us (WzpJitter *jitter);
/* The frame that plays right after what the last pop returned, when it is
 * already here (an Opus decoder can recover a lost frame from the in-band
 * FEC of the one after it); NULL otherwise. Owned by the buffer. */
const WzpMediaFrame *wzp_jitter_peek_next (WzpJitter *jitter);
void wzp_jitter_get_stats (WzpJitter *jitter, WzpJitterStats *stats);
/* The caller pops with a clock @slack_us behind the one arrivals are
 * stamped with (wzpsrc: what the pipeline's latency leaves it): a frame is
 * still taken that long after its play time, so the adaptive target leaves
 * that much of the delay variation to it. */
void wzp_jitter_set_slack (WzpJitter *jitter, guint slack_us);
/* The lower bound of the delay (the fixed delay). */
guint wzp_jitter_get_latency_ms (WzpJitter *jitter);

G_END_DECLS
