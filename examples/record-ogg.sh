#!/bin/sh
# Answer calls and record them to Ogg/Opus without re-encoding.
#   record-ogg.sh RELAY IDENTITY OUT.ogg
exec gst-launch-1.0 -e wzpsrc relay="$1" identity="$2" create-identity=true auto-answer=true \
    ! oggmux ! filesink location="$3"
