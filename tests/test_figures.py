"""Figures drawn from hand-made inputs: what they show and what their captions say."""
import numpy as np

from vitlab.report import figures


def test_learning_curve_figure_shows_the_fit_its_band_and_back_test():
    seen = np.arange(1, 13) * 3500
    history = [{"epoch": i + 1, "images_seen": int(s), "train_loss": 0.4 + 40 * (s + 2000.0) ** -0.6}
               for i, s in enumerate(seen)]
    shown = figures.learning_curve(history, "run x: learning curve")
    assert isinstance(shown, figures.Figure)
    assert "Back-test: log-RMSE" in shown.caption and "extrapolated to 2x" in shown.alt
    line, band = shown.fig.axes[0].lines, shown.fig.axes[0].collections
    assert len(line) == 2 and len(band) == 1
    assert line[1].get_xdata().max() == seen.max() * 2
    assert "<figcaption>" in shown._repr_html_()


def test_learning_curve_figure_says_why_there_is_none():
    three = [{"epoch": i, "images_seen": 100 * i, "train_loss": 1.0 / i} for i in (1, 2, 3)]
    assert "at least 4 epochs" in figures.learning_curve(three, "t").message
    old = [{"epoch": i, "train_loss": 1.0 / i} for i in range(1, 9)]
    assert "images_seen" in figures.learning_curve(old, "t").message


def test_axes_are_ticked_at_the_values_run_and_titles_are_words():
    """Fig. 3 was ticked 2^9, 2^10, 2^11; Fig. 5's compute axis had one label; titles said
    'patch_size'."""
    from tests.helpers import RESNET, VIT, runs

    df = runs(*(({**cfg, "train_size": n}, acc, 1e11 * n / 500) for n, acc in ((500, 0.7), (1000, 0.8), (2000, 0.85))
                for cfg in (VIT, RESNET)),
              *(({**VIT, "patch_size": p}, acc, f) for p, acc, f in ((4, 0.9, 3e11), (14, 0.8, 6e10))))
    df = df.assign(test_error=1 - df["test_accuracy"], fewshot_10=None, linear_probe=None, pretrained=None)
    fig3 = figures.accuracy_vs_train_size_by_model(df).fig
    fig3.canvas.draw()
    assert [t.get_text() for t in fig3.axes[0].get_xticklabels()] == ["500", "1,000", "2,000"]
    patch = figures.accuracy_vs(df, "patch_size").fig
    assert "_" not in patch.axes[0].get_title() and patch.axes[0].get_title() == "ViT test accuracy vs patch size"
    fig5 = figures.error_vs_compute(df).fig
    fig5.canvas.draw()
    left, right = fig5.axes[0].get_xlim()
    labels = [t for t in fig5.axes[0].get_xticklabels() if t.get_text() and left <= t.get_position()[0] <= right]
    assert len(labels) >= 2, [t.get_text() for t in labels]



def test_attention_distance_draws_the_neighbour_line_inside_the_axes_and_its_caption_says_so():
    """Distances all far below the patch stride (a 2x2 grid's heads) still show the line the caption names."""
    distance = np.array([[1.0, 1.5], [2.0, 2.5]])
    figure = figures.attention_distance_by_depth(distance, patch_stride=14)
    ax = figure.fig.axes[0]
    line = next(l for l in ax.get_lines() if list(l.get_ydata()) == [14, 14])
    assert line.get_linestyle() == "--" and ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 14
    assert "dashed line" in figure.caption and "14 px" in figure.caption and "dashed line at 14" in figure.alt


def test_fig_3_marks_where_the_fitted_laws_cross_and_its_caption_says_so():
    from tests.helpers import RESNET, VIT, runs

    sizes = (250, 500, 1000, 2000, 3500)
    vit, resnet = (0.50, 0.70, 0.82, 0.90, 0.93), (0.70, 0.78, 0.83, 0.86, 0.87)
    df = runs(*(({**m, "train_size": n, "seed": s}, acc + 0.01 * (s - 1), 1e11)
                for m, accs in ((VIT, vit), (RESNET, resnet)) for n, acc in zip(sizes, accs) for s in (0, 1, 2)))
    figure = figures.accuracy_vs_train_size_by_model(df)
    ax = figure.fig.axes[0]
    vertical = [line.get_xdata() for line in ax.get_lines() if len(line.get_xdata()) == 2]
    dashed = [x[0] for x in vertical if x[0] == x[1]]
    assert len(dashed) == 1 and 500 < dashed[0] < 2000
    assert f"the ViT's fitted error falls below the ResNet's at {dashed[0]:,.0f} images" in figure.caption
    few_shot = figures.accuracy_vs_train_size_by_model(df.assign(fewshot_10=0.5), "fewshot_10")
    assert "dashed" not in few_shot.caption


def test_fig_5_marks_where_the_fitted_compute_laws_cross_and_its_caption_gives_the_flops():
    from tests.helpers import matched_compute_runs

    figure = figures.error_vs_compute(matched_compute_runs())
    ax = figure.fig.axes[0]
    dashed = [line.get_xdata()[0] for line in ax.get_lines()
              if len(line.get_xdata()) == 2 and line.get_xdata()[0] == line.get_xdata()[1]]
    assert len(dashed) == 1 and 27e9 < dashed[0] < 81e9
    assert f"the ViT's fitted error falls below the ResNet's at {dashed[0]:.3g} FLOPs" in figure.caption
    assert "95% interval within the compute run" in figure.caption
