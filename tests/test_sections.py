"""The report's paragraphs say what these runs show, beside what the paper found."""
from tests.helpers import RESNET, VIT, matched_compute_runs, runs
from vitlab.report import claims, crossing, sections


def test_the_data_size_section_reads_the_runs_and_where_the_vit_passes_the_resnet():
    """It stated only the paper's finding (ResNets ahead on small data), whatever the runs showed."""
    df = runs(*(({**VIT, "train_size": n, "seed": s}, acc + 0.01 * s, 1e11) for n, acc in ((500, 0.60), (1000, 0.80),
                                                                                         (2000, 0.90)) for s in (0, 1)),
              *(({**RESNET, "train_size": n, "seed": s}, acc, 1e11) for n, acc in ((500, 0.70), (1000, 0.75),
                                                                                 (2000, 0.80)) for s in (0, 1)))
    text = sections.data_size_reading(df)
    assert "- at 500 images: ResNet 0.700 > ViT 0.605" in text
    assert "- at 2,000 images: ViT 0.905 > ResNet 0.800" in text
    assert text.endswith("\n\nThe ViT's mean crosses the ResNet's between 500 and 1,000 images.")  # a paragraph after the list
    only_resnet_ahead = runs(*(({**m, "train_size": n}, acc, 1e11) for n in (500, 1000)
                               for m, acc in ((VIT, 0.5), (RESNET, 0.7))))
    assert sections.data_size_reading(only_resnet_ahead).endswith("The ResNet's mean is above the ViT's at every size run here.")


def test_a_figures_reading_gives_each_claims_verdict_as_the_claims_table_decides_it():
    df = runs(*(({**VIT, "train_size": n, "seed": s}, acc + 0.01 * s, 1e11) for n, acc in ((500, 0.60), (2000, 0.90))
                for s in (0, 1)),
              *(({**RESNET, "train_size": n, "seed": s}, acc, 1e11) for n, acc in ((500, 0.70), (2000, 0.80))
                for s in (0, 1)))
    ledger = claims.ledger(df)
    text = sections.claims_reading(ledger, claims.resnet_wins_on_small_data, claims.smaller_patches_help)
    table = ledger.table().set_index("claim")
    _, line = text.splitlines()  # no patch-size runs: that claim is left to its section's note
    claim = "ResNets beat ViTs on the smallest training sets"
    assert line.startswith(f"- {claim}: **{table.loc[claim, 'verdict']}** (")
    assert table.loc[claim, "evidence"].startswith(line.split("** (", 1)[1][:-1])
    assert sections.claims_reading(ledger, claims.smaller_patches_help) == ""


def test_the_pooling_reading_gives_each_head_at_its_own_best_learning_rate():
    df = runs(*(({**VIT, "pool": pool, "lr": lr, "seed": s}, test + 0.01 * s, 1e11, val)
                for pool, lr, test, val in (("token", 1e-3, 0.80, 0.70), ("token", 3e-3, 0.70, 0.90),
                                            ("avg", 1e-3, 0.85, 0.95), ("avg", 3e-3, 0.60, 0.50))
                for s in (0, 1)))
    assert sections.pooling_reading(df).splitlines()[1:] == [
        "- global average pooling: 0.855 at learning rate 0.001", "- class token: 0.705 at learning rate 0.003"]
    assert sections.pooling_reading(df[df["pool"] == "token"]) == ""


def test_the_crossover_reading_says_where_the_fitted_laws_cross_with_an_interval():
    sizes = (250, 500, 1000, 2000, 3500)
    vit, resnet = (0.50, 0.70, 0.82, 0.90, 0.93), (0.70, 0.78, 0.83, 0.86, 0.87)
    df = runs(*(({**m, "train_size": n, "seed": s}, acc + 0.01 * (s - 1), 1e11)
                for m, accs in ((VIT, vit), (RESNET, resnet)) for n, acc in zip(sizes, accs) for s in (0, 1, 2)))
    text = sections.crossover_reading(crossing.crossings(df), claims.ledger(df))
    intro, line = text.splitlines()
    assert intro.startswith("Where the fitted laws cross")
    where = int(line.split(" at ")[1].split(" images")[0].replace(",", ""))
    assert line.startswith("- the ViT's error falls below the ResNet's at ") and 500 < where < 2000
    assert "(95% interval " in line and "hybrid" not in text
    assert sections.crossover_reading(crossing.crossings(df[df["model"] == "vit"]), claims.ledger(df)) == ""


def test_the_compute_crossover_reading_gives_flops_and_says_when_the_claims_table_decides_the_other_way():
    """The fitted laws put the ViT below the ResNet at the top of the compute run, while the claims
    table, averaging over the ViT frontier, contradicts that the ViT beats the ResNet at equal
    compute: the reading says both, so neither reads as a contradiction of the other."""
    df = matched_compute_runs()
    ledger = claims.ledger(df)
    assert ledger.verdict(ledger[claims.vit_beats_resnet_at_equal_compute]).verdict == claims.CONTRADICTED
    intro, line = sections.crossover_reading(crossing.crossings(df, "train_flops"), ledger, "train_flops").splitlines()
    assert "against training compute" in intro
    where = float(line.split(" at ")[1].split(" FLOPs")[0])
    assert line.startswith("- the ViT's error falls below the ResNet's at ") and 27e9 < where < 81e9
    assert line.endswith('finds "At equal training compute ViT beats ResNet" contradicted')
    # Ahead at every compute: no crossing inside the runs, and nothing to reconcile.
    ahead = matched_compute_runs(vit=(0.90, 0.91, 0.92, 0.93, 0.94))
    text = sections.crossover_reading(crossing.crossings(ahead, "train_flops"), claims.ledger(ahead), "train_flops")
    assert "is below the ResNet's already at 1e+09 FLOPs" in text and "claims table" not in text
