"""Writes to recordings: ingest (SPEC.md §2.3)."""

import re
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from biztel import config, metrics
from biztel.errors import Conflict, ValidationFailed
from biztel.numbers import normalize_number
from recordings import audio, mp3, naming, storage
from recordings.models import ContentType, EndCause, Recording, RecordingFile
from recordings.signals import RECORDING_ABSENT, RECORDING_COMPLETED, recording_event_send

CALL_FIELDS = (
    "request_id",
    "unique_id",
    "started_at",
    "caller",
    "callee",
    "side",
    "external_number",
    "extension",
    "tel",
    "group",
    "end_cause",
)
OPTIONAL_FIELDS = ("group", "end_cause")
REQUIRED_FIELDS = tuple(name for name in CALL_FIELDS if name not in OPTIONAL_FIELDS)
REQUEST_ID = re.compile(r"[0-9]{20}")
UNIQUE_ID = re.compile(r"[0-9A-Za-z._-]{1,64}")
FILE_FIELDS = ("stereo", "left", "right", "mixed")
NUMBER_FIELDS = ("caller", "callee", "external_number", "extension", "tel")
END_CAUSE_MESSAGE = f"The end_cause must be one of {', '.join(EndCause.values)}."


# Years a call may start in: the database and every reader of the row can hold them.
STARTED_AT_YEARS = (1900, 9998)


def _fits_columns(cleaned, errors):
    """Refuse what no column can hold: NUL characters, text longer than the column."""
    for name, value in cleaned.items():
        if name in errors or not isinstance(value, str):
            continue
        if "\x00" in value:
            errors[name] = [f"The {name} must not contain NUL characters."]
            continue
        limit = Recording._meta.get_field(name).max_length
        if limit and len(value) > limit:
            errors[name] = [f"The {name} may be at most {limit} characters long."]


def call_fields_clean(raw):
    """Validate the call's metadata; returns the cleaned dict or raises ValidationFailed
    with every bad field and its messages."""
    errors = {}
    cleaned = {}
    for name in CALL_FIELDS:
        value = (raw.get(name) or "").strip()
        if not value and name in REQUIRED_FIELDS:
            errors[name] = [f"The {name} field is required."]
        cleaned[name] = value
    if cleaned["request_id"] and not REQUEST_ID.fullmatch(cleaned["request_id"]):
        errors["request_id"] = ["The request_id must be a string of 20 digits."]
    if cleaned["unique_id"] and not UNIQUE_ID.fullmatch(cleaned["unique_id"]):
        errors["unique_id"] = ["The unique_id may contain only letters, digits, '.', '_' and '-'."]
    if cleaned["end_cause"] and cleaned["end_cause"] not in EndCause.values:
        errors["end_cause"] = [END_CAUSE_MESSAGE]
    if cleaned["side"] and cleaned["side"] not in naming.SIDES:
        errors["side"] = ["The side must be SRC or DST."]
    for name in NUMBER_FIELDS:
        if cleaned[name]:
            try:
                cleaned[name] = normalize_number(cleaned[name])
            except ValueError:
                errors[name] = [f"The {name} must be a phone number (digits and hyphens)."]
    if cleaned["started_at"]:
        try:
            local = datetime.strptime(cleaned["started_at"], "%Y-%m-%d %H:%M:%S")
            cleaned["started_at"] = timezone.make_aware(local)
        except ValueError:
            errors["started_at"] = ["The started_at must be a date of the form YYYY-MM-DD HH:MM:SS."]
        else:
            if not STARTED_AT_YEARS[0] <= local.year <= STARTED_AT_YEARS[1]:
                # the database would store year 1, and every read of the row would then fail
                errors["started_at"] = [
                    f"The started_at must be a date between {STARTED_AT_YEARS[0]} and {STARTED_AT_YEARS[1]}."
                ]
    _fits_columns(cleaned, errors)
    if errors:
        raise ValidationFailed(messages=errors)
    return cleaned


