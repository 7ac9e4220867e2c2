"""Nothing a user's cache folder or working directory holds is ever run: the Verilog parser tables ship with
the package, and a poisoned file where older versions kept a pickle is neither loaded nor erased."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from .conftest import MUL2_VERILOG, run_process, strict_json


class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's pickle would do, harmlessly)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')", {}))


def _plant(path: Path, marker: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".py":
        data = f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
    else:
        data = pickle.dumps(_Payload(marker))
    path.write_bytes(data)
    return data


def _cache_files(cache: Path) -> list[Path]:
    """Where a parser-table cache could be looked for: the old pickle names and ply's module name."""
    import ply
    import pyverilog

    version = f"{pyverilog.__version__}_{ply.__version__}".replace(".", "_").replace("-", "_")
    folder = cache / "lutgen" / "pyverilog"
    return [folder / f"vparsetab_{version}.pickle", folder / "parsetab.py", folder / "vparsetab.pickle"]


@pytest.mark.parametrize("where", ["old pickle", "parsetab.py in the cache", "other pickle name", "parsetab.py here"])
def test_poisoned_parser_cache_is_never_run_nor_erased(tmp_path: Path, where: str) -> None:
    cache, work, marker = tmp_path / "cache", tmp_path / "work", tmp_path / "PWNED"
    work.mkdir()
    planted = {
        "old pickle": _cache_files(cache)[0],
        "parsetab.py in the cache": _cache_files(cache)[1],
        "other pickle name": _cache_files(cache)[2],
        "parsetab.py here": work / "parsetab.py",
    }[where]
    data = _plant(planted, marker)
    source = work / "mul2.v"
    source.write_text(MUL2_VERILOG)
    done = run_process(
        ["sim", source, "--no-write", "--json"], env={"XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)}, cwd=work
    )
    assert done.returncode == 0, done.stderr
    assert strict_json(done.stdout, "sim")["bits_a"] == 2
    assert not marker.exists(), "the planted payload ran"
    assert planted.read_bytes() == data, "the planted file was erased or rewritten (evidence lost)"


def test_parser_tables_are_package_data_checked_before_use(tmp_path: Path) -> None:
    """A malformed table structure is refused (ply then builds the tables in memory)."""
    from approxlut.circuits import parsetables

    assert parsetables.table_module({"action": {"0": {"X": "exec"}}, "goto": {}, "productions": []}) is None
    code = [["s", "n", 1, "os.system", None, 1]]
    assert parsetables.table_module({"action": {}, "goto": {}, "productions": code}) is None
    assert parsetables.table_module([1, 2, 3]) is None
    assert parsetables.shipped_tables()._lr_signature
