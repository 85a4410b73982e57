"""The installed tree: its layout, the CMake package and the pkg-config file, and what the
Python wheel exposes for extension authors."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import fastinv
from _embed import clean_env, require_tools, run


def test_install_layout(prefix):
    for rel in (
        "include/fastinv/fastinv.h",
        "include/fastinv/fastinv.hpp",
        "include/fastinv/dem/deepem.hpp",
        "lib/libfastinv.a",
        "lib/libfastinv.so",
        "lib/cmake/fastinv/fastinvConfig.cmake",
        "lib/cmake/fastinv/fastinvConfigVersion.cmake",
        "lib/pkgconfig/fastinv.pc",
        "share/fastinv/deepem.safetensors",
        "share/fastinv/deepem21.safetensors",
        "share/fastinv/stokes_hinode.safetensors",
        "share/fastinv/aia_v10_eve.csv",
    ):
        assert (prefix / rel).exists(), rel


def test_cpu_build_has_no_cuda_dependency(prefix):
    require_tools("ldd")
    libs = run(["ldd", prefix / "lib" / "libfastinv.so"]).stdout
    assert "cuda" not in libs.lower()
    assert "CUDA" not in (prefix / "lib/cmake/fastinv/fastinvTargets.cmake").read_text()


def test_pkg_config_is_relocatable(prefix):
    require_tools("pkg-config")
    env = clean_env(PKG_CONFIG_PATH=str(prefix / "lib" / "pkgconfig"))
    cflags = run(["pkg-config", "--cflags", "fastinv"], env=env).stdout.split()
    libs = run(["pkg-config", "--libs", "fastinv"], env=env).stdout.split()
    assert [Path(f[2:]).resolve() for f in cflags] == [(prefix / "include").resolve()]
    assert Path(libs[0][2:]).resolve() == (prefix / "lib").resolve() and libs[1] == "-lfastinv"


def test_newer_header_than_library_fails_clearly(prefix, tmp_path):
    """A program compiled against a header of a later API level stops at fastinv_check_api."""
    header = (prefix / "include/fastinv/fastinv.h").read_text()
    newer = tmp_path / "include" / "fastinv"
    newer.mkdir(parents=True)
    bumped = re.sub(
        r"#define FASTINV_API_VERSION (\d+)", lambda m: f"#define FASTINV_API_VERSION {int(m[1]) + 1}", header
    )
    assert bumped != header
    (newer / "fastinv.h").write_text(bumped)
    src = tmp_path / "main.c"
    src.write_text(
        "#include <fastinv/fastinv.h>\n#include <stdio.h>\n"
        "int main(void) { if (fastinv_check_api(FASTINV_API_VERSION) != FASTINV_VERSION_MISMATCH) return 3;\n"
        "  puts(fastinv_last_error()); return 0; }\n"
    )
    exe = tmp_path / "main"
    run(
        [
            "cc",
            "-std=c99",
            f"-I{tmp_path / 'include'}",
            src,
            f"-L{prefix / 'lib'}",
            "-lfastinv",
            f"-Wl,-rpath,{prefix / 'lib'}",
            "-o",
            exe,
        ]
    )
    out = run([exe], env=clean_env()).stdout
    level = int(re.search(r"#define FASTINV_API_VERSION (\d+)", header)[1])
    assert f"API version {level + 1}" in out and f"API version {level}" in out


def test_wheel_exposes_headers_and_library(tmp_path, aia_image):
    """fastinv.get_include() / get_library_dir(): a C program builds against the Python
    package's own library, the one _core runs on, and matches the Python API."""
    require_tools("cc")
    inc, lib, cmake_dir = Path(fastinv.get_include()), Path(fastinv.get_library_dir()), Path(fastinv.get_cmake_dir())
    assert (inc / "fastinv" / "fastinv.h").is_file() and (cmake_dir / "fastinvConfig.cmake").is_file()
    assert (lib / "libfastinv.so").is_file()
    exe = tmp_path / "deepem_total_em"
    src = Path(__file__).resolve().parents[2] / "examples" / "c" / "deepem_total_em.c"
    run(["cc", "-std=c99", "-O2", f"-I{inc}", src, f"-L{lib}", "-lfastinv", f"-Wl,-rpath,{lib}", "-o", exe])
    path, y = aia_image
    # an editable install keeps the data in the source tree: name it
    data = Path(fastinv.__file__).parent / "data"
    proc = subprocess.run(
        [exe, path, str(y.shape[1])], capture_output=True, text=True, env=clean_env(FASTINV_DATA_DIR=str(data))
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{y.shape[1]} pixels" in proc.stdout


def test_missing_data_is_a_clear_error(prefix, tmp_path):
    src = tmp_path / "main.c"
    src.write_text(
        "#include <fastinv/fastinv.h>\n#include <stdio.h>\n"
        "int main(void) { fastinv_deepem* d; fastinv_status s = fastinv_deepem_load(NULL, &d);\n"
        '  printf("%d %s\\n", (int)s, fastinv_last_error()); return 0; }\n'
    )
    exe = tmp_path / "main"
    run(
        [
            "cc",
            "-std=c99",
            f"-I{prefix / 'include'}",
            src,
            f"-L{prefix / 'lib'}",
            "-lfastinv",
            f"-Wl,-rpath,{prefix / 'lib'}",
            "-o",
            exe,
        ]
    )
    out = run([exe], env=clean_env(FASTINV_DATA_DIR=str(tmp_path))).stdout
    assert out.startswith("3 ") and "FASTINV_DATA_DIR" in out, out


def test_every_c_function_is_documented():
    """docs/embedding.md's reference names every function fastinv.h declares."""
    import re

    root = Path(__file__).resolve().parents[2]
    header = (root / "cpp" / "include" / "fastinv" / "fastinv.h").read_text()
    doc = (root / "docs" / "embedding.md").read_text()
    declared = set(re.findall(r"^\S.*?\b(fastinv_\w+)\(", header, re.M))
    assert len(declared) > 25
    assert sorted(f for f in declared if not re.search(rf"`{f}[(`]", doc)) == []
