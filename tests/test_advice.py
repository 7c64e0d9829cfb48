"""What to run next (report/advice.py, `vitlab next`): a params file that validates and says why
each of its runs is there."""
import yaml

from tests.helpers import RESNET, VIT, star_runs
from vitlab.cli import main
from vitlab.report import advice, shape
from vitlab.run.config import RunConfig
from vitlab.study import results
from vitlab.study.plans import load_plan


def write(out, df):
    """The rows of a runs() table as records in a results directory."""
    for _, row in df.iterrows():
        cfg = RunConfig.from_dict(advice.config_of(row) | {"seed": int(row["seed"])})
        results.write(out, results.make_record(cfg, status="ok") | {
            "test_accuracy": row["test_accuracy"], "val_accuracy": row["val_accuracy"], "train_flops": row["train_flops"]})


def data_size_runs():
    """Two seeds each of the ViT and the ResNet at 500 and 3,500 images: close enough that the
    data-size claims stay undecided."""
    from tests.helpers import runs

    return runs(*(({**base, "train_size": size, "seed": s}, acc + 0.01 * s, 1e12)
                  for base, accs in ((VIT, (0.80, 0.92)), (RESNET, (0.88, 0.93)))
                  for size, acc in zip((500, 3500), accs) for s in range(2)))


def test_next_recommends_the_shape_and_the_seeds_that_would_decide_each_claim(tmp_path, capsys):
    import pandas as pd

    write(tmp_path, pd.concat([star_runs(noise=0.03, seeds=2), data_size_runs()]))
    assert main(["next", str(tmp_path)]) == 0
    printed = capsys.readouterr()
    path = tmp_path / "next.yaml"
    text = path.read_text()
    assert printed.out == text and f"written: {path}" in printed.err
    plan = load_plan(path)  # validates every run
    spec = yaml.safe_load(text)
    names = [block["name"] for block in spec["sweeps"]]
    budget = 10 * shape.star(star_runs(noise=0.03, seeds=2), n_boot=20).largest_flops
    assert names[0] == f"recommended shape at {budget:.3g} FLOPs"
    # The world's optimum at 10x: depth 7.5, width 64, MLP size 530 (tests/helpers.py), spent in
    # more steps than the star's largest budget.
    shaped = spec["sweeps"][0]["base"]
    assert shaped["mlp_dim"] > 256 and shaped["steps"] > 800 and shaped["width"] % shaped["heads"] == 0, shaped
    assert f"# - The shape the star sweep's laws recommend at {budget:.3g} FLOPs (95% intervals): width" in text
    assert [n.split(":")[0] for n in names[1:]] == ["ResNets beat ViTs on the smallest training sets",
                                                    "ViT gains more than ResNet from more training data"], names
    assert all(n.endswith("seeds per configuration for 80% power") for n in names[1:])
    for block in spec["sweeps"][1:]:
        seeds = block["grid"]["seed"]
        assert seeds == list(range(len(seeds))) and len(seeds) > 2
    # Every run of the claims' blocks that is already recorded keeps its id, so a sweep skips it.
    recorded = {p.stem for p in results.runs_dir(tmp_path).glob("*.json")}
    assert len(recorded & {c.run_id for c in plan.runs}) >= 4
    assert "# - Not here: Any position embedding beats none: " in text


def test_next_without_a_star_or_an_open_claim_says_so_in_one_line(tmp_path, capsys):
    assert main(["next", str(tmp_path)]) == 2
    assert "no runs/ folder here" in capsys.readouterr().err
    write(tmp_path, star_runs(budgets=(800,)))  # one budget: no star, and no claim with runs
    assert main(["next", str(tmp_path)]) == 2
    assert "nothing to run next: no star sweep to extend and no undecided claim" in capsys.readouterr().err
    assert main(["next", str(tmp_path), "--budget", "-1"]) == 2
    assert "--budget: training FLOPs must be > 0" in capsys.readouterr().err


def test_the_default_budget_is_ten_times_the_largest_run():
    found = shape.star(star_runs(noise=0.03, seeds=2), n_boot=40)
    assert found.recommend() == found.recommend(10 * found.largest_flops)


def test_the_report_ends_with_the_params_file_vitlab_next_writes(tmp_path):
    import pandas as pd

    from vitlab.report import claims

    df = pd.concat([star_runs(noise=0.03, seeds=2), data_size_runs()])
    ledger, found = claims.ledger(df), shape.star(df)
    text = advice.reading(tmp_path, ledger, found)
    assert text.startswith(f"`vitlab next {tmp_path}` writes this params file")
    assert advice.next_params(tmp_path, ledger, found) in text
    assert advice.reading(tmp_path, claims.ledger(df.iloc[:0]), None).startswith("*Nothing to run next")
