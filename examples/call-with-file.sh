#!/bin/sh
# Call FINGERPRINT and send an audio file.   call-with-file.sh RELAY IDENTITY FINGERPRINT FILE
exec gst-launch-1.0 filesrc location="$4" ! decodebin ! audioconvert ! audioresample \
    ! audio/x-raw,rate=48000,channels=1 ! opusenc frame-size=20 \
    ! wzpsink relay="$1" identity="$2" create-identity=true call="$3"
