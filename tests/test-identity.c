/* wzp-identity: §4.8 vectors, signatures, seed files. */
#include <string.h>
#include <sys/stat.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "wzp-identity.h"
#include "wzp-util.h"

static void
assert_hex (const guint8 *data, gsize len, const gchar *want)
{
  g_autofree gchar *got = wzp_hex_encode (data, len);
  g_assert_cmpstr (got, ==, want);
}

static void
fill (guint8 *b, gsize n, guint8 v)
{
  memset (b, v, n);
}

static void
test_seed_a (void)
{
  guint8 seed[32], sk[32], x_sk[32], tls[32];
  g_autoptr (WzpIdentity) id = NULL;

  fill (seed, 32, 0x2a);
  id = wzp_identity_new_from_seed (seed);
  g_assert_true (wzp_hkdf_sha256 (NULL, 0, seed, 32, "warzone-ed25519", sk, 32));
  assert_hex (sk, 32, "22918c83ff58f09b4b0539d6fddb7ca22fad958d7a0e64e194179032ffd336a6");
  assert_hex (wzp_identity_get_public_key (id), 32,
              "d335301856dc5f763fb71fbec9728840d3feb078855e184dce5b0769fcda04bc");
  assert_hex (wzp_identity_get_fingerprint_bytes (id), 16, "9983c2ce87f961b77931d7c1fd7f864c");
  g_assert_cmpstr (wzp_identity_get_fingerprint (id), ==, "9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c");
  g_assert_true (wzp_hkdf_sha256 (NULL, 0, seed, 32, "warzone-x25519", x_sk, 32));
  assert_hex (x_sk, 32, "397617cfae1e3eaf596b5b0c7d967b50f35a31b9dc3bee359107abf9e27ab2e8");
  assert_hex (wzp_identity_get_x25519_secret_key (id), 32,
              "397617cfae1e3eaf596b5b0c7d967b50f35a31b9dc3bee359107abf9e27ab2e8");
  assert_hex (wzp_identity_get_x25519_public_key (id), 32,
              "450ec91af98d8d4a92c4df7123d1ef8addf6de185623135b015398652e7fa73d");
  g_assert_true (wzp_hkdf_sha256 (NULL, 0, seed, 32, "wzp-tls-ed25519", tls, 32));
  assert_hex (tls, 32, "d811dbe6f1a767f3133a7200e8b4e6189280dfea0ae4741449785dccde9250e3");
  assert_hex (wzp_identity_get_tls_secret_key (id), 32,
              "d811dbe6f1a767f3133a7200e8b4e6189280dfea0ae4741449785dccde9250e3");
  assert_hex (wzp_identity_get_tls_public_key (id), 32,
              "3dbb0da5cb00fa2fb6360a38a767dc04e7a8c8aef85295a5caa7766fc3176048");
  g_assert_true (wzp_fingerprint_is_valid (wzp_identity_get_fingerprint (id)));
}

static void
test_seed_b (void)
{
  guint8 seed[32];
  g_autoptr (WzpIdentity) id = NULL;

  for (guint i = 0; i < 32; i++)
    seed[i] = (guint8) i;
  id = wzp_identity_new_from_seed (seed);
  assert_hex (wzp_identity_get_public_key (id), 32,
              "46705b2fa5f2e0d9917cd934f76c4442f8d8908c2dae9259922c0c52c106183d");
  g_assert_cmpstr (wzp_identity_get_fingerprint (id), ==, "6871:1211:0e91:ecb3:09f6:6f51:d257:ccaa");
  assert_hex (wzp_identity_get_x25519_public_key (id), 32,
              "70ea094727e0b015acb996e4264e7483b178f6a8614f73d5b83aeecf89bd011f");
  assert_hex (wzp_identity_get_tls_public_key (id), 32,
              "a5bf5c906f42a1f9665857d57530e9bbed1bef016d2864a91f001287bd6c5dda");
}

