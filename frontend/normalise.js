// Pure normalisation and colour maths for the panel (no DOM): a stored tile
// holds q in 0..255 quantised from [lo, hi]; the value is lo + q/255*(hi-lo).
// Alpha codes: 255 data, 0 gap, 1 NaN, 2 +Inf, 3 -Inf (docs/format.md).

export const ALPHA_DATA = 255;
export const ALPHA_GAP = 0;
export const ALPHA_NAN = 1;
export const ALPHA_POSINF = 2;
export const ALPHA_NEGINF = 3;

export const NORMS = ['channel', 'layer', 'fixed'];
export const COLORMAPS = ['grey', 'viridis', 'magma', 'diverging'];

// Anchor colours sampled at equal steps from each map; linearly interpolated.
const ANCHORS = {
  grey: ['#000000', '#ffffff'],
  viridis: ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'],
  magma: ['#000004', '#1c1044', '#51127c', '#832681', '#b73779', '#e75263', '#fc8961', '#fec287', '#fcfdbf'],
  diverging: ['#2166ac', '#67a9cf', '#d1e5f0', '#f7f7f7', '#fddbc7', '#ef8a62', '#b2182b'],
};

export const SPECIAL = {
  nan: [255, 0, 255],
  posinf: [255, 255, 0],
  neginf: [0, 255, 255],
};

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** A 256x3 Uint8Array colour table for `name`. */
export function colormapTable(name) {
  const anchors = (ANCHORS[name] || ANCHORS.grey).map(hexToRgb);
  const table = new Uint8Array(256 * 3);
  const segs = anchors.length - 1;
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * segs;
    const k = Math.min(Math.floor(t), segs - 1);
    const f = t - k;
    for (let c = 0; c < 3; c++) {
      table[i * 3 + c] = Math.round(anchors[k][c] * (1 - f) + anchors[k + 1][c] * f);
    }
  }
  return table;
}

/**
 * The display range [lo, hi] of tile `t` under a normalisation mode.
 * stats: the image's statistics as GET /info serves them, one array per
 * statistic ({min: [...], max: [...], ...}, index = tile); fixed: {min, max,
 * tile_min, tile_max} over all epochs of the run (GET /ranges). Diverging
 * maps centre the range on zero.
 */
export function displayRange(stats, t, mode, fixed, diverging) {
  let lo;
  let hi;
  if (mode === 'layer') {
    lo = Math.min(...stats.min.map((v) => v ?? 0));
    hi = Math.max(...stats.max.map((v) => v ?? 0));
  } else if (mode === 'fixed' && fixed) {
    lo = fixed.tile_min?.[t] ?? fixed.min;
    hi = fixed.tile_max?.[t] ?? fixed.max;
  } else {
    lo = stats.min[t] ?? 0;
    hi = stats.max[t] ?? 0;
  }
  if (diverging) {
    // Centre on zero; an all-zero tile gets a unit range so zero sits mid-scale.
    const m = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
    lo = -m;
    hi = m;
  }
  return [lo, hi];
}

/** The statistics of tile `t` as one object ({min, max, mean, ...}). */
export function tileStats(stats, t) {
  const out = {};
  for (const [k, values] of Object.entries(stats || {})) out[k] = values[t];
  return out;
}

/** Statistics of a single tile in the served form (one-item arrays). */
export function oneTile(stat) {
  const out = {};
  for (const [k, v] of Object.entries(stat || {})) out[k] = [v];
  return out;
}

/**
 * An attribution overlay: each stored byte v of a grey map (RGBA `data` as
 * a canvas gives it) becomes the colormap's colour with alpha v * opacity.
 */
export function overlayPixels(data, table, opacity = 0.7) {
  const n = data.length / 4;
  const out = new Uint8ClampedArray(n * 4);
  for (let k = 0; k < n; k++) {
    const v = data[k * 4];
    out[k * 4] = table[v * 3];
    out[k * 4 + 1] = table[v * 3 + 1];
    out[k * 4 + 2] = table[v * 3 + 2];
    out[k * 4 + 3] = Math.round(v * opacity);
  }
  return out;
}

