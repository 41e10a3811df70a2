import hashlib
import math
import os
import shutil
import subprocess

import pytest

SRC = "/app/geokit"
DIST = "/app/dist"
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}


def sh(cmd, cwd=None, check=True, env=None):
    res = subprocess.run(cmd, cwd=cwd, shell=True, capture_output=True, text=True, timeout=180,
                         env=env or CLEAN_ENV)
    if check:
        assert res.returncode == 0, f"{cmd}\n{res.stdout}\n{res.stderr}"
    return res


def haversine(lat1, lon1, lat2, lon2):
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.atan2(math.sqrt(h), math.sqrt(1 - h))


def dynamic(path):
    return sh(f"readelf -d {path}").stdout


def test_install_layout():
    lib = os.path.join(DIST, "lib")
    real = os.path.join(lib, "libgeo.so.2.1.0")
    assert os.path.isfile(real) and not os.path.islink(real)
    for link in ("libgeo.so.2", "libgeo.so"):
        assert os.path.islink(os.path.join(lib, link))
        assert os.path.realpath(os.path.join(lib, link)) == os.path.realpath(real)
    assert not os.path.exists(os.path.join(lib, "libgeo.a"))
    assert os.access(os.path.join(DIST, "bin", "geocalc"), os.X_OK)
    version_h = open(os.path.join(DIST, "include", "geo", "version.h")).read()
    assert '#define GEO_VERSION_STRING "2.1.0"' in version_h
    assert "@" not in version_h
    assert os.path.isfile(os.path.join(DIST, "include", "geo", "geo.h"))
    assert os.path.isfile(os.path.join(lib, "cmake", "geo", "geoConfig.cmake"))
    assert "SONAME" in dynamic(real) and "[libgeo.so.2]" in dynamic(real)


def test_runpath_is_relative():
    info = dynamic(os.path.join(DIST, "bin", "geocalc"))
    assert "Shared library: [libgeo.so.2]" in info
    paths = [line.split("[", 1)[1].rstrip("]") for line in info.splitlines() if "RUNPATH" in line or "RPATH" in line]
    assert paths, "geocalc has no RPATH/RUNPATH"
    for p in paths:
        assert "$ORIGIN" in p
        for entry in p.split(":"):
            assert entry.startswith("$ORIGIN"), p


def test_relocated_geocalc_runs(tmp_path):
    moved = tmp_path / "elsewhere" / "prefix"
    shutil.copytree(DIST, moved, symlinks=True)
    exe = str(moved / "bin" / "geocalc")
    assert sh(f"{exe} --version").stdout == "geocalc 2.1.0 (libgeo 2.1.0)\n"
    out = sh(f"{exe} dist 40.4168 -3.7038 -33.8688 151.2093").stdout
    assert out.endswith(" km\n")
    assert abs(float(out.split()[0]) - haversine(40.4168, -3.7038, -33.8688, 151.2093)) < 0.002
    assert sh(f"{exe} bearing 0 0 0 10").stdout == "90.0 deg\n"
    pts = [(10.0, 10.0), (10.5, 11.0), (11.0, 10.0), (10.2, 9.5)]
    (tmp_path / "poly.txt").write_text("".join(f"{a} {b}\n" for a, b in pts))
    out = sh(f"{exe} perimeter {tmp_path / 'poly.txt'}").stdout
    want = sum(haversine(*pts[i], *pts[(i + 1) % 4]) for i in range(4))
    assert abs(float(out.split()[0]) - want) < 0.002


def snapshot(root):
    result = {}
    for base, dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            result[os.path.relpath(path, root)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return result


def test_fresh_build_ctest_and_clean_source_tree(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("build", "build-*", "version.h"))
    before = snapshot(src)
    build, inst = tmp_path / "build", tmp_path / "inst"
    sh(f"cmake -S {src} -B {build} -DCMAKE_INSTALL_PREFIX={inst}")
    sh(f"cmake --build {build} -j4")
    res = sh(f"ctest --test-dir {build} --output-on-failure", check=False)
    assert res.returncode == 0, res.stdout
    assert "geo_unit" in res.stdout and "100% tests passed, 0 tests failed out of 1" in res.stdout
    sh(f"cmake --install {build}")
    assert os.path.isfile(inst / "lib" / "libgeo.so.2.1.0")
    assert snapshot(src) == before, "the build modified the source tree"


CONSUMER_CMAKE = """cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(geo {version} CONFIG REQUIRED)
add_executable(consumer main.c)
target_link_libraries(consumer PRIVATE geo::geo)
"""

CONSUMER_MAIN = """#include <stdio.h>
#include <geo/geo.h>
int main(void) {
    geo_point a = {0.0, 0.0}, b = {0.0, 1.0};
    printf("%s %d %.2f\\n", geo_version(), GEO_VERSION_MAJOR, geo_distance_km(a, b));
    return 0;
}
"""


@pytest.mark.parametrize("version,ok", [("2.1", True), ("3.0", False)])
def test_find_package_consumer(tmp_path, version, ok):
    proj = tmp_path / "consumer"
    proj.mkdir()
    (proj / "CMakeLists.txt").write_text(CONSUMER_CMAKE.format(version=version))
    (proj / "main.c").write_text(CONSUMER_MAIN)
    res = sh(f"cmake -S {proj} -B {proj / 'build'} -DCMAKE_PREFIX_PATH={DIST}", check=False)
    if not ok:
        assert res.returncode != 0
        return
    assert res.returncode == 0, res.stdout + res.stderr
    sh(f"cmake --build {proj / 'build'}")
    out = sh(str(proj / "build" / "consumer")).stdout
    assert out == "2.1.0 2 %.2f\n" % haversine(0, 0, 0, 1)


def test_sources_unchanged():
    digest = hashlib.sha256()
    for rel in ("app/geocalc.c", "lib/include/geo/geo.h", "lib/include/geo/version.h.in", "lib/src/distance.c",
                "lib/src/internal.h", "lib/src/polygon.c", "lib/src/version.c", "tests/test_geo.c"):
        digest.update(open(os.path.join(SRC, rel), "rb").read())
    assert digest.hexdigest() == "e986ff11234500f989d4d3ce4de4a87a7606e22bad346d857e2932164732cdc4"