static void
test_signatures (void)
{
  guint8 seed[32], eph[32], e11[32], sig[64];
  g_autoptr (WzpIdentity) id = NULL;
  const guint8 *pub;

  fill (seed, 32, 0x2a);
  id = wzp_identity_new_from_seed (seed);
  pub = wzp_identity_get_public_key (id);
  g_assert_true (wzp_hex_decode_exact ("7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13",
                                       eph, 32));
  wzp_sign_call_offer (id, eph, sig);
  assert_hex (sig, 64, "8481a21617221228dbf0c810e2f0d314d279d0449a9f957a0fca974d6eb6c93a"
              "65e26a0582c97eb0011e4b74542003b49480b8beb7a8c4fbf83bd69f16e7d001");
  g_assert_true (wzp_verify_call_offer (pub, eph, sig, 64));
  g_assert_false (wzp_verify_call_answer (pub, eph, sig, 64));
  g_assert_false (wzp_verify_call_offer (pub, eph, sig, 63));
  g_assert_false (wzp_verify_call_offer (pub, eph, NULL, 0));
  sig[10] ^= 1;
  g_assert_false (wzp_verify_call_offer (pub, eph, sig, 64));

  fill (e11, 32, 0x11);
  wzp_sign_call_offer (id, e11, sig);
  assert_hex (sig, 64, "108624bdc021e85610c05cfeae140321b11b9f2a0f62e98666e345435e07bc47"
              "38060bd64d2de46e793ebbf1ef91f3d1f7408b7e8ba5c502cf1bd3114ce6100f");
  wzp_sign_call_answer (id, e11, sig);
  assert_hex (sig, 64, "2a144d7b9a0816352b58b7f7da45fcd8cdcd27401c1368f2526d0132b70769c3"
              "d269cc25e5fdef37a998771cd28accb064fe5e4de8d0e6bf6abd52c71ade4b0b");
  g_assert_true (wzp_verify_call_answer (pub, e11, sig, 64));
}

static void
test_hashes (void)
{
  guint8 zero[32] = { 0 };
  gchar fp[WZP_FINGERPRINT_STRLEN], tls[WZP_TLS_FINGERPRINT_STRLEN];

  wzp_fingerprint_string (zero, fp);
  g_assert_cmpstr (fp, ==, "6668:7aad:f862:bd77:6c8f:c18b:8e9f:8e20");
  wzp_tls_fingerprint ((const guint8 *) "abc", 3, tls);
  g_assert_cmpstr (tls, ==, "ba:78:16:bf:8f:01:cf:ea:41:41:40:de:5d:ae:22:23:b0:03:61:a3:96:17:7a:9c:"
                   "b4:10:ff:61:f2:00:15:ad");
  g_assert_cmpuint (strlen (tls), ==, 95);
  g_assert_true (wzp_tls_fingerprint_equal (tls, "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9C"
                                            "B410FF61F20015AD"));
  g_assert_false (wzp_tls_fingerprint_equal (tls, "ba:78"));
  g_assert_false (wzp_fingerprint_is_valid ("9983:C2CE:87f9:61b7:7931:d7c1:fd7f:864c"));
  g_assert_false (wzp_fingerprint_is_valid ("9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864"));
  g_assert_false (wzp_fingerprint_is_valid ("9983-c2ce:87f9:61b7:7931:d7c1:fd7f:864c"));
}

static void
test_session (void)
{
  guint8 a[32], b[32], pa[32], pb[32], key[32], key2[32], sid[4], nonce[12], sealed[5 + 16];
  guint sas = 0, sas2 = 0;
  static const guint8 header_a[12] = { 0, 0, 0, 1, 0, 0, 0, 0x14, 0, 0, 0, 0 };

  fill (a, 32, 0x11);
  fill (b, 32, 0x22);
  wzp_x25519_public_key (a, pa);
  wzp_x25519_public_key (b, pb);
  assert_hex (pa, 32, "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13");
  assert_hex (pb, 32, "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20");
  g_assert_true (wzp_session_derive (a, pb, key, &sas));
  g_assert_true (wzp_session_derive (b, pa, key2, &sas2));
  assert_hex (key, 32, "b2fa5213ed350d8e9847b7e25dd3a79107a4ab6aa753832e3d00bb6660fcf666");
  g_assert_cmpmem (key, 32, key2, 32);
  g_assert_cmpuint (sas, ==, 4812);
  g_assert_cmpuint (sas2, ==, 4812);
  wzp_legacy_session_id (key, sid);
  assert_hex (sid, 4, "20dda32a");
  wzp_legacy_nonce (sid, 0, 0, nonce);
  assert_hex (nonce, 12, "20dda32a0000000000000000");
  wzp_legacy_seal (key, nonce, header_a, sizeof header_a, (const guint8 *) "hello", 5, sealed);
  assert_hex (sealed, 5, "2a99c98b8a");
  assert_hex (sealed + 5, 16, "3fad73d6771f2d952b43721cc096aad0");
  /* an all-zero (low-order) peer key is refused */
  memset (pb, 0, 32);
  g_assert_false (wzp_session_derive (a, pb, key, &sas));
}

