"""The budget and the planner, with exact numbers (no model, no TensorFlow)."""

import pytest

from tb_layerview import plan as P


def cand(key, shape, layout="grid", kernel=None, unchanged=False, kind=None):
    return P.Candidate(key, tuple(shape), layout, kernel, False, unchanged, kind)


def test_budget_parses_sizes_dicts_and_off():
    """Budget accepts '2MB', '500 KiB', dicts, True and None, and quotes bad values."""
    assert P.Budget(bytes_per_epoch="2MB").bytes_per_epoch == 2_000_000
    assert P.Budget(bytes_per_epoch="500 KiB").bytes_per_epoch == 512_000
    assert P.Budget.parse({"time_share": 0.02}) == P.Budget(time_share=0.02)
    assert P.Budget.parse(True) == P.Budget()
    assert P.Budget.parse(None) is None and P.Budget.parse(False) is None
    with pytest.raises(ValueError, match=r"time_share must be a fraction in \(0, 1\].*got 5"):
        P.Budget(time_share=5)
    with pytest.raises(ValueError, match=r"bytes_per_epoch must be a number of bytes.*got '2 parsecs'"):
        P.Budget(bytes_per_epoch="2 parsecs")
    with pytest.raises(ValueError, match=r"unknown keys \['seconds'\]"):
        P.Budget.parse({"seconds": 3})


def test_tiles_and_pixels_follow_the_renderer():
    """Grid tiles are capped by channels and block-averaged to the pixel cap; vectors are near-square."""
    assert P.tiles_and_pixels((48, 48, 96), "grid", 64, 4096) == (64, 48 * 48)
    assert P.tiles_and_pixels((96, 96, 16), "grid", 64, 4096) == (16, 48 * 48)  # factor 2
    assert P.tiles_and_pixels((10,), "vector", 64, 4096) == (1, 10)
    assert P.tiles_and_pixels((100,), "vector", 64, 4096) == (1, 100)  # 10 x 10
    assert P.tiles_and_pixels((20, 30), "heat", 64, 100) == (1, 10 * 10)  # factors 2 and 3


def test_image_bytes_estimate_is_pixels_plus_json_plus_filters():
    """The estimate: probes x (tiles x pixels x bpp + tiles x 70) + 300, plus the filter image."""
    s = P.Settings(channels=4, probes=2, tile_pixels=4096)
    c = cand("conv", (8, 8, 4))
    assert P.image_bytes(c, s, 64) == 2 * (4 * 64 + 4 * 70) + 300
    ck = cand("conv", (8, 8, 4), kernel=(3, 3, 1, 4))
    assert P.image_bytes(ck, s, 64) == 2 * (4 * 64 + 4 * 70) + 300 + (4 * 9 + 4 * 70 + 300)
    assert P.image_bytes(cand("conv", (8, 8, 4), kernel=(3, 3, 1, 4), unchanged=True), s, 64) == 1372


def test_filter_estimate_counts_the_filters_each_kernel_kind_holds():
    """A depthwise kernel (kh, kw, in, mult) draws in x mult filters, a transposed one (kh, kw, out, in)
    out of them, a plain convolution its last axis; at most max_filters, each kh x kw pixels plus its JSON."""
    assert P.filter_bytes("depthwise", (3, 3, 32, 1), 64) == 32 * 9 + 32 * 70 + 300
    assert P.filter_bytes("depthwise", (5, 5, 40, 2), 64) == 64 * 25 + 64 * 70 + 300
    assert P.filter_bytes("conv2d_transpose", (3, 3, 8, 16), 64) == 8 * 9 + 8 * 70 + 300
    assert P.filter_bytes("conv2d", (1, 1, 44, 88), 64) == 64 * 1 + 64 * 70 + 300
    assert P.filter_bytes("conv2d", (3, 3, 3, 16), 64, rgb=True) == 16 * 9 * 2 + 16 * 70 + 300
    assert P.filter_bytes("dense", (100, 10), 64) == 100 * 10 + 10 * 70 + 300
    s = P.Settings(channels=4, probes=1, tile_pixels=4096)
    dw = cand("dw", (8, 8, 32), kernel=(3, 3, 32, 1), kind="depthwise")
    assert P.image_bytes(dw, s, 64) == (4 * 64 + 4 * 70) + 300 + (32 * 9 + 32 * 70 + 300)
    # Without a kind, the rank tells it (4: conv2d), as for a bare kernel.
    assert P.image_bytes(cand("c", (8, 8, 32), kernel=(3, 3, 32, 1)), s, 64) == (4 * 64 + 4 * 70) + 300 + (9 + 70 + 300)


