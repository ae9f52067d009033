"""Listening to what the ingest produced: decode an MP3 (miniaudio's dr_mp3, a decoder
independent of the LAME encoder) and look at its spectrum."""

import miniaudio
import numpy as np


def decode_mp3(path):
    """(int16 mono samples, sample rate) of an MP3 file, at its own rate."""
    data = path.read_bytes()
    info = miniaudio.mp3_get_info(data)
    decoded = miniaudio.decode(
        data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1, sample_rate=info.sample_rate
    )
    return np.asarray(decoded.samples, dtype=np.int16), info.sample_rate


def spectrum(samples, rate):
    """(frequencies, magnitudes) of the samples, Hann-windowed."""
    x = samples.astype(np.float64) * np.hanning(len(samples))
    return np.fft.rfftfreq(len(samples), 1 / rate), np.abs(np.fft.rfft(x))


def dominant_frequency(samples, rate):
    freqs, mags = spectrum(samples, rate)
    return float(freqs[np.argmax(mags)])


def level_at(samples, rate, freq, width=20):
    """The strongest magnitude within ±width Hz of freq, relative to the strongest overall."""
    freqs, mags = spectrum(samples, rate)
    band = (freqs > freq - width) & (freqs < freq + width)
    return float(mags[band].max() / mags.max())


def assert_nothing_left_behind():
    """No file anywhere under MEDIA_ROOT (the .incoming folder included), no recording
    row, no file row, no event."""
    from callactions.models import Event
    from recordings import storage
    from recordings.models import Recording, RecordingFile

    root = storage.root()
    leftovers = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()] if root.exists() else []
    assert leftovers == []
    assert list(storage.listing()) == []  # a bucket too, when the test stores into one
    assert Recording.objects.count() == 0
    assert RecordingFile.objects.count() == 0
    assert Event.objects.count() == 0
