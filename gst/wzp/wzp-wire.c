/* wzp-wire: media header, quality trailer, room hashes (protocol §3, §1.6). */
#include "wzp-wire.h"

#include <math.h>
#include <string.h>

G_DEFINE_QUARK (wzp-wire-error-quark, wzp_wire_error)

static const gchar *const codec_names[WZP_CODEC_COUNT] = {
  "Opus24k", "Opus16k", "Opus6k", "Codec2_3200", "Codec2_1200",
  "ComfortNoise", "Opus32k", "Opus48k", "Opus64k",
};

static const guint8 codec_frame_ms[WZP_CODEC_COUNT] = {
  20, 20, 40, 20, 40, 20, 20, 20, 20,
};

const gchar *
wzp_codec_id_to_string (WzpCodecId codec)
{
  if ((guint) codec >= WZP_CODEC_COUNT)
    return NULL;
  return codec_names[codec];
}

gboolean
wzp_codec_id_from_string (const gchar *name, WzpCodecId *codec)
{
  for (guint i = 0; name && i < WZP_CODEC_COUNT; i++) {
    if (strcmp (name, codec_names[i]) == 0) {
      *codec = (WzpCodecId) i;
      return TRUE;
    }
  }
  return FALSE;
}

guint
wzp_codec_id_frame_ms (WzpCodecId codec)
{
  return (guint) codec < WZP_CODEC_COUNT ? codec_frame_ms[codec] : 0;
}

guint
wzp_opus_packet_duration_us (const guint8 *packet, gsize len)
{
  /* frame sizes in µs per TOC config: SILK 0-11, hybrid 12-15, CELT 16-31 */
  static const guint silk[4] = { 10000, 20000, 40000, 60000 };
  static const guint celt[4] = { 2500, 5000, 10000, 20000 };
  guint config, frame, count;

  if (packet == NULL || len == 0)
    return 0;
  config = packet[0] >> 3;
  if (config < 12)
    frame = silk[config & 3];
  else if (config < 16)
    frame = (config & 1) ? 20000 : 10000;
  else
    frame = celt[config & 3];
  switch (packet[0] & 3) {
    case 0: count = 1; break;
    case 1:
    case 2: count = 2; break;
    default:
      if (len < 2)
        return 0;
      count = packet[1] & 0x3f;
      break;
  }
  /* a packet holds at most 120 ms (RFC 6716 §3.2.5) */
  if (count == 0 || frame * count > 120000)
    return 0;
  return frame * count;
}

WzpCodecId
wzp_codec_id_for_opus_duration (guint duration_us)
{
  return duration_us == 40000 ? WZP_CODEC_OPUS6K : WZP_CODEC_OPUS24K;
}

gboolean
wzp_codec_id_is_opus (WzpCodecId codec)
{
  switch (codec) {
    case WZP_CODEC_OPUS24K:
    case WZP_CODEC_OPUS16K:
    case WZP_CODEC_OPUS6K:
    case WZP_CODEC_OPUS32K:
    case WZP_CODEC_OPUS48K:
    case WZP_CODEC_OPUS64K:
      return TRUE;
    default:
      return FALSE;
  }
}

guint8
wzp_fec_ratio_encode (double ratio)
{
  /* round() is half-away-from-zero, as the protocol asks. */
  double v = round (ratio * 63.5);

  if (!(v > 0))                 /* also catches NaN */
    return 0;
  return v >= 127 ? 127 : (guint8) v;
}

double
wzp_fec_ratio_decode (guint8 value)
{
  return (value & 0x7f) / 63.5;
}

WzpQualityReport
wzp_quality_report_from_stats (double loss_percent, guint rtt_ms, guint jitter_ms)
{
  WzpQualityReport qr;
  double loss = loss_percent / 100.0 * 255.0;

  if (!(loss > 0))
    loss = 0;
  qr.loss_pct = loss >= 255 ? 255 : (guint8) loss;
  qr.rtt_4ms = MIN (rtt_ms / 4, 255);
  qr.jitter_ms = MIN (jitter_ms, 255);
  qr.bitrate_cap_kbps = 200;
  return qr;
}

double
wzp_quality_report_loss_percent (const WzpQualityReport *qr)
{
  return qr->loss_pct / 255.0 * 100.0;
}

guint
wzp_quality_report_rtt_ms (const WzpQualityReport *qr)
{
  return qr->rtt_4ms * 4u;
}

void
wzp_media_header_write (const WzpMediaHeader *h, guint8 out[WZP_MEDIA_HEADER_SIZE])
{
  guint8 fec = h->fec_ratio & 0x7f;

  out[0] = (guint8) (((h->version & 1) << 7) | ((h->repair ? 1 : 0) << 6) |
                     ((h->codec & 0x0f) << 2) | ((h->has_quality ? 1 : 0) << 1) |
                     (fec >> 6));
  out[1] = (guint8) ((fec & 0x3f) << 2);
  out[2] = (guint8) (h->seq >> 8);
  out[3] = (guint8) h->seq;
  out[4] = (guint8) (h->timestamp >> 24);
  out[5] = (guint8) (h->timestamp >> 16);
  out[6] = (guint8) (h->timestamp >> 8);
  out[7] = (guint8) h->timestamp;
  out[8] = h->fec_block;
  out[9] = h->fec_symbol;
  out[10] = h->reserved;
  out[11] = h->csrc_count;
}