def planner(budget, probes=8, channels=64, pixels=4096, pinned=()):
    return P.Planner(budget, channels, pixels, probes, 64, pinned)


def test_without_a_budget_every_layer_gets_images_at_the_users_settings():
    """budget=None: rung 0, cadence 1, every candidate drawn."""
    pl = planner(None)
    plan = pl.plan_images(3, 0, [cand("a", (32, 32, 64)), cand("b", (10,), "vector")], fixed_bytes=0)
    assert plan.settings == P.Settings(64, 8, 4096) and plan.cadence == 1
    assert [k for k, p in plan.layers.items() if p.images] == ["a", "b"]
    assert plan.record()["limited_by"] is None


def test_the_first_rung_that_fits_the_byte_room_is_chosen():
    """A layer too big at rung 0 but fitting at rung 1 (32 channels, 4 probes, 1024 pixels)."""
    c = cand("a", (64, 64, 64))
    rung0 = P.image_bytes(c, P.Settings(64, 8, 4096), 64)
    rung1 = P.image_bytes(c, P.Settings(32, 4, 1024), 64)
    assert (rung0, rung1) == (8 * (64 * 4096 + 64 * 70) + 300, 4 * (32 * 1024 + 32 * 70) + 300)
    pl = planner(P.Budget(time_share=None, bytes_per_epoch=rung1 + 1000))
    plan = pl.plan_images(1, 0, [c], fixed_bytes=1000)
    assert plan.settings == P.Settings(32, 4, 1024) and plan.cadence == 1
    assert plan.layers["a"].images and plan.limited_by == "bytes"
    assert "32 channels, 4 probes, 1024 pixels per tile" in plan.note


def test_layers_take_turns_when_even_the_last_rung_is_too_big():
    """Three equal layers, room for one at the last rung: cadence 3, layer j at logged index j mod 3."""
    cs = [cand(k, (64, 64, 64)) for k in ("a", "b", "c")]
    last = P.image_bytes(cs[0], P.Settings(8, 1, 256), 64)
    pl = planner(P.Budget(time_share=None, bytes_per_epoch=last + 10))
    got = []
    for i in range(4):
        plan = pl.plan_images(i, i, cs, fixed_bytes=10)
        assert plan.cadence == 3 and plan.settings == P.Settings(8, 1, 256)
        got.append([k for k, p in plan.layers.items() if p.images])
        assert plan.estimate_bytes == last
    assert got == [["a"], ["b"], ["c"], ["a"]]
    reason = plan.layers["b"].reason
    assert reason == "images every 3 logged epochs for this layer, to stay within the %s bytes per epoch budget" \
        % P._size(last + 10)


