// Unit tests of the panel's normalisation and colour maths (node --test).
import assert from 'node:assert/strict';
import {test} from 'node:test';

import {
  byteMap, colormapTable, colourise, dequantize, differencePixels, displayRange, displayZoom, displayZooms,
  downsampleNote, heatmapPixels, matrixRange, oneTile, overlayPixels,
  tileAt, tileRect, tileStats,
} from '../../frontend/normalise.js';

test('byteMap is the identity for per-channel display of the stored range', () => {
  const m = byteMap(-1, 3, -1, 3);
  assert.equal(m[0], 0);
  assert.equal(m[128], 128);
  assert.equal(m[255], 255);
});

test('byteMap re-normalises to a wider layer range exactly', () => {
  // tile stored over [0, 2]; layer range [0, 4]: value 2 (q=255) -> 0.5 -> 128
  const m = byteMap(0, 2, 0, 4);
  assert.equal(m[0], 0);
  assert.equal(m[255], 128);
  assert.equal(m[51], 26); // 0.4 -> 0.1 -> 25.5 -> 26
});

test('byteMap clamps outside the display range and handles constant tiles', () => {
  const m = byteMap(-4, 4, 0, 2);
  assert.equal(m[0], 0);
  assert.equal(m[255], 255);
  const c = byteMap(5, 5, 5, 5);
  assert.equal(c[0], 0);
  assert.equal(c[255], 0);
});

test('displayRange per channel, per layer, fixed and diverging', () => {
  const tiles = {min: [0, -1], max: [2, 5]}; // as GET /info serves them
  assert.deepEqual(displayRange(tiles, 1, 'channel', null, false), [-1, 5]);
  assert.deepEqual(displayRange(tiles, 0, 'layer', null, false), [-1, 5]);
  const fixed = {min: -3, max: 9, tile_min: [-2, -3], tile_max: [4, 9]};
  assert.deepEqual(displayRange(tiles, 1, 'fixed', fixed, false), [-3, 9]);
  assert.deepEqual(displayRange(tiles, 0, 'fixed', fixed, false), [-2, 4]);
  assert.deepEqual(displayRange(tiles, 1, 'channel', null, true), [-5, 5]);
});

test('tileAt and tileRect agree on a grid with gaps', () => {
  const layout = {rows: 2, cols: 3, tile_h: 2, tile_w: 3, gap: 1, shown: 5};
  assert.equal(tileAt(layout, 0, 0), 0);
  assert.equal(tileAt(layout, 3, 0), -1); // gap column
  assert.equal(tileAt(layout, 4, 1), 1);
  assert.equal(tileAt(layout, 9, 3), -1); // cell 5 exists in the grid but holds no tile
  assert.equal(tileAt(layout, 12, 0), -1); // outside
  assert.equal(tileAt(layout, 5, 4), 4);
  assert.deepEqual(tileRect(layout, 4), [4, 3, 3, 2]);
});

test('colormap tables start and end at their anchor colours', () => {
  const grey = colormapTable('grey');
  assert.deepEqual([...grey.slice(0, 3)], [0, 0, 0]);
  assert.deepEqual([...grey.slice(765, 768)], [255, 255, 255]);
  const viridis = colormapTable('viridis');
  assert.deepEqual([...viridis.slice(0, 3)], [0x44, 0x01, 0x54]);
  assert.deepEqual([...viridis.slice(765, 768)], [0xfd, 0xe7, 0x25]);
});

test('colourise maps data through the LUT and marks NaN/Inf and gaps', () => {
  // 3x1 image: one data pixel (q=255), a NaN, a gap.
  const src = new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 1, 0, 0, 0, 0]);
  const layout = {rows: 1, cols: 1, tile_h: 1, tile_w: 3, gap: 1, shown: 1};
  const out = colourise(src, 3, 1, layout, [byteMap(0, 1, 0, 1)], colormapTable('grey'));
  assert.deepEqual([...out], [255, 255, 255, 255, 255, 0, 255, 255, 0, 0, 0, 0]);
});

test('an all-zero tile under a diverging map sits mid-scale', () => {
  const [lo, hi] = displayRange({min: [0], max: [0]}, 0, 'channel', null, true);
  assert.deepEqual([lo, hi], [-1, 1]);
  assert.equal(byteMap(0, 0, lo, hi)[0], 128);
});

test('displayZoom blows tiny images up and leaves big ones at the user zoom', () => {
  assert.equal(displayZoom(2, 1, 2), 96);
  assert.equal(displayZoom(200, 50, 2), 2);
  assert.equal(displayZoom(40, 10, 1), 2);
});

