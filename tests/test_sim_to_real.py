"""The generator against real KITTI frames (../shared/kitti, never copied): its scans' measured properties lie near
the real frames' (beam pattern, intensity by range and class, points on objects by distance, clutter heights, object
sizes), the return model's fit recovers known parameters, and the `sim2real` command writes its report."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import KITTI, REPO
from pointpillars_trt.evaluation.return_fit import SyntheticSample, fit_returns, shade_table, table_distance
from pointpillars_trt.evaluation.scan_stats import CLASSES, points_in_box, rings
from pointpillars_trt.evaluation.sim_to_real import in_rows, measure_real, measure_synthetic
from pointpillars_trt.io.kitti_frames import read_labelled_frame
from pointpillars_trt.sample.returns import ReturnModel
from test_cli_bad_input import assert_one_line_error, cli

ALL = [f"{i:06d}" for i in range(10)] + ["000134"]
TRAIN = (REPO / "data/splits/kitti_train.txt").read_text().split()


@pytest.fixture(scope="module")
def real():
    return measure_real(KITTI, ALL)


@pytest.fixture(scope="module")
def real_train():
    return measure_real(KITTI, TRAIN)


@pytest.fixture(scope="module")
def synthetic():
    return measure_synthetic(30, seed=11)


def test_points_in_box_against_a_hand_made_box():
    pts = np.array([[10.0, 0.0, 0.0, 0], [11.9, 0.0, 0.0, 0], [10.0, 0.95, 0.0, 0], [12.1, 0.0, 0.0, 0]], np.float32)
    box = np.array([10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0])
    assert points_in_box(pts, box).tolist() == [True, True, True, False]
    turned = np.array([10.0, 0.0, 0.0, 4.0, 2.0, 1.5, np.pi / 2])  # 4 m along y now
    assert points_in_box(pts, turned).tolist() == [True, False, True, False]


def test_cars_in_rows_by_hand():
    cars = np.array([[10, 3, 0, 4, 1.6, 1.5, 0.0],  # a pair end to end, 1 m apart, one turned round
                     [15, 3.2, 0, 4, 1.6, 1.5, 3.1],
                     [30, 3, 0, 4, 1.6, 1.5, 0.0],  # 11 m behind them
                     [15, -3, 0, 4, 1.6, 1.5, 1.57]])  # across the road, crosswise
    assert in_rows(cars).tolist() == [True, True, False, False]


def test_rows_of_parked_cars(real, synthetic):
    """000008 has a row of parked cars; so do many generated frames."""
    share = lambda fs: np.concatenate([in_rows(c) for c in fs.cars]).mean()  # noqa: E731
    assert in_rows(real.cars[8]).sum() >= 2 and 0.1 < share(synthetic[0]) < 0.8


def test_rings_of_a_real_scan_match_kitti_hdl64(real):
    """KITTI's velodyne_reduced keeps ~46 rings of the HDL-64E in the camera's view, 0.18 deg apart in azimuth."""
    r = rings(read_labelled_frame(KITTI, "000004").points)
    assert 44 <= len(r.elevation) <= 48
    assert r.az_step == pytest.approx(0.1797, abs=0.002)
    assert r.elevation.max() < 3.5 and r.elevation.min() > -16


def test_beam_pattern_matches_the_real_frames(real, synthetic):
    syn = synthetic[0]
    step = lambda fs: np.median([r.az_step for r in fs.rings])  # noqa: E731
    assert step(syn) == pytest.approx(step(real), rel=0.02)
    for f in (np.max, np.min):
        e = lambda fs: np.median([f(r.elevation) for r in fs.rings])  # noqa: E731
        assert e(syn) == pytest.approx(e(real), abs=0.8)
    n = lambda fs: np.mean([len(i) for i in fs.intensity])  # noqa: E731
    assert n(syn) == pytest.approx(n(real), rel=0.25)


def test_intensity_matches_the_frames_it_was_fitted_to(real_train, synthetic):
    """Ground and background: zero fraction and nonzero median per range bin; objects per class. The generator
    before the fit read ground 0.07 (real 0.26) with no zeros at all."""
    tr, ts = real_train.table(), synthetic[0].table()
    for key in ("ground", "background"):
        for rr, ss in zip(tr[key][:5], ts[key][:5]):  # 0-50 m
            assert abs(ss[1] - rr[1]) <= 0.2, (key, rr, ss)
            assert abs(ss[3] - rr[3]) <= 0.07, (key, rr, ss)
    near_car_real, near_car_syn = tr["Car"][0], ts["Car"][0]
    assert near_car_syn[1] > 0.2 and abs(near_car_syn[1] - near_car_real[1]) <= 0.3  # glossy paint: many zeros
    for cls in ("Pedestrian", "Cyclist"):
        rr, ss = tr[cls][1], ts[cls][1]  # 15-30 m
        assert abs(ss[3] - rr[3]) <= 0.08, (cls, rr, ss)


def test_points_on_objects_by_distance(real, synthetic):
    """Median points inside the box within a factor 2.5 of the real frames' wherever they hold 3+ objects."""
    rc, rd, rn, _ = real.objects()
    sc, sd, sn, _ = synthetic[0].objects()
    checked = 0
    for k in range(len(CLASSES)):
        for lo, hi in ((0, 15), (15, 30), (30, 45)):
            rm, sm = (rc == k) & (rd >= lo) & (rd < hi), (sc == k) & (sd >= lo) & (sd < hi)
            if rm.sum() >= 3 and sm.sum() >= 3:
                ratio = np.median(sn[sm]) / np.median(rn[rm])
                assert 0.4 <= ratio <= 2.5, (CLASSES[k], lo, hi, ratio)
                checked += 1
    assert checked >= 3