def test_wide_kernels_draw_fewer_filters_at_cheaper_rungs_unless_max_filters_was_given():
    """A rung draws a kernel's filters in at most channels x tile_pixels pixels, and never fewer
    filters than channels: a dense layer of 1024 inputs gets 8 of its 128 units at the cheapest
    rung, 3x3 convolutions keep all 64; max_filters given by the user is always drawn."""
    cheapest, rung2, rung1, rung0 = (P.Settings(8, 1, 256), P.Settings(16, 2, 576), P.Settings(32, 4, 1024),
                                     P.Settings(64, 8, 4096))
    assert [P.filters_drawn("dense", (1024, 128), s, 64) for s in (cheapest, rung2, rung1, rung0)] == [8, 16, 32, 64]
    assert P.filters_drawn("dense", (128, 256), cheapest, 64) == 16  # 2048 pixels of 128-pixel units
    assert P.filters_drawn("conv2d", (3, 3, 64, 64), cheapest, 64) == 64
    assert P.filters_drawn("conv2d", (7, 7, 3, 64), cheapest, 64) == 41  # 2048 // 49
    assert P.filters_drawn("dense", (1024, 128), cheapest, 64, keep=True) == 64
    assert P.filters_drawn("dense", (1024, 5), cheapest, 64) == 5

    dense = cand("dense1", (128,), "vector", kernel=(1024, 128), kind="dense")
    conv = cand("conv", (8, 8, 16), kernel=(3, 3, 3, 16), kind="conv2d")
    room = P.image_bytes(dense, cheapest, 64) + P.image_bytes(conv, cheapest, 64) + 10
    assert P.image_bytes(dense, cheapest, 64) == (11 * 12 + 70) + 300 + (8 * 1024 + 8 * 70 + 300)  # 11 x 12 tile
    plan = planner(P.Budget(time_share=None, bytes_per_epoch=room + 100)).plan_images(2, 0, [dense, conv], 100)
    assert plan.settings == cheapest and plan.cadence == 1
    assert plan.layers["dense1"].filters_drawn == 8 and plan.layers["conv"].filters_drawn is None
    assert plan.record()["filters_drawn"] == {"dense1": 8}
    assert "fewer filters of wide kernels (dense1 8)" in plan.note
    # max_filters given: every rung draws 64 units, so the same room now takes turns.
    kept = planner(P.Budget(time_share=None, bytes_per_epoch=room + 100), pinned=("max_filters",))
    plan = kept.plan_images(2, 0, [dense, conv], 100)
    assert plan.cadence == 2 and plan.layers["dense1"].filters_drawn is None
    assert plan.record()["filters_drawn"] == {}


def test_user_arguments_are_kept_by_every_rung():
    """An explicit max_channels=48 stays 48; max_tile_pixels below a rung's value caps it."""
    pl = planner(P.Budget(), channels=48, pixels=300, pinned=("max_channels",))
    assert {s.channels for s in pl.rungs()} == {48}
    rungs = pl.rungs()
    assert rungs == [P.Settings(48, 8, 300), P.Settings(48, 4, 300), P.Settings(48, 2, 300), P.Settings(48, 1, 256)]


def test_statistics_alone_over_budget_means_no_images_but_says_why():
    """Fixed bytes above the byte budget: no layer gets images, each with the reason."""
    pl = planner(P.Budget(time_share=None, bytes_per_epoch=1000))
    plan = pl.plan_images(1, 0, [cand("a", (4, 4, 2))], fixed_bytes=5000)
    assert not plan.layers["a"].images and plan.cadence == 0
    assert plan.layers["a"].reason.startswith("no images: statistics alone fill")


def test_time_budget_turns_measured_costs_into_room(monkeypatch):
    """Room = (image share x time share x epoch - fixed seconds) / seconds per byte, when smaller than
    the byte room."""
    monkeypatch.setattr(P, "TIME_TARGET", 1.0)  # plans at the bound itself: round numbers
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
    pl.measured.epoch_seconds = 10.0
    pl.measured.fixed_seconds = 0.1
    pl.measured.seconds_per_image_byte = 1e-6
    room, limit = pl.image_room(fixed_bytes=0)
    # Images get IMAGE_SHARE of the planned time, class views or not: 0.4 x 0.5 s.
    assert limit == "time" and room == pytest.approx((0.5 * 0.4 - 0.1) / 1e-6)
    pl.measured.epoch_seconds = 5.0
    room, limit = pl.image_room(fixed_bytes=0)
    assert limit == "time" and room == pytest.approx((0.25 * 0.4 - 0.1) / 1e-6) and room == pytest.approx(0)


def test_time_budget_bounds_images_before_their_cost_was_measured(monkeypatch):
    """No image drawn yet (the step before training had none): the time room uses the prior cost
    per byte, and a fit already over its share (a slow step before training) gets no images at its
    first timed step, whatever the byte room."""
    monkeypatch.setattr(P, "TIME_TARGET", 1.0)
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
    m = pl.measured
    m.epoch_seconds, m.fixed_seconds = 10.0, 0.1
    room, limit = pl.image_room(fixed_bytes=0)
    assert limit == "time" and room == pytest.approx((0.5 * 0.4 - 0.1) / P.SECONDS_PER_IMAGE_BYTE)
    m.trained_seconds, m.spent_seconds = 6.0, 0.45  # 0.05 x 6 s = 0.3 s allowed so far
    plan = pl.plan_images(1, 1, [cand("a", (8, 8, 4))], fixed_bytes=0)
    assert pl.time_allowance() == pytest.approx(-0.15)
    assert plan.cadence == 0 and not plan.layers["a"].images
    assert plan.layers["a"].reason == ("no images: statistics and what LayerView spent earlier fill"
                                       " the 5% time budget")


