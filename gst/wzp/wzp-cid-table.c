/* gst-wzp: the endpoint's table of connection IDs (see the header). */
#include "wzp-cid-table.h"

#include <string.h>

struct CidSlot {
  gpointer value;               /* NULL: free */
  guint32 hash;
  CidKey key;
};

#define CID_TABLE_MIN 64

gboolean
cid_equal (gconstpointer a, gconstpointer b)
{
  const CidKey *x = a, *y = b;

  return x->len == y->len && memcmp (x->data, y->data, x->len) == 0;
}

/* FNV-1a from a random basis: clients choose their first DCIDs, so the
 * slots they land in are not theirs to predict */
static guint32
cid_table_hash (const CidTable *t, const CidKey *k)
{
  guint32 h = t->seed;

  for (guint i = 0; i < k->len; i++)
    h = (h ^ k->data[i]) * 16777619u;
  return h;
}

void
cid_table_init (CidTable *t, guint32 seed)
{
  t->slots = g_new0 (struct CidSlot, CID_TABLE_MIN);
  t->mask = CID_TABLE_MIN - 1;
  t->used = 0;
  t->seed = seed;
}

void
cid_table_clear (CidTable *t)
{
  g_free (t->slots);
  memset (t, 0, sizeof *t);
}

/* @k's slot, or the free slot where it would go (the load stays under
 * half, so there always is one) */
static struct CidSlot *
cid_table_find (const CidTable *t, const CidKey *k, guint32 h)
{
  for (guint i = h & t->mask;; i = (i + 1) & t->mask) {
    struct CidSlot *s = &t->slots[i];

    if (s->value == NULL || (s->hash == h && cid_equal (&s->key, k)))
      return s;
  }
}

void
cid_table_prefetch (const CidTable *t, const CidKey *k)
{
  __builtin_prefetch (&t->slots[cid_table_hash (t, k) & t->mask]);
}

gpointer
cid_table_lookup (const CidTable *t, const CidKey *k)
{
  return cid_table_find (t, k, cid_table_hash (t, k))->value;
}

static void
cid_table_grow (CidTable *t)
{
  struct CidSlot *old = t->slots;
  guint n = t->mask + 1;

  t->slots = g_new0 (struct CidSlot, 2 * n);
  t->mask = 2 * n - 1;
  for (guint i = 0; i < n; i++)
    if (old[i].value)
      *cid_table_find (t, &old[i].key, old[i].hash) = old[i];
  g_free (old);
}

/* Adds @k, or points it at @value if it is there. */
void
cid_table_insert (CidTable *t, const CidKey *k, gpointer value)
{
  guint32 h = cid_table_hash (t, k);
  struct CidSlot *s = cid_table_find (t, k, h);

  g_return_if_fail (value != NULL);
  if (s->value == NULL) {
    if (2 * (t->used + 1) > t->mask + 1) {
      cid_table_grow (t);
      s = cid_table_find (t, k, h);
    }
    t->used++;
    s->hash = h;
    s->key = *k;
  }
  s->value = value;
}

/* Linear probing's deletion: the later entries of the run move back into
 * the hole unless their home slot lies after it. */
void
cid_table_remove (CidTable *t, const CidKey *k)
{
  struct CidSlot *s = cid_table_find (t, k, cid_table_hash (t, k));
  guint hole, i;

  if (s->value == NULL)
    return;
  hole = (guint) (s - t->slots);
  for (i = (hole + 1) & t->mask; t->slots[i].value; i = (i + 1) & t->mask) {
    guint home = t->slots[i].hash & t->mask;

    if (((i - home) & t->mask) >= ((i - hole) & t->mask)) {
      t->slots[hole] = t->slots[i];
      hole = i;
    }
  }
  memset (&t->slots[hole], 0, sizeof t->slots[hole]);
  t->used--;
}
