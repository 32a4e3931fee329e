/* The kernel's share of bench-relay's figure: a plain UDP reflector with no
 * QUIC and no crypto, under bench-relay's load. It makes the same system
 * calls per packet as the relay's endpoint (poll, recvmmsg in batches of 32,
 * sendmmsg in batches of up to 64, one unconnected socket on each side) and
 * sends every packet it receives back to its sender, which for the relay is
 * the same load generator's socket. The reflector runs on CPU 0, the
 * generator on CPU 1; every 20 ms the generator sends one packet per leg (two
 * legs per call) of the size a forwarded media datagram has on the wire. For
 * N = 50, 100, ... until loss passes 0.1 % (or N = MAX-N): packets reflected
 * per second, loss, reflector CPU % and reflector CPU µs per packet. What
 * bench-relay measures above this is the relay's own user-space work. Ends
 * with a JSON line. Usage: bench-udp-floor [SECONDS-PER-STEP] [MAX-N] [FIRST-N]
 * [PACKET-BYTES] */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <glib.h>

#include "bench-util.h"
#include "wzp-quic-private.h"   /* RECV_BATCH, SEND_BATCH, SOCKET_BUFFER */

static int
udp_socket (struct sockaddr_in *bound)
{
  int fd = socket (AF_INET, SOCK_DGRAM, 0), size = SOCKET_BUFFER;
  socklen_t len = sizeof *bound;

  g_assert (fd >= 0);
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  memset (bound, 0, sizeof *bound);
  bound->sin_family = AF_INET;
  bound->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  g_assert (bind (fd, (struct sockaddr *) bound, sizeof *bound) == 0);
  g_assert (getsockname (fd, (struct sockaddr *) bound, &len) == 0);
  return fd;
}

static void
send_all (int fd, struct mmsghdr *msgs, guint n)
{
  guint done = 0;

  while (done < n) {
    int r = sendmmsg (fd, msgs + done, n - done, 0);

    if (r < 0 && errno == EINTR)
      continue;
    done += r > 0 ? (guint) r : 1;      /* a failed packet counts as lost */
  }
}

/* The reflector: like the relay's endpoint, up to 16 rounds of recvmmsg per
 * wake-up, replies queued and sent SEND_BATCH at a time and at the end. */
static G_GNUC_NORETURN void
reflect (int fd)
{
  static guint8 bufs[16 * RECV_BATCH][2048];
  static struct sockaddr_in addrs[16 * RECV_BATCH];
  static struct iovec iov[16 * RECV_BATCH];
  static struct mmsghdr rx[RECV_BATCH], tx[16 * RECV_BATCH];

  for (;;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    guint queued = 0, sent = 0;

    if (poll (&p, 1, -1) < 0 && errno != EINTR)
      _exit (1);
    for (guint round = 0; round < 16; round++) {
      int n;

      for (guint i = 0; i < RECV_BATCH; i++) {
        guint k = queued + i;

        iov[k].iov_base = bufs[k];
        iov[k].iov_len = sizeof bufs[k];
        memset (&rx[i].msg_hdr, 0, sizeof rx[i].msg_hdr);
        rx[i].msg_hdr.msg_iov = &iov[k];
        rx[i].msg_hdr.msg_iovlen = 1;
        rx[i].msg_hdr.msg_name = &addrs[k];
        rx[i].msg_hdr.msg_namelen = sizeof addrs[k];
      }
      n = recvmmsg (fd, rx, RECV_BATCH, MSG_DONTWAIT, NULL);
      if (n <= 0)
        break;
      for (int i = 0; i < n; i++, queued++) {
        tx[queued].msg_hdr = rx[i].msg_hdr;
        iov[queued].iov_len = rx[i].msg_len;
      }
      while (queued - sent >= SEND_BATCH) {
        send_all (fd, tx + sent, SEND_BATCH);
        sent += SEND_BATCH;
      }
      if (n < RECV_BATCH)
        break;
    }
    if (queued > sent)
      send_all (fd, tx + sent, queued - sent);
  }
}

/* Receives whatever has come back, without waiting. */
static guint64
drain (int fd)
{
  static guint8 bufs[RECV_BATCH][2048];
  static struct iovec iov[RECV_BATCH];
  static struct mmsghdr rx[RECV_BATCH];
  guint64 got = 0;
  int n;

  do {
    for (guint i = 0; i < RECV_BATCH; i++) {
      iov[i].iov_base = bufs[i];
      iov[i].iov_len = sizeof bufs[i];
      memset (&rx[i].msg_hdr, 0, sizeof rx[i].msg_hdr);
      rx[i].msg_hdr.msg_iov = &iov[i];
      rx[i].msg_hdr.msg_iovlen = 1;
    }
    n = recvmmsg (fd, rx, RECV_BATCH, MSG_DONTWAIT, NULL);
    got += n > 0 ? (guint64) n : 0;
  } while (n == RECV_BATCH);
  return got;
}