def test_class_views_wait_for_credit_and_maximisation_for_a_timed_epoch(monkeypatch):
    """Each class view saves up its part of the time budget and runs when it covers its cost."""
    monkeypatch.setattr(P, "TIME_TARGET", 1.0)  # plans at the bound itself: round numbers
    pl = planner(P.Budget(time_share=0.1, bytes_per_epoch=None))
    pl.measured.forward_seconds = 0.08  # 8 probes: 0.01 s per sample
    kinds = ["attribution", "maximization"]
    first = pl.allow_class_views(P.EpochPlan(0, None, 1, {}, {}), 0, True, kinds, classes=10, steps=10)
    assert first["maximization"] == {"run": False, "reason": "waits until an epoch has been timed (time budget)"}
    assert first["attribution"]["run"] is False
    # Each kind gets 0.1 x 10 s x 0.6 / 2 = 0.3 s per epoch. Attribution costs
    # 6 x 0.08 = 0.48 s; maximisation 10 steps x 3 x 10 classes x 0.01 s = 3 s.
    pl.measured.epoch_seconds = 10.0
    attribution, maximization = [], []
    for step in range(1, 17):
        d = pl.allow_class_views(P.EpochPlan(step, None, 1, {}, {}), step, False, kinds, 10, 10)
        if d["attribution"]["run"]:
            attribution.append(step)
        if d["maximization"]["run"]:
            maximization.append(step)
        if step == 1:
            assert d["maximization"]["reason"] == ("deferred to stay within the 10% time budget: it takes about"
                                                   " 3 s, the budget gives it 0.3 s per epoch (next in about 9 epochs)")
    assert attribution == [2, 4, 6, 8, 10, 12, 14, 16]  # saved credit is capped at the cost
    assert maximization == [10]  # 1 + 9
    later = pl.allow_class_views(P.EpochPlan(17, None, 1, {}, {}), 17, False, kinds, 10, 10)
    assert later["maximization"]["reason"].startswith("not due")


def test_plans_aim_below_the_time_bound_and_record_their_target():
    """At the default target, 5% of 10 s epochs allows 0.7 x 0.5 = 0.35 s per step, a balance of
    0.7 x 5% of 20 s trained less 0.6 s spent leaves 0.1 s, and the plan's account says 3.5%."""
    assert P.TIME_TARGET == 0.7
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
    m = pl.measured
    m.epoch_seconds, m.fixed_seconds, m.seconds_per_image_byte = 10.0, 0.1, 1e-6
    assert pl.target_share() == pytest.approx(0.035) and pl.time_allowance() == pytest.approx(0.35)
    m.trained_seconds, m.spent_seconds = 20.0, 0.6
    assert pl.time_allowance() == pytest.approx(0.1)
    plan = pl.plan_images(3, 3, [cand("a", (8, 8, 4))], fixed_bytes=0)
    assert plan.account == {"target_share": 0.035, "trained_seconds": 20.0, "spent_seconds": 0.6,
                            "allowance_seconds": 0.1}
    assert planner(P.Budget(time_share=None)).target_share() is None and planner(None).target_share() is None


def test_cadence_is_raised_until_the_heaviest_group_fits():
    """Sizes 5, 1, 5, 1 in room 6: k=2 puts 10 in one group, k=3 gives groups of 6, 2 and 5."""
    assert P.Planner.cadence_for([5, 1, 5, 1], 6) == 3
    assert P.Planner.cadence_for([1, 1, 1, 1], 2) == 2
    assert P.Planner.cadence_for([10, 10], 1) == 2  # never more than one output per epoch


