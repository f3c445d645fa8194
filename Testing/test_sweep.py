"""Sweep config validation, the default config, Kendall-tau rank agreement and the study commands' errors."""

from __future__ import annotations

import pytest
import yaml
from scipy.stats import kendalltau

from GenMedEvalLib.cli import main
from GenMedEvalLib.errors import InputError
from GenMedEvalLib.experiments.compare import oriented, rank_agreement
from GenMedEvalLib.experiments.config import default_config_text, load_config, paper_conditions, parse_config
from GenMedEvalLib.experiments.findings import check_findings


def write(tmp_path, text: str):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


def test_default_config_parses_to_exactly_the_paper_conditions(tmp_path):
    path = write(tmp_path, default_config_text())
    config = load_config(path)
    assert [c.name for c in config.conditions] == [c.name for c in paper_conditions()]
    assert [c.params for c in config.conditions] == [c.params for c in paper_conditions()]
    assert config.data["base"].folder == tmp_path / "cohort" / "images" and config.data["base"].split == "eval"
    assert config.encoder == "domain" and config.downstream and config.bootstrap == 20


def test_explicit_parameters_and_folders(tmp_path):
    config = parse_config(yaml.safe_load("""
data: {base: gen, reference: /abs/ref}
perturbations:
  boundary_blur: [{sigma: 1.5, band: 4}, "3"]
  density_shift: ["90:10"]
downstream: false
"""), base_dir=tmp_path)
    assert [c.name for c in config.conditions] == ["boundary_blur@band=4,sigma=1.5", "boundary_blur@3",
                                                   "density_shift@90:10"]
    assert config.conditions[0].params == {"sigma": 1.5, "band": 4.0, "mode": "slice"}
    assert config.data["base"].folder == tmp_path / "gen" and str(config.data["reference"].folder) == "/abs/ref"
    assert not config.downstream


@pytest.mark.parametrize("text, key", [
    ("data: {base: a}\n", "data.reference"),
    ("data: {base: a, reference: b}\ncolour: red\n", "colour"),
    ("data: {base: a, reference: b}\nperturbations: {sharpen: ['1']}\n", "perturbations.sharpen"),
    ("data: {base: a, reference: b}\nperturbations: {gaussian_noise: ['0.5']}\n", "perturbations.gaussian_noise[0]"),
    ("data: {base: a, reference: b}\nperturbations: {gaussian_noise: [{sigma: 7}]}\n",
     "perturbations.gaussian_noise[0]"),
    ("data: {base: a, reference: b}\nmetrics: [fd, nope]\n", "metrics"),
    ("data: {base: a, reference: b}\nfeatures: {encoder: vgg}\n", "features.encoder"),
    ("data: {base: a, reference: b}\nbootstrap: -3\n", "bootstrap"),
    ("data: {base: a, reference: b, extra: c}\n", "data"),
])
def test_bad_configs_name_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and key in message and "\n" not in message


def test_invalid_yaml_and_cli_errors_are_one_line(tmp_path, capsys):
    path = write(tmp_path, "data: {base: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML at line"):
        load_config(path)
    assert main(["sweep", str(path), "--out", str(tmp_path / "run")]) == 2
    good = write(tmp_path, "data: {base: missing_folder, reference: also_missing}\n")
    capsys.readouterr()
    assert main(["sweep", str(good), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "data.base: folder not found" in err
    assert not (tmp_path / "run").exists()


def test_write_default_config_round_trips(tmp_path, capsys):
    target = tmp_path / "default.yaml"
    assert main(["sweep", "--write-default", str(target)]) == 0
    assert len(load_config(target).conditions) == 32


def test_rank_agreement_is_kendall_tau_on_oriented_values():
    dice = {"a": 0.9, "b": 0.8, "c": 0.6, "d": 0.7}
    fd = {"a": 10.0, "b": 12.0, "c": 30.0, "d": 25.0}  # lower is better: perfectly concordant with Dice
    precision = {"a": 0.5, "b": 0.9, "c": 0.7, "d": 0.6}
    upstream = {m: {"fd": fd[m], "precision": precision[m]} for m in dice}
    result = {a.metric: a for a in rank_agreement(upstream, {"fd": "lower", "precision": "higher"}, dice)}
    assert result["fd"].tau == pytest.approx(1.0)
    expected = kendalltau([precision[m] for m in dice], [dice[m] for m in dice])
    assert result["precision"].tau == pytest.approx(expected.statistic)
    assert result["precision"].p_value == pytest.approx(expected.pvalue)
    assert oriented(3.0, "lower") == -3.0 and oriented(3.0, "higher") == 3.0
    two = rank_agreement({"a": {"fd": 1.0}, "b": {"fd": 2.0}}, {"fd": "lower"}, {"a": 0.9, "b": 0.8})
    assert two[0].tau is None and two[0].n_models == 2  # too few models to rank


def test_findings_follow_the_numbers():
    def rows(fd_dup, auth_dup, z_dup):
        out = []
        for cond, fd, auth, z in (("external_duplication@45%", fd_dup, auth_dup, z_dup),
                                  ("gaussian_noise@0.01", 11.0, 40.0, 3.0), ("gaussian_noise@0.1", 30.0, 40.0, 9.0)):
            out += [{"condition": cond, "metric": "fd", "value": fd, "baseline": 10.0, "z": z,
                     "ci_low": fd - 0.5, "ci_high": fd + 0.5},
                    {"condition": cond, "metric": "authpct", "value": auth, "baseline": 40.0, "z": z if auth < 40 else 0.0}]
        return out

    memorisation, noise, collapse, *_ = check_findings(rows(8.0, 20.0, -3.0))
    assert memorisation.holds is True and "FD z -3.00 and AuthPct z -3.00" in memorisation.detail
    assert noise.holds is True and collapse.holds is None  # no mode-collapse condition: not testable
    assert collapse.verdict() == "not testable"
    # the same direction but within the baseline's spread (the z -1.2) is no memorisation signature
    weak = check_findings(rows(8.0, 20.0, -1.2))[0]
    assert weak.holds is False and weak.verdict() == "fails" and "FD z -1.20" in weak.detail
    assert all(f.holds is None for f in check_findings([]))


def test_set_level_downstream_finding_reports_the_baseline_interval():
    names = [f"v{i}" for i in range(6)]

    def flat(change):
        base = [0.80, 0.81, 0.79, 0.80, 0.805, 0.795]
        volumes = [{"condition": c, "volume": v, "source": "eval", "predicted_dice": d, "true_dice": d}
                   for c, shift in (("baseline", 0.0), ("external_duplication@30%", change))
                   for v, d in zip(names, base, strict=True) for d in [d + shift]]
        downstream = [{"condition": "baseline", "true_dice_ci_low": 0.75, "true_dice_ci_high": 0.84, "n_volumes": 6},
                      {"condition": "external_duplication@30%"}]
        upstream = [{"condition": "external_duplication@30%", "metric": "fd", "value": 1.0, "baseline": 1.0, "z": 0.0}]
        return next(f for f in check_findings(upstream, downstream, volumes=volumes) if "flat" in f.claim)

    assert flat(0.0).holds is True and flat(-0.09).holds is False
    assert "largest change -0.090 (external_duplication@30%)" in flat(-0.09).detail
    assert "[0.750, 0.840] over 6 volumes" in flat(-0.09).detail and flat(-0.09).basis == "true_dice"