@dataclass
class PreparedFile:
    """An audio file ready to be stored: written to a temporary path, measured."""

    content_type: str
    temp_path: Path
    size: int
    sha256: str
    duration: float
    audio_detected: bool = True
    lossless_temp_path: Path = None  # the FLAC copy, when kept
    lossless_size: int = None
    lossless_sha256: str = None


def prepare_mp3(content_type, source):
    """Copy an MP3 handed over as it is; refuse anything that is not a complete MP3."""
    temp_path, size, sha256 = storage.copy_to_temp(source)
    try:
        info = mp3.inspect(temp_path)
    except mp3.NotMp3 as exc:
        storage.discard(temp_path)
        raise ValidationFailed(messages={content_type_field(content_type): [f"Not a valid MP3 file: {exc}."]})
    return PreparedFile(content_type, temp_path, size, sha256, info.duration)


def content_type_field(content_type):
    return "mixed" if content_type == ContentType.MONAURAL else content_type


def separation_applies(settings_row, external_number):
    if not settings_row.voice_file_separation:
        return False
    targets = settings_row.separation_target_list()
    return not targets or external_number in targets


@dataclass
class Source:
    """One uploaded file: its field, the open file, and what it turned out to be."""

    field: str
    file: object
    kind: str  # "wav" or "mp3"
    wav: audio.WavReader = None


def sources_clean(files):
    """Check what each file is (header only) and that they make a call; returns
    {field: Source} or raises ValidationFailed with every bad file."""
    errors = {}
    sources = {}
    for field in FILE_FIELDS:
        if files.get(field) is None:
            continue
        try:
            sources[field] = _source(field, files[field])
        except audio.AudioError as exc:
            errors[field] = [str(exc)]
    given = {field for field in FILE_FIELDS if files.get(field) is not None}
    if not given:
        errors["mixed"] = ["Give the stereo file, the left and right legs, or the mixed file."]
    if "stereo" in given and given & {"left", "right"}:
        errors["stereo"] = ["Give either the stereo file or the left and right legs, not both."]
    for leg, other in (("left", "right"), ("right", "left")):
        if leg in given and other not in given:
            errors[other] = [f"The {other} leg is required with the {leg} leg."]
    if not errors:
        legs_as_mp3 = any(sources[f].kind == "mp3" for f in ("left", "right") if f in sources)
        if legs_as_mp3 and "mixed" not in sources:
            errors["mixed"] = ["The mixed file is required when the legs are MP3 (they are stored as they are)."]
        if len({s.wav.format.sample_rate for s in sources.values() if s.wav}) > 1:
            for source in sources.values():
                if source.wav:
                    errors[source.field] = ["The WAV files of one call must have the same sample rate."]
    if errors:
        raise ValidationFailed(messages=errors)
    return sources


def _source(field, file):
    kind = audio.sniff(file)
    if kind == "empty":
        raise audio.AudioError("The file is empty.")
    if kind is None:
        raise audio.AudioError("Not an audio file: expected WAV (16-bit PCM, G.711 A-law or µ-law) or MP3.")
    if field == "stereo" and kind != "wav":
        raise audio.AudioError("The stereo file must be a 2-channel WAV file.")
    if kind == "mp3":
        return Source(field, file, kind)
    reader = audio.WavReader(file)
    expected = 2 if field == "stereo" else 1
    if reader.format.channels != expected:
        raise audio.AudioError(
            f"The {field} file must have {expected} channel{'s' if expected > 1 else ''}, "
            f"not {reader.format.channels}."
        )
    return Source(field, file, kind, reader)


