/* The endpoint's CID table against GHashTable as the model: random inserts,
 * replacements, removals and lookups over a small key space, so that runs of
 * colliding slots form and the backward-shift deletion is exercised. */
#include "wzp-cid-table.h"

#include <string.h>

static CidKey
random_key (GRand *r, guint space)
{
  CidKey k = { 0 };
  guint n = (guint) g_rand_int_range (r, 0, (gint32) space);

  /* lengths 8 and 20 (client Initial DCIDs and our own), few distinct keys */
  k.len = n % 2 ? 20 : 8;
  for (guint i = 0; i < k.len; i++)
    k.data[i] = (guint8) (n * 31 + i);
  return k;
}

static void
check_against_model (guint32 seed, guint space, guint ops)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (seed);
  g_autoptr (GHashTable) model = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, NULL);
  GHashTable *keys = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  CidTable t;

  cid_table_init (&t, seed);
  for (guint op = 0; op < ops; op++) {
    CidKey k = random_key (r, space);
    /* the model is keyed by the key's index, which names it uniquely */
    gpointer id = GUINT_TO_POINTER ((guint) k.data[0] + 256u * k.len + 1);
    guint what = (guint) g_rand_int_range (r, 0, 10);

    if (what < 5) {
      gpointer v = GUINT_TO_POINTER ((guint) g_rand_int_range (r, 1, 1000000));
      cid_table_insert (&t, &k, v);
      g_hash_table_insert (model, id, v);
      g_hash_table_insert (keys, id, g_memdup2 (&k, sizeof k));
    } else if (what < 8) {
      cid_table_remove (&t, &k);
      g_hash_table_remove (model, id);
      g_hash_table_remove (keys, id);
    } else {
      g_assert_true (cid_table_lookup (&t, &k) == g_hash_table_lookup (model, id));
    }
    g_assert_cmpuint (t.used, ==, g_hash_table_size (model));
  }
  /* every key the model has, and only those */
  for (guint n = 0; n < space; n++) {
    CidKey k = { 0 };
    gpointer id;

    k.len = n % 2 ? 20 : 8;
    for (guint i = 0; i < k.len; i++)
      k.data[i] = (guint8) (n * 31 + i);
    id = GUINT_TO_POINTER ((guint) k.data[0] + 256u * k.len + 1);
    g_assert_true (cid_table_lookup (&t, &k) == g_hash_table_lookup (model, id));
  }
  cid_table_clear (&t);
  g_hash_table_destroy (keys);
}

static void
test_model (void)
{
  /* 256 distinct keys (the first byte differs): the table grows to 512
   * slots and shrinks back to a few entries many times */
  for (guint32 seed = 1; seed <= 20; seed++)
    check_against_model (seed, 256, 20000);
}

static void
test_lengths_differ (void)
{
  CidTable t;
  CidKey a = { 8, { 1, 2, 3, 4, 5, 6, 7, 8 } }, b = a;
  int x, y;

  b.len = 9;
  cid_table_init (&t, 7);
  cid_table_insert (&t, &a, &x);
  g_assert_null (cid_table_lookup (&t, &b));
  cid_table_insert (&t, &b, &y);
  g_assert_true (cid_table_lookup (&t, &a) == &x);
  g_assert_true (cid_table_lookup (&t, &b) == &y);
  cid_table_remove (&t, &a);
  g_assert_null (cid_table_lookup (&t, &a));
  g_assert_true (cid_table_lookup (&t, &b) == &y);
  g_assert_cmpuint (t.used, ==, 1);
  cid_table_clear (&t);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cid-table/against-ghashtable", test_model);
  g_test_add_func ("/cid-table/lengths-differ", test_lengths_differ);
  return g_test_run ();
}
