"""Help texts state what an option does and its default, in the words the README uses."""

from __future__ import annotations

from click.testing import CliRunner

from approxlut.cli import main


def _help(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "-h"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_help_states_the_defaults_and_forms_the_commands_take() -> None:
    assert "[default: unsigned]" in _help("synth", "generate")
    assert "assignment.json[#N" in _help("retrain")
    export = _help("library", "export")
    assert "--format [npz|tfapprox|lutfp] Table format" in export
    assert "--half-window INTEGER RANGE Gradient LUTs (npz, lutfp --gradients):" in export
    assert "(default: 3; 1 with --quick)" in _help("bench")


def test_filter_and_signedness_options_say_what_they_take() -> None:
    assert "as for `library list --filter`" in _help("evaluate")
    assert "of the files that do not say it (by their name, signed Verilog ports" in _help("library", "import")


def test_sim_samples_states_its_default() -> None:
    assert "default: exhaustive up to 28 input bits, a table up to 24, else 2^22 samples" in _help("sim")