gboolean
wzp_media_header_read (const guint8 *d, gsize len, WzpMediaHeader *h, GError **error)
{
  guint codec;

  if (d == NULL || len < WZP_MEDIA_HEADER_SIZE) {
    g_set_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_TRUNCATED,
                 "media packet of %" G_GSIZE_FORMAT " bytes is shorter than the "
                 "12-byte header", d ? len : 0);
    return FALSE;
  }
  codec = (d[0] >> 2) & 0x0f;
  if (codec >= WZP_CODEC_COUNT) {
    g_set_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_INVALID_CODEC,
                 "media packet has invalid codec id %u", codec);
    return FALSE;
  }
  h->version = d[0] >> 7;
  h->repair = (d[0] >> 6) & 1;
  h->codec = (WzpCodecId) codec;
  h->has_quality = (d[0] >> 1) & 1;
  h->fec_ratio = (guint8) (((d[0] & 1) << 6) | (d[1] >> 2));
  h->seq = (guint16) ((d[2] << 8) | d[3]);
  h->timestamp = ((guint32) d[4] << 24) | ((guint32) d[5] << 16) |
      ((guint32) d[6] << 8) | d[7];
  h->fec_block = d[8];
  h->fec_symbol = d[9];
  h->reserved = d[10];
  h->csrc_count = d[11];
  return TRUE;
}

gsize
wzp_media_packet_size (gsize payload_len, gboolean with_quality)
{
  return WZP_MEDIA_HEADER_SIZE + payload_len +
      (with_quality ? WZP_QUALITY_REPORT_SIZE : 0);
}

gsize
wzp_media_packet_write (const WzpMediaHeader *header, const guint8 *payload,
                        gsize payload_len, const WzpQualityReport *quality,
                        guint8 *out, gsize out_size)
{
  WzpMediaHeader h = *header;
  gsize total;

  if (payload_len > G_MAXSIZE - WZP_MEDIA_HEADER_SIZE - WZP_QUALITY_REPORT_SIZE)
    return 0;
  total = wzp_media_packet_size (payload_len, quality != NULL);
  if (out_size < total)
    return 0;
  h.has_quality = quality != NULL;
  wzp_media_header_write (&h, out);
  if (payload_len)
    memcpy (out + WZP_MEDIA_HEADER_SIZE, payload, payload_len);
  if (quality) {
    guint8 *t = out + WZP_MEDIA_HEADER_SIZE + payload_len;
    t[0] = quality->loss_pct;
    t[1] = quality->rtt_4ms;
    t[2] = quality->jitter_ms;
    t[3] = quality->bitrate_cap_kbps;
  }
  return total;
}

gboolean
wzp_media_packet_parse (const guint8 *data, gsize len, WzpMediaPacket *p, GError **error)
{
  gsize end;

  if (!wzp_media_header_read (data, len, &p->header, error))
    return FALSE;
  end = len;
  if (p->header.has_quality) {
    const guint8 *t;

    if (len < WZP_MEDIA_HEADER_SIZE + WZP_QUALITY_REPORT_SIZE) {
      g_set_error (error, WZP_WIRE_ERROR, WZP_WIRE_ERROR_TRUNCATED,
                   "media packet flags a quality report but has only %"
                   G_GSIZE_FORMAT " bytes after the header",
                   len - WZP_MEDIA_HEADER_SIZE);
      return FALSE;
    }
    end = len - WZP_QUALITY_REPORT_SIZE;
    t = data + end;
    p->quality.loss_pct = t[0];
    p->quality.rtt_4ms = t[1];
    p->quality.jitter_ms = t[2];
    p->quality.bitrate_cap_kbps = t[3];
  } else {
    memset (&p->quality, 0, sizeof p->quality);
  }
  p->payload = data + WZP_MEDIA_HEADER_SIZE;
  p->payload_len = end - WZP_MEDIA_HEADER_SIZE;
  return TRUE;
}

static void
sha256_parts (const gchar *prefix, const gchar *name, guint8 digest[32])
{
  g_autoptr (GChecksum) sum = g_checksum_new (G_CHECKSUM_SHA256);
  gsize dlen = 32;

  if (prefix)
    g_checksum_update (sum, (const guchar *) prefix, (gssize) strlen (prefix));
  g_checksum_update (sum, (const guchar *) name, (gssize) strlen (name));
  g_checksum_get_digest (sum, digest, &dlen);
}

void
wzp_hash_room_name (const gchar *name, gchar out[WZP_ROOM_NAME_HASH_LEN])
{
  static const gchar hex[] = "0123456789abcdef";
  guint8 digest[32];

  sha256_parts ("featherchat-group:", name ? name : "", digest);
  for (guint i = 0; i < 16; i++) {
    out[2 * i] = hex[digest[i] >> 4];
    out[2 * i + 1] = hex[digest[i] & 0xf];
  }
  out[32] = '\0';
}

void
wzp_room_hash (const gchar *name, guint8 out[WZP_ROOM_HASH_SIZE])
{
  guint8 digest[32];

  sha256_parts (NULL, name ? name : "", digest);
  memcpy (out, digest, WZP_ROOM_HASH_SIZE);
}
