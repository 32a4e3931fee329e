#!/bin/sh
# Answer any call and play it.   answer-and-play.sh RELAY IDENTITY
# (IDENTITY: a seed file, made on first use)
exec gst-launch-1.0 wzpsrc relay="$1" identity="$2" create-identity=true auto-answer=true \
    ! opusdec plc=true ! audioconvert ! audioresample ! autoaudiosink
