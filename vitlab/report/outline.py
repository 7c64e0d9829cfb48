"""The report's sections in order: each a title, what it shows, and the parts that draw it from
the runs. report.ipynb walks this list, so adding a figure is one function and one line here."""
from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from vitlab.report import advice, claims, crossing, figures, sections, shape, studies, tables
from vitlab.study import results


@dataclass(frozen=True)
class Runs:
    """What every part draws from: the results directory, its records, and the runs the studies
    use (axes tuned by params `tune:` blocks chosen per study point on validation)."""
    out: Path
    records: pd.DataFrame
    df: pd.DataFrame

    @classmethod
    def load(cls, results_dir: str | Path | None) -> Runs:
        out = results.resolve_dir(results_dir)
        records = results.load_table(out, warn=False)  # damaged files: listed under coverage
        return cls(out, records, studies.tuned(records, results.tune_axes(out)))

    @cached_property
    def ledger(self) -> claims.Ledger:
        """Every claim's tests, decided together once for the whole report."""
        return claims.ledger(self.df)

    @cached_property
    def laws(self) -> dict[str, dict]:
        """Each family's law of test error against training images and against training compute
        (crossing.laws), fitted once for the figures, tables and readings that show them."""
        return {axis: crossing.laws(self.df, axis) for axis in crossing.AXES}

    @cached_property
    def crossings(self) -> dict[str, list]:
        """Where those laws cross, per axis (crossing.between), found once."""
        return {axis: crossing.between(fitted, axis) for axis, fitted in self.laws.items()}

    @cached_property
    def star(self) -> shape.Star | None:
        """The star sweep and its laws, fitted once for the shape section and what to run next."""
        return shape.star(self.df)


@dataclass(frozen=True)
class Section:
    title: str
    text: str  # Markdown under the title: what the section shows and what the paper found
    parts: tuple[Callable[[Runs], object], ...]  # each returns one thing to display, or several

    def show(self, runs: Runs) -> None:
        display(Markdown(f"## {self.title}\n\n{self.text}".strip()))
        for part in self.parts:
            shown = part(runs)
            for item in shown if isinstance(shown, list | types.GeneratorType) else [shown]:
                display(item)


def _claims(runs: Runs) -> list:
    return [claims.styled(runs.ledger.table()), Markdown(runs.ledger.note())]


def _reading(*findings) -> Callable[[Runs], Markdown]:
    """A figure's reading: what these runs show on the claims it bears on."""
    return lambda r: Markdown(sections.claims_reading(r.ledger, *findings))


