/* wzp-wire: the media plane's byte formats (protocol §3) and room hashes (§1.6).
 *
 * Pure encode/decode: no allocation, no I/O. Decoding never reads past the
 * input; short or invalid input is an error.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define WZP_MEDIA_HEADER_SIZE 12
#define WZP_QUALITY_REPORT_SIZE 4
#define WZP_ROOM_HASH_SIZE 8
/* hash_room_name(): 32 lowercase hex characters plus NUL. */
#define WZP_ROOM_NAME_HASH_LEN 33

#define WZP_WIRE_ERROR (wzp_wire_error_quark ())
GQuark wzp_wire_error_quark (void);

typedef enum {
  WZP_WIRE_ERROR_TRUNCATED,     /* input shorter than the format needs */
  WZP_WIRE_ERROR_INVALID_CODEC, /* codec nibble 9-15 */
  WZP_WIRE_ERROR_INVALID,       /* anything else malformed */
} WzpWireError;

/* CodecId (protocol §2.3/§3.4): the 4-bit wire value. */
typedef enum {
  WZP_CODEC_OPUS24K = 0,
  WZP_CODEC_OPUS16K = 1,
  WZP_CODEC_OPUS6K = 2,
  WZP_CODEC_CODEC2_3200 = 3,
  WZP_CODEC_CODEC2_1200 = 4,
  WZP_CODEC_COMFORT_NOISE = 5,
  WZP_CODEC_OPUS32K = 6,
  WZP_CODEC_OPUS48K = 7,
  WZP_CODEC_OPUS64K = 8,
} WzpCodecId;

#define WZP_CODEC_COUNT 9

const gchar *wzp_codec_id_to_string (WzpCodecId codec);
gboolean wzp_codec_id_from_string (const gchar *name, WzpCodecId *codec);
/* Nominal frame duration in ms (20 or 40); 0 for an invalid id. */
guint wzp_codec_id_frame_ms (WzpCodecId codec);
gboolean wzp_codec_id_is_opus (WzpCodecId codec);
/* Duration of one Opus packet in µs from its TOC byte (RFC 6716 §3.1):
 * frame size × frame count; 0 when the packet is empty or malformed. */
guint wzp_opus_packet_duration_us (const guint8 *packet, gsize len);
/* The CodecId a sender without a profile of its own uses for an Opus packet
 * of @duration_us: Opus6k for 40 ms, Opus24k for 20 ms (§3.4). */
WzpCodecId wzp_codec_id_for_opus_duration (guint duration_us);

typedef struct {
  guint8 version;        /* V: 1 bit, 0 for this protocol */
  gboolean repair;       /* R: FEC repair packet */
  WzpCodecId codec;
  gboolean has_quality;  /* Q: a QualityReport trailer ends the datagram */
  guint8 fec_ratio;      /* 7-bit encoded ratio, see wzp_fec_ratio_encode() */
  guint16 seq;
  guint32 timestamp;     /* media clock, ms */
  guint8 fec_block;
  guint8 fec_symbol;
  guint8 reserved;
  guint8 csrc_count;
} WzpMediaHeader;

typedef struct {
  guint8 loss_pct;          /* loss scaled to 0-255 */
  guint8 rtt_4ms;           /* RTT in 4 ms units */
  guint8 jitter_ms;
  guint8 bitrate_cap_kbps;
} WzpQualityReport;

/* A parsed datagram. payload points into the caller's buffer. */
typedef struct {
  WzpMediaHeader header;
  const guint8 *payload;
  gsize payload_len;
  WzpQualityReport quality; /* valid when header.has_quality */
} WzpMediaPacket;

guint8 wzp_fec_ratio_encode (double ratio);
double wzp_fec_ratio_decode (guint8 value);

/**
 * wzp_quality_report_from_stats: (skip)
 *
 * Builds a trailer from measured figures (§3.3); bitrate cap is 200.
 */
WzpQualityReport wzp_quality_report_from_stats (double loss_percent,
                                                guint rtt_ms,
                                                guint jitter_ms);
double wzp_quality_report_loss_percent (const WzpQualityReport *qr);
guint wzp_quality_report_rtt_ms (const WzpQualityReport *qr);

void wzp_media_header_write (const WzpMediaHeader *header,
                             guint8 out[WZP_MEDIA_HEADER_SIZE]);
gboolean wzp_media_header_read (const guint8 *data,
                                gsize len,
                                WzpMediaHeader *header,
                                GError **error);

/* Size of a datagram with this payload, with or without a trailer. */
gsize wzp_media_packet_size (gsize payload_len, gboolean with_quality);

/* Writes header + payload (+ trailer when @quality is not NULL; the Q bit
 * is set from that, whatever header->has_quality says). Returns the number
 * of bytes written, or 0 when @out_size is too small. */
gsize wzp_media_packet_write (const WzpMediaHeader *header,
                              const guint8 *payload,
                              gsize payload_len,
                              const WzpQualityReport *quality,
                              guint8 *out,
                              gsize out_size);
gboolean wzp_media_packet_parse (const guint8 *data,
                                 gsize len,
                                 WzpMediaPacket *packet,
                                 GError **error);

/* §1.6: lowercase hex of SHA-256("featherchat-group:" || name)[0..16]. */
void wzp_hash_room_name (const gchar *name, gchar out[WZP_ROOM_NAME_HASH_LEN]);
/* §3.9: SHA-256(name)[0..8], the federation room tag. */
void wzp_room_hash (const gchar *name, guint8 out[WZP_ROOM_HASH_SIZE]);

G_END_DECLS
