from pathlib import Path

import pytest
import yaml

from medprobe.errors import SpecError
from medprobe.pipeline_spec import load_spec
from medprobe.yaml_files import load_yaml
from tests.conftest import spec_dict


def _write(tmp_path: Path, content: dict | str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content), encoding="utf-8")
    return path


def test_relative_paths_resolve_against_the_spec_folder(tmp_path: Path) -> None:
    spec = spec_dict(Path("data/manifest.csv"), tmp_path, workdir="work", tracking={"uri": "sqlite:///runs/m.db"})
    loaded = load_spec(_write(tmp_path, spec), environ={})
    assert loaded.data.manifest == tmp_path / "data" / "manifest.csv"
    assert loaded.workdir == tmp_path / "work"
    assert loaded.tracking.uri == f"sqlite:///{tmp_path / 'runs' / 'm.db'}"
    assert loaded.experiment_name == "medprobe/unit"


def test_environment_overrides_site_and_tracking_uri(tmp_path: Path) -> None:
    path = _write(tmp_path, spec_dict(Path("m.csv"), tmp_path))
    loaded = load_spec(path, environ={"MEDPROBE_SITE": "hospital-b", "MLFLOW_TRACKING_URI": "http://127.0.0.1:5999"})
    assert loaded.site == "hospital-b"
    assert loaded.tracking.uri == "http://127.0.0.1:5999"


def test_defaults_follow_the_modality(tmp_path: Path) -> None:
    ct = spec_dict(Path("m.csv"), tmp_path, data={"manifest": "m.csv", "modality": "ct"})
    loaded = load_spec(_write(tmp_path, ct), environ={})
    assert loaded.data.intensity().mode == "ct_window"
    assert loaded.data.intensity().bounds() == (0.0, 80.0)  # the brain window: centre 40, width 80


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"modles": []}, "unknown key 'modles'"),
        ({"models": [{"name": "handcrafted", "precison": "bf16"}]}, "unknown key 'models[0].precison'"),
        ({"tasks": [{"name": "t", "target": "y", "type": "classify"}]}, "'tasks[0].type'"),
        ({"protocols": {}}, "enable at least one protocol"),
        ({"models": [{"name": "handcrafted"}, {"name": "handcrafted"}]}, "appears twice"),
        ({"data": {"manifest": "m.csv", "modality": "ct", "preprocessing": {"intensity": {"mode": "ct_window",
                                                                                          "preset": "lungs"}}}},
         "'data.preprocessing.intensity.preset'"),
        ({"seed": "zero"}, "'seed'"),
        ({"seed": -5}, "'seed': Input should be greater than or equal to 0 (got -5)"),
        ({"seed": 2**32}, "'seed': Input should be less than or equal to 4294967196"),
        ({"seed": 1.5}, "'seed'"),
        ({"seed": True}, "'seed'"),
        ({"protocols": {"linear": {}, "robustness": {"seed": -1}}}, "'protocols.robustness.seed'"),
    ],
)
def test_invalid_specs_name_the_key(tmp_path: Path, change: dict, expected: str) -> None:
    spec = spec_dict(Path("m.csv"), tmp_path)
    spec.update(change)
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, spec), environ={})
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_required_key_and_bad_yaml(tmp_path: Path) -> None:
    spec = spec_dict(Path("m.csv"), tmp_path)
    del spec["site"]
    with pytest.raises(SpecError, match="missing required key 'site'"):
        load_spec(_write(tmp_path, spec), environ={})
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(_write(tmp_path, "name: [unclosed"), environ={})
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml", environ={})


def test_shipped_pipeline_templates_are_valid() -> None:
    folder = Path(__file__).resolve().parents[2] / "pipelines"
    specs = sorted(folder.glob("*.yaml"))
    assert len(specs) >= 4
    for path in specs:
        load_spec(path, environ={})


def test_alias_allows_a_random_init_control_beside_the_pretrained_model(tmp_path: Path) -> None:
    models = [{"name": "dinov2_vits14", "weights": "w.pth"}, {"name": "dinov2_vits14", "alias": "dinov2_vits14-random"},
              {"name": "timm:resnet18"}]
    loaded = load_spec(_write(tmp_path, spec_dict(Path("m.csv"), tmp_path, models=models)), environ={})
    assert [m.key for m in loaded.models] == ["dinov2_vits14", "dinov2_vits14-random", "timm-resnet18"]
    twice = [{"name": "dinov2_vits14"}, {"name": "dinov2_vits14"}]
    with pytest.raises(SpecError, match="appears twice"):
        load_spec(_write(tmp_path, spec_dict(Path("m.csv"), tmp_path, models=twice)), environ={})


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    text = yaml.safe_dump(spec_dict(Path("m.csv"), tmp_path), sort_keys=False) + "seed: 3\nseed: 5\n"
    lines = text.splitlines()
    first, second = len(lines) - 1, len(lines)
    with pytest.raises(SpecError) as caught:
        load_spec(_write(tmp_path, text), environ={})
    message = str(caught.value)
    assert f"key 'seed' is given twice (lines {first} and {second})" in message and "\n" not in message


def test_a_nested_duplicate_key_is_refused_but_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    nested = "name: x\ndata:\n  manifest: m.csv\n  modality: ct\n  manifest: n.csv\n"
    with pytest.raises(SpecError, match=r"key 'manifest' is given twice \(lines 3 and 5\)"):
        load_spec(_write(tmp_path, nested), environ={})
    flow = "name: x\ntracking: {uri: a, uri: b}\n"
    with pytest.raises(SpecError, match=r"key 'uri' is given twice \(lines 2 and 2\)"):
        load_spec(_write(tmp_path, flow), environ={})
    merged = "base: &b {seed: 1}\nover: {<<: *b, seed: 2}\n"
    assert load_yaml(merged)["over"] == {"seed": 2}


def test_an_alias_bomb_is_refused_before_validation(tmp_path: Path) -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    with pytest.raises(SpecError, match="aliases expand to more than"):
        load_spec(_write(tmp_path, "\n".join(levels) + "\n"), environ={})
