import numpy as np
import pytest

from jaxdistill.report import kd_table, plot_kd_sweep, write_table


def _record():
    def group(errors, **kw):
        return {"test_errors": errors, **kw}
    sweep = [group([100 - 10 * t + a, 101 - 10 * t], temperature=t, alpha=a,
                   significance_vs_alone={"difference": 10.0 * t, "standard_error": 1.0, "z": 10.0 * t})
             for t in (1.0, 2.0) for a in (0.1, 0.5)]
    return {"num_test": 1000, "teacher": group([60, 62]), "student_alone": group([120, 130]), "sweep": sweep}


def test_kd_table_has_one_row_per_configuration_with_means_and_gains():
    df = kd_table(_record())
    assert df["network"].tolist() == ["teacher", "student alone"] + ["student + KD"] * 4
    alone = df.iloc[1]
    assert alone["errors_mean"] == 125.0 and alone["errors_std"] == 5.0
    assert alone["accuracy_%"] == pytest.approx(87.5)
    assert np.isnan(alone["z"]) and df.iloc[2]["z"] == 10.0


def test_tables_and_figure_are_written(tmp_path):
    rec = _record()
    csv, md = write_table(kd_table(rec), tmp_path / "t" / "kd")
    assert csv.read_text().startswith("network,T,alpha")
    assert "| teacher" in md.read_text()
    png = plot_kd_sweep(rec, tmp_path / "f" / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
