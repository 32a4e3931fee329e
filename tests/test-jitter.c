/* wzp-jitter: order, play times, holes given up at their play time, late and
 * duplicate frames, sequence wrap, resync; the adaptive delay: a spike
 * raises it at once and it comes back down gradually; a sender clock 200 ppm
 * fast or slow over 30 simulated minutes keeps the delay at its target. */
#include <glib.h>

#include "wzp-jitter.h"

/* frames of speech (60 bytes) rather than of silence (1 byte) */
static gboolean voiced;

static WzpMediaFrame *
frame_ts (guint16 seq, guint32 ts, gint64 at)
{
  static const guint8 speech[60] = { 'x' };
  WzpMediaFrame *f = g_new0 (WzpMediaFrame, 1);

  f->seq = seq;
  f->timestamp = ts;
  f->received_us = at;
  /* an Opus TOC: 20 ms */
  f->payload = voiced ? g_bytes_new_static (speech, sizeof speech) : g_bytes_new_static ("x", 1);
  return f;
}

static WzpMediaFrame *
frame (guint16 seq, gint64 at)
{
  return frame_ts (seq, seq * 20u, at);
}

/* Pops one output; returns the frame's seq, or -gap for a gap, or -1000 for none. */
static gint
pop (WzpJitter *j, gint64 now)
{
  WzpMediaFrame *f = NULL;
  guint gap = 0;
  gint64 wake;
  WzpJitterOutput o = wzp_jitter_pop (j, now, &f, &gap, &wake);

  if (o == WZP_JITTER_FRAME) {
    gint seq = f->seq;
    wzp_media_frame_free (f);
    return seq;
  }
  if (o == WZP_JITTER_GAP)
    return -(gint) gap;
  return -1000;
}

static void
test_in_order (void)
{
  WzpJitter *j = wzp_jitter_new (40);

  for (guint i = 0; i < 10; i++) {
    g_assert_true (wzp_jitter_push (j, frame (100 + i, i * 20000)));
    /* released at once; it plays the fixed delay after it came */
    g_assert_cmpint (pop (j, i * 20000), ==, 100 + (gint) i);
    g_assert_cmpint (wzp_jitter_get_play_us (j), ==, i * 20000 + 40000);
    g_assert_cmpint (pop (j, i * 20000), ==, -1000);
  }
  wzp_jitter_free (j);
}

static void
test_reorder_and_gap (void)
{
  WzpJitter *j = wzp_jitter_new (40);
  WzpJitterStats st;
  WzpMediaFrame *f = NULL;
  guint gap;
  gint64 wake;

  wzp_jitter_push (j, frame (1, 0));
  g_assert_cmpint (pop (j, 0), ==, 1);                  /* plays at 40 ms */
  /* 3 before 2: held; 2 is waited for until its play time, 60 ms */
  wzp_jitter_push (j, frame (3, 40000));
  g_assert_cmpint (wzp_jitter_pop (j, 40000, &f, &gap, &wake), ==, WZP_JITTER_NONE);
  g_assert_cmpint (wake, ==, 60000);
  wzp_jitter_push (j, frame (2, 45000));
  g_assert_cmpint (pop (j, 45000), ==, 2);
  g_assert_cmpint (pop (j, 45000), ==, 3);
  /* 4 and 5 lost: each is concealed at its play time (100, 120 ms) */
  wzp_jitter_push (j, frame (6, 100000));
  g_assert_cmpint (pop (j, 99999), ==, -1000);
  g_assert_cmpint (pop (j, 100000), ==, -1);
  g_assert_cmpint (wzp_jitter_get_play_us (j), ==, 100000);
  g_assert_cmpint (pop (j, 100000), ==, -1000);
  g_assert_cmpint (pop (j, 120000), ==, -1);
  g_assert_cmpint (pop (j, 120000), ==, 6);
  g_assert_cmpint (wzp_jitter_get_play_us (j), ==, 140000);
  /* 5 arrives now: late; 6 again: duplicate */
  g_assert_false (wzp_jitter_push (j, frame (5, 150000)));
  g_assert_false (wzp_jitter_push (j, frame (6, 150000)));
  wzp_jitter_get_stats (j, &st);
  g_assert_cmpuint (st.lost, ==, 2);
  g_assert_cmpuint (st.concealed, ==, 2);
  g_assert_cmpuint (st.late, ==, 1);
  g_assert_cmpuint (st.duplicate, ==, 1);
  g_assert_cmpuint (st.reordered, ==, 1);
  g_assert_cmpuint (st.released, ==, 4);
  g_assert_cmpuint (st.stretched + st.shrunk, ==, 0);   /* fixed: never moves */
  wzp_jitter_free (j);
}

