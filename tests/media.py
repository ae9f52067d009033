"""Real audio for tests, made with numpy and lameenc."""

import lameenc
import numpy as np


def tone(freq, seconds, rate=8000, amplitude=8000):
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype(np.int16)


def mp3_bytes(samples, rate=8000, kbps=32):
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(2)
    return bytes(encoder.encode(samples.tobytes()) + encoder.flush())


def write_mp3(path, freq, seconds=2.0, rate=8000):
    path.write_bytes(mp3_bytes(tone(freq, seconds, rate), rate))
    return path
