/* wzp-jitter: see wzp-jitter.h. */
#define G_LOG_DOMAIN "wzp-jitter"

#include "wzp-jitter.h"

#include <stdlib.h>
#include <string.h>

/* a jump this far ahead is a new stream (a restarted sender), not loss */
#define RESYNC_DISTANCE 1000
#define MAX_HELD 512
/* arrival delays remembered: 5 s of 20 ms frames */
#define WINDOW 250
/* the target: this quantile of the window's delays, plus a margin */
#define TARGET_QUANTILE 0.98
#define MARGIN_US 5000
/* how fast the target comes back down: 10 ms per second */
#define DECAY_US_PER_S 10000
/* a frame this small is silence (DTX, comfort noise): where to drop one */
#define QUIET_BYTES 12
/* without a quiet frame or a lost one, a frame is dropped anyway after this many */
#define SHRINK_FORCE 25
#define DEFAULT_FRAME_US 20000
/* a frame is dropped when the delay is this much over half a frame above
 * the target: a drop costs a frame that came, so the delay is allowed most
 * of a frame above the target before it is taken away (measured on LTE-like
 * links, bench/quality: half the drops of a 2 ms margin, for 0.5 % of the
 * frames) */
#define SHRINK_HYSTERESIS_US 12000

struct _WzpJitter {
  gint64 min_us, max_us;
  gint64 slack_us;             /* how long after its play time a frame is still taken */
  gboolean adaptive;
  gboolean started, playing;
  guint16 next_seq;
  GQueue held;                 /* WzpMediaFrame*, sorted by seq distance from next_seq */
  guint64 recent;              /* bit i: next_seq - 1 - i was released */
  /* the sender's media clock, extended past its 32-bit wrap (ms) */
  guint32 high_ts;
  gint64 high_ts_ext;
  /* transit times (arrival minus sender time, µs) of the last WINDOW frames */
  gint64 window[WINDOW];
  guint window_len, window_at;
  gint64 baseline;             /* the smallest of them: the path's fastest */
  gint64 target_us;
  gint64 target_at;            /* when the target last moved down */
  gint64 play_next;            /* play time of the next output */
  gint64 play_last;            /* play time of the last output */
  gint64 frame_us;             /* duration of the last frame */
  guint shrink_wait;           /* frames passed over waiting for a quiet one */
  gboolean expect_valid;
  gint64 expect_ts;            /* sender time (extended, ms) where the next frame starts */
  WzpJitterStats stats;
};

/* Distance of @seq ahead of @from, modulo 2^16 (RFC 1982 style). */
static gint
seq_ahead (guint16 seq, guint16 from)
{
  return (gint16) (guint16) (seq - from);
}

static WzpJitter *
jitter_new (guint min_ms, guint max_ms, gboolean adaptive)
{
  WzpJitter *j = g_new0 (WzpJitter, 1);

  j->min_us = (gint64) min_ms * 1000;
  j->max_us = (gint64) MAX (min_ms, max_ms) * 1000;
  j->adaptive = adaptive && j->max_us > j->min_us;
  j->target_us = j->min_us;
  j->frame_us = DEFAULT_FRAME_US;
  g_queue_init (&j->held);
  return j;
}

WzpJitter *
wzp_jitter_new (guint latency_ms)
{
  return jitter_new (latency_ms, latency_ms, FALSE);
}

WzpJitter *
wzp_jitter_new_adaptive (guint min_ms, guint max_ms)
{
  return jitter_new (min_ms, max_ms, TRUE);
}

void
wzp_jitter_free (WzpJitter *j)
{
  if (j == NULL)
    return;
  g_queue_clear_full (&j->held, (GDestroyNotify) wzp_media_frame_free);
  g_free (j);
}

void
wzp_jitter_set_slack (WzpJitter *j, guint slack_us)
{
  j->slack_us = slack_us;
}

guint
wzp_jitter_get_latency_ms (WzpJitter *j)
{
  return (guint) (j->min_us / 1000);
}

gint64
wzp_jitter_get_play_us (WzpJitter *j)
{
  return j->play_last;
}

const WzpMediaFrame *
wzp_jitter_peek_next (WzpJitter *j)
{
  const WzpMediaFrame *head = g_queue_peek_head (&j->held);

  return head && head->seq == j->next_seq ? head : NULL;
}

void
wzp_jitter_get_stats (WzpJitter *j, WzpJitterStats *stats)
{
  *stats = j->stats;
  stats->level = g_queue_get_length (&j->held);
  stats->target_ms = (guint) (j->target_us / 1000);
}

/* the sender time of @ts, extended (ms) */
static gint64
ts_ext (WzpJitter *j, guint32 ts)
{
  return j->high_ts_ext + (gint32) (ts - j->high_ts);
}

