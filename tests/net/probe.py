#!/usr/bin/python3
"""UDP probes through the lab's WAN emulator: one-way delay, loss, bursts,
reordering, duplicates. Both ends run on one host (two namespaces), so one
clock times both: the sender stamps each probe with CLOCK_REALTIME, and the
kernel stamps its arrival on the same clock (SO_TIMESTAMPNS), so the
receiver's own scheduling does not count.

  probe.py send ADDR PORT COUNT INTERVAL_MS     (in the sender's namespace)
  probe.py recv PORT COUNT SECONDS OUT.json     (in the receiver's)
"""
import json, socket, struct, sys, time

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # Linux

def send(addr, port, count, interval_ms):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t0 = time.monotonic()
    for i in range(count):
        while time.monotonic() < t0 + i * interval_ms / 1000:
            time.sleep(0.0002)
        s.sendto(struct.pack("!Id", i, time.time()) + b"x" * 92, (addr, port))

def recv(port, count, seconds, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.settimeout(0.5)
    got, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            d, anc, _, _ = s.recvmsg(2048, 64)
        except socket.timeout:
            continue
        now = time.time()
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, ns = struct.unpack("qq", data[:16])
                now = sec + ns / 1e9
        seq, sent = struct.unpack("!Id", d[:12])
        got.append((seq, (now - sent) * 1000.0))
    seqs = [g[0] for g in got]
    uniq = sorted(set(seqs))
    lost = [i for i in range(count) if i not in set(uniq)]
    bursts, run = [], 0
    for i in range(count):
        if i in set(lost):
            run += 1
        elif run:
            bursts.append(run); run = 0
    if run:
        bursts.append(run)
    reordered = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
    json.dump({"delays": [g[1] for g in got], "received": len(uniq), "count": count,
               "lost": len(lost), "bursts": bursts, "reordered": reordered,
               "duplicates": len(seqs) - len(uniq)}, open(out, "w"))

if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        recv(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
