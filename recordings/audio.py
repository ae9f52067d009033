"""Audio at ingest: reading WAV (16-bit PCM, G.711 A-law and µ-law), mixing, MP3 encoding.

Everything works on open binary files, block by block, so an hour-long call is never
held in memory whole: one block of ~10 seconds per input is read, converted to int16,
mixed and handed to one encoder thread per output (lameenc releases the GIL, so the
legs are encoded in parallel).
"""

import hashlib
import struct
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import lameenc
import numpy as np

from recordings import mp3

SAMPLE_RATES = (8000, 16000)
BLOCK_SECONDS = 10
# Encoder blocks queued per output before the reader waits: bounds memory.
BLOCKS_AHEAD = 2
# At or below this everywhere (about -60 dBFS) a leg is silence only. G.711's idle
# codes decode to 0 or ±8, so an idle telephone channel counts as silence.
SILENCE_PEAK = 32
# LAME's default quality for the command-line encoder (-q 3): good for speech at 32 kbps.
MP3_QUALITY = 3

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_ALAW = 0x0006
WAVE_FORMAT_MULAW = 0x0007
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_CODECS = {WAVE_FORMAT_PCM: "pcm16", WAVE_FORMAT_ALAW: "alaw", WAVE_FORMAT_MULAW: "ulaw"}
_CODEC_NAMES = {"pcm16": "16-bit PCM", "alaw": "G.711 A-law", "ulaw": "G.711 µ-law"}


class AudioError(ValueError):
    """Input the ingest refuses; the message is meant for whoever sent it."""

    input_index = None  # set by transcode(): which of its inputs was bad


# --- G.711 (ITU-T G.711, decoding to 16-bit linear) -------------------------------------


def alaw_decode_table():
    """The 256 A-law codes as 16-bit linear values (the 13-bit G.711 values times 8)."""
    table = np.empty(256, dtype=np.int16)
    for code in range(256):
        a = code ^ 0x55  # even bits are inverted on the line
        magnitude = ((a & 0x0F) << 4) + 8
        segment = (a & 0x70) >> 4
        if segment >= 1:
            magnitude = (magnitude + 0x100) << (segment - 1)
        table[code] = magnitude if a & 0x80 else -magnitude
    return table


def ulaw_decode_table():
    """The 256 µ-law codes as 16-bit linear values (the 14-bit G.711 values times 4)."""
    bias = 0x84
    table = np.empty(256, dtype=np.int16)
    for code in range(256):
        u = ~code & 0xFF  # all bits are inverted on the line
        magnitude = ((((u & 0x0F) << 3) + bias) << ((u & 0x70) >> 4)) - bias
        table[code] = -magnitude if u & 0x80 else magnitude
    return table


ALAW = alaw_decode_table()
ULAW = ulaw_decode_table()


# --- WAV -----------------------------------------------------------------------------


def sniff(source):
    """"wav", "mp3" or None for the file's first bytes; "empty" for a file with none.
    Leaves the file at its start."""
    source.seek(0)
    head = source.read(12)
    source.seek(0)
    if not head:
        return "empty"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3" or mp3.parse_header(head[:4]) is not None:
        return "mp3"
    return None


@dataclass(frozen=True)
class WavFormat:
    codec: str  # "pcm16", "alaw" or "ulaw"
    channels: int
    sample_rate: int
    frames: int

    @property
    def duration(self):
        return self.frames / self.sample_rate

    @property
    def bytes_per_frame(self):
        return self.channels * (2 if self.codec == "pcm16" else 1)

    def describe(self):
        return f"{_CODEC_NAMES[self.codec]}, {self.sample_rate} Hz, {self.channels} channel(s)"