/* an Opus packet's own duration (its TOC), else the codec's frame */
static gint64
frame_duration (const WzpMediaFrame *f)
{
  gsize len;
  const guint8 *d = g_bytes_get_data (f->payload, &len);
  guint us = wzp_codec_id_is_opus (f->codec) ? wzp_opus_packet_duration_us (d, len) : 0;
  guint ms = wzp_codec_id_frame_ms (f->codec);

  return us ? (gint64) us : ms ? (gint64) ms * 1000 : DEFAULT_FRAME_US;
}

static int
cmp_i64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}

/* A frame arrived @transit µs after its sender time (@late: after its
 * play time): the window, the baseline and the target move. */
static void
learn (WzpJitter *j, gint64 transit, gint64 now, gboolean late)
{
  gint64 sorted[WINDOW], quantile, delay;

  j->window[j->window_at] = transit;
  j->window_at = (j->window_at + 1) % WINDOW;
  if (j->window_len < WINDOW)
    j->window_len++;
  j->baseline = G_MAXINT64;
  for (guint i = 0; i < j->window_len; i++)
    j->baseline = MIN (j->baseline, j->window[i]);
  if (!j->adaptive)
    return;
  memcpy (sorted, j->window, j->window_len * sizeof (gint64));
  qsort (sorted, j->window_len, sizeof (gint64), cmp_i64);
  /* what is left of the variation once the caller's slack has taken its part */
  quantile = sorted[(guint) ((j->window_len - 1) * TARGET_QUANTILE)] - j->baseline + MARGIN_US - j->slack_us;
  delay = transit - j->baseline + MARGIN_US - j->slack_us;
  if (late && delay > j->target_us) {
    /* a late frame: up at once, to what it needed */
    j->target_us = delay;
    j->target_at = now;
  } else if (quantile > j->target_us) {
    /* up at once to what the window needs */
    j->target_us = quantile;
    j->target_at = now;
  } else if (quantile < j->target_us) {
    /* down gradually, never below what the window needs */
    gint64 down = (now - j->target_at) * DECAY_US_PER_S / G_USEC_PER_SEC;
    if (down > 0) {
      j->target_us = MAX (quantile, j->target_us - down);
      j->target_at = now;
    }
  } else {
    j->target_us = quantile;
    j->target_at = now;
  }
  j->target_us = CLAMP (j->target_us, j->min_us, j->max_us);
}

