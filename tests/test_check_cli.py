"""`swindex check` on the command line: the report, --json, and exit status 0 / 1 / 2 / 3 for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from check_support import down_projections, entry_with, linear_weight, llama_config, write_folder
from swindex.checkpoint.report import REPORT_KEYS
from swindex.cli import main
from swindex.yamlio import dump_yaml


@pytest.fixture
def entry_file(tmp_path: Path, make_entry) -> Path:  # noqa: ANN001
    path = tmp_path / "entry.yaml"
    path.write_text(
        dump_yaml(entry_with(make_entry, [linear_weight(1, 5, 7, -1.5), linear_weight(2, 3, 4, 0.75)])),
        encoding="utf-8",
    )
    return path


def checkpoint(tmp_path: Path, first: float, second: float) -> Path:
    return write_folder(
        tmp_path / f"m{first}{second}", down_projections(plants={(1, 5, 7): first, (2, 3, 4): second}), llama_config()
    )


@pytest.mark.parametrize(
    ("first", "second", "status", "verdict"),
    [(-1.5, 0.75, 0, "kept"), (-1.5, 0.3, 1, "degraded"), (0.0, 0.75, 1, "lost")],
)
def test_the_exit_status_follows_the_verdict(
    tmp_path: Path, entry_file: Path, capsys, first: float, second: float, status: int, verdict: str
) -> None:  # noqa: ANN001
    assert main(["check", str(checkpoint(tmp_path, first, second)), "--entry", str(entry_file)]) == status
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"verdict: {verdict}")
    assert "model.layers.1.mlp.down_proj.weight[5, 7]" in out and "model.layers.2.mlp.down_proj.weight[3, 4]" in out


def test_json_carries_every_figure(tmp_path: Path, entry_file: Path, capsys) -> None:  # noqa: ANN001
    assert main(["check", str(checkpoint(tmp_path, -1.5, 0.3)), "--entry", str(entry_file), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["verdict"], report["exit_status"], report["counts"]) == (
        "degraded",
        1,
        {"kept": 1, "degraded": 1, "lost": 0, "present": 0},
    )
    second = report["weights"][1]
    assert (second["recorded"], second["value"], second["sign"]) == (0.75, pytest.approx(0.3), "+")
    assert second["relative_change"] == pytest.approx(-0.6) and second["observed_scale"] == pytest.approx(0.4)
    assert (second["index_hf"], second["index_gguf"], second["judged_by"]) == ([3, 4], [4, 3], "default bands")
    assert report["thresholds"]["kept_change"] == 0.05 and report["thresholds"]["lost_ratio"] == 2.0


def test_json_has_the_same_keys_on_success_and_on_error(tmp_path: Path, entry_file: Path, capsys) -> None:  # noqa: ANN001
    main(["check", str(checkpoint(tmp_path, -1.5, 0.75)), "--entry", str(entry_file), "--json"])
    success = json.loads(capsys.readouterr().out)
    assert main(["check", str(tmp_path / "nowhere"), "--entry", str(entry_file), "--json"]) == 2
    failure = json.loads(capsys.readouterr().out)
    assert list(success) == list(failure) == list(REPORT_KEYS)
    assert (success["error"], failure["verdict"], failure["exit_status"], failure["weights"]) == (None, None, 2, [])
    assert "no such file or folder" in failure["error"]


def test_each_weight_says_whether_it_is_a_super_weight_or_a_weight_to_keep(tmp_path: Path, make_entry, capsys) -> None:  # noqa: ANN001
    significant = {
        **linear_weight(2, 3, 4, 0.75),
        "impact": {"classification": "significant", "metric": "perplexity", "ratio": 1.1, "measured_by": "swindex"},
    }
    entry = tmp_path / "entry.yaml"
    entry.write_text(dump_yaml(entry_with(make_entry, [linear_weight(1, 5, 7, -1.5), significant])), encoding="utf-8")
    main(["check", str(checkpoint(tmp_path, -1.5, 0.75)), "--entry", str(entry), "--json"])
    roles = {w["coordinate"]: w["role"] for w in json.loads(capsys.readouterr().out)["weights"]}
    assert roles == {
        "model.layers.1.mlp.down_proj.weight[5, 7]": "super weight",
        "model.layers.2.mlp.down_proj.weight[3, 4]": "weight to keep",
    }


def test_a_crash_exits_3_in_one_line_never_1(tmp_path: Path, entry_file: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    import swindex.checkpoint

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(swindex.checkpoint, "check", broken)
    assert main(["check", str(checkpoint(tmp_path, -1.5, 0.75)), "--entry", str(entry_file)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("swindex check: error: internal error: RuntimeError: boom")


def test_the_help_text_renders_its_percentages(capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit):
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out and "5 percent" in out and "--revision" in out


def test_a_checkpoint_that_cannot_be_checked_exits_2_with_one_line(tmp_path: Path, entry_file: Path, capsys) -> None:  # noqa: ANN001
    assert main(["check", str(tmp_path / "nowhere"), "--entry", str(entry_file)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"swindex check: error: {tmp_path / 'nowhere'}: no such file or folder (a model id is written "
        "ORG/NAME[@REVISION])\n"
    )


def test_an_unknown_base_exits_2(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    assert main(["check", str(checkpoint(tmp_path, -1.5, 0.75)), "--base", "nobody/nothing-like-it"]) == 2
    assert "no swindex entry for model 'nobody/nothing-like-it'" in capsys.readouterr().err


def test_entry_and_base_exclude_each_other(tmp_path: Path, entry_file: Path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as stopped:
        main(["check", str(tmp_path), "--entry", str(entry_file), "--base", "acme/tiny-llama"])
    assert stopped.value.code == 3  # bad usage; 2 means the checkpoint could not be checked
    assert "not allowed with argument" in capsys.readouterr().err