/* Codec2 with FEC (§3.6): repair packets take sequence numbers but no
 * media time, and never reach the buffer. Their holes are skipped at once,
 * not concealed; a hole that also hides a lost frame is concealed for the
 * frame's time only. */
static void
test_repair_holes (void)
{
  WzpJitter *j = wzp_jitter_new (40);
  WzpJitterStats st;
  guint seq = 0;

  for (guint k = 0; k < 5; k++, seq++) {
    WzpMediaFrame *f = frame_ts (seq, k * 40, k * 40000);

    f->codec = WZP_CODEC_CODEC2_1200;
    wzp_jitter_push (j, f);
    g_assert_cmpint (pop (j, k * 40000), ==, (gint) seq);
  }
  seq += 2;                                     /* 5, 6: repair */
  for (guint k = 5; k < 9; k++, seq++) {
    WzpMediaFrame *f = frame_ts (seq, k * 40, k * 40000);

    f->codec = WZP_CODEC_CODEC2_1200;
    wzp_jitter_push (j, f);
    g_assert_cmpint (pop (j, k * 40000), ==, (gint) seq);
    g_assert_cmpint (wzp_jitter_get_play_us (j), ==, k * 40000 + 40000);
  }
  /* 11, 12: repair; 13 (ts 360) lost; 14 (ts 400) comes */
  {
    WzpMediaFrame *f = frame_ts (14, 400, 400000);

    f->codec = WZP_CODEC_CODEC2_1200;
    wzp_jitter_push (j, f);
  }
  g_assert_cmpint (pop (j, 399999), ==, -1000);
  g_assert_cmpint (pop (j, 400000), ==, -1);    /* 13's 40 ms, at its play time */
  g_assert_cmpint (wzp_jitter_get_play_us (j), ==, 400000);
  g_assert_cmpint (pop (j, 400000), ==, 14);
  g_assert_cmpint (wzp_jitter_get_play_us (j), ==, 440000);
  wzp_jitter_get_stats (j, &st);
  g_assert_cmpuint (st.skipped, ==, 4);
  g_assert_cmpuint (st.lost, ==, 1);
  g_assert_cmpuint (st.concealed, ==, 1);
  g_assert_cmpuint (st.released, ==, 10);
  wzp_jitter_free (j);
}

static void
test_wrap_and_resync (void)
{
  WzpJitter *j = wzp_jitter_new (40);

  for (guint i = 0; i < 4; i++) {
    wzp_jitter_push (j, frame_ts ((guint16) (65534 + i), 1000 + i * 20, i * 20000));
    g_assert_cmpint (pop (j, i * 20000), ==, (guint16) (65534 + i));
  }
  /* a sender restart: far ahead, taken as a new stream, no gap */
  wzp_jitter_push (j, frame_ts (40000, 5, 90000));
  g_assert_cmpint (pop (j, 90000), ==, 40000);
  wzp_jitter_free (j);
}