/**
 * 256-entry map from a stored byte q of a tile with stored range [lo, hi]
 * to a colormap index 0..255 for display range [dlo, dhi].
 */
export function byteMap(lo, hi, dlo, dhi) {
  const out = new Uint8Array(256);
  const span = dhi - dlo;
  for (let q = 0; q < 256; q++) {
    const v = lo + (q / 255) * (hi - lo);
    let u = span > 0 ? (v - dlo) / span : (hi > lo ? q / 255 : 0);
    if (!(u >= 0)) u = 0;
    if (u > 1) u = 1;
    out[q] = Math.round(u * 255);
  }
  return out;
}

/**
 * The on-screen magnification of a w x h image at user zoom `zoom`: tiny
 * images (a Dense(2) output is 2 x 1 pixels) are blown up to about `minSide`
 * pixels on their longer side.
 */
export function displayZoom(w, h, zoom, minSide = 96) {
  return zoom * Math.max(1, Math.floor(minSide / Math.max(w, h, 1)));
}

/**
 * The on-screen magnification [x, y] of a w x h image. A picture keeps its
 * aspect (displayZoom on both axes); a heat map (`perAxis`), whose cells are
 * values rather than square pixels, blows each axis up to about `minSide`
 * on its own, so 8 features over 500 time steps show as 8 columns a finger
 * wide rather than a 16-pixel sliver.
 */
export function displayZooms(w, h, zoom, minSide = 96, perAxis = false) {
  if (!perAxis) {
    const z = displayZoom(w, h, zoom, minSide);
    return [z, z];
  }
  return [zoom * Math.max(1, Math.floor(minSide / Math.max(w, 1))), zoom * Math.max(1, Math.floor(minSide / Math.max(h, 1)))];
}

/**
 * The status note of an image's downsampling, from its info's `scale` and
 * (activations) `scales` [rows, columns]; '' when it was not downsampled.
 */
export function downsampleNote(info) {
  const [fy, fx] = Array.isArray(info.scales) && info.scales.length === 2 ? info.scales : [info.scale, info.scale];
  if (!(fy > 1 || fx > 1)) return '';
  if (fy === fx) return `downsampled ${fy}×`;
  if (fx === 1) return `rows averaged ${fy}× (columns kept)`;
  if (fy === 1) return `columns averaged ${fx}× (rows kept)`;
  return `downsampled ${fy}× (rows) by ${fx}× (columns)`;
}

/** Index of the tile under pixel (x, y), or -1 for gaps and outside. */
export function tileAt(layout, x, y) {
  const {rows, cols, tile_h: th, tile_w: tw, gap} = layout;
  if (x < 0 || y < 0) return -1;
  const c = Math.floor(x / (tw + gap));
  const r = Math.floor(y / (th + gap));
  if (c >= cols || r >= rows) return -1;
  if (x - c * (tw + gap) >= tw || y - r * (th + gap) >= th) return -1;
  const t = r * cols + c;
  return t < layout.shown ? t : -1;
}

/** Pixel rectangle [x, y, w, h] of tile t. */
export function tileRect(layout, t) {
  const {cols, tile_h: th, tile_w: tw, gap} = layout;
  const r = Math.floor(t / cols);
  const c = t % cols;
  return [c * (tw + gap), r * (th + gap), tw, th];
}

/**
 * Colours an LA image (RGBA ImageData bytes, L in R, A in alpha) in place
 * into `out` (RGBA bytes). `maps[t]` is the byteMap of tile t.
 */