def test_before_an_epoch_is_timed_a_time_budget_uses_the_cheapest_rung():
    """Step 0 under a time budget: the last rung whatever the byte room, and the note says why."""
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
    plan = pl.plan_images(0, 0, [cand("a", (32, 32, 16))], fixed_bytes=0)
    assert plan.settings == P.Settings(8, 1, 256) and plan.cadence == 1 and plan.layers["a"].images
    assert plan.note.startswith("images at the cheapest settings until an epoch has been timed")
    pl.measured.epoch_seconds = 10.0
    assert pl.plan_images(1, 1, [cand("a", (32, 32, 16))], fixed_bytes=0).settings == P.Settings(64, 8, 4096)


def test_the_images_before_training_are_decided_against_the_whole_fit_once_an_epoch_is_timed(monkeypatch):
    """Step 0's cheapest-rung images of four outputs (2,908 bytes each at 1 us a byte: 2.908 ms) against
    a fit of 10 epochs of 1 s at a 5% bound planned at 100%: the room is 0.5 s less what was spent and
    the later steps' least cost. A room of 11.7 ms keeps all four (11.632 ms); 11.6 ms and 5.9 ms keep
    every 2nd (groups of 5.816 ms); 5.7 ms every 4th (every 3rd puts a and d, 5.816 ms, together);
    nothing left keeps none, and the plan says why."""
    monkeypatch.setattr(P, "TIME_TARGET", 1.0)
    cands = [cand(k, (32, 32, 16)) for k in "abcd"]

    def first_look(spent, future):
        pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
        pl.measured.seconds_per_image_byte = 1e-6
        plan = pl.plan_images(0, 0, cands, fixed_bytes=0)
        assert [plan.layers[k].estimate_bytes for k in "abcd"] == [8 * 256 + 8 * 70 + 300] * 4  # 2,908
        return plan, pl.first_look(plan, fit_seconds=10.0, epochs=10, spent_seconds=spent, future_seconds=future)

    plan, kept = first_look(0.4, 0.0884)  # room 11.6 ms, images 4 x 2.908 = 11.632 ms: just short
    assert kept == ["a", "c"] and plan.cadence == 2 and plan.estimate_bytes == 2 * 2908
    assert plan.layers["b"].reason == plan.layers["d"].reason == (
        "images before training for every 2nd layer only, to stay within the 5% time budget of this fit's"
        " 10 epochs")
    assert not plan.layers["b"].images and plan.layers["a"].images and plan.limited_by == "time"
    assert plan.note.endswith("(decided once the first epoch had been timed, at about 1 s)")
    assert plan.account["first_look"] == {"fit_seconds": 10.0, "room_seconds": 0.0116, "images_seconds": 0.0116,
                                          "cadence": 2}
    plan, kept = first_look(0.4, 0.0883)  # room 11.7 ms: all four, the plan as it was
    assert kept == list("abcd") and plan.cadence == 1 and plan.note.startswith("images at the cheapest settings")
    assert all(plan.layers[k].reason is None for k in "abcd")
    plan, kept = first_look(0.4, 0.0941)  # room 5.9 ms: two outputs (5.816 ms) of each group at most
    assert kept == ["a", "c"]
    plan, kept = first_look(0.4, 0.0943)  # room 5.7 ms: one output per group, every 4th
    assert kept == ["a"] and plan.cadence == 4 and plan.layers["b"].reason.startswith("images before training for every 4th layer")
    plan, kept = first_look(0.45, 0.06)  # spent and the later passes fill the fit's 0.5 s
    assert kept == [] and plan.cadence == 0 and plan.estimate_bytes == 0
    assert plan.layers["a"].reason == ("no images before training: the statistics of every logged epoch fill the"
                                       " 5% time budget of this fit's 10 epochs")