static void
test_random (void)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (9);

  for (gint adaptive = 0; adaptive <= 1; adaptive++) {
    WzpJitter *j = adaptive ? wzp_jitter_new_adaptive (20, 400) : wzp_jitter_new (60);
    WzpJitterStats st;
    gint last = -1;
    gint64 last_play = G_MININT64;

    /* 2000 frames, 5 % lost, some swapped with the next, 1 % duplicated */
    for (guint i = 0; i < 2000; i++) {
      gint64 t = (gint64) i * 20000;
      guint seq = i;

      if (g_rand_int_range (r, 0, 100) < 5)
        continue;
      if (g_rand_int_range (r, 0, 100) < 10 && i + 1 < 2000) {
        wzp_jitter_push (j, frame ((guint16) (i + 1), t));
        seq = i;
        i++;
      }
      wzp_jitter_push (j, frame ((guint16) seq, t));
      if (g_rand_int_range (r, 0, 100) < 1)
        wzp_jitter_push (j, frame ((guint16) seq, t));
      for (;;) {
        gint o = pop (j, t);
        if (o == -1000)
          break;
        if (o >= 0) {
          g_assert_cmpint (o, >, last);         /* strictly increasing */
          last = o;
        }
        /* each output starts where the one before ended */
        g_assert_cmpint (wzp_jitter_get_play_us (j), >, last_play);
        last_play = wzp_jitter_get_play_us (j);
      }
    }
    while (pop (j, G_MAXINT64 / 2) != -1000);
    wzp_jitter_get_stats (j, &st);
    g_assert_cmpuint (st.released + st.lost + st.shrunk, >=, 1990);
    g_test_message ("%s: released %" G_GUINT64_FORMAT " lost %" G_GUINT64_FORMAT " duplicate %"
                    G_GUINT64_FORMAT " reordered %" G_GUINT64_FORMAT " stretched %" G_GUINT64_FORMAT
                    " shrunk %" G_GUINT64_FORMAT, adaptive ? "adaptive" : "fixed", st.released, st.lost,
                    st.duplicate, st.reordered, st.stretched, st.shrunk);
    wzp_jitter_free (j);
  }
}

/* ---- simulated calls ------------------------------------------------------ */

typedef struct {
  guint64 frames, gaps;          /* outputs */
  guint max_delay_ms, min_delay_ms;   /* of frames played after @settle_us */
  guint max_target_ms;
} Played;

/* Runs @n frames (20 ms of sender time each, sent every @period_us) with
 * arrival delay @delay (µs) through @j, waking exactly when it asks to;
 * records the playout delay of frames played after @settle_us. */
static void
simulate (WzpJitter *j, guint n, gdouble period_us, gint64 (*delay) (guint i, gpointer), gpointer data,
          gint64 settle_us, Played *p)
{
  GArray *arrivals = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n);
  GArray *order = g_array_sized_new (FALSE, FALSE, sizeof (guint), n);
  gint64 now = 0;
  guint next = 0;

  p->frames = p->gaps = 0;
  p->max_delay_ms = p->max_target_ms = 0;
  p->min_delay_ms = G_MAXUINT;
  for (guint i = 0; i < n; i++) {
    gint64 d = delay (i, data);
    gint64 at = (gint64) (i * period_us) + d;
    g_array_append_val (arrivals, at);
    /* a negative delay: the frame is lost on the way */
    if (d >= 0)
      g_array_append_val (order, i);
  }
  n = order->len;
  /* arrival order (frames overtake each other when the delay drops) */
  for (guint i = 1; i < n; i++)
    for (guint k = i; k > 0 && g_array_index (arrivals, gint64, g_array_index (order, guint, k - 1)) >
                                g_array_index (arrivals, gint64, g_array_index (order, guint, k)); k--) {
      guint t = g_array_index (order, guint, k);
      g_array_index (order, guint, k) = g_array_index (order, guint, k - 1);
      g_array_index (order, guint, k - 1) = t;
    }
  for (;;) {
    WzpMediaFrame *f = NULL;
    guint gap = 0;
    gint64 wake = -1;
    WzpJitterOutput o;

    while (next < n && g_array_index (arrivals, gint64, g_array_index (order, guint, next)) <= now) {
      guint i = g_array_index (order, guint, next++);
      wzp_jitter_push (j, frame_ts ((guint16) i, i * 20u, g_array_index (arrivals, gint64, i)));
    }
    o = wzp_jitter_pop (j, now, &f, &gap, &wake);
    if (o == WZP_JITTER_FRAME) {
      WzpJitterStats st;
      wzp_jitter_get_stats (j, &st);
      if (now >= settle_us) {
        p->max_delay_ms = MAX (p->max_delay_ms, st.delay_ms);
        p->min_delay_ms = MIN (p->min_delay_ms, st.delay_ms);
      }
      p->max_target_ms = MAX (p->max_target_ms, st.target_ms);
      p->frames++;
      wzp_media_frame_free (f);
      continue;
    }
    if (o == WZP_JITTER_GAP) {
      p->gaps += gap;
      continue;
    }
    if (next >= n && wake < 0)
      break;
    if (next < n) {
      gint64 at = g_array_index (arrivals, gint64, g_array_index (order, guint, next));
      now = wake >= 0 ? MIN (wake, at) : at;
    } else {
      now = wake;
    }
  }
  g_array_unref (arrivals);
  g_array_unref (order);
}