static void
test_seed_files (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("wzp-identity-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "seed", NULL);
  g_autofree gchar *bad = g_build_filename (dir, "bad", NULL);
  g_autofree gchar *text = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (WzpIdentity) a = NULL, b = NULL, c = NULL;
  gboolean created = FALSE;
  GStatBuf st;

  a = wzp_identity_load_or_create (path, &created, &error);
  g_assert_no_error (error);
  g_assert_true (created);
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, 0600);
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_cmpuint (strlen (text), ==, 65);
  b = wzp_identity_load_or_create (path, &created, &error);
  g_assert_no_error (error);
  g_assert_false (created);
  g_assert_cmpstr (wzp_identity_get_fingerprint (a), ==, wzp_identity_get_fingerprint (b));
  /* never overwritten */
  g_assert_false (wzp_identity_save (b, path, &error));
  g_assert_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_EXISTS);
  g_clear_error (&error);

  /* whitespace around the hex is fine, uppercase too */
  g_assert_true (g_file_set_contents (bad, "  2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A \n\n", -1, NULL));
  c = wzp_identity_load (bad, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (wzp_identity_get_fingerprint (c), ==, "9983:c2ce:87f9:61b7:7931:d7c1:fd7f:864c");

  /* malformed files: a clear error, and load_or_create leaves them alone */
  {
    const gchar *const bad_texts[] = { "", "2a2a", "zz2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a",
      "2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a" };
    for (guint i = 0; i < G_N_ELEMENTS (bad_texts); i++) {
      g_autofree gchar *after = NULL;
      g_assert_true (g_file_set_contents (bad, bad_texts[i], -1, NULL));
      g_assert_null (wzp_identity_load_or_create (bad, &created, &error));
      g_assert_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_INVALID_SEED);
      g_assert_nonnull (strstr (error->message, bad));
      g_clear_error (&error);
      g_assert_true (g_file_get_contents (bad, &after, NULL, NULL));
      g_assert_cmpstr (after, ==, bad_texts[i]);
    }
  }
  /* a binary file with a NUL */
  g_assert_true (g_file_set_contents (bad, "2a\0002a", 5, NULL));
  g_assert_null (wzp_identity_load (bad, &error));
  g_assert_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_INVALID_SEED);
  g_clear_error (&error);
  /* unreadable: a directory */
  g_assert_null (wzp_identity_load (dir, &error));
  g_assert_error (error, WZP_IDENTITY_ERROR, WZP_IDENTITY_ERROR_IO);
  g_clear_error (&error);

  g_unlink (path);
  g_unlink (bad);
  g_rmdir (dir);
}

static void
test_random_identity (void)
{
  g_autoptr (WzpIdentity) a = wzp_identity_new_random ();
  g_autoptr (WzpIdentity) b = wzp_identity_new_random ();
  guint8 sig[64];

  g_assert_cmpstr (wzp_identity_get_fingerprint (a), !=, wzp_identity_get_fingerprint (b));
  wzp_identity_sign (a, (const guint8 *) "x", 1, sig);
  g_assert_true (wzp_ed25519_verify (wzp_identity_get_public_key (a), (const guint8 *) "x", 1, sig, 64));
  g_assert_false (wzp_ed25519_verify (wzp_identity_get_public_key (b), (const guint8 *) "x", 1, sig, 64));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/identity/seed-a", test_seed_a);
  g_test_add_func ("/identity/seed-b", test_seed_b);
  g_test_add_func ("/identity/signatures", test_signatures);
  g_test_add_func ("/identity/hashes", test_hashes);
  g_test_add_func ("/identity/session", test_session);
  g_test_add_func ("/identity/seed-files", test_seed_files);
  g_test_add_func ("/identity/random", test_random_identity);
  return g_test_run ();
}
