"""fewtune.bench.plots and calibration_plots on synthetic run records: which files are written, that
they are real PNGs, what is skipped, and the numbers behind the figures (pooled reliability bins, mean ± std per K and per
coverage)."""

import math
import subprocess
import sys

import pytest

from fewtune.bench import calibration_plots, plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A matplotlib warning (singular limits, a label that does not fit) means a figure drawn badly.
pytestmark = pytest.mark.filterwarnings("error::UserWarning")


def _bins(seed: int, K: int) -> list[dict]:
    # Two occupied bins that drift with K, so pooled values differ from any single run's.
    return [
        {"low": 0.5, "high": 0.6, "n": 4 + seed, "confidence": 0.55, "accuracy": 0.5},
        {"low": 0.9, "high": 1.0, "n": 10 + K, "confidence": 0.95, "accuracy": 0.9 - 0.01 * seed},
    ]


def make_records(with_ece: bool = True) -> list[dict]:
    """2 datasets x 3 methods x K in (4, 8, 16) x 3 seeds. "prompt" has no reliability bins, and
    dataset "news/v2" has none at all (and a name that is unsafe in a file name)."""
    records = []
    methods = [("setfit", {}), ("setfit", {"l2sp": 1.0}), ("prompt", {})]
    for dataset in ("sst2", "news/v2"):
        for mi, (method, params) in enumerate(methods):
            for K in (4, 8, 16):
                for seed in range(3):
                    r = {
                        "dataset": dataset, "K": K, "seed": seed, "method": method, "params": params,
                        "n_test": 100, "accuracy": 0.5 + 0.02 * K / 4 + 0.01 * seed + 0.03 * mi,
                        "macro_f1": 0.45 + 0.02 * K / 4, "nll": 0.7, "brier": 0.4,
                        "train_seconds": 0.0 if method == "prompt" else 2.0 * K + seed,
                        "predict_seconds": 0.5,
                    }
                    if with_ece:
                        r["ece"] = 0.1 - 0.002 * K
                    if dataset == "sst2" and method != "prompt":
                        r["reliability"] = _bins(seed, K)
                    records.append(r)
    return records


def _selective(seed: int, K: int) -> list[dict]:
    # Ten coverages 0.1 .. 1.0 (as a float sum makes them, e.g. 0.30000000000000004); accuracy falls as
    # coverage grows, as it should when confidence ranks examples well.
    return [{"coverage": i * 0.1, "accuracy": 1.0 - 0.03 * i - 0.01 * seed + 0.001 * K} for i in range(1, 11)]


def with_selective(records: list[dict]) -> list[dict]:
    """make_records with "selective" points on sst2's non-prompt runs: news/v2 and "prompt" stay old."""
    for r in records:
        if r["dataset"] == "sst2" and r["method"] != "prompt":
            r["selective"] = _selective(r["seed"], r["K"])
    return records


def assert_png(path, min_side: int = 100):
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[0] > min_side and image.shape[1] > min_side


def test_learning_curves_one_png_per_dataset(tmp_path):
    written = plots.learning_curves(make_records(), tmp_path)
    assert [p.name for p in written] == ["learning_curve_news_v2_accuracy.png", "learning_curve_sst2_accuracy.png"]
    for p in written:
        assert p.parent == tmp_path
        assert_png(p)


def test_learning_curves_skip_a_missing_metric(tmp_path):
    records = make_records(with_ece=False)
    assert plots.learning_curves(records, tmp_path, metric="ece") == []
    # One dataset with ece, the other without: only the first gets a file.
    for r in records:
        if r["dataset"] == "sst2":
            r["ece"] = 0.05
    assert [p.name for p in plots.learning_curves(records, tmp_path, metric="ece")] == ["learning_curve_sst2_ece.png"]


def test_curve_points_mean_and_sample_std():
    records = [r for r in make_records() if r["dataset"] == "sst2"]
    points = plots.curve_points(records, "accuracy")
    assert sorted(points) == ["prompt", "setfit", "setfit (l2sp=1.0)"]
    K, mean, std, n = points["setfit"][0]
    assert (K, n) == (4, 3)
    assert mean == pytest.approx(0.53)  # seeds give 0.52, 0.53, 0.54
    assert std == pytest.approx(0.01)  # sample std (ddof=1), not population
    assert [k for k, *_ in points["setfit"]] == [4, 8, 16]


