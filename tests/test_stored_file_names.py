"""The names an ingested call's files are stored under (moved out of test_naming.py,
whose tests are pure and run without the database)."""

from tests.factories import stored_recording


def test_stored_files_use_the_unique_id_by_default(db):
    recording = stored_recording(
        request_id="21061600000268000060", unique_id="1563433858.66", caller="2006", callee="2002",
        started_at="2019-07-18 16:10:58",
    )
    names = {f.content_type: f.name for f in recording.files.all()}
    assert names == {
        "monaural": "20190718161058-2006-2002-1563433858.66-SRC.mp3",
        "left": "20190718161058-2006-2002-1563433858.66-SRC_l.mp3",
        "right": "20190718161058-2006-2002-1563433858.66-SRC_r.mp3",
    }
    assert recording.files.get(content_type="left").path == "2019/07/18/20190718161058-2006-2002-1563433858.66-SRC_l.mp3"


def test_stored_files_use_the_request_id_when_the_setting_says_so(db, set_system):
    set_system(recording_key="request_id")
    recording = stored_recording(
        request_id="21091300000468000050", unique_id="1563428995.29", caller="3800", callee="070-1234-5678",
        side="DST", started_at="2019-07-18 14:50:00",
    )
    assert recording.files.get(content_type="right").name == "20190718145000-3800-07012345678-21091300000468000050-DST_r.mp3"
