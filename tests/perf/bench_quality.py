"""LAME's quality settings on speech-like audio: encoding CPU and what comes back.

For each quality (lameenc's default 2, the `lame` command's 3, 5, 7) it encodes
10 minutes of 8 kHz mono speech-like audio at 32 kbps with our encoder
(recordings/audio.py), decodes the MP3 with Debian's ffmpeg (which honours the LAME
info tag, so no alignment is needed) and compares the samples with the source:
SNR over the whole file and segmental SNR (20 ms segments, each clamped to
[-10, 35] dB, as in the speech-coding literature). It also times a 64 kbps L/R
stereo encode of the same length. CPU is this process's user+system time for the
encode alone.
"""

import io
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from recordings import audio
from tests.conftest import ensure_debian_packages
from tests.media import wav_bytes

RATE = 8000
SECONDS = 600
QUALITIES = (2, 3, 5, 7)


def speech(rng, n, rate=RATE):
    """Voiced syllables (a harmonic series on a wandering pitch, through two moving
    resonances), unvoiced bursts of noise and pauses: closer to speech than tones."""
    t = np.arange(n) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t) + 20 * np.sin(2 * np.pi * 1.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    formant_1 = 600 + 300 * np.sin(2 * np.pi * 2.1 * t)
    formant_2 = 1700 + 500 * np.sin(2 * np.pi * 1.3 * t)
    voiced = np.zeros(n)
    for k in range(1, 25):
        frequency = k * pitch
        gain = np.exp(-(((frequency - formant_1) / 200) ** 2)) + 0.5 * np.exp(-(((frequency - formant_2) / 300) ** 2))
        voiced += np.where(frequency < rate / 2, gain, 0) * np.sin(k * phase) / k**0.5
    syllables = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5  # about four syllables a second
    sentences = (np.sin(2 * np.pi * 0.15 * t) > -0.3).astype(float)  # with pauses between them
    unvoiced = rng.normal(0, 1, n) * (np.sin(2 * np.pi * 4 * t + 2) > 0.9)
    signal = (voiced * syllables + 0.3 * unvoiced) * sentences
    signal = signal / np.abs(signal).max() * 12000 + rng.normal(0, 30, n)  # a quiet line noise floor
    return signal.astype(np.int16)


def snr_db(source, decoded):
    noise = source.astype(float) - decoded.astype(float)
    return 10 * np.log10(np.sum(source.astype(float) ** 2) / max(np.sum(noise**2), 1e-9))


def segmental_snr_db(source, decoded, segment=RATE // 50):
    count = len(source) // segment
    s = source[: count * segment].astype(float).reshape(count, segment)
    e = s - decoded[: count * segment].astype(float).reshape(count, segment)
    energy = np.sum(s**2, axis=1)
    active = energy > segment * 100.0**2  # speech segments, not the pauses
    ratios = 10 * np.log10(energy[active] / np.maximum(np.sum(e**2, axis=1)[active], 1e-9))
    return float(np.mean(np.clip(ratios, -10, 35)))


def cpu_seconds():
    times = os.times()
    return times.user + times.system


def encode(samples_per_channel, quality, folder, kbps=32):
    reader = audio.WavReader(io.BytesIO(wav_bytes(samples_per_channel, RATE)))
    path = folder / f"q{quality}-{len(samples_per_channel)}.mp3"
    with open(path, "w+b") as out:
        recipe = [[(0, channel)] for channel in range(len(samples_per_channel))]
        started = cpu_seconds()
        audio.transcode(inputs=[reader], outputs={"x": audio.Output(mp3=out, channels=recipe)}, kbps=kbps, quality=quality)
        return path, cpu_seconds() - started


def decode(path):
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-"], capture_output=True, check=True)
    return np.frombuffer(raw.stdout, dtype="<i2")


def measure():
    rng = np.random.default_rng(7)
    source = speech(rng, SECONDS * RATE)
    other = speech(np.random.default_rng(8), SECONDS * RATE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="biztel-bench-quality-") as tmp:
        folder = Path(tmp)
        for quality in QUALITIES:
            path, cpu = encode([source], quality, folder)
            decoded = decode(path)
            if len(decoded) != len(source):
                raise RuntimeError(f"q{quality}: decoded {len(decoded)} samples, not {len(source)}")
            _, stereo_cpu = encode([source, other], quality, folder)
            rows.append((quality, cpu, stereo_cpu, snr_db(source, decoded), segmental_snr_db(source, decoded)))
    return rows


def main():
    ensure_debian_packages(("ffmpeg", "ffmpeg"))
    print(f"LAME quality on {SECONDS // 60} min of 8 kHz speech-like audio, mono 32 kbps (stereo: 64 kbps L/R)", flush=True)
    print("quality | mono CPU s | stereo CPU s | SNR dB | segmental SNR dB", flush=True)
    for quality, cpu, stereo_cpu, snr, segmental in measure():
        print(f"q{quality} | {cpu:.2f} | {stereo_cpu:.2f} | {snr:.2f} | {segmental:.2f}", flush=True)