def _plan(sources, separate, stereo_file):
    """{content type: channels} of what to encode, and {content type: source} of MP3s stored
    as they are. channels has one recipe per output channel (one for the mono files, two for
    the stereo file); a recipe is [(source field, channel), ...], mixed with saturation."""
    encode, keep = {}, {}
    if "stereo" in sources:
        legs = {ContentType.LEFT: [("stereo", 0)], ContentType.RIGHT: [("stereo", 1)]}
    elif "left" in sources:
        legs = {ContentType.LEFT: [("left", 0)], ContentType.RIGHT: [("right", 0)]}
    else:
        legs = {}
    if "mixed" in sources:
        mixed = sources["mixed"]
        if mixed.kind == "mp3":
            keep[ContentType.MONAURAL] = mixed
        else:
            encode[ContentType.MONAURAL] = [[("mixed", 0)]]
    else:
        encode[ContentType.MONAURAL] = [legs[ContentType.LEFT] + legs[ContentType.RIGHT]]
    if separate:
        for content_type, recipe in legs.items():
            source = sources[recipe[0][0]]
            if source.kind == "mp3":
                keep[content_type] = source
            else:
                encode[content_type] = [recipe]
        # MP3 legs are stored as they are and never decoded: no stereo file from them.
        if stereo_file and ContentType.LEFT in encode and ContentType.RIGHT in encode:
            encode[ContentType.STEREO] = [legs[ContentType.LEFT], legs[ContentType.RIGHT]]
    return encode, keep


@metrics.ingest_observed
def recording_ingest(*, fields, stereo=None, mixed=None, left=None, right=None):
    """Store one call handed over by the PBX. Returns (recording, created).

    stereo/mixed/left/right are open binary files (seekable): a 2-channel WAV (channel 0
    the customer, 1 the operator), mono WAV legs, or ready MP3s, which are stored as they
    are. The mix is made from the legs unless given. Idempotent on request_id; on any
    failure nothing is left behind: no file, no row, no event.
    """
    errors = {}
    call = None
    try:
        call = call_fields_clean(fields)
    except ValidationFailed as exc:
        errors.update(exc.messages)
    if call is not None:
        # The PBX may retry the upload; the request ID makes that harmless.
        existing = _existing(call)
        if existing is not None:
            return existing, False
    try:
        sources = sources_clean({"stereo": stereo, "mixed": mixed, "left": left, "right": right})
    except ValidationFailed as exc:
        errors.update(exc.messages)
    if errors:
        raise ValidationFailed(messages=errors)

    settings_row = config.current()
    encode, keep = _plan(
        sources, separation_applies(settings_row, call["external_number"]), settings_row.stereo_file
    )
    prepared = []
    try:
        for content_type, source in keep.items():
            prepared.append(prepare_mp3(content_type, source.file))
        prepared.extend(
            _encode(sources, encode, kbps=settings_row.mp3_bitrate_kbps, lossless=settings_row.keep_lossless)
        )
        return recording_store(call=call, prepared=prepared, settings_row=settings_row), True
    except IntegrityError:
        # The same call arrived twice at once and the other upload committed first.
        existing = _existing(call)
        if existing is None:
            # the only other unique column: another call took the file name meanwhile
            raise Conflict(FILE_NAME_TAKEN.format(name="a file name of this call", other="another call")) from None
        return existing, False
    finally:
        for item in prepared:
            storage.discard(item.temp_path)
            if item.lossless_temp_path is not None:
                storage.discard(item.lossless_temp_path)


@metrics.INGEST_ENCODE_SECONDS.time()
def _encode(sources, plan, *, kbps, lossless):
    """Encode the planned outputs (and their FLAC copies when `lossless`) into temporary
    files; returns their PreparedFiles."""
    if not plan:
        return []
    fields = sorted({field for channels in plan.values() for recipe in channels for field, _ in recipe})
    inputs = [sources[field].wav for field in fields]
    temp_paths = {content_type: storage.new_temp_path() for content_type in plan}
    flac_paths = {content_type: storage.new_temp_path() for content_type in plan} if lossless else {}
    try:
        with ExitStack() as stack:
            outputs = {
                content_type: audio.Output(
                    # w+b: the MP3's first frame, its info tag, is written when the encode is done
                    mp3=stack.enter_context(open(temp_paths[content_type], "w+b")),
                    channels=[[(fields.index(field), channel) for field, channel in recipe] for recipe in channels],
                    flac=stack.enter_context(open(flac_paths[content_type], "w+b")) if lossless else None,
                )
                for content_type, channels in plan.items()
            }
            try:
                encoded = audio.transcode(inputs=inputs, outputs=outputs, kbps=kbps)
            except audio.AudioError as exc:
                bad = [fields[exc.input_index]] if exc.input_index is not None else fields
                raise ValidationFailed(messages={field: [str(exc)] for field in bad}) from None
    except BaseException:
        for path in [*temp_paths.values(), *flac_paths.values()]:
            storage.discard(path)
        raise
    return [
        PreparedFile(
            content_type,
            temp_paths[content_type],
            result.size,
            result.sha256,
            result.duration,
            result.audio_detected,
            flac_paths.get(content_type),
            result.lossless_size,
            result.lossless_sha256,
        )
        for content_type, result in encoded.items()
    ]


