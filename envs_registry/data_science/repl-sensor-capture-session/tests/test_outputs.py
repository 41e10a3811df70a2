import json
import os

ARCHIVE = "/var/lib/ltenv-verify/capture.json"


def expected_mean():
    with open(ARCHIVE) as f:
        rows = json.load(f)["channels"]["B"]
    vals = [v for _, v, flag in rows if flag == "OK"]
    return f"{sum(vals) / len(vals):.4f}\n"


def test_channel_b_mean():
    with open("/app/channel_b_mean.txt") as f:
        assert f.read() == expected_mean()


def test_buffer_taken_over_and_rig_released():
    assert not os.path.exists("/var/lib/sensor/capture.json")
    with open("/var/lib/sensor/released") as f:
        assert f.read().startswith("released ")
