from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from approxlut.errors import InputError, ParseError
from approxlut.lutgen.formats import (
    LUTFP_FORWARD,
    LUTFP_GRAD_A,
    LUTFP_GRAD_B,
    TFAPPROX_BYTES,
    load_npz,
    lutfp_text,
    npz_meta,
    read_lutfp,
    read_tfapprox,
    save_npz,
    write_lutfp,
    write_tfapprox,
)
from approxlut.lutgen.lut import Lut

SAMPLE = "mul7u_06Q_lutfp.txt"
SAMPLE_GRAD = "mul7u_06Q_lutfp+bp_avg_4_4.txt"


def _random_lut(bits_a: int, bits_b: int, signed: bool, *, grads: bool, seed: int = 0) -> Lut:
    rng = np.random.default_rng(seed)
    exact = np.multiply.outer(
        np.arange(1 << bits_a) - (1 << (bits_a - 1) if signed else 0),
        np.arange(1 << bits_b) - (1 << (bits_b - 1) if signed else 0),
    )
    forward = (exact + rng.integers(-3, 4, exact.shape)).astype(np.int32)
    grad_a = rng.standard_normal(exact.shape).astype(np.float32) if grads else None
    grad_b = rng.standard_normal(exact.shape).astype(np.float32) if grads else None
    return Lut(forward, bits_a, bits_b, signed, name="rnd", grad_a=grad_a, grad_b=grad_b, meta={"k": [1, 2.5]})


def _same(x: Lut, y: Lut) -> bool:
    def eq(p: np.ndarray | None, q: np.ndarray | None) -> bool:
        return (p is None and q is None) or (p is not None and q is not None and np.array_equal(p, q))

    return (
        x.hash == y.hash
        and x.name == y.name
        and x.signed == y.signed
        and x.meta == y.meta
        and eq(x.grad_a, y.grad_a)
        and eq(x.grad_b, y.grad_b)
    )


# --------------------------------------------------------------------------------------- DATE'25 text


def test_lutfp_sample_is_read_and_reproduced(corpus: Path, tmp_path: Path) -> None:
    path = corpus / "date25" / SAMPLE
    lut = read_lutfp(path)
    assert (lut.bits_a, lut.bits_b, lut.signed, lut.name) == (7, 7, False, "mul7u_06Q")
    assert lut.grad_a is None and lut.grad_b is None
    assert lut.forward[127, 127] == 16058 and lut.forward[0, 5] == 0
    assert lutfp_text(lut, gradients=False) == path.read_text()
    out = tmp_path / SAMPLE
    write_lutfp(lut, out, gradients=False)
    assert out.read_bytes() == path.read_bytes()


def test_lutfp_gradient_file_is_read(corpus: Path) -> None:
    path = corpus / "date25" / SAMPLE_GRAD
    lut = read_lutfp(path)
    plain = read_lutfp(corpus / "date25" / SAMPLE)
    assert lut.hash == plain.hash
    assert lut.meta["half_window"] == 4 and lut.meta["grad_quantised"] == "round(16*g)"
    assert lut.grad_a is not None and lut.grad_b is not None
    assert lut.grad_a.dtype == np.float32
    assert lut.grad_a[0, 1] == 12 / 16 and lut.grad_b[127, 127] == 2007 / 16
    assert lutfp_text(lut, gradients=True) == path.read_text()


def test_gradients_computed_here_reproduce_the_gradient_file(corpus: Path, tmp_path: Path) -> None:
    lut = read_lutfp(corpus / "date25" / SAMPLE).with_gradients(4, compat=True)
    out = tmp_path / SAMPLE_GRAD
    write_lutfp(lut, out, gradients=True)
    assert out.read_bytes() == (corpus / "date25" / SAMPLE_GRAD).read_bytes()


def test_lutfp_equals_simulated_blif_and_verilog(corpus: Path) -> None:
    from approxlut.circuits.io import read_netlist
    from approxlut.lutgen.simulate import simulate_lut

    text_lut = read_lutfp(corpus / "date25" / SAMPLE)
    blif_lut = simulate_lut(read_netlist(corpus / "date25" / "mul7u_06Q_sop.blif"), signed=False)
    assert blif_lut.hash == text_lut.hash
    pytest.importorskip("approxlut.circuits.verilog")
    verilog_lut = simulate_lut(read_netlist(corpus / "evoapprox" / "narrow" / "v2022_mul7u_06Q.v"), signed=False)
    assert verilog_lut.hash == text_lut.hash


