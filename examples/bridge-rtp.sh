#!/bin/sh
# Bridge a call to plain RTP/UDP and back: the caller's audio goes out as
# RTP/Opus to OUT_PORT on 127.0.0.1, and RTP/Opus arriving on IN_PORT goes
# into the call.   bridge-rtp.sh RELAY IDENTITY OUT_PORT IN_PORT
# Both elements share session "bridge"; its settings may sit on either.
exec gst-launch-1.0 -e \
    wzpsrc session=bridge relay="$1" identity="$2" create-identity=true auto-answer=true \
        ! rtpopuspay ! udpsink host=127.0.0.1 port="$3" \
    udpsrc port="$4" caps="application/x-rtp,media=audio,encoding-name=OPUS,clock-rate=48000,payload=96" \
        ! rtpjitterbuffer latency=40 ! rtpopusdepay ! wzpsink session=bridge
