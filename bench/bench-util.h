/* Helpers shared by the benchmarks. */
#pragma once

#include <sys/types.h>
#include <glib.h>

G_BEGIN_DECLS

/* Pins the calling thread (and what it later forks) to one CPU. */
void bench_pin_cpu (int cpu);

/* User plus system CPU time of process @pid, in clock ticks
 * (sysconf (_SC_CLK_TCK)); 0 if it cannot be read. */
guint64 bench_proc_cpu_ticks (pid_t pid);

/* GCompareFunc over gint64, for g_array_sort. */
int bench_cmp_i64 (gconstpointer a, gconstpointer b);

G_END_DECLS