def test_lutfp_round_trip_of_other_shapes(tmp_path: Path) -> None:
    lut = _random_lut(3, 5, False, grads=True)
    lut = Lut(
        np.abs(lut.forward),
        3,
        5,
        False,
        name="odd",
        grad_a=np.round(lut.grad_a * 16) / 16,  # type: ignore[operator]
        grad_b=np.round(lut.grad_b * 16) / 16,  # type: ignore[operator]
    )
    path = tmp_path / "odd_lutfp+bp_avg_2_2.txt"
    write_lutfp(lut, path, gradients=True)
    back = read_lutfp(path)
    assert (back.bits_a, back.bits_b, back.name) == (3, 5, "odd")
    assert back.hash == lut.hash
    assert np.array_equal(back.grad_a, lut.grad_a) and np.array_equal(back.grad_b, lut.grad_b)


def test_lutfp_gradients_round_half_to_even(tmp_path: Path) -> None:
    forward = np.zeros((2, 2), dtype=np.int32)
    grad = np.array([[0.5 / 16, 1.5 / 16], [-0.5 / 16, -2.5 / 16]], dtype=np.float32)
    text = lutfp_text(Lut(forward, 1, 1, False, name="t", grad_a=grad, grad_b=grad), gradients=True)
    section = text.split("first operand:\n")[1].splitlines()[:4]
    assert section == ["0 0 0", "0 1 2", "1 0 0", "1 1 -2"]


def test_write_lutfp_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsigned"):
        write_lutfp(_random_lut(4, 4, True, grads=False), tmp_path / "s.txt", gradients=False)
    with pytest.raises(InputError, match="no gradient tables"):
        write_lutfp(Lut(np.zeros((4, 4), np.int32), 2, 2, False), tmp_path / "g.txt", gradients=True)
    with pytest.raises(InputError, match="uint16"):
        write_lutfp(Lut(np.full((4, 4), -1, np.int32), 2, 2, False), tmp_path / "n.txt", gradients=False)
    assert not list(tmp_path.iterdir())


def _rows(n: int) -> list[str]:
    return [f"{a} {b} {a * b}" for a in range(n) for b in range(n)]


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (["INFO: x", "LUT for approximate multiplier:", "0 0 0", "0 1", "1 0 0", "1 1 1"], 4, "expected 'a b value'"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 x", "1 0 0", "1 1 1"], 3, "'x' is not an integer"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 0", "1 0 0", "1 1 1_0"], 5, "'1_0' is not an integer"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 -1", "1 0 0", "1 1 1"], 3, "negative"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 0", "1 0 4294967296", "1 1 1"], 4, "outside int32"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 0", "1 1 0", "1 0 1"], 4, "expected row '1 0 ...'"),
        (["LUT for approximate multiplier:", *_rows(3)], 10, "power of two"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 0", "1 0 0"], 4, "3 rows do not form a table"),
        (["LUT for approximate multiplier:", "0 0 0", "1 0 0"], 3, "the table has 1 columns; .* at least 2"),
        (["LUT for approximate multiplier:", "0 0 0", "0 1 0"], 3, "the table has 1 rows; .* at least 2"),
        (["LUT for approximate multiplier:", "0 0 0"], 2, "the table has 1 rows; .* at least 2"),
        (["LUT for approximate multiplier:", "1 0 0"], 2, "first row must be '0 0"),
        (["hello", "LUT for approximate multiplier:", *_rows(2)], 1, "unexpected line"),
        (["INFO: half window = " + "9" * 5000, LUTFP_FORWARD, *_rows(2)], 1, "half window 999.* more than 9 digits"),
        (["INFO: only a header"], 1, "no 'LUT for approximate multiplier:' line"),
        (["LUT for approximate multiplier:", *_rows(2), "LUT for approximate multiplier:"], 6, "second"),
        (
            [
                "LUT for approximate multiplier:",
                *_rows(2),
                "LUT for the gradient of the approximate multiplier w.r.t. the first operand:",
                "0 0 1",
                "LUT for the gradient of the approximate multiplier w.r.t. the second operand:",
                *_rows(2),
            ],
            7,
            "grad_a section has 1 rows, expected 4",
        ),
    ],
)
def test_malformed_lutfp_names_the_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    path = tmp_path / "bad_lutfp.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError, match=message) as info:
        read_lutfp(path)
    assert info.value.line == line and info.value.path == str(path)


