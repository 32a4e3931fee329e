/* Which bytes of ngtcp2's memory its per-packet paths use: a preload library
 * for a relay whose libngtcp2 was compiled with -fsanitize=thread (and linked
 * without its run-time), so that every load and store ngtcp2 makes calls
 * __tsan_readN/__tsan_writeN here. It keeps the heap's live blocks (malloc is
 * wrapped) and, between SIGUSR2 and SIGUSR1, each 8-byte word ngtcp2 touched
 * and in how many calls of ngtcp2_conn_read_pkt and
 * ngtcp2_conn_writev_datagram. SIGUSR1 writes, for every live block ngtcp2
 * touched, "B SIZE OFFSET:CALLS ..." to $NGTCP2_LINES_OUT. See trace.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern void *__libc_malloc (size_t);
extern void *__libc_calloc (size_t, size_t);
extern void *__libc_realloc (void *, size_t);
extern void __libc_free (void *);

#define HASH(x, bits) ((uint32_t) (((uint64_t) (x) * 0x9E3779B97F4A7C15ull) >> (64 - (bits))))

/* the slot of key a in an open-addressing table of 2^bits keys (0 free) */
static uint32_t
find (const uintptr_t *keys, unsigned bits, uintptr_t a)
{
  uint32_t h = HASH (a, bits);

  while (keys[h] && keys[h] != a)
    h = (h + 1) & ((1u << bits) - 1);
  return h;
}

/* live blocks: address -> size; a freed slot keeps the chain (address 1) */
#define BLOCK_BITS 21
static uintptr_t block_addr[1u << BLOCK_BITS];
static size_t block_size[1u << BLOCK_BITS];

static void
block_add (void *p, size_t n)
{
  uint32_t h;

  if (p == NULL)
    return;
  for (h = HASH (p, BLOCK_BITS); block_addr[h] > 1 && block_addr[h] != (uintptr_t) p;)
    h = (h + 1) & ((1u << BLOCK_BITS) - 1);
  block_addr[h] = (uintptr_t) p;
  block_size[h] = n;
}

static void
block_del (void *p)
{
  uint32_t h;

  if (p != NULL && block_addr[h = find (block_addr, BLOCK_BITS, (uintptr_t) p)])
    block_addr[h] = 1;
}

void *malloc (size_t n) { void *p = __libc_malloc (n); block_add (p, n); return p; }
void *calloc (size_t a, size_t b) { void *p = __libc_calloc (a, b); block_add (p, a * b); return p; }
void *realloc (void *o, size_t n) { void *p; block_del (o); p = __libc_realloc (o, n); block_add (p, n); return p; }
void free (void *p) { block_del (p); __libc_free (p); }

/* touched words: address -> calls that touched it */
#define WORD_BITS 20
static uintptr_t word_addr[1u << WORD_BITS];
static uint32_t word_calls[1u << WORD_BITS], word_last[1u << WORD_BITS];
static volatile sig_atomic_t recording;
static uint32_t serial;
static uint64_t calls;

static void
touch (uintptr_t a, size_t n)
{
  if (!recording)
    return;
  for (uintptr_t x = a & ~(uintptr_t) 7; x < a + n; x += 8) {
    uint32_t h = find (word_addr, WORD_BITS, x);

    word_addr[h] = x;
    if (word_last[h] != serial) {
      word_last[h] = serial;
      word_calls[h]++;
    }
  }
}

#define ACCESS(n) \
  void __tsan_read##n (void *a) { touch ((uintptr_t) a, n); } \
  void __tsan_write##n (void *a) { touch ((uintptr_t) a, n); }
ACCESS (1) ACCESS (2) ACCESS (4) ACCESS (8) ACCESS (16)
void __tsan_read_range (void *a, size_t n) { touch ((uintptr_t) a, n); }
void __tsan_write_range (void *a, size_t n) { touch ((uintptr_t) a, n); }
void __tsan_func_entry (void *p) { (void) p; }
void __tsan_func_exit (void) { }
void __tsan_init (void) { }

static void
dump (int sig)
{
  const char *path = getenv ("NGTCP2_LINES_OUT");
  FILE *f;

  (void) sig;
  recording = 0;
  if (path == NULL || (f = fopen (path, "w")) == NULL)
    return;
  fprintf (f, "calls %llu\n", (unsigned long long) calls);
  for (uint32_t i = 0; i < 1u << BLOCK_BITS; i++) {
    uintptr_t b = block_addr[i];
    int any = 0;

    if (b <= 1)
      continue;
    for (uintptr_t x = b; x < b + block_size[i]; x += 8) {
      uint32_t h = find (word_addr, WORD_BITS, x);

      if (word_addr[h] != x)
        continue;
      if (!any)
        fprintf (f, "B %zu", block_size[i]);
      any = 1;
      fprintf (f, " %llu:%u", (unsigned long long) (x - b), word_calls[h]);
    }
    if (any)
      fprintf (f, "\n");
  }
  fclose (f);
}

static void
start (int sig)
{
  (void) sig;
  recording = 1;
}

__attribute__((constructor)) static void
init (void)
{
  signal (SIGUSR1, dump);
  signal (SIGUSR2, start);
}

/* each of these calls is one packet read or written */
#define COUNTED(ret, name, params, args) \
  ret name params \
  { \
    static ret (*real) params; \
    if (real == NULL) \
      *(void **) &real = dlsym (RTLD_NEXT, #name); \
    if (recording) { \
      calls++; \
      serial++; \
    } \
    return real args; \
  }
COUNTED (int, ngtcp2_conn_read_pkt_versioned,
         (void *conn, const void *path, int v, const void *pi, const uint8_t *pkt, size_t len,
          uint64_t ts), (conn, path, v, pi, pkt, len, ts))
COUNTED (long, ngtcp2_conn_writev_datagram_versioned,
         (void *conn, void *ps, int v, void *pi, uint8_t *dest, size_t destlen, int *accepted,
          uint32_t flags, uint64_t id, const void *datav, size_t n, uint64_t ts),
         (conn, ps, v, pi, dest, destlen, accepted, flags, id, datav, n, ts))
