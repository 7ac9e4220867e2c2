"""Block sizes from the machine's caches (sysfs), the override and its validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from approxlut.errors import ConfigError
from approxlut.native import tuning


def fake_sysfs(root: Path, caches: list[tuple[int, str, str]]) -> Path:
    for i, (level, kind, size) in enumerate(caches):
        entry = root / f"index{i}"
        entry.mkdir(parents=True)
        (entry / "level").write_text(f"{level}\n")
        (entry / "type").write_text(f"{kind}\n")
        (entry / "size").write_text(f"{size}\n")
    return root


@pytest.mark.parametrize(
    ("caches", "l1d", "l2"),
    [
        # Intel Xeon (Sapphire Rapids class): 48 KiB L1d, 2 MiB L2
        (
            [(1, "Data", "48K"), (1, "Instruction", "32K"), (2, "Unified", "2048K"), (3, "Unified", "491520K")],
            48 << 10,
            2 << 20,
        ),
        # AMD Zen 4: 32 KiB L1d, 1 MiB L2
        (
            [(1, "Data", "32K"), (1, "Instruction", "32K"), (2, "Unified", "1024K"), (3, "Unified", "32768K")],
            32 << 10,
            1 << 20,
        ),
    ],
    ids=["intel", "amd"],
)
def test_cache_sizes_from_sysfs(tmp_path: Path, caches: list[tuple[int, str, str]], l1d: int, l2: int) -> None:
    sizes = tuning.read_cache_sizes(fake_sysfs(tmp_path, caches))
    assert sizes == tuning.CacheSizes(l1d, l2, "sysfs")


def test_cache_sizes_default_when_missing_or_unreadable(tmp_path: Path) -> None:
    assert tuning.read_cache_sizes(tmp_path / "absent").source == "default"
    root = fake_sysfs(tmp_path / "partial", [(1, "Data", "48K"), (2, "Unified", "lots")])
    sizes = tuning.read_cache_sizes(root)
    assert sizes == tuning.CacheSizes(48 << 10, tuning.DEFAULT_L2, "default")


def test_panel_budget_follows_l2_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tuning.PANEL_ENV, raising=False)
    monkeypatch.setattr(tuning, "cache_sizes", lambda: tuning.CacheSizes(32 << 10, 1 << 20, "sysfs"))
    assert tuning.panel_bytes() == 512 << 10 and tuning.k_slice() == 2048
    monkeypatch.setattr(tuning, "cache_sizes", lambda: tuning.CacheSizes(48 << 10, 2 << 20, "sysfs"))
    assert tuning.k_slice() == 4096
    monkeypatch.setenv(tuning.PANEL_ENV, "100")
    assert tuning.k_slice() == 1  # never below one row of k
    for bad in ("0", "-5", "1MB"):
        monkeypatch.setenv(tuning.PANEL_ENV, bad)
        with pytest.raises(ConfigError, match=tuning.PANEL_ENV):
            tuning.panel_bytes()
