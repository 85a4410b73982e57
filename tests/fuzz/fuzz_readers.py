"""Seeded fuzz of the FITS readers behind the CLI: mutated headers (structural and physical
keywords set to hostile values, bytes flipped) and data (bytes flipped, truncated, garbage
appended) of valid AIA, Hinode SP and ViSP files. Every case must be read or raise
ValueError/TypeError/OSError whose message names the file; anything else (another
exception, a crash, a hang) is a failure.

Run: python tests/fuzz/fuzz_readers.py WORKDIR N_CASES SEED  (prints one JSON line of failures)
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

KEYS = [
    "SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "PCOUNT", "GCOUNT", "EXPTIME", "WAVELNTH",
    "TELESCOP", "INSTRUME", "SPBSHFT", "SLITINDX", "XCEN", "YCEN", "XSCALE", "YSCALE", "CROTA2", "CRVAL1",
    "CDELT1", "CRPIX1", "CUNIT1", "CTYPE1", "CRVAL2", "CDELT2", "CRPIX2", "CUNIT2", "CTYPE2", "DINDEX3", "DINDEX4",
    "BUNIT", "END",
]  # fmt: skip
VALUES = [
    "99999999999999999999", "-1", "0", "1", "3", "7", "64", "2147483648", "-2147483649", "1E308", "-1E308",
    "1.5", "T", "F", "'text'", "''", "'NaN'", "NAN", "1e-320", "-0.0", "999", "1000", "4000000000000", "'m'",
    "'nm'", "'AWAV'", "'HPLT-TAN'",
]  # fmt: skip


def set_card(raw: bytes, key: str, value: str, rng: random.Random) -> bytes:
    starts = [i for i in range(0, min(len(raw), 2880 * 40), 80) if raw[i : i + 8] == key.ljust(8).encode()]
    card = f"{key:<8}= {value:>20}".ljust(80).encode()
    if starts:
        i = rng.choice(starts)
        return raw[:i] + card + raw[i + 80 :]
    i = 80 * rng.randrange(1, 30)  # a new card over whatever was there
    return raw[:i] + card + raw[i + 80 :]


def mutate(raw: bytes, rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.55:
        for _ in range(rng.randint(1, 3)):
            raw = set_card(raw, rng.choice(KEYS), rng.choice(VALUES), rng)
        return raw
    b = bytearray(raw)
    if kind < 0.7:  # header bytes
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(min(len(b), 2880 * 2))] = rng.randrange(256)
    elif kind < 0.85:  # data bytes
        for _ in range(rng.randint(1, 64)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind < 0.95:
        del b[rng.randrange(len(b)) :]
    else:
        b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6000)))
    return bytes(b)


def _read_all(kind: str, paths: list[str]) -> None:
    if kind == "aia":
        from fastinv.dem.io import read_aia

        read_aia(paths)
    elif kind == "hinode":
        from fastinv.stokes.io.hinode import hinode_map_wcs, read_hinode_slit, slit_columns, sort_slits

        slits = [read_hinode_slit(p) for p in paths]
        headers = [s.header for s in slits]
        order = sort_slits(headers, paths)
        cols = slit_columns([headers[k] for k in order], [paths[k] for k in order])
        hinode_map_wcs([headers[k] for k in order], slits[0].stokes.shape[1], cols, paths)
    else:
        from fastinv.stokes.io.visp import group_visp_files, read_visp_step

        for step in group_visp_files(paths):
            read_visp_step(step)


def run(workdir: Path, sets: dict[str, list[str]], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    failures = []
    names = sorted(sets)
    for case in range(n):
        kind = names[case % len(names)]
        files = sets[kind]
        d = workdir / f"case{case % 4}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        paths = [str(d / Path(f).name) for f in files]
        for f, p in zip(files, paths):
            shutil.copy(f, p)
        victim = rng.randrange(len(paths))
        Path(paths[victim]).write_bytes(mutate(Path(files[victim]).read_bytes(), rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _read_all(kind, paths)
        except (ValueError, TypeError, OSError) as exc:
            text = str(exc)
            if not any(Path(p).name in text for p in paths) and "channel" not in text:
                failures.append({"case": case, "kind": kind, "error": f"{type(exc).__name__}: {text[:200]}"})
        except Exception as exc:  # noqa: BLE001 - the point of the fuzz
            failures.append({"case": case, "kind": kind, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return failures


def main() -> None:
    workdir, n, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    sets = json.loads((workdir / "sets.json").read_text())
    np.seterr(all="ignore")
    print(json.dumps(run(workdir, sets, n, seed)))


if __name__ == "__main__":
    main()
