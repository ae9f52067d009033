from tests.factories import stored_recording


def test_a_stored_call_can_be_downloaded(client, token):
    recording = stored_recording()
    response = client.get(f"/public/api/v1/monitor/{recording.request_id}", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response["Content-Type"] == "audio/mpeg"
