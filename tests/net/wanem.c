/* wzp-wanem: a user-space WAN emulator for the network lab (tests/net/).
 *
 * It is a transparent bridge between two TAP devices: every Ethernet frame
 * read from one is written to the other, impaired on the way. Each direction
 * has its own profile: one-way delay, jitter from a normal or a Pareto
 * distribution (the reordering that follows from it comes with it),
 * Gilbert-Elliott bursty loss, a rate cap with a queue (congestion) and
 * duplication. Frames that are not IPv4/IPv6 (ARP, neighbour discovery)
 * cross at once and are never dropped, so the link comes up as a real one
 * would. The kernel's netem would do this; it is not available here.
 *
 *   wzp-wanem --tap-a TAP --tap-b TAP [--up PROFILE] [--down PROFILE] [--seed N]
 *
 * "up" is a→b, "down" b→a. PROFILE is a name (broadband, lte, bad-wifi,
 * satellite, congested, none) or key=value pairs separated by commas:
 *   delay=MS        fixed one-way delay
 *   jitter=MS       normal: the standard deviation; pareto: the scale
 *   dist=normal|halfnormal|pareto  (a frame's delay is delay + a draw: N(0, jitter),
 *                   |N(0, jitter)|, or Pareto of shape 2.5 and scale jitter)
 *   loss=PERCENT    mean loss (Gilbert-Elliott with burst=1: independent)
 *   burst=FRAMES    mean length of a loss burst
 *   rate=KBIT       a rate cap; frames wait in a queue of queue= bytes
 *   queue=BYTES     the cap's queue (default 64 KiB); a full queue drops
 *   dup=PERCENT     duplication
 * A normal draw below -delay is clamped: no frame arrives before it was sent.
 * Runs until SIGTERM/SIGINT; prints one line "ready" once both TAPs are open
 * and the counters on exit. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib-unix.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define MAX_FRAME 2048

typedef struct {
  gdouble delay_ms, jitter_ms;
  gboolean pareto, halfnormal;
  gdouble loss_pct, burst;
  gdouble rate_kbit;
  guint queue_bytes;
  gdouble dup_pct;
} Profile;

typedef struct {
  gint64 due_us;
  guint64 order;              /* ties leave in arrival order */
  gsize len;
  guint8 data[];
} Pending;

typedef struct {
  const gchar *name;
  Profile p;
  int in_fd, out_fd;
  gboolean bad;               /* Gilbert-Elliott state */
  gdouble p_enter, p_leave;   /* good→bad, bad→good per frame */
  gint64 link_free_us;        /* the rate cap: when the link is free again */
  guint queued_bytes;
  GPtrArray *heap;            /* Pending*, a min-heap on (due_us, order) */
  guint64 seen, sent, lost, dropped_queue, duplicated;
} Direction;

static GRand *rng;
static guint64 order_counter;

static const struct { const gchar *name, *spec; } profiles[] = {
  { "none", "" },
  { "broadband", "delay=10,jitter=2,loss=0.1" },
  { "lte", "delay=40,jitter=20,dist=halfnormal,loss=1,burst=3" },
  { "bad-wifi", "delay=15,jitter=10,dist=pareto,loss=3,burst=3" },
  { "satellite", "delay=300,jitter=10,loss=0.5" },
  { "congested", "delay=20,rate=64,queue=32000" },
};