export function colourise(src, width, height, layout, maps, table, background) {
  const out = new Uint8ClampedArray(width * height * 4);
  const tileIndex = new Int32Array(width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) tileIndex[x] = tileAt(layout, x, y);
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const a = src[i + 3];
      let rgb;
      if (a === ALPHA_DATA && tileIndex[x] >= 0) {
        const k = maps[tileIndex[x]][src[i]] * 3;
        rgb = [table[k], table[k + 1], table[k + 2]];
      } else if (a === ALPHA_NAN) rgb = SPECIAL.nan;
      else if (a === ALPHA_POSINF) rgb = SPECIAL.posinf;
      else if (a === ALPHA_NEGINF) rgb = SPECIAL.neginf;
      else {
        out[i + 3] = 0;
        continue;
      }
      out[i] = rgb[0];
      out[i + 1] = rgb[1];
      out[i + 2] = rgb[2];
      out[i + 3] = 255;
    }
  }
  return out;
}

/** [lo, hi] of the finite numbers of a matrix (rows of values or nulls); [0, 1] when there are none. */
export function matrixRange(rows) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const row of rows) {
    for (const v of row || []) {
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/**
 * RGBA pixels of a heatmap: one column per row of `rows` (an epoch), one
 * pixel row per channel, coloured by `table` over [lo, hi]; null values
 * (no statistics at that epoch) are transparent.
 */
export function heatmapPixels(rows, channels, lo, hi, table) {
  const w = rows.length;
  const out = new Uint8ClampedArray(w * channels * 4);
  const span = hi > lo ? hi - lo : 1;
  for (let x = 0; x < w; x++) {
    const row = rows[x] || [];
    for (let y = 0; y < channels; y++) {
      const v = row[y];
      if (v === null || v === undefined || !Number.isFinite(v)) continue;
      const q = Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)));
      const k = (y * w + x) * 4;
      out[k] = table[q * 3];
      out[k + 1] = table[q * 3 + 1];
      out[k + 2] = table[q * 3 + 2];
      out[k + 3] = 255;
    }
  }
  return out;
}

/**
 * The values an LA image stands for: pixel q of tile t is
 * min_t + q / 255 * (max_t - min_t) (docs/format.md); NaN for padding,
 * gaps and non-finite pixels. `data` is RGBA bytes as a canvas gives them.
 */
export function dequantize(data, width, height, layout, stats) {
  const out = new Float32Array(width * height).fill(NaN);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = tileAt(layout, x, y);
      const i = y * width + x;
      if (t < 0 || data[i * 4 + 3] !== ALPHA_DATA) continue;
      const lo = stats.min[t] ?? 0;
      const hi = stats.max[t] ?? 0;
      out[i] = lo + (data[i * 4] / 255) * (hi - lo);
    }
  }
  return out;
}

/**
 * A signed difference image on the diverging map: `a - b` per pixel, scaled
 * by the largest |difference| of its tile (`norm` 'channel') or of the whole
 * image (otherwise); zero sits mid-scale, NaN on either side stays
 * transparent. Returns {pixels (RGBA), maxAbs (per tile)}.
 */
export function differencePixels(a, b, width, height, layout, norm, table) {
  const n = layout.shown;
  const maxAbs = new Float64Array(n);
  const d = new Float32Array(width * height).fill(NaN);
  const tileOf = new Int32Array(width * height).fill(-1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const t = tileAt(layout, x, y);
      if (t < 0 || Number.isNaN(a[i]) || Number.isNaN(b[i])) continue;
      d[i] = a[i] - b[i];
      tileOf[i] = t;
      maxAbs[t] = Math.max(maxAbs[t], Math.abs(d[i]));
    }
  }
  const whole = Math.max(0, ...maxAbs);
  const out = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const t = tileOf[i];
    if (t < 0) continue;
    const m = (norm === 'channel' ? maxAbs[t] : whole) || 1;
    const q = Math.max(0, Math.min(255, Math.round((d[i] / m + 1) * 127.5)));
    out[i * 4] = table[q * 3];
    out[i * 4 + 1] = table[q * 3 + 1];
    out[i * 4 + 2] = table[q * 3 + 2];
    out[i * 4 + 3] = 255;
  }
  return {pixels: out, maxAbs: [...maxAbs]};
}