def test_lutfp_with_byte_order_mark_and_any_line_endings(tmp_path: Path) -> None:
    """A file saved by a Windows editor (UTF-8 mark, CRLF) or an old Mac (CR) reads as the plain one."""
    from approxlut.lutgen.formats import sniff_lut_format

    lines = ["INFO: x", "LUT for approximate multiplier:", *_rows(4)]
    plain = tmp_path / "p_lutfp.txt"
    plain.write_text("\n".join(lines) + "\n")
    for name, data in (("bom", "\ufeff" + "\r\n".join(lines)), ("cr", "\ufeff" + "\r".join(lines) + "\r")):
        path = tmp_path / f"{name}_lutfp.txt"
        path.write_bytes(data.encode())
        assert sniff_lut_format(path) == "lutfp"
        assert read_lutfp(path).hash == read_lutfp(plain).hash


def test_negative_gradients_are_kept(tmp_path: Path) -> None:
    """Only the forward section is an unsigned multiplier's output; gradients may be negative."""
    path = tmp_path / "g_lutfp+bp_avg_1_1.txt"
    grad = ["0 0 -16", "0 1 0", "1 0 0", "1 1 16"]
    path.write_text("\n".join([LUTFP_FORWARD, *_rows(2), LUTFP_GRAD_A, *grad, LUTFP_GRAD_B, *grad]) + "\n")
    assert read_lutfp(path).grad_a.tolist() == [[-1.0, 0.0], [0.0, 1.0]]  # type: ignore[union-attr]


def test_lutfp_missing_gradient_section_and_binary(tmp_path: Path) -> None:
    path = tmp_path / "x_lutfp.txt"
    path.write_text(
        "\n".join(
            [
                "LUT for approximate multiplier:",
                *_rows(2),
                "LUT for the gradient of the approximate multiplier w.r.t. the first operand:",
                *_rows(2),
            ]
        )
        + "\n"
    )
    with pytest.raises(ParseError, match="second operand is missing"):
        read_lutfp(path)
    path.write_bytes(b"LUT for approximate multiplier:\n0 0 \xff\n")
    with pytest.raises(ParseError, match="non-ASCII") as info:
        read_lutfp(path)
    assert info.value.line == 2
    with pytest.raises(ParseError, match="no such file"):
        read_lutfp(tmp_path / "missing.txt")


# ------------------------------------------------------------------------------------------------- npz


@pytest.mark.parametrize(
    ("bits_a", "bits_b", "signed", "grads"), [(8, 8, True, True), (4, 6, False, False), (1, 1, True, True)]
)
def test_npz_round_trip(tmp_path: Path, bits_a: int, bits_b: int, signed: bool, grads: bool) -> None:
    lut = _random_lut(bits_a, bits_b, signed, grads=grads)
    path = tmp_path / "m.npz"
    save_npz(lut, path)
    assert _same(load_npz(path), lut)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary file left behind


def test_npz_keeps_one_gradient_and_numpy_meta(tmp_path: Path) -> None:
    base = _random_lut(3, 3, False, grads=True)
    lut = Lut(base.forward, 3, 3, False, name="g", grad_b=base.grad_b, meta={"n": np.int64(3), "x": np.float32(0.5)})
    save_npz(lut, tmp_path / "g.npz")
    back = load_npz(tmp_path / "g.npz")
    assert back.grad_a is None and np.array_equal(back.grad_b, base.grad_b)
    assert back.meta == {"n": 3, "x": 0.5}


