/* gst-wzp: the endpoint's table of connection IDs. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define CID_KEY_MAX 20          /* NGTCP2_MAX_CIDLEN */

typedef struct {
  guint8 len;
  guint8 data[CID_KEY_MAX];
} CidKey;

/* Connection IDs -> values (borrowed): open addressing with linear probing
 * and the keys inline, so a lookup usually touches one cache line where
 * GHashTable touches four (hashes, keys, the key, values). */
typedef struct {
  struct CidSlot *slots;        /* a power of two of them */
  guint mask, used;
  guint32 seed;
} CidTable;

G_GNUC_INTERNAL gboolean cid_equal (gconstpointer a, gconstpointer b);
G_GNUC_INTERNAL void cid_table_init (CidTable *t, guint32 seed);
G_GNUC_INTERNAL void cid_table_clear (CidTable *t);
/* Asks the CPU for the slot where @k is (or would go). */
G_GNUC_INTERNAL void cid_table_prefetch (const CidTable *t, const CidKey *k);
G_GNUC_INTERNAL gpointer cid_table_lookup (const CidTable *t, const CidKey *k);
G_GNUC_INTERNAL void cid_table_insert (CidTable *t, const CidKey *k, gpointer value);
G_GNUC_INTERNAL void cid_table_remove (CidTable *t, const CidKey *k);

G_END_DECLS