def test_the_time_budget_is_kept_over_the_whole_training_so_earlier_overspending_is_repaid(monkeypatch):
    """Allowance = min(share x epoch, share x all epochs - spent so far): 5% of 10 s epochs is 0.5 s
    per step; after 1.2 s spent over 20 s of training only 1.0 - 1.2 < 0 is left (no images, with the
    reason), after 0.6 s spent 0.4 s (of which images get IMAGE_SHARE); unspent time is not saved
    beyond one step's 0.5 s."""
    monkeypatch.setattr(P, "TIME_TARGET", 1.0)  # plans at the bound itself: round numbers
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=10**9))
    m = pl.measured
    m.epoch_seconds, m.fixed_seconds, m.seconds_per_image_byte = 10.0, 0.1, 1e-6
    m.trained_seconds, m.spent_seconds = 20.0, 1.2
    assert pl.time_allowance() == pytest.approx(-0.2) and pl.in_debt()
    plan = pl.plan_images(2, 2, [cand("a", (8, 8, 4))], fixed_bytes=0)
    assert plan.cadence == 0 and plan.limited_by == "time"
    assert plan.layers["a"].reason == ("no images: statistics and what LayerView spent earlier fill"
                                       " the 5% time budget")
    m.spent_seconds = 0.6
    assert pl.time_allowance() == pytest.approx(0.4) and not pl.in_debt()
    assert pl.image_room(0)[0] == pytest.approx((0.4 * P.IMAGE_SHARE - 0.1) / 1e-6)
    m.spent_seconds = 0.0
    assert pl.time_allowance() == pytest.approx(0.5)


def test_a_pass_over_the_time_budget_is_told_with_the_every_n_epochs_that_brings_it_within():
    """Epochs of 2 s at 5%: the bound is 0.1 s per logged epoch. A pass of 0.14 s is over it by less
    than the 0.05 s margin; one of 0.3 s is 15% of an epoch, and 0.3 / (3.5% x 2 s) = 4.3 epochs
    per logged one bring it within the planned share. Logging every 3rd epoch, the bound is 0.3 s."""
    assert P.PASS_OVER_BUDGET_SECONDS == 0.05
    pl = planner(P.Budget(time_share=0.05, bytes_per_epoch=None))
    assert pl.pass_over_budget(0.3) is None  # no epoch timed yet
    pl.measured.epoch_seconds = 2.0
    assert pl.pass_over_budget(0.14) is None
    over = pl.pass_over_budget(0.3)
    assert over.every_n_epochs == 5 and over.pass_seconds == 0.3 and over.logged_seconds == 2.0
    assert over.share == pytest.approx(0.15)
    third = P.Planner(P.Budget(time_share=0.05), 64, 4096, 8, 64, every_n_epochs=3)
    third.measured.epoch_seconds = 2.0
    assert third.pass_over_budget(0.3) is None
    over = third.pass_over_budget(0.4)  # 0.4 / (0.035 x 2) = 5.7
    assert over.every_n_epochs == 6 and over.logged_seconds == 6.0 and over.share == pytest.approx(0.4 / 6)
    for off in (planner(None), planner(P.Budget(time_share=None))):
        off.measured.epoch_seconds = 2.0
        assert off.pass_over_budget(10.0) is None


def test_class_views_get_no_credit_while_layerview_is_over_its_time_budget():
    """A 3 s maximisation after the budget was spent: deferred, its credit does not grow, and the
    reason says the share of the training so far is spent."""
    pl = planner(P.Budget(time_share=0.1, bytes_per_epoch=None))
    m = pl.measured
    m.forward_seconds, m.epoch_seconds, m.trained_seconds, m.spent_seconds = 0.08, 10.0, 10.0, 1.5
    d = pl.allow_class_views(P.EpochPlan(1, None, 1, {}, {}), 1, True, ["maximization"], 10, 10)
    assert d["maximization"]["run"] is False and pl.credit["maximization"] == 0.0
    assert d["maximization"]["reason"] == ("deferred to stay within the 10% time budget: it takes about 3 s,"
                                           " and LayerView has already spent its share of the training so far")


def test_data_format_of_a_layer_is_its_own_else_its_channel_axis_else_its_source():
    import keras

    from tb_layerview.walk import data_format_of

    inp = keras.Input((3, 8, 8))
    conv = keras.layers.Conv2D(2, 3, data_format="channels_first", name="conv")
    bn = keras.layers.BatchNormalization(axis=1, name="bn")
    act = keras.layers.Activation("relu", name="act")
    add = keras.layers.Add(name="add")
    h = conv(inp)
    add([act(bn(h)), h])
    assert [data_format_of(l) for l in (conv, bn, act, add)] == ["channels_first"] * 4
    assert data_format_of(keras.layers.BatchNormalization()) == "channels_last"
    assert data_format_of(keras.layers.Dense(3)) == "channels_last"
    assert data_format_of(keras.layers.Activation("relu")) == keras.config.image_data_format()
