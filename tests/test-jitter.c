/* wzp-jitter: order, gaps after the latency, late and duplicate frames,
 * sequence wrap, resync. */
#include <glib.h>

#include "wzp-jitter.h"

static WzpMediaFrame *
frame (guint16 seq, gint64 at)
{
  WzpMediaFrame *f = g_new0 (WzpMediaFrame, 1);

  f->seq = seq;
  f->timestamp = seq * 20u;
  f->received_us = at;
  f->payload = g_bytes_new_static ("x", 1);
  return f;
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
    g_assert_cmpint (pop (j, i * 20000), ==, 100 + (gint) i);      /* no added delay */
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
  g_assert_cmpint (pop (j, 0), ==, 1);
  /* 3 before 2: held until 2 comes */
  wzp_jitter_push (j, frame (3, 40000));
  g_assert_cmpint (wzp_jitter_pop (j, 40000, &f, &gap, &wake), ==, WZP_JITTER_NONE);
  g_assert_cmpint (wake, ==, 80000);
  wzp_jitter_push (j, frame (2, 45000));
  g_assert_cmpint (pop (j, 45000), ==, 2);
  g_assert_cmpint (pop (j, 45000), ==, 3);
  /* 4 and 5 lost: 6 waits the latency, then a gap of 2 */
  wzp_jitter_push (j, frame (6, 100000));
  g_assert_cmpint (pop (j, 120000), ==, -1000);
  g_assert_cmpint (pop (j, 140000), ==, -2);
  g_assert_cmpint (pop (j, 140000), ==, 6);
  /* 5 arrives now: late; 6 again: duplicate */
  g_assert_false (wzp_jitter_push (j, frame (5, 150000)));
  g_assert_false (wzp_jitter_push (j, frame (6, 150000)));
  wzp_jitter_get_stats (j, &st);
  g_assert_cmpuint (st.lost, ==, 2);
  g_assert_cmpuint (st.late, ==, 1);
  g_assert_cmpuint (st.duplicate, ==, 1);
  g_assert_cmpuint (st.reordered, ==, 1);
  g_assert_cmpuint (st.released, ==, 4);
  wzp_jitter_free (j);
}

static void
test_wrap_and_resync (void)
{
  WzpJitter *j = wzp_jitter_new (40);

  for (guint i = 0; i < 4; i++) {
    wzp_jitter_push (j, frame ((guint16) (65534 + i), i));
    g_assert_cmpint (pop (j, i), ==, (guint16) (65534 + i));
  }
  /* a sender restart: far ahead, taken as a new stream, no gap */
  wzp_jitter_push (j, frame (40000, 10));
  g_assert_cmpint (pop (j, 10), ==, 40000);
  wzp_jitter_free (j);
}

static void
test_random (void)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (9);
  WzpJitter *j = wzp_jitter_new (60);
  WzpJitterStats st;
  guint released = 0, gaps = 0;
  gint last = -1;

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
        released++;
      } else {
        gaps += (guint) -o;
      }
    }
  }
  while (pop (j, G_MAXINT64 / 2) != -1000);
  wzp_jitter_get_stats (j, &st);
  g_assert_cmpuint (st.released + st.lost, >=, 1990);
  g_test_message ("released %" G_GUINT64_FORMAT " lost %" G_GUINT64_FORMAT " duplicate %"
                  G_GUINT64_FORMAT " reordered %" G_GUINT64_FORMAT, st.released, st.lost,
                  st.duplicate, st.reordered);
  wzp_jitter_free (j);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/jitter/in-order", test_in_order);
  g_test_add_func ("/jitter/reorder-and-gap", test_reorder_and_gap);
  g_test_add_func ("/jitter/wrap-and-resync", test_wrap_and_resync);
  g_test_add_func ("/jitter/random", test_random);
  return g_test_run ();
}
