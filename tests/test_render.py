"""Pure numpy rendering, checked with exact numbers on hand-made arrays."""

import numpy as np
import pytest

from tb_layerview import render


def test_grid_shape_is_near_square_and_wider_than_tall():
    """grid_shape picks ceil(sqrt(n)) columns and enough rows."""
    assert render.grid_shape(0) == (0, 0)
    assert render.grid_shape(1) == (1, 1)
    assert render.grid_shape(2) == (1, 2)
    assert render.grid_shape(5) == (2, 3)
    assert render.grid_shape(9) == (3, 3)
    assert render.grid_shape(10) == (3, 4)
    assert render.grid_shape(64) == (8, 8)


def test_quantize_maps_range_to_bytes_and_constant_to_zero():
    """quantize rounds linearly onto 0..255; a constant tile is all zeros."""
    q = render.quantize(np.array([0.0, 0.5, 1.0, 0.25]), 0.0, 1.0)
    assert q.tolist() == [0, 128, 255, 64]
    assert render.quantize(np.array([3.0, 3.0]), 3.0, 3.0).tolist() == [0, 0]
    q = render.quantize(np.array([-2.0, 2.0, np.nan, np.inf]), -2.0, 2.0)
    assert q.tolist() == [0, 255, 0, 0]


def test_tile_stats_counts_nan_inf_and_zeros():
    """tile_stats uses finite values for min/max/mean/std and counts the rest."""
    s = render.tile_stats(np.array([[0.0, 2.0], [np.nan, np.inf]]))
    assert s == {"min": 0.0, "max": 2.0, "mean": 1.0, "std": 1.0, "zero": 0.25, "nan": 1, "inf": 1}
    s = render.tile_stats(np.array([np.nan, np.nan]))
    assert s == {"min": 0.0, "max": 0.0, "mean": 0.0, "std": 0.0, "zero": 0.0, "nan": 2, "inf": 0}


def test_alpha_codes_mark_non_finite_values():
    """alpha_codes: 255 data, 1 NaN, 2 +Inf, 3 -Inf."""
    a = render.alpha_codes(np.array([1.0, np.nan, np.inf, -np.inf]))
    assert a.tolist() == [255, 1, 2, 3]


def test_downsample_block_means_with_partial_edges():
    """downsample averages f x f blocks; edge blocks average what they have."""
    tile = np.arange(9, dtype=np.float64).reshape(3, 3)
    out, f = render.downsample(tile, 4)
    assert f == (2, 2)
    assert out.tolist() == [[2.0, 3.5], [6.5, 8.0]]
    same, f = render.downsample(tile, 9)
    assert f == (1, 1) and same is tile


def test_a_heat_map_keeps_its_short_axis_and_averages_the_long_one():
    """4,000 steps of 8 features at 4,096 pixels: 500 x 8 (blocks of 8 steps), not 1333 x 3 (3 x 3 blocks
    that average features together); a wide map likewise; an axis longer than the square's side is averaged
    too; pictures keep one factor."""
    assert render.downsample_factors(3998, 8, 4096) == (3, 3)
    assert render.downsample_factors(3998, 8, 4096, keep_short=True) == (8, 1)
    assert render.downsample_factors(8, 3998, 4096, keep_short=True) == (1, 8)
    assert render.downsample_factors(512, 768, 4096, keep_short=True) == (8, 12)
    assert render.downsample_factors(10, 64, 4096, keep_short=True) == (1, 1)
    assert render.downsample_factors(10, 64, 256, keep_short=True) == (1, 3)
    t = np.arange(3998, dtype=np.float64)[:, None] + 1000.0 * np.arange(8)
    img, info = render.render_activation(t)
    assert info["layout"] == "heat" and img.shape == (500, 8, 2)
    assert info["scales"] == [8, 1] and info["scale"] == 8
    # Each column is one feature: its first block's mean (3.5 + 1000 f) on the tile's range 0 ... 10997.
    assert img[0, :, 0].tolist() == np.rint((3.5 + 1000 * np.arange(8)) * 255 / 10997).tolist()
    assert render.render_activation(np.ones((40, 40, 3)))[1]["scales"] == [1, 1]
    _, info = render.render_activation(np.ones((128, 128, 2)))
    assert info["scales"] == [2, 2] and (info["tile_h"], info["tile_w"]) == (64, 64)


