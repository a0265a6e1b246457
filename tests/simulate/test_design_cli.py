"""``ildtrial design`` prints the operating characteristics and writes the table and plot."""

from __future__ import annotations

from ildtrial.cli import main


def test_design_command_reports_type_i_error_power_and_stopping(tmp_path, capsys):
    assert main(["design", "--n-per-arm", "10", "--effects", "0,315", "--sae-rates", "0,0.02", "--trials", "200",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rejection_rate" in out and "stop_probability" in out and "trials/s" in out
    assert (tmp_path / "design.csv").read_text().count("\n") == 1 + 2 * 2
    assert (tmp_path / "design-power.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_design_command_refuses_too_few_trials(capsys):
    assert main(["design", "--trials", "3"]) == 2
    assert "--trials" in capsys.readouterr().err