def test_npz_overwrite_is_atomic_and_refuses_bad_meta(tmp_path: Path) -> None:
    path = tmp_path / "m.npz"
    first = _random_lut(4, 4, False, grads=False)
    save_npz(first, path)
    with pytest.raises(InputError, match="JSON"):
        save_npz(Lut(first.forward, 4, 4, False, meta={"bad": object()}), path)
    assert _same(load_npz(path), first)
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_npz_truncated_or_flipped_is_reported(tmp_path: Path) -> None:
    lut = _random_lut(4, 4, True, grads=True)
    good = tmp_path / "good.npz"
    save_npz(lut, good)
    data = good.read_bytes()
    bad = tmp_path / "bad.npz"
    for cut in (0, 1, 10, 100, len(data) // 2, len(data) - 30, len(data) - 1):
        bad.write_bytes(data[:cut])
        with pytest.raises(ParseError) as info:
            load_npz(bad)
        assert info.value.path == str(bad)
    reported = 0
    for offset in range(0, len(data), 7):
        flipped = bytearray(data)
        flipped[offset] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            back = load_npz(bad)
        except ParseError:
            reported += 1
        else:  # the byte was in a field that does not matter (a timestamp, padding): same content
            assert _same(back, lut)
    assert reported > len(data) // 7 * 0.8


def _npz_with(path: Path, **arrays: np.ndarray) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for key, value in arrays.items():
            with z.open(f"{key}.npy", "w") as f:
                np.lib.format.write_array(f, value, allow_pickle=False)


def _meta(lut: Lut, **changes: object) -> np.ndarray:
    return np.array(json.dumps({**npz_meta(lut), **changes}))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (lambda lut: {"forward": lut.forward}, "'meta' is missing"),
        (lambda lut: {"meta": _meta(lut)}, "'forward' is missing"),
        (lambda lut: {"forward": lut.forward, "meta": _meta(lut), "extra": lut.forward}, "unexpected arrays extra"),
        (lambda lut: {"forward": lut.forward.astype(np.int64), "meta": _meta(lut)}, "expected int32"),
        (lambda lut: {"forward": lut.forward[:2], "meta": _meta(lut)}, "expected int32"),
        (lambda lut: {"forward": lut.forward, "meta": _meta(lut, hash="0" * 64)}, "recorded hash"),
        (lambda lut: {"forward": lut.forward, "meta": _meta(lut, bits_a="4")}, "'bits_a' has the wrong type"),
        (lambda lut: {"forward": lut.forward, "meta": _meta(lut, bits_a=40)}, "outside"),
        (lambda lut: {"forward": lut.forward, "meta": np.array("{not json")}, "not valid JSON"),
        (lambda lut: {"forward": lut.forward, "meta": np.array(3)}, "not a JSON string"),
        (lambda lut: {"forward": lut.forward, "meta": _meta(lut), "grad_a": lut.forward}, "'grad_a' is int32"),
        (
            lambda lut: {"forward": lut.forward, "meta": _meta(lut), "grad_a": lut.forward.astype(np.float32)},
            "gradient tables do not match",
        ),
    ],
)
def test_npz_wrong_content_is_reported(tmp_path: Path, arrays, message: str) -> None:
    lut = _random_lut(4, 4, False, grads=False)
    path = tmp_path / "w.npz"
    _npz_with(path, **arrays(lut))
    with pytest.raises(ParseError, match=message):
        load_npz(path)


def test_npz_refuses_pickles_and_non_files(tmp_path: Path) -> None:
    path = tmp_path / "p.npz"
    with zipfile.ZipFile(path, "w") as z, z.open("forward.npy", "w") as f:
        np.lib.format.write_array(f, np.array([object()]), allow_pickle=True)
    with pytest.raises(ParseError):
        load_npz(path)
    with pytest.raises(ParseError, match="directory"):
        load_npz(tmp_path)
    with pytest.raises(ParseError, match="no such file"):
        load_npz(tmp_path / "none.npz")


# -------------------------------------------------------------------------------------------- TFApprox


def test_tfapprox_round_trip_and_layout(tmp_path: Path) -> None:
    lut = _random_lut(8, 8, False, grads=False)
    lut = Lut(np.clip(lut.forward, 0, 65535), 8, 8, False, name="t")
    path = tmp_path / "t.bin"
    write_tfapprox(lut, path)
    data = path.read_bytes()
    assert len(data) == TFAPPROX_BYTES
    a, b = 200, 3
    assert int.from_bytes(data[2 * (a * 256 + b) : 2 * (a * 256 + b) + 2], "little") == lut.forward[a, b]
    back = read_tfapprox(path)
    assert back.hash == lut.hash and back.name == "t" and back.meta["format"] == "tfapprox"


def test_tfapprox_refuses_what_it_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unsigned 8x8"):
        write_tfapprox(_random_lut(8, 8, True, grads=False), tmp_path / "s.bin")
    with pytest.raises(InputError, match="unsigned 8x8"):
        write_tfapprox(_random_lut(7, 7, False, grads=False), tmp_path / "s.bin")
    with pytest.raises(InputError, match="uint16"):
        write_tfapprox(Lut(np.full((256, 256), 70000, np.int32), 8, 8, False), tmp_path / "s.bin")
    assert not list(tmp_path.iterdir())
    path = tmp_path / "short.bin"
    path.write_bytes(b"\0" * (TFAPPROX_BYTES - 2))
    with pytest.raises(ParseError, match="this file has 131070"):
        read_tfapprox(path)
