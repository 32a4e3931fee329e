/* wzp-jitter: a small jitter buffer ordered by media sequence number.
 *
 * Frames are released in sequence order as soon as they are next; a hole is
 * waited for at most `latency` after the frame behind it arrived, then
 * reported as a gap (so the decoder can conceal it). Late and duplicate
 * frames are dropped and counted. Pure logic: time is passed in. */
#pragma once

#include <glib.h>
#include "wzp-session.h"

G_BEGIN_DECLS

typedef struct _WzpJitter WzpJitter;

typedef enum {
  WZP_JITTER_NONE,    /* nothing to release before *wake_us */
  WZP_JITTER_FRAME,   /* *frame is the next frame */
  WZP_JITTER_GAP,     /* *gap_frames frames are lost before the next one */
} WzpJitterOutput;

typedef struct {
  guint64 pushed;
  guint64 released;
  guint64 lost;
  guint64 late;
  guint64 duplicate;
  guint64 reordered;
  guint level;        /* frames held now */
} WzpJitterStats;

WzpJitter *wzp_jitter_new (guint latency_ms);
void wzp_jitter_free (WzpJitter *jitter);
/* Takes @frame. FALSE when it was dropped (late or duplicate). */
gboolean wzp_jitter_push (WzpJitter *jitter, WzpMediaFrame *frame);
WzpJitterOutput wzp_jitter_pop (WzpJitter *jitter, gint64 now_us, WzpMediaFrame **frame,
                                guint *gap_frames, gint64 *wake_us);
void wzp_jitter_get_stats (WzpJitter *jitter, WzpJitterStats *stats);
guint wzp_jitter_get_latency_ms (WzpJitter *jitter);

G_END_DECLS
