/* End-to-end media protection (wzp-e2e.c): both directions' keys agree,
 * header and trailer stay readable and are authenticated, any flipped bit is
 * refused, replays and frames older than the window are refused, the index
 * crosses the 16-bit seq wrap, and offers verify in both signature forms. */
#include <string.h>

#include "wzp-e2e.h"
#include "wzp-identity.h"
#include "wzp-wire.h"

static const gchar *call_id = "18a2b3c4d5e6f708";

typedef struct {
  WzpE2e caller, callee;
  guint8 offer_pub[32], answer_pub[32];
} Pair;

static void
pair_init (Pair *p)
{
  guint8 offer_sk[32], answer_sk[32];

  wzp_x25519_keypair_new (offer_sk, p->offer_pub);
  wzp_x25519_keypair_new (answer_sk, p->answer_pub);
  g_assert_true (wzp_e2e_init (&p->caller, TRUE, offer_sk, p->offer_pub, p->answer_pub, call_id));
  g_assert_true (wzp_e2e_init (&p->callee, FALSE, answer_sk, p->offer_pub, p->answer_pub, call_id));
}

/* a datagram: header with @seq, a payload of @n bytes, a trailer when @q */
static gsize
packet (guint16 seq, gsize n, gboolean q, guint8 *out)
{
  WzpMediaHeader h = { .codec = WZP_CODEC_OPUS24K, .seq = seq, .timestamp = seq * 20u };
  WzpQualityReport qr = { 10, 20, 30, 200 };
  guint8 payload[256];

  for (gsize i = 0; i < n; i++)
    payload[i] = (guint8) (i * 7 + seq);
  return wzp_media_packet_write (&h, payload, n, q ? &qr : NULL, out, 512);
}

static void
test_round_trip (void)
{
  Pair p;
  guint8 plain[512], sealed[512], opened[512];
  gsize n, m, o;

  pair_init (&p);
  for (guint16 seq = 0; seq < 200; seq++) {
    gboolean q = seq % 50 == 49;
    WzpMediaPacket a, b;

    n = packet (seq, 60 + seq % 40, q, plain);
    m = wzp_e2e_seal (seq % 2 ? &p.callee : &p.caller, plain, n, sealed);
    g_assert_cmpuint (m, ==, n + WZP_E2E_TAG_SIZE);
    /* relays still read the header and the trailer */
    g_assert_true (wzp_media_packet_parse (sealed, m, &a, NULL));
    g_assert_true (wzp_media_packet_parse (plain, n, &b, NULL));
    g_assert_cmpuint (a.header.seq, ==, seq);
    g_assert_cmpint (a.header.has_quality, ==, q);
    g_assert_cmpmem (&a.quality, sizeof a.quality, &b.quality, sizeof b.quality);
    g_assert_true (memcmp (a.payload, b.payload, b.payload_len) != 0);
    g_assert_cmpint (wzp_e2e_open (seq % 2 ? &p.caller : &p.callee, sealed, m, opened, &o), ==, WZP_E2E_OK);
    g_assert_cmpmem (opened, o, plain, n);
    /* a direction's key does not open the other direction */
    g_assert_cmpint (wzp_e2e_open (seq % 2 ? &p.callee : &p.caller, sealed, m, opened, &o), ==,
                     WZP_E2E_AUTH_FAILED);
  }
}

static void
test_tamper (void)
{
  Pair p;
  guint8 plain[512], sealed[512], bad[512], opened[512];
  gsize n, m, o;

  pair_init (&p);
  n = packet (7, 80, TRUE, plain);
  m = wzp_e2e_seal (&p.caller, plain, n, sealed);
  /* every bit of the datagram (header, payload, tag, trailer): refused */
  for (gsize bit = 0; bit < m * 8; bit++) {
    WzpE2eResult r;

    memcpy (bad, sealed, m);
    bad[bit / 8] ^= (guint8) (1u << (bit % 8));
    r = wzp_e2e_open (&p.callee, bad, m, opened, &o);
    g_assert_cmpint (r, !=, WZP_E2E_OK);
  }
  /* the untouched one still opens (the failures moved nothing), once */
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed, m, opened, &o), ==, WZP_E2E_OK);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed, m, opened, &o), ==, WZP_E2E_REPLAY);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed, 20, opened, &o), ==, WZP_E2E_MALFORMED);
}

