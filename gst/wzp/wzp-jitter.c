/* wzp-jitter: see wzp-jitter.h. */
#define G_LOG_DOMAIN "wzp-jitter"

#include "wzp-jitter.h"

/* a jump this far ahead is a new stream (a restarted sender), not loss */
#define RESYNC_DISTANCE 1000
#define MAX_HELD 512

struct _WzpJitter {
  guint latency_ms;
  gboolean started;
  guint16 next_seq;
  GQueue held;                 /* WzpMediaFrame*, sorted by seq distance from next_seq */
  guint64 recent;              /* bit i: next_seq - 1 - i was released */
  WzpJitterStats stats;
};

/* Distance of @seq ahead of @from, modulo 2^16 (RFC 1982 style). */
static gint
seq_ahead (guint16 seq, guint16 from)
{
  return (gint16) (guint16) (seq - from);
}

WzpJitter *
wzp_jitter_new (guint latency_ms)
{
  WzpJitter *j = g_new0 (WzpJitter, 1);

  j->latency_ms = latency_ms;
  g_queue_init (&j->held);
  return j;
}

void
wzp_jitter_free (WzpJitter *j)
{
  if (j == NULL)
    return;
  g_queue_clear_full (&j->held, (GDestroyNotify) wzp_media_frame_free);
  g_free (j);
}

guint
wzp_jitter_get_latency_ms (WzpJitter *j)
{
  return j->latency_ms;
}

void
wzp_jitter_get_stats (WzpJitter *j, WzpJitterStats *stats)
{
  *stats = j->stats;
  stats->level = g_queue_get_length (&j->held);
}

gboolean
wzp_jitter_push (WzpJitter *j, WzpMediaFrame *f)
{
  gint ahead;
  GList *l;

  j->stats.pushed++;
  if (!j->started) {
    j->started = TRUE;
    j->next_seq = f->seq;
  }
  ahead = seq_ahead (f->seq, j->next_seq);
  if (ahead > RESYNC_DISTANCE || ahead < -RESYNC_DISTANCE) {
    /* far off either way: a new stream (a restarted sender), not loss */
    g_queue_clear_full (&j->held, (GDestroyNotify) wzp_media_frame_free);
    j->next_seq = f->seq;
    j->recent = 0;
    ahead = 0;
  }
  if (ahead < 0) {
    /* already released (a duplicate) or given up on (late) */
    if (-ahead <= 64 && (j->recent >> (-ahead - 1)) & 1)
      j->stats.duplicate++;
    else
      j->stats.late++;
    wzp_media_frame_free (f);
    return FALSE;
  }
  /* insert in order; usually at the tail */
  for (l = j->held.tail; l; l = l->prev) {
    gint other = seq_ahead (((WzpMediaFrame *) l->data)->seq, j->next_seq);
    if (other == ahead) {
      j->stats.duplicate++;
      wzp_media_frame_free (f);
      return FALSE;
    }
    if (other < ahead)
      break;
  }
  if (l != j->held.tail)
    j->stats.reordered++;
  if (l)
    g_queue_insert_after (&j->held, l, f);
  else
    g_queue_push_head (&j->held, f);
  if (g_queue_get_length (&j->held) > MAX_HELD) {
    /* far behind: drop the oldest rather than grow */
    WzpMediaFrame *old = g_queue_pop_head (&j->held);
    j->next_seq = old->seq + 1;
    j->stats.lost++;
    wzp_media_frame_free (old);
  }
  return TRUE;
}

WzpJitterOutput
wzp_jitter_pop (WzpJitter *j, gint64 now_us, WzpMediaFrame **frame, guint *gap_frames,
                gint64 *wake_us)
{
  WzpMediaFrame *head = g_queue_peek_head (&j->held);
  gint ahead;

  *wake_us = -1;
  if (head == NULL)
    return WZP_JITTER_NONE;
  ahead = seq_ahead (head->seq, j->next_seq);
  if (ahead == 0) {
    *frame = g_queue_pop_head (&j->held);
    j->recent = (j->recent << 1) | 1;
    j->next_seq++;
    j->stats.released++;
    return WZP_JITTER_FRAME;
  }
  /* a hole: wait for it at most latency after the frame behind it came */
  if (now_us < head->received_us + (gint64) j->latency_ms * 1000) {
    *wake_us = head->received_us + (gint64) j->latency_ms * 1000;
    return WZP_JITTER_NONE;
  }
  *gap_frames = (guint) ahead;
  j->stats.lost += (guint) ahead;
  j->recent <<= MIN (ahead, 63);
  j->next_seq = head->seq;
  return WZP_JITTER_GAP;
}