static gboolean
parse_profile (const gchar *text, Profile *p, GError **error)
{
  g_auto (GStrv) parts = NULL;

  memset (p, 0, sizeof *p);
  p->burst = 1;
  p->queue_bytes = 65536;
  for (guint i = 0; i < G_N_ELEMENTS (profiles); i++)
    if (strcmp (text, profiles[i].name) == 0)
      text = profiles[i].spec;
  parts = g_strsplit (text, ",", -1);
  for (guint i = 0; parts[i]; i++) {
    g_auto (GStrv) kv = NULL;
    gchar *end = NULL;
    gdouble v;

    if (!*parts[i])
      continue;
    kv = g_strsplit (parts[i], "=", 2);
    if (kv[1] == NULL) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "\"%s\": expected key=value", parts[i]);
      return FALSE;
    }
    if (strcmp (kv[0], "dist") == 0) {
      if (strcmp (kv[1], "pareto") != 0 && strcmp (kv[1], "normal") != 0 && strcmp (kv[1], "halfnormal") != 0) {
        g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "dist=%s: normal, halfnormal or pareto", kv[1]);
        return FALSE;
      }
      p->pareto = strcmp (kv[1], "pareto") == 0;
      p->halfnormal = strcmp (kv[1], "halfnormal") == 0;
      continue;
    }
    v = g_ascii_strtod (kv[1], &end);
    if (end == kv[1] || *end || v < 0) {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "%s=%s: not a number >= 0", kv[0], kv[1]);
      return FALSE;
    }
    if (strcmp (kv[0], "delay") == 0) p->delay_ms = v;
    else if (strcmp (kv[0], "jitter") == 0) p->jitter_ms = v;
    else if (strcmp (kv[0], "loss") == 0) p->loss_pct = MIN (v, 100);
    else if (strcmp (kv[0], "burst") == 0) p->burst = MAX (v, 1);
    else if (strcmp (kv[0], "rate") == 0) p->rate_kbit = v;
    else if (strcmp (kv[0], "queue") == 0) p->queue_bytes = (guint) v;
    else if (strcmp (kv[0], "dup") == 0) p->dup_pct = MIN (v, 100);
    else {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "unknown key \"%s\"", kv[0]);
      return FALSE;
    }
  }
  return TRUE;
}

static int
open_tap (const gchar *name, GError **error)
{
  struct ifreq ifr = { 0 };
  int fd = open ("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

  if (fd < 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "/dev/net/tun: %s", g_strerror (errno));
    return -1;
  }
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  g_strlcpy (ifr.ifr_name, name, IFNAMSIZ);
  if (ioctl (fd, TUNSETIFF, &ifr) < 0) {
    g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (errno), "TAP %s: %s", name, g_strerror (errno));
    close (fd);
    return -1;
  }
  return fd;
}

static gdouble
normal (void)
{
  /* Box-Muller */
  gdouble u = g_rand_double_range (rng, 1e-12, 1.0), v = g_rand_double (rng);

  return sqrt (-2.0 * log (u)) * cos (2 * G_PI * v);
}

/* the delay of one frame, µs */
static gint64
draw_delay (const Profile *p)
{
  gdouble d = p->delay_ms;

  if (p->jitter_ms > 0) {
    if (p->pareto)
      /* Pareto (shape 2.5) with scale jitter, shifted to start at 0 */
      d += p->jitter_ms * (pow (g_rand_double_range (rng, 1e-12, 1.0), -1.0 / 2.5) - 1.0);
    else if (p->halfnormal)
      d += p->jitter_ms * fabs (normal ());
    else
      d += p->jitter_ms * normal ();
  }
  return (gint64) (MAX (d, 0) * 1000);
}

static gboolean
pending_before (const Pending *a, const Pending *b)
{
  return a->due_us < b->due_us || (a->due_us == b->due_us && a->order < b->order);
}