def test_a_single_seed_method_still_plots(tmp_path):
    records = [r for r in make_records() if r["dataset"] == "sst2" and (r["seed"] == 0 or r["method"] != "prompt")]
    points = plots.curve_points(records)
    assert {n for *_, n in points["prompt"]} == {1}
    assert all(std == 0.0 for _, _, std, _ in points["prompt"])
    assert {n for *_, n in points["setfit"]} == {3}
    assert len(plots.learning_curves(records, tmp_path / "mixed")) == 1
    only_one = [r for r in records if r["method"] == "prompt"]
    for written in (plots.learning_curves(only_one, tmp_path), plots.accuracy_vs_time(only_one, tmp_path)):
        assert len(written) == 1
        assert_png(written[0])


def test_pooled_bins_against_hand_computed_values():
    records = [
        {"reliability": [
            {"low": 0.5, "high": 0.6, "n": 2, "confidence": 0.55, "accuracy": 0.5},
            {"low": 0.9, "high": 1.0, "n": 8, "confidence": 0.95, "accuracy": 1.0},
        ]},
        {"reliability": [
            {"low": 0.5, "high": 0.6, "n": 3, "confidence": 0.58, "accuracy": 1 / 3},
            {"low": 0.6, "high": 0.7, "n": 5, "confidence": 0.65, "accuracy": 0.6},
        ]},
        {"accuracy": 0.9},  # an old record without bins adds nothing
        {"reliability": []},
    ]
    bins, ece = calibration_plots.pooled_bins(records)
    assert [(b["low"], b["high"], b["n"]) for b in bins] == [(0.5, 0.6, 5), (0.6, 0.7, 5), (0.9, 1.0, 8)]
    assert bins[0]["confidence"] == pytest.approx((2 * 0.55 + 3 * 0.58) / 5)  # 0.568
    assert bins[0]["accuracy"] == pytest.approx(0.4)  # (1 + 1) correct of 5
    # (5 * |0.568 - 0.4| + 5 * |0.65 - 0.6| + 8 * |0.95 - 1.0|) / 18
    assert ece == pytest.approx(1.49 / 18)


def test_pooled_bins_of_one_run_reproduce_its_ece():
    bins = [{"low": 0.0, "high": 0.5, "n": 1, "confidence": 0.4, "accuracy": 1.0},
            {"low": 0.5, "high": 1.0, "n": 3, "confidence": 0.9, "accuracy": 2 / 3}]
    pooled, ece = calibration_plots.pooled_bins([{"reliability": bins}])
    assert pooled == bins
    assert ece == pytest.approx(0.25 * 0.6 + 0.75 * (0.9 - 2 / 3))


def test_pooled_bins_without_bins():
    bins, ece = calibration_plots.pooled_bins([{"accuracy": 1.0}])
    assert bins == [] and math.isnan(ece)


def test_reliability_diagrams_skip_datasets_and_methods_without_bins(tmp_path):
    records = make_records()
    written = calibration_plots.reliability_diagrams(records, tmp_path)
    # news/v2 has no bins at all: no file for it; sst2 at its largest K.
    assert [p.name for p in written] == ["reliability_sst2_K16.png"]
    assert_png(written[0])
    assert not list(tmp_path.glob("reliability_news*"))

    fig = calibration_plots._reliability_figure("sst2", [r for r in records if r["dataset"] == "sst2"], 16)
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 2  # "prompt" has no bins: no panel
    assert titles[0].startswith("setfit\nECE ") and titles[1].startswith("setfit (l2sp=1.0)\nECE ")
    _, ece = calibration_plots.pooled_bins([r for r in records if r["dataset"] == "sst2" and r["K"] == 16
                                and r["method"] == "setfit" and not r["params"]])
    assert f"ECE {ece * 100:.1f}%" in titles[0]