test('displayZooms keeps a picture square and blows each axis of a heat map up on its own', () => {
  assert.deepEqual(displayZooms(8, 500, 2), [2, 2]);
  assert.deepEqual(displayZooms(8, 500, 2, 96, true), [24, 2]);
  assert.deepEqual(displayZooms(64, 10, 1, 96, true), [1, 9]);
  assert.deepEqual(displayZooms(2, 1, 2, 96, false), [96, 96]);
});

test('downsampleNote names the axis a heat map averaged, and one factor for pictures', () => {
  assert.equal(downsampleNote({scale: 1, scales: [1, 1]}), '');
  assert.equal(downsampleNote({scale: 3}), 'downsampled 3×');
  assert.equal(downsampleNote({scale: 2, scales: [2, 2]}), 'downsampled 2×');
  assert.equal(downsampleNote({scale: 8, scales: [8, 1]}), 'rows averaged 8× (columns kept)');
  assert.equal(downsampleNote({scale: 8, scales: [1, 8]}), 'columns averaged 8× (rows kept)');
  assert.equal(downsampleNote({scale: 12, scales: [8, 12]}), 'downsampled 8× (rows) by 12× (columns)');
});

test('tileStats picks one tile out of the served columns, and oneTile puts it back', () => {
  const stats = {min: [0, -1], max: [2, 5], nan: [0, 3]};
  assert.deepEqual(tileStats(stats, 1), {min: -1, max: 5, nan: 3});
  assert.deepEqual(oneTile(tileStats(stats, 1)), {min: [-1], max: [5], nan: [3]});
});

test('overlayPixels colours each map byte and makes it as opaque as it is strong', () => {
  const table = new Uint8Array(256 * 3);
  table.set([10, 20, 30], 255 * 3);
  const out = overlayPixels(new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255]), table, 0.7);
  assert.deepEqual([...out], [10, 20, 30, 179, 0, 0, 0, 0]);
});

test('heatmapPixels colours one column per epoch and leaves missing epochs transparent', () => {
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) table.set([i, 0, 255 - i], i * 3);
  const px = heatmapPixels([[0, 1], null, [0.5, 0]], 2, 0, 1, table);
  // 3 epochs (x) by 2 channels (y), row-major by channel.
  assert.deepEqual([...px.slice(0, 12)], [0, 0, 255, 255, 0, 0, 0, 0, 128, 0, 127, 255]);
  assert.deepEqual([...px.slice(12, 24)], [255, 0, 0, 255, 0, 0, 0, 0, 0, 0, 255, 255]);
  assert.deepEqual(matrixRange([[3, null], null, [-1, 2]]), [-1, 3]);
  assert.deepEqual(matrixRange([[null]]), [0, 1]);
});

test('dequantize turns stored bytes back into values with each tile range', () => {
  const layout = {rows: 1, cols: 2, tile_h: 1, tile_w: 2, gap: 1, shown: 2};
  // 5 x 1 pixels: tile 0 at x 0-1, gap at x 2, tile 1 at x 3-4 (x 4 is NaN-coded).
  const data = new Uint8ClampedArray([0, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0, 51, 0, 0, 255, 0, 0, 0, 1]);
  const v = dequantize(data, 5, 1, layout, {min: [-1, 10], max: [1, 15]});
  assert.deepEqual([v[0], v[1]], [-1, 1]);
  assert.ok(Number.isNaN(v[2]) && Number.isNaN(v[4]));
  assert.ok(Math.abs(v[3] - 11) < 1e-6);
});

test('differencePixels puts zero mid-scale and scales by the largest change per tile or image', () => {
  const layout = {rows: 1, cols: 2, tile_h: 1, tile_w: 1, gap: 0, shown: 2};
  const table = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) table.set([i, i, i], i * 3);
  const a = new Float32Array([3, 1]);
  const b = new Float32Array([1, 2]);
  const perTile = differencePixels(a, b, 2, 1, layout, 'channel', table);
  assert.deepEqual(perTile.maxAbs, [2, 1]);
  assert.deepEqual([perTile.pixels[0], perTile.pixels[4]], [255, 0]); // +2 of 2, -1 of 1
  const whole = differencePixels(a, b, 2, 1, layout, 'layer', table);
  assert.deepEqual([whole.pixels[0], whole.pixels[4]], [255, 64]); // -1 of 2 -> 63.75
  const same = differencePixels(a, a, 2, 1, layout, 'channel', table);
  assert.deepEqual([same.pixels[0], same.pixels[4]], [128, 128]);
});
