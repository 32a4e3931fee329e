#define _GNU_SOURCE             /* sched_setaffinity */
#include "bench-util.h"

#include <sched.h>
#include <string.h>

void
bench_pin_cpu (int cpu)
{
  cpu_set_t set;

  CPU_ZERO (&set);
  CPU_SET (cpu, &set);
  sched_setaffinity (0, sizeof set, &set);
}

guint64
bench_proc_cpu_ticks (pid_t pid)
{
  g_autofree gchar *path = g_strdup_printf ("/proc/%d/stat", (int) pid);
  g_autofree gchar *text = NULL;
  g_auto (GStrv) f = NULL;
  const gchar *close_paren;

  if (!g_file_get_contents (path, &text, NULL, NULL) || !(close_paren = strrchr (text, ')')))
    return 0;
  f = g_strsplit (close_paren + 2, " ", 0);
  /* fields after the command: state is [0]; utime [11], stime [12] */
  if (g_strv_length (f) < 13)
    return 0;
  return g_ascii_strtoull (f[11], NULL, 10) + g_ascii_strtoull (f[12], NULL, 10);
}

int
bench_cmp_i64 (gconstpointer a, gconstpointer b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;

  return x < y ? -1 : x > y;
}
