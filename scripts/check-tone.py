import math, struct, sys, wave
w = wave.open(sys.argv[1]); rate = w.getframerate(); n = w.getnframes()
data = struct.unpack('<%dh' % (n * w.getnchannels()), w.readframes(n))
x = data[::w.getnchannels()]
def power(f, s):
    k = 2 * math.cos(2 * math.pi * f / rate); a = b = 0.0
    for v in s: a, b = v + k * a - b, a
    return a * a + b * b - k * a * b
seg = x[len(x)//4: len(x)//4 + rate]    # one second from the middle
p440 = power(440, seg); others = max(power(f, seg) for f in (220, 330, 550, 660, 880, 1000))
rms = math.sqrt(sum(v*v for v in seg) / len(seg))
print("seconds=%.2f rms=%.0f ratio_440_vs_others=%.1f" % (n / rate, rms, p440 / max(others, 1)))
