"""Schedules of reference §6.2 epoch by epoch, and TrainConfig validation."""

import pytest

from metantk_nas.train.config import TrainConfig
from metantk_nas.train.schedule import drop_path_at, lr_at


def test_mini_schedule_epoch_by_epoch():
    cfg = TrainConfig()  # mini 5-cell defaults
    assert (cfg.lr, cfg.epochs, cfg.decay_epochs, cfg.drop_path, cfg.batch_size) == (0.02, 100, (60, 80), 0.2, 64)
    for epoch in range(1, 101):
        expected_lr = 0.02 if epoch <= 60 else 0.002 if epoch <= 80 else 0.0002
        assert lr_at(epoch, cfg.lr, cfg.decay_epochs, cfg.decay_rate) == pytest.approx(expected_lr, rel=1e-12)
        assert drop_path_at(epoch, cfg.epochs, cfg.drop_path) == pytest.approx(0.2 * epoch / 100, rel=1e-12)
    assert drop_path_at(1, 100, 0.2) == pytest.approx(0.002)
    assert drop_path_at(100, 100, 0.2) == pytest.approx(0.2)


def test_tiered_schedule_epoch_by_epoch():
    cfg = TrainConfig.from_dict({"lr": 0.01, "epochs": 60, "decay_epochs": [30, 40, 50], "drop_path": 0.1})
    expected = {**{e: 0.01 for e in range(1, 31)}, **{e: 1e-3 for e in range(31, 41)},
                **{e: 1e-4 for e in range(41, 51)}, **{e: 1e-5 for e in range(51, 61)}}
    for epoch, lr in expected.items():
        assert lr_at(epoch, cfg.lr, cfg.decay_epochs) == pytest.approx(lr, rel=1e-12)
        assert drop_path_at(epoch, cfg.epochs, cfg.drop_path) == pytest.approx(0.1 * epoch / 60, rel=1e-12)


def test_schedule_rejects_epochs_out_of_range():
    with pytest.raises(ValueError, match="epoch"):
        drop_path_at(0, 10, 0.2)
    with pytest.raises(ValueError, match="epoch"):
        drop_path_at(11, 10, 0.2)
    with pytest.raises(ValueError, match="epoch"):
        lr_at(0, 0.1, (5,))


@pytest.mark.parametrize("values, message", [
    ({"learning_rate": 0.1}, "unknown key"),
    ({"lr": -1.0}, "lr"),
    ({"lr": "fast"}, "config.yaml: key 'lr' must be a number > 0, got 'fast'"),
    ({"epochs": 2.5}, "key 'epochs' must be an integer ≥ 1, got 2.5"),
    ({"decay_epochs": [80, 60]}, r"key 'decay_epochs' must be strictly ascending epochs in 1..99"),
        ({"decay_epochs": [60, 100]}, r"below epochs = 100"),
    ({"drop_path": 1.0}, "drop_path"),
    ({"amp": "yes"}, "key 'amp' must be true or false, got 'yes'"),
    ({"device": "tpu"}, "device"),
    ({"cells": 2}, "cells"),
])
def test_config_rejects_bad_values_by_name(values, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(values, source="config.yaml")


def test_config_round_trips_through_plain_dict():
    cfg = TrainConfig(decay_epochs=(30, 40, 50), lr=0.01)
    plain = cfg.to_dict()
    assert plain["decay_epochs"] == [30, 40, 50]
    assert TrainConfig.from_dict(plain) == cfg