def _existing(call):
    """The stored recording of this call, or None; Conflict when the IDs disagree."""
    by_request = Recording.objects.filter(request_id=call["request_id"]).first()
    if by_request is not None:
        if by_request.unique_id != call["unique_id"]:
            raise Conflict("A recording with this request_id already exists with another unique_id.")
        return by_request
    if Recording.objects.filter(unique_id=call["unique_id"]).exists():
        raise Conflict()
    return None


FILE_NAME_TAKEN = (
    "The file name {name} is already used by {other}: storing this call would replace that call's file. "
    "This happens when recording_key was switched and this call's key equals the other call's; "
    "switch recording_key back or change this call's IDs."
)


def _refuse_taken_names(call, prepared, local_start, key):
    """Conflict when a file of another call is stored under a name this call would get:
    checked before any row is written or file moved (the constraint on the path is the backstop)."""
    paths = [
        f"{naming.day_folder(local_start)}/"
        + naming.file_name(
            started_at=local_start, caller=call["caller"], callee=call["callee"], key=key, side=call["side"],
            content_type=item.content_type,
        )
        for item in prepared
    ]
    taken = RecordingFile.objects.filter(path__in=paths).select_related("recording").first()
    if taken is not None:
        other = f"the recording {taken.recording.request_id} (unique_id {taken.recording.unique_id})"
        raise Conflict(FILE_NAME_TAKEN.format(name=taken.name, other=other))


def recording_store(*, call, prepared, settings_row):
    """Rows, event and files in one transaction; files are stored last (moved in, or uploaded to
    the bucket), and deleted again when the transaction does not commit. A crash in between
    leaves files no row names: the purge removes them (recordings/purge.py orphans_remove)."""
    now = timezone.now()
    local_start = timezone.localtime(call["started_at"])
    key = call[settings_row.recording_key]
    duration = next(
        (p.duration for p in prepared if p.content_type == ContentType.MONAURAL),
        max((p.duration for p in prepared), default=0),
    )
    placements = []
    moved = []
    try:
        with transaction.atomic():
            _refuse_taken_names(call, prepared, local_start, key)
            recording = Recording.objects.create(**call, duration=round(duration, 3))
            for item in prepared:
                name = naming.file_name(
                    started_at=local_start,
                    caller=call["caller"],
                    callee=call["callee"],
                    key=key,
                    side=call["side"],
                    content_type=item.content_type,
                )
                relative = f"{naming.day_folder(local_start)}/{name}"
                placements.append((item.temp_path, relative, item.sha256))
                if item.lossless_temp_path is not None:
                    placements.append((item.lossless_temp_path, naming.lossless_path(relative), item.lossless_sha256))
                RecordingFile.objects.create(
                    recording=recording,
                    content_type=item.content_type,
                    name=name,
                    path=relative,
                    size=item.size,
                    sha256=item.sha256,
                    duration=round(item.duration, 3),
                    audio_detected=item.audio_detected,
                    lossless_size=item.lossless_size,
                    lossless_sha256=item.lossless_sha256,
                    created_at=now,
                )
            recording_event_send(recording=recording, event_type=RECORDING_COMPLETED)
            if not any(item.audio_detected for item in prepared):
                recording_event_send(recording=recording, event_type=RECORDING_ABSENT)
            # Stored (uploaded, or flushed to disk) before the commit that names them.
            for temp_path, relative, sha256 in placements:
                storage.move_into_place(temp_path, relative, sha256=sha256)
                moved.append(relative)
    except BaseException:
        for relative in moved:
            storage.delete(relative)
        raise
    return recording
