import hashlib
import json
import math
import os

RUNS = "/app/data/runs"
INPUT_HASHES = {
    "run_2024-03-01_TC07.csv": "ebfc10341875c697581bc5682e1068c1f7e15232cbd41a66df189ab1cf54727a",
    "run_2024-03-04_TC07.csv": "e4828cdd5e8edf11e35b92e87f50c03a069a35934d96008ad296a71a5a7ac3de",
    "run_2024-03-08_TC07.csv": "cda750c7b4631f35a9d7d14e8f99c52667404072b3bb49cb31e6e2f5bbcba1fa",
    "run_2024-03-09_TC07.csv": "bcf30e018cdbe1ebbd923040c9785fd802515bdaf325c77d382af335e03f9a22",
    "run_2024-03-10_TC09.csv": "497bdf25ae4a9cc4f98aa8e8dc671da6e24122d651ffaa7973f44ecbd6133ba8",
    "run_2024-03-12_TC07.csv": "f593bec25be6b202d6128df5b4db5bb03b1023d0fcbdc74b808ce46563bc9241",
}
# usable TC-07 rows, derived by hand from the raw run files (source, temp_C, voltage_mV)
EXPECTED_POINTS = [
    ("run_2024-03-08_TC07.csv", -20.0000, -0.8363),
    ("run_2024-03-01_TC07.csv", 0.0000, -0.0086),
    ("run_2024-03-08_TC07.csv", 5.0000, 0.1885),
    ("run_2024-03-04_TC07.csv", 10.0000, 0.3786),
    ("run_2024-03-12_TC07.csv", 15.0000, 0.5920),
    ("run_2024-03-01_TC07.csv", 25.0000, 0.9977),
    ("run_2024-03-08_TC07.csv", 30.0000, 1.2186),
    ("run_2024-03-12_TC07.csv", 45.0000, 1.8063),
    ("run_2024-03-01_TC07.csv", 50.0000, 2.0486),
    ("run_2024-03-08_TC07.csv", 55.0000, 2.2278),
    ("run_2024-03-04_TC07.csv", 60.0000, 2.4517),
    ("run_2024-03-01_TC07.csv", 75.0000, 3.0452),
    ("run_2024-03-08_TC07.csv", 80.0000, 3.2526),
    ("run_2024-03-12_TC07.csv", 95.0000, 3.8633),
    ("run_2024-03-01_TC07.csv", 100.0000, 4.0804),
    ("run_2024-03-08_TC07.csv", 105.0000, 4.2691),
    ("run_2024-03-04_TC07.csv", 110.0000, 4.4785),
    ("run_2024-03-08_TC07.csv", 130.0000, 5.2788),
    ("run_2024-03-12_TC07.csv", 145.0000, 5.9199),
    ("run_2024-03-01_TC07.csv", 150.0000, 6.1068),
    ("run_2024-03-08_TC07.csv", 155.0000, 6.3101),
    ("run_2024-03-04_TC07.csv", 160.0000, 6.5084),
    ("run_2024-03-01_TC07.csv", 175.0000, 7.1265),
    ("run_2024-03-08_TC07.csv", 180.0000, 7.3311),
    ("run_2024-03-12_TC07.csv", 195.0000, 7.9537),
    ("run_2024-03-01_TC07.csv", 200.0000, 8.1536),
    ("run_2024-03-08_TC07.csv", 205.0000, 8.3540),
    ("run_2024-03-04_TC07.csv", 210.0000, 8.5752),
    ("run_2024-03-08_TC07.csv", 230.0000, 9.3704),
    ("run_2024-03-12_TC07.csv", 245.0000, 9.9997),
    ("run_2024-03-08_TC07.csv", 255.0000, 10.3960),
    ("run_2024-03-12_TC07.csv", 295.0000, 12.0485),
    ("run_2024-03-04_TC07.csv", 310.0000, 12.6439),
    ("run_2024-03-12_TC07.csv", 345.0000, 14.0963),
]


def fit():
    n = len(EXPECTED_POINTS)
    xs = [p[1] for p in EXPECTED_POINTS]
    ys = [p[2] for p in EXPECTED_POINTS]
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    res = [y - (slope * x + intercept) for x, y in zip(xs, ys)]
    ss_res = sum(r * r for r in res)
    ss_tot = sum((y - my) ** 2 for y in ys)
    return slope, intercept, 1 - ss_res / ss_tot, max(abs(r) for r in res)


def test_inputs_unchanged():
    assert sorted(os.listdir(RUNS)) == sorted(INPUT_HASHES)
    for name, digest in INPUT_HASHES.items():
        with open(os.path.join(RUNS, name), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest, name


def test_points_csv():
    with open("/app/results/points.csv") as f:
        lines = [l.strip() for l in f.read().strip().splitlines()]
    assert lines[0] == "source,temp_C,voltage_mV"
    expected = [f"{s},{t:.4f},{v:.4f}" for s, t, v in EXPECTED_POINTS]
    assert lines[1:] == expected


def test_points_exclude_wrong_sensor_and_rejects():
    with open("/app/results/points.csv") as f:
        body = f.read()
    assert "TC09" not in body and "run_2024-03-09_TC07.csv" not in body
    assert "5.9815" not in body  # status=reject row
    assert "9.0998" not in body  # status=REJECT row


def load_json():
    with open("/app/results/calibration.json") as f:
        return json.load(f)


def test_calibration_fields():
    data = load_json()
    assert set(data) == {"sensor", "n_points", "slope_mV_per_C", "intercept_mV", "r_squared", "max_abs_residual_mV"}
    assert data["sensor"] == "TC-07"
    assert data["n_points"] == 34


def test_calibration_values():
    data = load_json()
    slope, intercept, r2, maxres = fit()
    for key, ref in (("slope_mV_per_C", slope), ("intercept_mV", intercept),
                     ("r_squared", r2), ("max_abs_residual_mV", maxres)):
        got = data[key]
        assert isinstance(got, float) or isinstance(got, int), key
        assert math.isclose(got, round(ref, 6), abs_tol=1.5e-6), (key, got, ref)
        assert round(got, 6) == got, f"{key} not rounded to 6 decimals"