static void
test_window (void)
{
  Pair p;
  guint8 plain[512], opened[512];
  static guint8 sealed[400][512];
  gsize len[400], n, o;

  pair_init (&p);
  for (guint i = 0; i < 400; i++) {
    n = packet ((guint16) i, 40, FALSE, plain);
    len[i] = wzp_e2e_seal (&p.caller, plain, n, sealed[i]);
  }
  /* 300 first, then 299..200 (late but in the window), then 100 (too old) */
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[300], len[300], opened, &o), ==, WZP_E2E_OK);
  for (gint i = 299; i > 300 - WZP_E2E_REPLAY_WINDOW; i--)
    g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[i], len[i], opened, &o), ==, WZP_E2E_OK);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[250], len[250], opened, &o), ==, WZP_E2E_REPLAY);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[100], len[100], opened, &o), ==, WZP_E2E_REPLAY);
  /* a jump ahead by more than the window clears it */
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[399], len[399], opened, &o), ==, WZP_E2E_OK);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[301], len[301], opened, &o), ==, WZP_E2E_OK);
  g_assert_cmpint (wzp_e2e_open (&p.callee, sealed[301], len[301], opened, &o), ==, WZP_E2E_REPLAY);
}

/* 70,000 frames: the 16-bit seq wraps, the index (and so the nonce) does not */
static void
test_wrap (void)
{
  Pair p;
  guint8 plain[512], sealed[512], opened[512];
  gsize n, m, o;

  pair_init (&p);
  for (guint i = 0; i < 70000; i++) {
    n = packet ((guint16) i, 20, FALSE, plain);
    m = wzp_e2e_seal (&p.caller, plain, n, sealed);
    g_assert_cmpint (wzp_e2e_open (&p.callee, sealed, m, opened, &o), ==, WZP_E2E_OK);
  }
  g_assert_cmpuint (p.caller.tx_next, ==, 70000);
  g_assert_cmpuint (p.callee.rx_top, ==, 69999);
  g_assert_cmpuint (wzp_e2e_extend_index (65535, 2), ==, 65538);
  g_assert_cmpuint (wzp_e2e_extend_index (65538, 65535), ==, 65535);
  g_assert_cmpuint (wzp_e2e_extend_index (10, 65530), ==, 65530);
}

static void
test_offer_forms (void)
{
  g_autoptr (WzpIdentity) id = wzp_identity_new_random ();
  guint8 eph[32] = { 1, 2, 3 }, sig[64];
  const gchar *target = "9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c";
  gboolean e2e = FALSE;

  for (gint form = 0; form <= 1; form++) {
    g_autoptr (GByteArray) b = wzp_e2e_offer_bytes (form, eph, target, call_id);
    wzp_identity_sign (id, b->data, b->len, sig);
    g_assert_true (wzp_e2e_verify_offer (wzp_identity_get_public_key (id), eph, target, call_id, sig, 64, &e2e));
    g_assert_cmpint (e2e, ==, form);
    /* another call id: neither form verifies */
    g_assert_false (wzp_e2e_verify_offer (wzp_identity_get_public_key (id), eph, target, "x", sig, 64, &e2e));
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/e2e/round-trip", test_round_trip);
  g_test_add_func ("/e2e/tamper", test_tamper);
  g_test_add_func ("/e2e/window", test_window);
  g_test_add_func ("/e2e/wrap", test_wrap);
  g_test_add_func ("/e2e/offer-forms", test_offer_forms);
  return g_test_run ();
}