class WavReader:
    """A WAV file opened for reading in blocks. The header is checked on opening:
    supported codec and rate, and a data chunk the file actually holds."""

    def __init__(self, source):
        self.source = source
        source.seek(0)
        riff = source.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
            raise AudioError("Not a WAV file.")
        fmt = None
        while True:
            chunk = source.read(8)
            if len(chunk) < 8:
                if fmt is None:
                    raise AudioError("The WAV file is truncated: it has no fmt chunk.")
                raise AudioError("The WAV file is truncated: it has no data chunk.")
            chunk_id, size = struct.unpack("<4sI", chunk)
            if chunk_id == b"fmt ":
                fmt = self._read_fmt(size)
            elif chunk_id == b"data":
                if fmt is None:
                    raise AudioError("The WAV file has its data chunk before the fmt chunk.")
                break
            else:
                self._skip(size + (size & 1))
        codec, channels, rate, block_align = fmt
        self.data_bytes = size
        self.format = WavFormat(codec, channels, rate, size // block_align if block_align else 0)
        self._check_data(size)

    def _read_fmt(self, size):
        body = self.source.read(size + (size & 1))
        if size < 16 or len(body) < size:
            raise AudioError("The WAV file is truncated: its fmt chunk is incomplete.")
        tag, channels, rate, _, block_align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == WAVE_FORMAT_EXTENSIBLE and size >= 40:
            tag = struct.unpack("<H", body[24:26])[0]  # the first two bytes of the sub-format GUID
        codec = _CODECS.get(tag)
        if codec is None:
            raise AudioError(
                f"Unsupported WAV encoding (format tag 0x{tag:04x}); use 16-bit PCM, G.711 A-law or µ-law."
            )
        expected_bits = 16 if codec == "pcm16" else 8
        if bits != expected_bits:
            raise AudioError(
                f"Unsupported sample size for {_CODEC_NAMES[codec]}: {bits} bits; expected {expected_bits}."
            )
        if rate not in SAMPLE_RATES:
            raise AudioError(f"Unsupported sample rate: {rate} Hz; use 8000 or 16000 Hz.")
        if channels < 1:
            raise AudioError("The WAV file declares no channels.")
        if block_align != channels * bits // 8:
            raise AudioError("The WAV header is inconsistent (block alignment).")
        return codec, channels, rate, block_align

    def _skip(self, count):
        # Chunks other than fmt and data (LIST, fact, ...) are of no interest.
        while count > 0:
            got = len(self.source.read(min(count, 1 << 20)))
            if got == 0:
                raise AudioError("The WAV file is truncated: it has no data chunk.")
            count -= got

    def _check_data(self, size):
        if size == 0:
            raise AudioError("The WAV file has no audio samples.")
        if size % self.format.bytes_per_frame:
            raise AudioError("The WAV file is truncated: its data ends in the middle of a sample.")
        here = self.source.tell()
        end = self.source.seek(0, 2)
        self.source.seek(here)
        if end - here < size:
            raise AudioError(
                f"The WAV file is truncated: its data chunk declares {size} bytes but only {end - here} follow."
            )
        self.data_start = here

    def blocks(self, frames_per_block):
        """int16 arrays of shape (frames, channels), frames_per_block at a time."""
        fmt = self.format
        self.source.seek(self.data_start)
        remaining = self.data_bytes
        step = frames_per_block * fmt.bytes_per_frame
        while remaining:
            raw = self.source.read(min(step, remaining))
            if not raw:
                raise AudioError("The WAV file is truncated: its data ended early.")
            if len(raw) % fmt.bytes_per_frame:
                raise AudioError("The WAV file is truncated: its data ends in the middle of a sample.")
            remaining -= len(raw)
            if fmt.codec == "pcm16":
                samples = np.frombuffer(raw, dtype="<i2").astype(np.int16, copy=False)
            else:
                samples = (ALAW if fmt.codec == "alaw" else ULAW)[np.frombuffer(raw, dtype=np.uint8)]
            yield samples.reshape(-1, fmt.channels)


# --- mixing and encoding -----------------------------------------------------------------


def mix(*legs):
    """The saturating sum of int16 legs: too loud clips at the int16 limits, never wraps
    around. A shorter leg counts as silence after its end."""
    if len(legs) == 1:
        return np.ascontiguousarray(legs[0], dtype=np.int16)
    total = np.zeros(max(len(leg) for leg in legs), dtype=np.int32)
    for leg in legs:
        total[: len(leg)] += leg
    return np.clip(total, -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Encoded:
    """What an encoded output turned out to be."""

    size: int
    sha256: str
    frames: int
    sample_rate: int
    peak: int

    @property
    def duration(self):
        # From the sample count: the MP3's own frame count includes LAME's encoder
        # delay and padding, so it overstates the length.
        return self.frames / self.sample_rate

    @property
    def audio_detected(self):
        return self.peak > SILENCE_PEAK


class Mp3Writer:
    """One mono CBR MP3 at the input's sample rate, written to an open file as it is encoded."""

    def __init__(self, out, *, sample_rate, kbps):
        self.out = out
        self.sample_rate = sample_rate
        self.encoder = lameenc.Encoder()
        self.encoder.set_channels(1)
        self.encoder.set_in_sample_rate(sample_rate)
        self.encoder.set_out_sample_rate(sample_rate)
        self.encoder.set_bit_rate(kbps)
        self.encoder.set_quality(MP3_QUALITY)
        self.digest = hashlib.sha256()
        self.size = 0
        self.frames = 0
        self.peak = 0

    def write(self, samples):
        if len(samples):
            self.peak = max(self.peak, int(samples.max()), -int(samples.min()))
            self.frames += len(samples)
            self._emit(self.encoder.encode(samples))

    def close(self):
        if self.frames == 0:
            raise AudioError("No audio samples to encode.")
        self._emit(self.encoder.flush())
        return Encoded(self.size, self.digest.hexdigest(), self.frames, self.sample_rate, self.peak)

    def _emit(self, data):
        if data:
            self.out.write(data)
            self.digest.update(data)
            self.size += len(data)


def _next_block(index, stream):
    try:
        return next(stream, None)
    except AudioError as exc:
        exc.input_index = index
        raise


def transcode(*, inputs, outputs, kbps, block_seconds=BLOCK_SECONDS):
    """Encode outputs made of the inputs' channels, reading every input once, in blocks.

    inputs: WavReaders of one sample rate. outputs: {name: (open binary file, [(input
    index, channel), ...])}; each output is the saturating mix of the channels it names
    (one channel: that channel as it is). Returns {name: Encoded}.
    """
    rates = {reader.format.sample_rate for reader in inputs}
    if len(rates) != 1:
        raise AudioError("The files have different sample rates.")
    rate = rates.pop()
    frames_per_block = rate * block_seconds
    writers = {name: Mp3Writer(out, sample_rate=rate, kbps=kbps) for name, (out, _) in outputs.items()}
    # One thread per output keeps each encoder's blocks in order and the legs in parallel.
    pools = {name: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mp3-{name}") for name in outputs}
    pending = deque()
    try:
        streams = [reader.blocks(frames_per_block) for reader in inputs]
        while True:
            blocks = [_next_block(index, stream) for index, stream in enumerate(streams)]
            if all(block is None for block in blocks):
                break
            submitted = []
            for name, (_, recipe) in outputs.items():
                parts = [blocks[i][:, channel] for i, channel in recipe if blocks[i] is not None]
                if parts:
                    submitted.append(pools[name].submit(writers[name].write, mix(*parts)))
            pending.append(submitted)
            if len(pending) > BLOCKS_AHEAD:
                for future in pending.popleft():
                    future.result()
        while pending:
            for future in pending.popleft():
                future.result()
        return {name: writer.close() for name, writer in writers.items()}
    finally:
        for pool in pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
