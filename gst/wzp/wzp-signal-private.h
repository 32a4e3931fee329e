/* The field tables behind wzp-signal: one row per JSON field, in emission
 * order. Shared with the tests (random values, fuzzing); not installed. */
#pragma once

#include "wzp-signal.h"

G_BEGIN_DECLS

typedef enum {
  WZP_FK_STR,          /* gchar* */
  WZP_FK_U64,          /* guint64 */
  WZP_FK_U32,          /* guint32 */
  WZP_FK_U8,           /* guint8 */
  WZP_FK_BOOL,         /* gboolean */
  WZP_FK_KEY,          /* guint8[32] */
  WZP_FK_KEY_OPT,      /* guint8* (NULL or 32 bytes) */
  WZP_FK_BYTES,        /* GBytes* */
  WZP_FK_ACCEPT_MODE,  /* WzpCallAcceptMode */
  WZP_FK_HANGUP_REASON,/* WzpHangupReason */
  WZP_FK_PROFILE,      /* WzpQualityProfile */
  WZP_FK_PROFILE_OPT,  /* WzpQualityProfile* */
  WZP_FK_PROFILES,     /* GArray of WzpQualityProfile */
  WZP_FK_STRS,         /* GPtrArray of gchar* */
  WZP_FK_PARTICIPANTS, /* GPtrArray of WzpRoomParticipant* */
  WZP_FK_REPORT,       /* WzpQualityReport */
  WZP_FK_SIGNAL,       /* WzpSignal* */
} WzpFieldKind;

typedef enum {
  WZP_FF_REQUIRED,       /* R: always emitted; missing on input is an error */
  WZP_FF_NULLABLE,       /* N: emitted as null when absent */
  WZP_FF_OPTIONAL,       /* O: omitted when absent */
  WZP_FF_OPTIONAL_EMPTY, /* O(empty): list omitted when empty */
  WZP_FF_DEFAULT,        /* always emitted; missing on input = default */
} WzpFieldFlavour;

typedef struct {
  const gchar *name;
  guint8 kind;
  guint8 flavour;
  guint16 offset;        /* from the start of WzpSignal */
} WzpFieldDesc;

typedef struct {
  const gchar *name;
  const WzpFieldDesc *fields; /* NULL for a unit variant ("Reflect") */
  guint n_fields;
} WzpVariantDesc;

const WzpVariantDesc *wzp_signal_variant_desc (WzpSignalType type);

/* Empty lists with the right free functions. */
GPtrArray *wzp_signal_new_str_list (void);
GPtrArray *wzp_signal_new_participant_list (void);
GArray *wzp_signal_new_profile_list (void);

#define WZP_FIELD_PTR(msg, fd) ((gpointer) ((guint8 *) (msg) + (fd)->offset))

G_END_DECLS