def test_clutter_heights_and_sizes(real, synthetic):
    syn = synthetic[0]
    ratio = np.mean(syn.heights, axis=0)[:5] / np.mean(real.heights, axis=0)[:5]  # 0.2 - 3 m above the ground
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    rc, _, _, rs = real.objects()
    sc, _, _, ss = syn.objects()
    for k, tol in ((0, (0.35, 0.1, 0.1)), (1, (0.25, 0.12, 0.12))):
        assert np.all(np.abs(ss[sc == k].mean(0) - rs[rc == k].mean(0)) <= tol), CLASSES[k]


def test_return_fit_recovers_known_parameters(synthetic):
    """Shade synthetic points with a known model as the 'real' table; a fit from a model with its r0 and ground
    reflectivity moved away lands nearer both."""
    smp = synthetic[1]
    small = SyntheticSample(smp.cats[:6], smp.material[:6], smp.shade[:6], smp.cos_inc[:6], smp.range_m[:6])
    truth = ReturnModel()
    target = shade_table(truth, small, seed=1)
    start = dataclasses.replace(truth, r0=truth.r0 * 0.6).with_material("ground", rho=(0.3, 0.4))
    fitted, d0, d1 = fit_returns(target, small, start, rounds=1)
    assert d1 < 0.5 * d0
    assert abs(fitted.r0 - truth.r0) < abs(start.r0 - truth.r0)
    g = lambda m: np.mean(m.materials[0].rho)  # noqa: E731
    assert abs(g(fitted) - g(truth)) < abs(g(start) - g(truth))
    assert table_distance(shade_table(fitted, small), target) == pytest.approx(d1)


def test_sim2real_command(tmp_path):
    out = tmp_path / "cmp"
    r = cli("sim2real", "--real", KITTI, "--split", REPO / "data/splits/kitti_train.txt", "--out", out, "--frames", "2")
    assert r.returncode == 0, r.stderr
    md = (out / "sim_to_real.md").read_text()
    assert "KITTI (2 frames) against the generator (2 frames)" in md and "| zero fraction |" in md
    for png in ("points_vs_distance", "intensity_by_range", "intensity_histograms", "beam_pattern", "clutter_heights",
                "object_sizes"):
        assert (out / f"{png}.png").stat().st_size > 5000
    assert_one_line_error(cli("sim2real", "--real", KITTI, "--out", out, "--frames", "2"), "--force")
    assert_one_line_error(cli("sim2real", "--real", tmp_path, "--out", tmp_path / "x"), "KITTI's layout")
    assert "sim2real" in cli("--help").stdout and "--fit" in cli("sim2real", "--help").stdout