def test_reliability_diagrams_choice_of_K(tmp_path):
    records = make_records()
    for r in records:
        if r["K"] == 16:
            r.pop("reliability", None)
    assert [p.name for p in calibration_plots.reliability_diagrams(records, tmp_path)] == ["reliability_sst2_K8.png"]
    assert [p.name for p in calibration_plots.reliability_diagrams(records, tmp_path, K=4)] == ["reliability_sst2_K4.png"]
    assert calibration_plots.reliability_diagrams(records, tmp_path, K=16) == []


def test_reliability_grid_wraps_at_four_columns(tmp_path):
    records = []
    for i in range(5):
        records.append({"dataset": "d", "K": 8, "seed": 0, "method": f"m{i}", "params": {},
                        "reliability": _bins(0, 8)})
    fig = calibration_plots._reliability_figure("d", records, 8)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 5 and len(fig.axes) == 8  # 2 rows x 4 columns, 3 hidden
    assert [ax.get_title().split("\n")[0] for ax in visible] == ["m0", "m1", "m2", "m3", "m4"]


def test_accuracy_vs_time(tmp_path):
    # "prompt" trains in 0 s: drawn at MIN_SECONDS on the log axis rather than dropped.
    written = plots.accuracy_vs_time([r for r in make_records() if r["dataset"] == "sst2"], tmp_path)
    assert [p.name for p in written] == ["accuracy_vs_time_sst2.png"]
    assert_png(written[0])
    no_times = [{k: v for k, v in r.items() if k != "train_seconds"} for r in make_records()]
    assert plots.accuracy_vs_time(no_times, tmp_path / "none") == []


def test_risk_coverage_curves_only_where_selective_is_recorded(tmp_path):
    assert calibration_plots.risk_coverage_curves(make_records(), tmp_path / "old") == []  # old records: no figure
    records = with_selective(make_records())
    written = calibration_plots.risk_coverage_curves(records, tmp_path)
    # news/v2 has no selective points: no file; sst2 at its largest K.
    assert [p.name for p in written] == ["risk_coverage_sst2_K16.png"]
    assert written[0].parent == tmp_path
    assert_png(written[0])

    fig = calibration_plots._risk_coverage_figure("sst2", [r for r in records if r["dataset"] == "sst2"], 16)
    ax = fig.axes[0]
    # "prompt" has no selective points: no line.
    assert [line.get_label() for line in ax.get_lines()] == ["setfit", "setfit (l2sp=1.0)"]
    assert ax.get_title() == "sst2, K=16: accuracy when answering only the most confident (mean over 3 seeds)"
    assert tuple(ax.get_xlim()) == (0.0, 1.0)
    x, y = ax.get_lines()[0].get_data()
    assert list(x) == pytest.approx([i / 10 for i in range(1, 11)])
    # Percent: seeds 0, 1, 2 give 1 - 0.03 - 0.01 * seed + 0.016 at coverage 0.1, mean 0.976.
    assert y[0] == pytest.approx(97.6)
    assert len(ax.collections) == 2  # a ± std band per method (3 seeds each)


def test_risk_coverage_curves_choice_of_K(tmp_path):
    records = with_selective(make_records())
    for r in records:
        if r["K"] == 16:
            r.pop("selective", None)
    assert [p.name for p in calibration_plots.risk_coverage_curves(records, tmp_path)] == ["risk_coverage_sst2_K8.png"]
    assert [p.name for p in calibration_plots.risk_coverage_curves(records, tmp_path, K=4)] == ["risk_coverage_sst2_K4.png"]
    assert calibration_plots.risk_coverage_curves(records, tmp_path, K=16) == []
    # The default is per dataset: news/v2 gets its own largest K with points.
    for r in records:
        if r["dataset"] == "news/v2" and r["K"] == 16:
            r["selective"] = _selective(r["seed"], 16)
    assert [p.name for p in calibration_plots.risk_coverage_curves(records, tmp_path)] == [
        "risk_coverage_news_v2_K16.png", "risk_coverage_sst2_K8.png"]


