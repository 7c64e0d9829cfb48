"""Figures drawn from hand-made inputs: what they show and what their captions say."""
import numpy as np

from vitlab import figures


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