/* Runs @legs legs for @secs seconds; returns the packets that came back. */
static guint64
run_step (int fd, const struct sockaddr_in *to, guint legs, guint packet_bytes, guint secs,
          guint64 *sent)
{
  g_autofree guint8 *payload = g_malloc0 (packet_bytes);
  g_autofree struct mmsghdr *msgs = g_new0 (struct mmsghdr, legs);
  struct iovec iov = { payload, packet_bytes };
  gint64 t0 = g_get_monotonic_time (), next = t0, now;
  guint64 got = 0;

  for (guint i = 0; i < legs; i++) {
    msgs[i].msg_hdr.msg_name = (void *) to;
    msgs[i].msg_hdr.msg_namelen = sizeof *to;
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  while ((now = g_get_monotonic_time ()) - t0 < (gint64) secs * G_USEC_PER_SEC) {
    struct pollfd p = { .fd = fd, .events = POLLIN };

    if (now >= next) {
      for (guint i = 0; i < legs; i += SEND_BATCH)
        send_all (fd, msgs + i, MIN (SEND_BATCH, legs - i));
      *sent += legs;
      next += 20000;
    }
    if (poll (&p, 1, (int) MAX (0, (next - g_get_monotonic_time ()) / 1000)) > 0)
      got += drain (fd);
  }
  /* stragglers */
  for (gint64 end = g_get_monotonic_time () + 300000; g_get_monotonic_time () < end;) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll (&p, 1, 50) > 0)
      got += drain (fd);
  }
  return got;
}

int
main (int argc, char **argv)
{
  guint step_s = argc > 1 ? (guint) atoi (argv[1]) : 5;
  guint max_n = argc > 2 ? (guint) atoi (argv[2]) : 1600;
  guint min_n = argc > 3 ? (guint) atoi (argv[3]) : 50;
  guint packet_bytes = argc > 4 ? (guint) atoi (argv[4]) : 137;
  g_autoptr (GString) json = g_string_new (NULL);
  struct sockaddr_in gen_addr, refl_addr;
  long hz = sysconf (_SC_CLK_TCK);
  int gen_fd, refl_fd;
  pid_t pid;
  double at_400 = 0;

  if (step_s == 0 || min_n == 0 || max_n < min_n || packet_bytes == 0 || packet_bytes > 1452) {
    g_printerr ("usage: bench-udp-floor [SECONDS-PER-STEP] [MAX-N] [FIRST-N] [PACKET-BYTES]\n");
    return 2;
  }
  refl_fd = udp_socket (&refl_addr);
  pid = fork ();
  g_assert (pid >= 0);
  if (pid == 0) {
    bench_pin_cpu (0);
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    reflect (refl_fd);
  }
  close (refl_fd);
  bench_pin_cpu (1);
  gen_fd = udp_socket (&gen_addr);

  g_string_append_printf (json, "{\"bench\":\"udp-floor\",\"packet_bytes\":%u,\"steps\":[", packet_bytes);
  g_print ("%6s %14s %8s %8s %12s\n", "calls", "reflected/s", "loss %", "CPU %", "µs/packet");
  for (guint n = min_n; n <= max_n; n *= 2) {
    guint64 sent = 0, got, cpu0, cpu1;
    double loss, cpu_s, us_per;

    drain (gen_fd);
    cpu0 = bench_proc_cpu_ticks (pid);
    got = run_step (gen_fd, &refl_addr, 2 * n, packet_bytes, step_s, &sent);
    cpu1 = bench_proc_cpu_ticks (pid);
    loss = sent ? MAX (0.0, 100.0 * (1.0 - (double) got / (double) sent)) : 100;
    cpu_s = (double) (cpu1 - cpu0) / (double) hz;
    us_per = got ? cpu_s * 1e6 / (double) got : 0;
    g_print ("%6u %14.0f %8.3f %8.1f %12.2f\n", n, got / (double) step_s, loss,
             100.0 * cpu_s / step_s, us_per);
    g_string_append_printf (json, "%s{\"calls\":%u,\"reflected_per_s\":%.0f,\"loss_pct\":%.3f,"
                            "\"cpu_pct\":%.1f,\"cpu_us_per_packet\":%.2f}", n == min_n ? "" : ",",
                            n, got / (double) step_s, loss, 100.0 * cpu_s / step_s, us_per);
    if (n == 400 || at_400 == 0)
      at_400 = us_per;
    if (loss > 0.1)
      break;
  }
  g_print ("%s],\"cpu_us_per_packet_at_400\":%.2f}\n", json->str, at_400);
  kill (pid, SIGKILL);
  waitpid (pid, NULL, 0);
  return 0;
}