gboolean
wzp_jitter_push (WzpJitter *j, WzpMediaFrame *f)
{
  gint ahead;
  gint64 tsx;
  GList *l;
  gboolean duplicate;

  j->stats.pushed++;
  if (!j->started) {
    j->started = TRUE;
    j->next_seq = f->seq;
    j->high_ts = f->timestamp;
    j->high_ts_ext = f->timestamp;
  }
  ahead = seq_ahead (f->seq, j->next_seq);
  if (ahead > RESYNC_DISTANCE || ahead < -RESYNC_DISTANCE) {
    /* far off either way: a new stream (a restarted sender), not loss */
    g_queue_clear_full (&j->held, (GDestroyNotify) wzp_media_frame_free);
    j->next_seq = f->seq;
    j->recent = 0;
    j->high_ts = f->timestamp;
    j->high_ts_ext = f->timestamp;
    j->window_len = j->window_at = 0;
    j->playing = FALSE;
    j->expect_valid = FALSE;
    ahead = 0;
  }
  tsx = ts_ext (j, f->timestamp);
  if (tsx > j->high_ts_ext) {
    j->high_ts_ext = tsx;
    j->high_ts = f->timestamp;
  }
  duplicate = ahead < 0 && -ahead <= 64 && (j->recent >> (-ahead - 1)) & 1;
  learn (j, f->received_us - tsx * 1000, f->received_us, ahead < 0 && !duplicate);
  if (ahead < 0) {
    /* already released (a duplicate) or given up on (late) */
    if (duplicate)
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

/* the next output is @n frames of gap */
static WzpJitterOutput
emit_gap (WzpJitter *j, guint n, guint *gap_frames)
{
  *gap_frames = n;
  j->play_last = j->play_next;
  j->play_next += (gint64) n * j->frame_us;
  j->stats.concealed += n;
  return WZP_JITTER_GAP;
}

/* @delay is enough over the target that a frame of @dur is to be taken away */
static gboolean
too_much_delay (WzpJitter *j, gint64 delay, gint64 dur)
{
  return delay > j->target_us + dur / 2 + SHRINK_HYSTERESIS_US;
}

static gboolean
quiet (const WzpMediaFrame *f)
{
  return f->codec == WZP_CODEC_COMFORT_NOISE || g_bytes_get_size (f->payload) <= QUIET_BYTES;
}

WzpJitterOutput
wzp_jitter_pop (WzpJitter *j, gint64 now_us, WzpMediaFrame **frame, guint *gap_frames,
                gint64 *wake_us)
{
  *wake_us = -1;
  for (;;) {
    WzpMediaFrame *head = g_queue_peek_head (&j->held);
    gint64 ideal, delay, dur;
    gint ahead;

    if (head == NULL)
      return WZP_JITTER_NONE;
    ahead = seq_ahead (head->seq, j->next_seq);
    if (!j->playing) {
      /* the first frame plays the target after the path's fastest arrival */
      j->playing = TRUE;
      j->play_next = j->baseline + ts_ext (j, head->timestamp) * 1000 - (gint64) ahead * j->frame_us +
          j->target_us;
    }
    if (ahead > 0 && j->expect_valid && ts_ext (j, head->timestamp) == j->expect_ts) {
      /* a hole with no media time in it: sequence numbers a sender spent
       * on packets that carry none (Codec2 FEC repair packets, §3.6) */
      j->stats.skipped += (guint) ahead;
      j->next_seq = head->seq;
      j->recent <<= MIN ((guint) ahead, 63u);
      continue;
    }
    if (ahead > 0) {
      /* a hole: waited for until its play time, then concealed; as many
       * frames as the sender time it spans, when that is known (the rest
       * of its sequence numbers carried no media) */
      gint64 limit = ahead, hole_delay;
      guint n;

      if (now_us < j->play_next) {
        *wake_us = j->play_next;
        return WZP_JITTER_NONE;
      }
      if (j->expect_valid && ts_ext (j, head->timestamp) > j->expect_ts)
        limit = MIN (limit, ((ts_ext (j, head->timestamp) - j->expect_ts) * 1000 + j->frame_us - 1) /
                     j->frame_us);
      n = (guint) MIN (limit, 1 + (now_us - j->play_next) / j->frame_us);
      hole_delay = j->expect_valid ? j->play_next - (j->baseline + j->expect_ts * 1000) : 0;
      j->stats.lost += n;
      j->next_seq += n;
      j->recent <<= MIN (n, 63u);
      if (j->expect_valid)
        j->expect_ts += (gint64) n * j->frame_us / 1000;
      if ((gint64) n == limit && limit < ahead) {
        j->stats.skipped += (guint64) (ahead - limit);
        j->next_seq = head->seq;
      }
      /* more delay than the target: a lost frame is the one to take away
       * (a shrink that costs nothing that came) */
      if (j->adaptive && n == 1 && too_much_delay (j, hole_delay, j->frame_us)) {
        j->stats.shrunk++;
        j->shrink_wait = 0;
        continue;
      }
      return emit_gap (j, n, gap_frames);
    }
    ideal = j->baseline + ts_ext (j, head->timestamp) * 1000;
    delay = j->play_next - ideal;
    dur = frame_duration (head);
    if (j->play_next + dur < now_us) {
      /* the stream stopped and goes on (silence, a stall): its silence is
       * a gap, and the frame plays the target after its arrival */
      gint64 want = MAX (ideal + j->target_us, now_us);
      guint n = (guint) MAX ((gint64) 1, (want - j->play_next + j->frame_us - 1) / j->frame_us);

      j->stats.concealed -= n;            /* silence, not concealment */
      return emit_gap (j, n, gap_frames);
    }
    if (j->adaptive && delay < j->target_us - dur / 2) {
      /* too little delay: one frame more */
      j->stats.stretched++;
      return emit_gap (j, 1, gap_frames);
    }
    if (j->adaptive && too_much_delay (j, delay, dur)) {
      /* too much: one frame less, a quiet one if one comes soon */
      if (quiet (head) || ++j->shrink_wait >= SHRINK_FORCE) {
        g_queue_pop_head (&j->held);
        j->expect_ts = ts_ext (j, head->timestamp) + dur / 1000;
        j->expect_valid = TRUE;
        wzp_media_frame_free (head);
        j->next_seq++;
        j->recent = (j->recent << 1) | 1;
        j->stats.shrunk++;
        j->shrink_wait = 0;
        continue;
      }
    } else {
      j->shrink_wait = 0;
    }
    *frame = g_queue_pop_head (&j->held);
    j->expect_ts = ts_ext (j, head->timestamp) + dur / 1000;
    j->expect_valid = TRUE;
    j->recent = (j->recent << 1) | 1;
    j->next_seq++;
    j->stats.released++;
    j->stats.delay_ms = (guint) MAX (delay / 1000, 0);
    j->frame_us = dur;
    j->play_last = j->play_next;
    j->play_next += dur;
    return WZP_JITTER_FRAME;
  }
}