/* 10 ms of jitter from a fixed pseudo-random sequence, and at frame 500 one
 * frame 150 ms late */
static gint64
spiky (guint i, gpointer data)
{
  gint64 d = 30000 + (gint64) ((i * 2654435761u) % 10000u);

  return i == 500 ? d + 150000 : d;
}

static void
test_spike (void)
{
  WzpJitter *j = wzp_jitter_new_adaptive (20, 400);
  WzpJitterStats st;
  Played p;

  /* 10 s: the spike comes at 10 s... of a 40 s call */
  simulate (j, 2000, 20000, spiky, NULL, 35 * G_USEC_PER_SEC, &p);
  wzp_jitter_get_stats (j, &st);
  g_test_message ("target at most %u ms; stretched %" G_GUINT64_FORMAT ", shrunk %" G_GUINT64_FORMAT
                  ", lost %" G_GUINT64_FORMAT ", late %" G_GUINT64_FORMAT "; at the end target %u ms, "
                  "delay %u..%u ms", p.max_target_ms, st.stretched, st.shrunk, st.lost, st.late,
                  st.target_ms, p.min_delay_ms, p.max_delay_ms);
  /* up at once on the late frame: to its delay beyond the fastest */
  g_assert_cmpuint (p.max_target_ms, >=, 150);
  /* that frame was lost, nothing else */
  g_assert_cmpuint (st.lost, ==, 1);
  g_assert_cmpuint (st.late, ==, 1);
  /* the delay was raised by concealment, then taken back by dropping */
  g_assert_cmpuint (st.stretched, >=, 5);
  g_assert_cmpuint (st.shrunk, >=, 4);
  /* and it is back near the jitter's own need (10 ms + margin, min 20),
   * within half a frame and the 12 ms drop margin above it */
  g_assert_cmpuint (st.target_ms, <=, 25);
  g_assert_cmpuint (p.max_delay_ms, <=, st.target_ms + 23);
  wzp_jitter_free (j);
}

static gint64
jittery (guint i, gpointer data)
{
  return 40000 + (gint64) ((i * 2654435761u) % 20000u);
}

/* A sender clock 200 ppm fast, then one 200 ppm slow: over 30 simulated
 * minutes the delay stays at its target; the difference (360 ms) is taken
 * by a frame dropped or concealed every 100 s, about 18 of them. */