static void
heap_push (GPtrArray *h, Pending *p)
{
  guint i = h->len;

  g_ptr_array_add (h, p);
  while (i > 0 && pending_before (h->pdata[i], h->pdata[(i - 1) / 2])) {
    gpointer t = h->pdata[i];
    h->pdata[i] = h->pdata[(i - 1) / 2];
    h->pdata[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static Pending *
heap_pop (GPtrArray *h)
{
  Pending *top = h->pdata[0];
  guint i = 0;

  h->pdata[0] = h->pdata[h->len - 1];
  g_ptr_array_set_size (h, h->len - 1);
  for (;;) {
    guint l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->len && pending_before (h->pdata[l], h->pdata[m])) m = l;
    if (r < h->len && pending_before (h->pdata[r], h->pdata[m])) m = r;
    if (m == i)
      break;
    gpointer t = h->pdata[i];
    h->pdata[i] = h->pdata[m];
    h->pdata[m] = t;
    i = m;
  }
  return top;
}

static gboolean
is_ip (const guint8 *frame, gsize len)
{
  guint type = len >= 14 ? (guint) frame[12] << 8 | frame[13] : 0;

  return type == 0x0800 || type == 0x86dd;
}

static void
schedule (Direction *d, const guint8 *frame, gsize len, gint64 now)
{
  Pending *p = g_malloc (sizeof (Pending) + len);
  gint64 due = now + draw_delay (&d->p);

  if (d->p.rate_kbit > 0) {
    /* serialised at the cap, after what is queued */
    gint64 start = MAX (now, d->link_free_us);
    d->link_free_us = start + (gint64) (len * 8 * 1000.0 / d->p.rate_kbit);
    due += d->link_free_us - now;
    d->queued_bytes += (guint) len;
  }
  p->due_us = due;
  p->order = order_counter++;
  p->len = len;
  memcpy (p->data, frame, len);
  heap_push (d->heap, p);
}

static void
receive (Direction *d, gint64 now)
{
  guint8 frame[MAX_FRAME];

  for (;;) {
    gssize n = read (d->in_fd, frame, sizeof frame);

    if (n <= 0)
      return;
    if (!is_ip (frame, (gsize) n)) {
      /* ARP, neighbour discovery: across at once */
      if (write (d->out_fd, frame, (gsize) n) < 0 && errno != EIO)
        g_printerr ("wanem %s: %s\n", d->name, g_strerror (errno));
      continue;
    }
    d->seen++;
    /* Gilbert-Elliott: the state moves, then the bad state loses */
    if (d->bad ? g_rand_double (rng) < d->p_leave : g_rand_double (rng) < d->p_enter)
      d->bad = !d->bad;
    if (d->bad) {
      d->lost++;
      continue;
    }
    if (d->p.rate_kbit > 0 && d->queued_bytes + (guint) n > d->p.queue_bytes) {
      d->dropped_queue++;
      continue;
    }
    schedule (d, frame, (gsize) n, now);
    if (d->p.dup_pct > 0 && g_rand_double (rng) * 100 < d->p.dup_pct) {
      d->duplicated++;
      schedule (d, frame, (gsize) n, now);
    }
  }
}

/* writes what is due; returns the next due time or -1 */
static gint64
deliver (Direction *d, gint64 now)
{
  while (d->heap->len > 0) {
    Pending *p = d->heap->pdata[0];

    if (p->due_us > now)
      return p->due_us;
    heap_pop (d->heap);
    if (d->p.rate_kbit > 0)
      d->queued_bytes -= (guint) MIN (p->len, d->queued_bytes);
    /* EIO: the other TAP is not up (yet): the frame is lost, as on a link */
    if (write (d->out_fd, p->data, p->len) >= 0)
      d->sent++;
    else if (errno != EIO)
      g_printerr ("wanem %s: %s\n", d->name, g_strerror (errno));
    g_free (p);
  }
  return -1;
}

static void
direction_init (Direction *d, const gchar *name, const Profile *p, int in_fd, int out_fd)
{
  gdouble loss = p->loss_pct / 100.0;

  d->name = name;
  d->p = *p;
  d->in_fd = in_fd;
  d->out_fd = out_fd;
  d->heap = g_ptr_array_new ();   /* no free func: heap_pop shrinks it */
  /* mean burst B: leave the bad state with 1/B; the share of time in it is loss */
  d->p_leave = 1.0 / p->burst;
  d->p_enter = loss >= 1.0 ? 1.0 : loss * d->p_leave / (1.0 - loss);
}

static volatile sig_atomic_t stop;

static void
on_signal (int sig)
{
  stop = 1;
}

int
main (int argc, char **argv)
{
  g_autofree gchar *tap_a = NULL, *tap_b = NULL, *up = NULL, *down = NULL;
  gint64 seed = 1;
  GOptionEntry entries[] = {
    { "tap-a", 0, 0, G_OPTION_ARG_STRING, &tap_a, "TAP on side a (created if missing)", "NAME" },
    { "tap-b", 0, 0, G_OPTION_ARG_STRING, &tap_b, "TAP on side b", "NAME" },
    { "up", 0, 0, G_OPTION_ARG_STRING, &up, "Profile a→b: a name or key=value,...", "PROFILE" },
    { "down", 0, 0, G_OPTION_ARG_STRING, &down, "Profile b→a", "PROFILE" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "Random seed (1)", "N" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- a WAN emulator between two TAP devices");
  g_autoptr (GError) error = NULL;
  Profile pu, pd;
  Direction dirs[2] = { 0 };
  int fa, fb;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || !tap_a || !tap_b ||
      !parse_profile (up ? up : "none", &pu, &error) || !parse_profile (down ? down : "none", &pd, &error)) {
    g_printerr ("wzp-wanem: %s\n", error ? error->message : "--tap-a and --tap-b are required");
    return 2;
  }
  rng = g_rand_new_with_seed ((guint32) seed);
  if ((fa = open_tap (tap_a, &error)) < 0 || (fb = open_tap (tap_b, &error)) < 0) {
    g_printerr ("wzp-wanem: %s\n", error->message);
    return 1;
  }
  direction_init (&dirs[0], "up", &pu, fa, fb);
  direction_init (&dirs[1], "down", &pd, fb, fa);
  signal (SIGTERM, on_signal);
  signal (SIGINT, on_signal);
  {
    /* a link's timing is the kernel's business; here a real-time priority
     * keeps a busy host from delaying frames (best effort) */
    struct sched_param sp = { .sched_priority = 10 };
    if (sched_setscheduler (0, SCHED_FIFO, &sp) != 0)
      g_printerr ("wzp-wanem: no real-time priority (%s): timing follows the host's load\n",
                  g_strerror (errno));
  }
  printf ("ready\n");
  fflush (stdout);
  while (!stop) {
    struct pollfd fds[2] = { { fa, POLLIN, 0 }, { fb, POLLIN, 0 } };
    gint64 now = g_get_monotonic_time (), next = -1, wait;
    struct timespec ts;

    for (guint i = 0; i < 2; i++) {
      gint64 due = deliver (&dirs[i], now);
      if (due >= 0 && (next < 0 || due < next))
        next = due;
    }
    /* until the next frame is due (µs resolution), or a frame comes */
    wait = next < 0 ? G_USEC_PER_SEC : MAX (0, next - now);
    ts.tv_sec = wait / G_USEC_PER_SEC;
    ts.tv_nsec = (wait % G_USEC_PER_SEC) * 1000;
    if (ppoll (fds, 2, &ts, NULL) < 0 && errno != EINTR)
      break;
    now = g_get_monotonic_time ();
    if (fds[0].revents & POLLIN)
      receive (&dirs[0], now);
    if (fds[1].revents & POLLIN)
      receive (&dirs[1], now);
  }
  for (guint i = 0; i < 2; i++)
    printf ("%s: %" G_GUINT64_FORMAT " frames, %" G_GUINT64_FORMAT " sent, %" G_GUINT64_FORMAT " lost, %"
            G_GUINT64_FORMAT " dropped by the queue, %" G_GUINT64_FORMAT " duplicated\n", dirs[i].name,
            dirs[i].seen, dirs[i].sent, dirs[i].lost, dirs[i].dropped_queue, dirs[i].duplicated);
  return 0;
}