SECTIONS = (
    Section("What this report covers",
            "The runs it is built from, where they came from, and the software and devices that made them.",
            (lambda r: Markdown(sections.coverage(r.out, r.records)),)),
    Section("What your runs say about the paper's claims",
            ("Each claim of the paper, with the verdict your runs support. A claim rests on one or more tests: "
             "contrasts of study points (each the mean over its seeds of test accuracy) with a t interval counting "
             "each point's own seed-to-seed variance (never pooled: it shrinks as training data grows) and the "
             "test set's sampling error. All the report's tests are decided together with Holm's correction, so "
             "the chance that it decides anything falsely is at most 5%; each interval is at the level its "
             "decision used. *Supported* needs every test of a claim decided on its side, *contradicted* any test "
             "decided on the other; otherwise there are *not enough runs*, and the evidence says how many seeds "
             "would give 80% power. Families are compared only on runs of the same dataset, image size, "
             "augmentation and budget (else *not comparable*, naming the field). Every choice between runs (best "
             "runs, frontiers, tuned values) is made on the validation split; every accuracy shown is on the test "
             "split, and a frontier is chosen on half of each configuration's seeds and measured on the others."),
            (_claims,)),
    Section("Models (cf. Table 1)",
            "Every architecture run, with its parameters and forward FLOPs per image.",
            (lambda r: tables.models_table(r.df),)),
    Section("The best of each family (cf. Table 2)",
            ("Each family's run best on the validation split on each dataset, among runs trained from scratch "
             "(validation accuracies of different datasets are not compared), with its test accuracy on that "
             "dataset's own test split, few-shot (10 per class) and linear-probe accuracy on the transfer dataset "
             "from frozen pre-logits features, and its training compute."),
            (lambda r: tables.best_by_family(r.df),)),
    Section("Per-point tuning",
            ("Where a params file tunes axes (`tune:`), the configuration kept at each study point and seed is the "
             "one best on validation, as the paper tunes learning rate and regularisation for each model and data "
             "size; the chosen values:"),
            (lambda r: tables.tuning_table(r.df),)),
    Section("Fine-tuning transfer (cf. Section 3.1, Table 2)",
            ("Models pre-trained on one dataset and fine-tuned on another (every weight but the head, which starts "
             "at zero), beside the same model trained there from scratch."),
            (lambda r: tables.transfer_table(r.df),)),
    Section("Training set size: ViT vs ResNet vs hybrid (cf. Fig. 3 and 4)",
            "The paper finds ResNets ahead on small data and ViT overtaking as data grows.",
            (lambda r: Markdown(sections.data_size_reading(r.df)),
             lambda r: Markdown(sections.crossover_reading(r.crossings["train_size"], r.ledger)),
             lambda r: figures.accuracy_vs_train_size_by_model(r.df, crossed=r.crossings["train_size"]),
             lambda r: figures.accuracy_vs_train_size_by_model(r.df, "fewshot_10"))),
    Section("Accuracy vs compute (cf. Fig. 5)",
            ("The paper finds ViT ahead of ResNets at equal pre-training compute (2-4x less compute for the "
             "same accuracy), and hybrids ahead of ViT at small compute, the gap closing for larger models."),
            (_reading(claims.vit_beats_resnet_at_equal_compute, claims.hybrids_help_at_small_compute),
             lambda r: Markdown(sections.crossover_reading(r.crossings["train_flops"], r.ledger, "train_flops")),
             lambda r: figures.error_vs_compute(r.df, laws=r.laws["train_flops"], crossed=r.crossings["train_flops"]))),
    Section("Scaling laws",
            ("The saturating power law error = a·(x + c)^(−b) + e_inf (Zhai et al. 2021) fitted to study points "
             "(seed means of test error) against training compute, parameters and training images, with 95% "
             "intervals and the fit's prediction at ten times the largest value run. Its band counts the points' "
             "noise (from the seeds and the test set), the law's form (offset c free or 0) and the misfit its "
             "back-tests found: each fit is refitted without its largest values and scored on them (log-RMSE, and "
             "how far those refits extrapolated). A prediction further out than the back-tests reached is marked. "
             "With fewer than four distinct values no law is fitted."),
            (lambda r: tables.fits_table(r.df, r.laws["train_size"]),
             lambda r: Markdown(sections.recommendation(r.ledger)))),
    Section("Scaling depth, width, MLP size and patch size (cf. Appendix D.2, Fig. 8)",
            ("The paper finds depth the most effective direction to scale and width the least, with smaller "
             "patches (a longer sequence at no extra parameters) a robust gain."),
            (_reading(claims.depth_helps_more_than_width, claims.smaller_patches_help),
             lambda r: figures.scaling_directions_plot(r.df),
             lambda r: figures.accuracy_vs(r.df, "depth"),
             lambda r: figures.accuracy_vs(r.df, "width"),
             lambda r: figures.accuracy_vs(r.df, "mlp_dim"),
             lambda r: figures.accuracy_vs(r.df, "patch_size"))),
    Section("The compute-optimal shape (cf. SoViT)",
            ("\"Getting ViT in Shape\" (Alabdulmohsin et al. 2023) fits, for each of width, depth and MLP size, "
             "error = α·x^(−a) + (β·x^b + ξ)·t^(−c) + ε against the dimension x and training compute t, from a star "
             "sweep (a centre model, each dimension shrunk alone, at several budgets). At a fixed compute the error "
             "is lowest at x ∝ t^s with s = c / (a + b), so s says how fast that dimension should grow with compute. "
             "Intervals are 95%, from refits of each law to its fitted curve plus noise as the runs have it."),
            (lambda r: Markdown(sections.shape_reading(r.star)),)),
    Section("Class token vs average pooling (cf. Appendix D.3, Fig. 9)",
            ("The paper finds the class token and global average pooling equally good, once each has its own "
             "learning rate."),
            (lambda r: Markdown(sections.pooling_reading(r.records)),
             lambda r: figures.pooling_plot(r.records))),
    Section("Position embeddings (cf. Table 8, Appendix D.4)",
            ("The paper finds any position embedding far better than none, and the 1-D, 2-D and relative variants "
             "close to each other. Each variant is tested against none, as one of the report's tests under its "
             "correction."),
            (lambda r: sections.position_embedding_variants(r.out, r.df, r.ledger),)),
    Section("Inside the best ViT on validation (cf. Section 4.5, Fig. 6 and 7)",
            ("Patch-embedding filters, position-embedding similarity, mean attention distance per head, and "
             "attention rollout on test images."),
            (lambda r: sections.inside_best_vit(r.out, r.df),)),
    Section("What to run next",
            ("The shape the star sweep's laws recommend at 10x its largest run, and each claim left undecided at "
             "the seeds per configuration that would give it 80% power at this report's error level."),
            (lambda r: Markdown(advice.reading(r.out, r.ledger, r.star)),)),
    Section("All runs",
            "",
            (lambda r: tables.runs_table(r.records),)),
)