static void
test_drift (void)
{
  for (gint sign = -1; sign <= 1; sign += 2) {
    WzpJitter *j = wzp_jitter_new_adaptive (20, 400);
    WzpJitterStats st;
    Played p;
    const guint n = 30 * 60 * 50;

    simulate (j, n, 20000.0 * (1.0 + sign * 200e-6), jittery, NULL, 60 * G_USEC_PER_SEC, &p);
    wzp_jitter_get_stats (j, &st);
    g_test_message ("sender %s: %" G_GUINT64_FORMAT " frames played, stretched %" G_GUINT64_FORMAT
                    ", shrunk %" G_GUINT64_FORMAT ", lost %" G_GUINT64_FORMAT "; target %u ms, delay %u..%u ms",
                    sign < 0 ? "200 ppm fast" : "200 ppm slow", p.frames, st.stretched, st.shrunk,
                    st.lost, st.target_ms, p.min_delay_ms, p.max_delay_ms);
    g_assert_cmpuint (st.lost, ==, 0);
    if (sign < 0) {
      g_assert_cmpuint (st.shrunk, >=, 15);
      g_assert_cmpuint (st.shrunk, <=, 22);
      g_assert_cmpuint (st.stretched, <=, 2);
    } else {
      g_assert_cmpuint (st.stretched, >=, 15);
      g_assert_cmpuint (st.stretched, <=, 22);
      g_assert_cmpuint (st.shrunk, <=, 2);
    }
    /* no growth, no underrun: the delay stays within half a frame of the
     * target below it, and half a frame and the 12 ms drop margin above */
    g_assert_cmpuint (p.max_delay_ms, <=, st.target_ms + 23);
    g_assert_cmpuint (p.min_delay_ms + 11, >=, st.target_ms);
    wzp_jitter_free (j);
  }
}

/* the spike of test_spike, and every 20th frame lost on the way */
static gint64
spiky_lossy (guint i, gpointer data)
{
  return i % 20 == 7 ? -1 : spiky (i, data);
}

/* Taking the delay back down costs no frame of speech that came when frames
 * are being lost anyway: the lost frame's slot is the one taken away. */
static void
test_shrink_on_loss (void)
{
  WzpJitter *j = wzp_jitter_new_adaptive (20, 400);
  WzpJitterStats st;
  Played p;

  voiced = TRUE;
  simulate (j, 2000, 20000, spiky_lossy, NULL, 35 * G_USEC_PER_SEC, &p);
  wzp_jitter_get_stats (j, &st);
  g_test_message ("100 of 2000 lost on the way, one 150 ms late: pushed %" G_GUINT64_FORMAT ", released %"
                  G_GUINT64_FORMAT ", late %" G_GUINT64_FORMAT ", stretched %" G_GUINT64_FORMAT
                  ", shrunk %" G_GUINT64_FORMAT "; at the end target %u ms, delay %u..%u ms",
                  st.pushed, st.released, st.late, st.stretched, st.shrunk, st.target_ms,
                  p.min_delay_ms, p.max_delay_ms);
  g_assert_cmpuint (st.pushed, ==, 1900);
  g_assert_cmpuint (st.late, ==, 1);
  /* the delay went up and came back down ... */
  g_assert_cmpuint (st.stretched, >=, 5);
  g_assert_cmpuint (st.shrunk, >=, 4);
  g_assert_cmpuint (st.target_ms, <=, 25);
  g_assert_cmpuint (p.max_delay_ms, <=, st.target_ms + 23);
  /* ... and every frame that came in time played */
  g_assert_cmpuint (st.released, ==, st.pushed - st.late);
  wzp_jitter_free (j);
  voiced = FALSE;
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/jitter/in-order", test_in_order);
  g_test_add_func ("/jitter/reorder-and-gap", test_reorder_and_gap);
  g_test_add_func ("/jitter/wrap-and-resync", test_wrap_and_resync);
  g_test_add_func ("/jitter/repair-holes", test_repair_holes);
  g_test_add_func ("/jitter/random", test_random);
  g_test_add_func ("/jitter/spike", test_spike);
  g_test_add_func ("/jitter/shrink-on-loss", test_shrink_on_loss);
  g_test_add_func ("/jitter/drift", test_drift);
  return g_test_run ();
}