def test_selective_points_against_hand_computed_values():
    def run(method, seed, points, params=None):
        return {"dataset": "d", "K": 8, "seed": seed, "method": method, "params": params or {},
                "selective": [{"coverage": c, "accuracy": a} for c, a in points]}

    records = [
        run("m", 0, [(0.5, 1.0), (1.0, 0.8)]),
        run("m", 1, [(0.5, 0.9), (1.0, 0.7)]),
        run("m", 2, [(0.1 + 0.2 + 0.2, 0.8), (1.0, 0.6)]),  # 0.5000000000000001: still coverage 0.5
        run("m", 0, [(1.0, 0.5)], params={"l2sp": 1.0}),
        {"dataset": "d", "K": 8, "seed": 3, "method": "m", "params": {}, "accuracy": 0.1},  # old: adds nothing
        run("m", 4, [(0.5, float("nan")), (0.0, 1.0), (1.5, 1.0)]),  # no usable point: adds nothing
        run("old", 0, []),
    ]
    points = calibration_plots.selective_points(records)
    assert sorted(points) == ["m", "m (l2sp=1.0)"]
    (c1, mean1, std1, n1), (c2, mean2, std2, n2) = points["m"]
    assert (c1, n1, c2, n2) == (0.5, 3, 1.0, 3)
    assert mean1 == pytest.approx(0.9) and std1 == pytest.approx(0.1)  # 1.0, 0.9, 0.8; sample std
    assert mean2 == pytest.approx(0.7) and std2 == pytest.approx(0.1)  # 0.8, 0.7, 0.6
    assert points["m (l2sp=1.0)"] == [(1.0, 0.5, 0.0, 1)]


def test_risk_coverage_with_a_single_seed(tmp_path):
    records = [{"dataset": "d", "K": 4, "seed": 0, "method": "m", "params": {}, "selective": _selective(0, 4)}]
    written = calibration_plots.risk_coverage_curves(records, tmp_path)
    assert [p.name for p in written] == ["risk_coverage_d_K4.png"]
    assert_png(written[0])
    ax = calibration_plots._risk_coverage_figure("d", records, 4).axes[0]
    assert ax.get_title().endswith("(mean over 1 seed)")
    assert len(ax.collections) == 0  # no band for one seed


def test_all_plots_creates_the_folder_and_every_figure(tmp_path):
    out = tmp_path / "a" / "b"
    written = plots.all_plots(make_records(), out)
    assert sorted(p.name for p in written) == sorted([
        "learning_curve_sst2_accuracy.png", "learning_curve_news_v2_accuracy.png",
        "learning_curve_sst2_ece.png", "learning_curve_news_v2_ece.png",
        "reliability_sst2_K16.png",
        "accuracy_vs_time_sst2.png", "accuracy_vs_time_news_v2.png",
    ])
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    for p in written:
        assert_png(p)
    # Old records without ece: no ECE curves.
    old = [r for r in make_records(with_ece=False) if r["dataset"] == "news/v2"]
    names = {p.name for p in plots.all_plots(old, tmp_path / "old")}
    assert names == {"learning_curve_news_v2_accuracy.png", "accuracy_vs_time_news_v2.png"}
    # With selective points: the risk-coverage curve too.
    names = {p.name for p in plots.all_plots(with_selective(make_records()), tmp_path / "selective")}
    assert "risk_coverage_sst2_K16.png" in names and not any(n.startswith("risk_coverage_news") for n in names)


def test_empty_records(tmp_path):
    assert plots.learning_curves([], tmp_path / "x") == []
    assert calibration_plots.reliability_diagrams([], tmp_path / "x") == []
    assert plots.accuracy_vs_time([], tmp_path / "x") == []
    assert calibration_plots.risk_coverage_curves([], tmp_path / "x") == []
    assert calibration_plots.selective_points([]) == {}
    assert plots.all_plots([], tmp_path / "x") == []
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


def test_safe_name():
    assert plots.safe_name("ag news/v2:test") == "ag_news_v2_test"
    assert plots.safe_name("sst-2_v1.0") == "sst-2_v1.0"


def test_import_is_cheap_and_leaves_pyplot_alone():
    code = ("import sys, fewtune.bench.plots as p, fewtune.bench.calibration_plots; "
            "assert 'matplotlib' not in sys.modules; "
            "import tempfile; p.learning_curves([{'dataset': 'd', 'K': 4, 'seed': 0, 'method': 'm', "
            "'accuracy': 0.5}], tempfile.mkdtemp()); assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
