"""Tests of the search space: the distribution grammar, `search:` in a spec and its errors, Optuna's view of it."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.errors import DlrunError, SpecError
from dlrun.search import study as studies
from dlrun.spec.loader import load_spec
from dlrun.spec.space import distribution_text, parse_distribution, split_sets

from conftest import binary_spec, make_binary_csv, write_spec

runner = CliRunner()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("loguniform(1e-4,1e-1)", {"type": "float", "low": 1e-4, "high": 0.1, "log": True}),
        ("float(0, 0.5)", {"type": "float", "low": 0, "high": 0.5}),
        ("uniform(0,1)", {"type": "float", "low": 0, "high": 1}),
        ("float(0,0.5,step=0.1)", {"type": "float", "low": 0, "high": 0.5, "step": 0.1}),
        ("int(4,256,log)", {"type": "int", "low": 4, "high": 256, "log": True}),
        ("int(1, 9, step=2)", {"type": "int", "low": 1, "high": 9, "step": 2}),
        ("choice(32,64,256)", {"type": "choice", "choices": [32, 64, 256]}),
        ("choice(relu, tanh)", {"type": "choice", "choices": ["relu", "tanh"]}),
        ("choice([a,b],[a,c])", {"type": "choice", "choices": [["a", "b"], ["a", "c"]]}),
        (
            "choice(1e-3, {name: sgd, momentum: 0.9})",
            {"type": "choice", "choices": [1e-3, {"name": "sgd", "momentum": 0.9}]},
        ),
    ],
)
def test_the_grammar_reads_values_as_yaml(text, expected):
    assert parse_distribution(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("lognormal(1,2)", "is not a distribution; expected one like loguniform"),
        ("float(1)", "expected float(LOW, HIGH, log) or float(LOW, HIGH, step=STEP)"),
        ("float(1,2,lg)", "expected float(LOW, HIGH, log)"),
        ("loguniform(1,2,step=1)", "unknown argument 'step'; loguniform takes none"),
        ("int(1,5,steps=2)", "unknown argument 'steps'"),
        ("choice()", "choice needs at least one value"),
        ("choice(1,,2)", "an empty argument"),
        ("float(0,1,log=maybe)", "should be true or false"),
    ],
)
def test_grammar_mistakes_say_what_was_expected(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_distribution(text)


def test_text_reads_back_the_same():
    for text in ("loguniform(0.0001, 0.1)", "int(4, 256, log)", "float(0, 0.5, step=0.1)", "choice(32, [a, b])"):
        assert parse_distribution(distribution_text(parse_distribution(text))) == parse_distribution(text)


def test_set_splits_values_from_distributions():
    sets = ["training.epochs=5", "training.optimizer.learning_rate=loguniform(1e-4,1e-1)", "data.target=int_col"]
    assert split_sets(sets) == (["training.epochs=5", "data.target=int_col"], [sets[1]])


@pytest.fixture
def experiment(tmp_path):
    make_binary_csv(tmp_path / "data.csv", rows=40)
    spec = binary_spec(epochs=2)
    spec["model"]["layers"].insert(1, {"type": "dropout", "rate": 0.1})
    return spec


def spec_file(tmp_path, spec: dict, search_text: str):
    """Write the spec with a `search:` section given as YAML text, so the test knows its lines."""
    path = write_spec(tmp_path, spec)
    path.write_text(path.read_text(encoding="utf-8") + "search:\n" + search_text, encoding="utf-8")
    return path


def test_a_search_section_in_every_form_validates(tmp_path, experiment):
    path = spec_file(
        tmp_path,
        experiment,
        "  training.optimizer.learning_rate: loguniform(1e-4, 1e-1)\n"
        "  model.layers[0].units: {type: int, low: 4, high: 64, log: true}\n"
        "  training.batch_size: [16, 32]\n"
        "  model.layers: [[{type: dense, units: 1, activation: sigmoid}]]\n",
    )
    spec = load_spec(path, check_search=True)
    assert spec.search["training.optimizer.learning_rate"].log is True
    assert spec.search["model.layers[0].units"].high == 64
    assert spec.search["training.batch_size"].choices == [16, 32]
    assert spec.search["model.layers"].choices[0][0]["units"] == 1
    assert "search" not in spec.resolved()  # a run's config.yaml records what trained
    assert spec.resolved(search=True)["search"]["training.batch_size"] == {"type": "choice", "choices": [16, 32]}


def test_distribution_mistakes_point_at_the_file_line_and_column(tmp_path, experiment):
    path = spec_file(
        tmp_path,
        experiment,
        "  training.optimizer.learning_rate: loguniform(1e-1, 1e-4)\n"
        "  model.layers[0].units: {type: int, low: 4, hgh: 64}\n"
        "  model.layers[1].rate: {type: flot, low: 0, high: 0.5}\n"
        "  training.batch_size: choice(32, 64, 32)\n"
        "  seed: int(0, 10, log)\n",
    )
    lines = path.read_text(encoding="utf-8").splitlines()
    first = lines.index("search:") + 2  # 1-based line of the first entry
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert f"{path}:{first}:3: search.training.optimizer.learning_rate: low 0.1 should be below high 0.0001" in text
    assert f"{path}:{first + 1}:3: search.model.layers[0].units.high: missing required key 'high'" in text
    assert "unknown key 'hgh'; did you mean 'high'?" in text
    assert f"{path}:{first + 2}:" in text and "unknown distribution 'flot'. Did you mean 'float'?" in text
    assert f"{path}:{first + 3}:3: search.training.batch_size" in text and "32 listed more than once" in text
    assert f"{path}:{first + 4}:3: search.seed" in text and "a log scale needs low above 0, received 0" in text


def test_values_that_break_the_spec_are_found_at_the_ends_of_ranges_and_in_choices(tmp_path, experiment):
    path = spec_file(
        tmp_path,
        experiment,
        "  model.layers[1].rate: float(0, 1.5)\n"
        "  model.layers[7].units: int(1, 3)\n"
        "  model.layers[0].activation: choice(relu, tanhh)\n"
        "  training..epochs: int(1, 3)\n",
    )
    load_spec(path)  # train ignores the search: only its form is checked
    with pytest.raises(SpecError) as caught:
        load_spec(path, check_search=True)
    text = str(caught.value)
    assert (
        "search.model.layers[1].rate: its high end 1.5 makes the spec invalid: model.layers[1].rate: expected" in text
    )
    assert "search.model.layers[7].units: its low end 1 makes the spec invalid: model.layers[7] does not exist" in text
    assert "choice 2, tanhh makes the spec invalid" in text and "did you mean 'tanh'" in text.lower()
    assert "'training..epochs' is not a spec path" in text
    assert f"{path}:" in text


def test_a_distribution_on_the_command_line_is_named_by_its_set(tmp_path, experiment):
    path = write_spec(tmp_path, experiment)
    with pytest.raises(SpecError, match=r"--set model.layers\[1\].rate=float\(0,2\): .*its high end 2"):
        load_spec(path, [], ["model.layers[1].rate=float(0,2)"], check_search=True)
    with pytest.raises(SpecError, match=r"--set training.epochs=int\(2,1\): .*low 2 should be below high 1") as error:
        load_spec(path, [], ["training.epochs=int(2,1)"])
    assert "is for `dlrun tune`" not in str(error.value)  # it is a distribution; only its range is wrong


def test_one_value_for_a_searched_path_takes_it_out_of_the_search(tmp_path, experiment):
    path = spec_file(tmp_path, experiment, "  training.batch_size: [16, 32]\n  training.epochs: int(1, 3)\n")
    spec = load_spec(path, ["training.batch_size=8"], check_search=True)
    assert list(spec.search) == ["training.epochs"] and spec.training.batch_size == 8


def test_validate_lists_the_search_and_config_show_shows_it(tmp_path, experiment):
    path = spec_file(tmp_path, experiment, "  training.optimizer.learning_rate: loguniform(1e-4, 1e-1)\n")
    result = runner.invoke(app, ["validate", str(path), "--set", "model.layers[0].units=int(4,64,log)"])
    assert result.exit_code == 0, result.output
    assert "training.optimizer.learning_rate: loguniform(0.0001, 0.1)" in result.output
    assert "model.layers[0].units: int(4, 64, log)" in result.output
    result = runner.invoke(app, ["config", "show", str(path)])
    shown = yaml.safe_load(result.output)
    assert shown["search"] == {
        "training.optimizer.learning_rate": {"type": "float", "low": 0.0001, "high": 0.1, "log": True}
    }
    result = runner.invoke(app, ["validate", str(path), "--set", "model.layers[1].rate=float(0,3)"])
    assert result.exit_code == 1 and "its high end 3" in result.stderr and "Traceback" not in result.output


def test_train_refuses_a_distribution_and_says_what_it_is_for(tmp_path, experiment):
    path = write_spec(tmp_path, experiment)
    result = runner.invoke(app, ["train", str(path), "--set", "training.epochs=int(1,5)"])
    assert result.exit_code == 1
    assert "--set training.epochs=int(1,5)" in result.stderr and "is for `dlrun tune`" in result.stderr


def test_a_misspelled_distribution_is_named_with_the_one_meant(tmp_path, experiment):
    path = write_spec(tmp_path, experiment)
    result = runner.invoke(app, ["tune", str(path), "--set", "training.epochs=innt(1,5)", "--trials", "2"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--set training.epochs=innt(1,5)" in result.stderr
    assert "did you mean the distribution int(...)?" in result.stderr


# --- Optuna's view of the space ---------------------------------------------------------------


def space_of(tmp_path, experiment, text: str) -> studies.Space:
    spec = load_spec(spec_file(tmp_path, experiment, text))
    return studies.Space(
        {p: {k: v for k, v in d.model_dump().items() if v is not None} for p, d in spec.search.items()}
    )


def test_trials_become_overrides_with_choices_as_the_spec_wrote_them(tmp_path, experiment):
    pytest.importorskip("optuna")
    space = space_of(
        tmp_path,
        experiment,
        "  training.optimizer.learning_rate: loguniform(1e-4, 1e-1)\n"
        "  model.layers:\n"
        "    type: choice\n"
        "    choices:\n"
        "      - [{type: dense, units: 1, activation: sigmoid}]\n"
        "      - [{type: dense, units: 1}]\n",
    )
    choices = space.optuna()["model.layers"].choices
    assert all(isinstance(c, str) for c in choices)  # Optuna stores lists as their YAML text
    overrides = space.overrides({"training.optimizer.learning_rate": 0.001, "model.layers": choices[0]})
    assert overrides[0] == "training.optimizer.learning_rate=0.001"
    spec = load_spec(spec_file(tmp_path, experiment, ""), overrides)
    assert [layer.units for layer in spec.model.layers] == [1] and spec.model.layers[0].activation == "sigmoid"


def test_a_grid_needs_finite_values(tmp_path, experiment):
    pytest.importorskip("optuna")
    space = space_of(
        tmp_path, experiment, "  model.layers[1].rate: float(0, 0.5, step=0.25)\n  training.batch_size: [8, 16]\n"
    )
    assert space.grid() == {"model.layers[1].rate": [0.0, 0.25, 0.5], "training.batch_size": [8, 16]}
    assert space.grid_size() == 6
    space = space_of(tmp_path, experiment, "  training.optimizer.learning_rate: loguniform(1e-4, 1e-1)\n")
    with pytest.raises(DlrunError, match="grid needs a finite list of values for training.optimizer.learning_rate"):
        space.grid()


def sampled(sampler, trials: int, storage=None, name: str = "s") -> list[float]:
    optuna = studies.import_optuna()
    study = optuna.create_study(storage=storage, sampler=sampler, study_name=name, load_if_exists=True)
    values = []
    for _ in range(trials):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        values.append(trial.params["x"])
        study.tell(trial, trial.params["x"])
    return values


@pytest.mark.parametrize("kind", ["random", "tpe"])
def test_a_seeded_study_repeats_and_processes_sharing_it_draw_new_values(tmp_path, experiment, kind):
    optuna = pytest.importorskip("optuna")
    space = space_of(tmp_path, experiment, "  training.epochs: int(1, 3)\n")
    first = sampled(studies.make_sampler(kind, 0, space), 4)
    assert sampled(studies.make_sampler(kind, 0, space), 4) == first
    assert sampled(studies.make_sampler(kind, 1, space), 4) != first
    # two processes (two samplers, the same seed) on one storage: the second does not redraw the first's values
    storage = optuna.storages.InMemoryStorage()
    one = sampled(studies.make_sampler(kind, 0, space), 3, storage)
    two = sampled(studies.make_sampler(kind, 0, space), 3, storage)
    assert one == first[:3] and not set(one) & set(two)


def test_a_study_of_the_same_name_that_searches_something_else_is_refused(tmp_path):
    optuna = pytest.importorskip("optuna")
    url = str(tmp_path / "shared.log")
    signature = {"spec_sha256": "a", "constants": [], "search": {}, "metric": "val_loss", "direction": "min"}
    sampler, pruner = optuna.samplers.RandomSampler(), optuna.pruners.NopPruner()
    studies.open_study(url, "s", "min", sampler, pruner, signature)
    assert studies.open_study(url, "s", "min", sampler, pruner, dict(signature)).study_name == "s"
    with pytest.raises(DlrunError, match=r"study 's' in .* searches something else \(its metric differ\)"):
        studies.open_study(url, "s", "min", sampler, pruner, signature | {"metric": "val_auc"})