def test_render_activation_grid_layout_pixels_and_stats():
    """An (H, W, C) output becomes one tile per channel with its own range."""
    x = np.zeros((2, 2, 3), np.float32)
    x[..., 0] = [[0, 1], [2, 3]]
    x[..., 1] = 5.0  # constant channel
    x[..., 2] = [[-1, 1], [np.nan, np.inf]]
    img, info = render.render_activation(x)
    assert info["layout"] == "grid"
    assert (info["rows"], info["cols"], info["tile_h"], info["tile_w"], info["shown"]) == (2, 2, 2, 2, 3)
    assert img.shape == (5, 5, 2)
    assert img[0:2, 0:2, 0].tolist() == [[0, 85], [170, 255]]
    assert img[0:2, 3:5, 0].tolist() == [[0, 0], [0, 0]]
    assert img[3:5, 0:2, 0].tolist() == [[0, 255], [0, 0]]
    assert img[3:5, 0:2, 1].tolist() == [[255, 255], [1, 2]]
    assert img[2, :, 1].tolist() == [0] * 5  # gap row
    assert img[3:5, 3:5, 1].tolist() == [[0, 0], [0, 0]]  # unused cell
    st = info["stats"]
    # Stored to six significant digits.
    assert [st[k][0] for k in render.STAT_KEYS] == [0.0, 3.0, 1.5, 1.11803, 0.25, 0, 0]
    assert (st["min"][1], st["max"][1]) == (5.0, 5.0)
    assert (st["nan"][2], st["inf"][2], st["min"][2], st["max"][2]) == (1, 1, -1.0, 1.0)


def test_render_activation_caps_channels():
    """Only the first max_channels channels are drawn; the total is recorded."""
    img, info = render.render_activation(np.ones((4, 4, 10)), max_channels=4)
    assert (info["channels"], info["shown"], len(info["stats"]["min"])) == (10, 4, 4)
    assert img.shape == (9, 9, 2)


def test_render_activation_downsamples_big_maps_but_keeps_full_range():
    """Big maps are averaged down; stats come from the full-resolution map."""
    x = np.zeros((8, 8, 1))
    x[0, 0, 0] = 100.0
    img, info = render.render_activation(x, max_tile_pixels=16)
    assert info["scale"] == 2 and img.shape == (4, 4, 2)
    assert info["stats"]["max"] == [100.0]
    assert img[0, 0, 0] == 64  # block mean 25 of [0, 100] -> 63.75 -> 64


def test_render_activation_vectors_strips_and_squares():
    """(D,) outputs: a strip up to STRIP_MAX values, else a near-square tile."""
    img, info = render.render_activation(np.array([0.0, 1.0, 2.0]))
    assert info["layout"] == "vector" and img.shape == (1, 3, 2)
    assert img[..., 0].tolist() == [[0, 128, 255]]
    img, info = render.render_activation(np.arange(40, dtype=np.float32))
    assert img.shape == (6, 7, 2)
    assert img[5, 5, 1] == 0 and img[5, 4, 1] == 255  # 40 values, 2 padding cells


