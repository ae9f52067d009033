"""Real audio for tests, made with numpy and lameenc."""

import functools
import struct

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


# --- WAV files, as a PBX writes them --------------------------------------------------

WAV_CODECS = {"pcm16": (1, 16), "alaw": (6, 8), "ulaw": (7, 8)}


def wav_bytes(channels, rate=8000, codec="pcm16", data_bytes=None):
    """A WAV file of the given channels (int16 arrays of one length), 16-bit PCM or G.711.

    data_bytes overrides the size the data chunk declares (for truncated files)."""
    frames = np.stack([np.asarray(c, dtype=np.int16) for c in channels], axis=1)
    if codec == "pcm16":
        payload = frames.astype("<i2").tobytes()
    else:
        payload = g711_encode(frames.reshape(-1), codec).tobytes()
    tag, bits = WAV_CODECS[codec]
    n_channels = frames.shape[1]
    block_align = n_channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, n_channels, rate, rate * block_align, block_align, bits)
    if codec != "pcm16":
        fmt += struct.pack("<H", 0)  # cbSize: non-PCM formats carry it
    declared = len(payload) if data_bytes is None else data_bytes
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if codec != "pcm16":
        body += b"fact" + struct.pack("<II", 4, frames.shape[0])
    body += b"data" + struct.pack("<I", declared) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def write_wav(path, channels, rate=8000, codec="pcm16"):
    path.write_bytes(wav_bytes(channels, rate, codec))
    return path


def _linear_to_ulaw(value):
    """One 16-bit sample to µ-law, as the ITU-T G.711 encoder does (the classic Sun g711.c)."""
    value >>= 2
    mask = 0xFF
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + (0x84 >> 2)
    for segment, end in enumerate((0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)):
        if value <= end:
            return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask


def _linear_to_alaw(value):
    """One 16-bit sample to A-law, as the ITU-T G.711 encoder does (the classic Sun g711.c)."""
    value >>= 3
    if value >= 0:
        mask = 0xD5
    else:
        mask, value = 0x55, -value - 1
    for segment, end in enumerate((0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)):
        if value <= end:
            shift = 1 if segment < 2 else segment
            return ((segment << 4) | ((value >> shift) & 0x0F)) ^ mask
    return 0x7F ^ mask


@functools.cache
def _g711_encode_table(codec):
    encode = _linear_to_alaw if codec == "alaw" else _linear_to_ulaw
    return np.array([encode(v) for v in range(-32768, 32768)], dtype=np.uint8)


def g711_encode(samples, codec):
    """int16 samples to G.711 codes (uint8), codec "alaw" or "ulaw"."""
    return _g711_encode_table(codec)[np.asarray(samples, dtype=np.int16).astype(np.int32) + 32768]