def test_render_activation_heat_for_sequences_and_2d_dense_outputs():
    """(T, F) outputs are one heat image T x F."""
    img, info = render.render_activation(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert info["layout"] == "heat" and img.shape == (2, 3, 2)
    assert img[..., 0].tolist() == [[0, 51, 102], [153, 204, 255]]


def test_render_activation_volume_takes_middle_slice():
    """(D, H, W, C) outputs are drawn from the middle depth slice."""
    x = np.zeros((3, 2, 2, 1))
    x[1] = [[[1], [2]], [[3], [4]]]
    img, info = render.render_activation(x)
    assert info["layout"] == "volume" and info["slice"] == {"axis": 0, "index": 1}
    assert img[..., 0].tolist() == [[0, 85], [170, 255]]


def test_render_activation_global_pool_output_is_a_vector():
    """A 1x1xC output (after global pooling) is drawn as a vector of C values."""
    _, info = render.render_activation(np.ones((1, 1, 8)))
    assert info["layout"] == "vector" and info["shape"] == [1, 1, 8]


def test_render_activation_channels_first():
    """channels_first moves the channel axis last before drawing."""
    x = np.zeros((2, 3, 3))
    x[1] = 1.0
    x[1, 0, 0] = 0.0
    _, info = render.render_activation(x, channels_first=True)
    assert (info["shown"], info["tile_h"]) == (2, 3)
    assert info["stats"]["min"] == [0.0, 0.0] and info["stats"]["max"] == [0.0, 1.0]


@pytest.mark.parametrize("dtype", ["float16", "int32", "uint8", "bool", "float64"])
def test_render_activation_accepts_any_numeric_dtype(dtype):
    """float16, integer and boolean outputs are cast and drawn."""
    x = (np.arange(8).reshape(2, 2, 2) % 2).astype(dtype)
    img, info = render.render_activation(x)
    assert img.dtype == np.uint8
    assert info["stats"]["max"][0] == 0.0 and info["stats"]["min"][1] == 1.0


def test_render_activation_bfloat16():
    """bfloat16 (ml_dtypes) outputs are drawn too."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=ml_dtypes.bfloat16)
    _, info = render.render_activation(x)
    assert info["stats"]["max"] == [4.0]


def test_to_float_rejects_strings_with_the_dtype_named():
    """Non-numeric outputs give a TypeError that names the dtype."""
    with pytest.raises(TypeError, match="dtype '<U1'"):
        render.to_float(np.array(["a"]))


def test_kernel_tiles_rgb_first_layer_and_first_input_channel():
    """3-input-channel conv filters are RGB; others use input channel 0 or the mean."""
    k = np.arange(2 * 2 * 3 * 4, dtype=np.float32).reshape(2, 2, 3, 4)
    tiles, total, note = render.kernel_tiles(k, "conv2d", max_filters=2)
    assert total == 4 and len(tiles) == 2 and tiles[0].shape == (2, 2, 3)
    assert "RGB" in note
    k = np.arange(2 * 2 * 2 * 3, dtype=np.float32).reshape(2, 2, 2, 3)
    tiles, _, _ = render.kernel_tiles(k, "conv2d")
    assert tiles[1].tolist() == k[:, :, 0, 1].tolist()
    tiles, _, note = render.kernel_tiles(k, "conv2d", input_channel="mean")
    assert tiles[1].tolist() == k[:, :, :, 1].mean(axis=2).tolist() and "mean" in note


def test_kernel_tiles_transpose_depthwise_conv1d_conv3d():
    """Transposed, depthwise, 1-D and 3-D kernels are cut into per-filter tiles."""
    k = np.random.default_rng(0).normal(size=(3, 3, 5, 2))  # transpose: (kh, kw, out, in)
    tiles, total, _ = render.kernel_tiles(k, "conv2d_transpose")
    assert total == 5 and np.array_equal(tiles[4], k[:, :, 4, 0])
    tiles, total, _ = render.kernel_tiles(np.ones((3, 3, 4, 2)), "depthwise")
    assert total == 8 and tiles[0].shape == (3, 3)
    tiles, total, _ = render.kernel_tiles(np.ones((5, 2, 6)), "conv1d")
    assert total == 6 and tiles[0].shape == (1, 5)
    k3 = np.arange(3 * 2 * 2 * 1 * 2, dtype=np.float32).reshape(3, 2, 2, 1, 2)
    tiles, total, note = render.kernel_tiles(k3, "conv3d")
    assert total == 2 and np.array_equal(tiles[0], k3[1, :, :, 0, 0]) and "middle depth" in note


@pytest.mark.parametrize("kind, shape, image_shape", [
    ("dense", (12, 9), None), ("dense", (12, 9), (2, 2, 3)), ("dense", (12, 3), None),
    ("conv1d", (3, 2, 9), None), ("conv2d", (3, 3, 3, 9), None), ("conv2d", (3, 3, 4, 2), None),
    ("conv3d", (3, 2, 2, 2, 9), None), ("conv1d_transpose", (3, 9, 2), None),
    ("conv2d_transpose", (2, 2, 9, 4), None), ("conv3d_transpose", (3, 2, 2, 9, 2), None),
    ("depthwise", (3, 3, 5, 2), None), ("depthwise1d", (3, 5, 2), None)])
def test_the_drawn_part_of_a_kernel_draws_the_same_filters_as_the_whole(kind, shape, image_shape):
    """kernels.drawn_part keeps what max_filters=4 draws: the sliced kernel with the whole shape
    gives the same PNG and info (filter count, stored shape, note) as the whole kernel."""
    from tb_layerview import kernels, summary

    k = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    part = k[kernels.drawn_part(kind, shape, 4)]
    assert part.size <= k.size
    for max_filters in (4, 3):
        whole_kind, whole = kernels.for_rendering(kind, k)
        ref, ref_info = summary.filter_blobs(whole, whole_kind, max_filters, "first", image_shape)
        _, drawn = kernels.for_rendering(kind, k[kernels.drawn_part(kind, shape, max_filters)])
        got, info = summary.filter_blobs(drawn, whole_kind, max_filters, "first", image_shape,
                                         full_shape=whole.shape)
        assert got == ref and info == ref_info, (kind, max_filters)
    if shape[-1] == 9 or kind.endswith("_transpose"):
        assert part.size < k.size  # more filters than drawn: less is copied


def test_filter_count_of_every_stored_and_rendering_kind():
    from tb_layerview import kernels

    got = {kind: kernels.filter_count(kind, shape) for kind, shape in [
        ("dense", (12, 5)), ("conv1d", (3, 4, 6)), ("conv2d", (3, 3, 4, 7)), ("conv3d", (2, 3, 3, 4, 8)),
        ("conv1d_transpose", (3, 9, 2)), ("conv2d_transpose", (3, 3, 10, 4)),
        ("conv3d_transpose", (2, 3, 3, 11, 4)), ("depthwise", (3, 3, 4, 2)), ("depthwise1d", (3, 5, 3))]}
    assert got == {"dense": 5, "conv1d": 6, "conv2d": 7, "conv3d": 8, "conv1d_transpose": 9,
                   "conv2d_transpose": 10, "conv3d_transpose": 11, "depthwise": 8, "depthwise1d": 15}
    with pytest.raises(ValueError, match="unknown kernel kind 'conv4d'"):
        kernels.filter_count("conv4d", (1, 1, 1, 1, 1, 1))


def test_kernel_tiles_dense_units_as_images_or_matrix():
    """Dense units reshape to the input image; otherwise the kernel is one matrix."""
    k = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    tiles, total, _ = render.kernel_tiles(k, "dense", image_shape=(4, 4))
    assert total == 3 and np.array_equal(tiles[2], k[:, 2].reshape(4, 4))
    tiles, total, _ = render.kernel_tiles(k, "dense")
    assert total == 1 and tiles[0].shape == (16, 3)


def test_render_tiles_rgb_uses_joint_range_per_filter():
    """RGB filter tiles are quantised over their three channels jointly."""
    t = np.zeros((1, 1, 3))
    t[0, 0] = [0.0, 1.0, 2.0]
    img, info = render.render_tiles([t])
    assert info["rgb"] is True and img.shape == (1, 1, 4)
    assert img[0, 0].tolist() == [0, 128, 255, 255]


def test_png_round_trip_keeps_value_and_alpha():
    """encode_png/decode_png preserve LA and RGBA bytes exactly."""
    la = np.array([[[0, 255], [7, 1]], [[200, 2], [9, 0]]], np.uint8)
    assert np.array_equal(render.decode_png(render.encode_png(la)), la)
    rgba = np.arange(16, dtype=np.uint8).reshape(2, 2, 4)
    assert np.array_equal(render.decode_png(render.encode_png(rgba)), rgba)


def test_image_shape_of_recognises_images_and_square_vectors():
    """image_shape_of: (H, W), (H, W, 1|3|4) and perfect-square vectors >= 64."""
    assert render.image_shape_of((28, 28)) == (28, 28)
    assert render.image_shape_of((32, 32, 3)) == (32, 32, 3)
    assert render.image_shape_of((28, 28, 1)) == (28, 28)
    assert render.image_shape_of((784,)) == (28, 28)
    assert render.image_shape_of((100, 7)) == (100, 7)
    assert render.image_shape_of((10,)) is None
    assert render.image_shape_of((32, 32, 16)) is None
    assert render.image_shape_of((2,)) is None


def test_render_activations_batches_probes_with_their_own_stats():
    """A batch renders one image per probe; each probe has its own per-channel stats."""
    x = np.zeros((2, 2, 2, 1), np.float32)
    x[0, 0, 0, 0] = 4.0
    x[1] = -1.0
    images, info = render.render_activations(x)
    assert images.shape == (2, 2, 2, 2)
    assert images[0, ..., 0].tolist() == [[255, 0], [0, 0]]
    assert images[1, ..., 0].tolist() == [[0, 0], [0, 0]]
    assert info["probes"][0]["max"] == [4.0] and info["probes"][1]["min"] == [-1.0]
    assert info["probes"][0]["zero"] == [0.75] and info["probes"][1]["zero"] == [0.0]


def test_batch_stats_over_many_tiles_matches_tile_stats():
    """The vectorised statistics equal the one-tile statistics for every tile."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4, 4))
    x[1, 2, 0, 0] = np.nan
    x[2, 4] = np.inf
    stats = render.batch_stats(x)
    for i in range(3):
        for t in range(5):
            one = render.tile_stats(x[i, t])
            assert {k: stats[k][i, t] for k in render.STAT_KEYS} == pytest.approx(one, rel=1e-5)
    assert stats["min"][2, 4] == 0.0 and stats["inf"][2, 4] == 16


def test_json_ready_turns_nan_numpy_and_objects_into_json():
    """Non-finite floats become null, numpy values numbers, unknown objects their repr."""
    import json

    from tb_layerview import summary

    out = summary.json_ready({"a": float("nan"), "b": np.float32(1.5), "c": np.arange(2), 3: object,
                              "d": (np.inf, [np.int64(2)])})
    assert out == {"a": None, "b": 1.5, "c": [0, 1], "3": repr(object), "d": [None, [2]]}
    assert json.loads(summary.json_bytes({"x": float("inf")})) == {"x": None}


def test_a_dense_kernel_matrix_keeps_its_first_max_filters_units():
    """A 6 x 10 Dense kernel with max_filters=4 is drawn as its first 4 columns, and the note says so."""
    k = np.arange(60, dtype=np.float32).reshape(6, 10)
    tiles, total, note = render.kernel_tiles(k, "dense", max_filters=4)
    assert total == 1 and tiles[0].shape == (6, 4) and tiles[0].tolist() == k[:, :4].tolist()
    assert note == "kernel matrix (rows: inputs, columns: the first 4 of 10 units)"


def test_channels_first_images_are_drawn_channels_last():
    assert render.image_shape_of((3, 10, 12), channels_first=True) == (10, 12, 3)
    assert render.image_shape_of((1, 8, 8), channels_first=True) == (8, 8)
    assert render.image_shape_of((3, 10, 12)) is None  # 3 x 10 pixels of 12 channels: no image
    assert render.image_shape_of((10, 12, 3), channels_first=True) is None
    x = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    last = render.channels_last(x)
    assert last.shape == (2, 2, 2, 3) and last[1, 0, 1].tolist() == [13, 17, 21]
    assert render.channels_last(x, channels_first=False) is x
    assert render.channels_last(np.zeros((2, 5))).shape == (2, 5)
