// DOM building for the Layer View panel. Data is always inserted with
// textContent or attributes, never as HTML.

import {byteMap, colourise, colormapTable, displayRange, displayZooms, tileAt, tileRect} from './normalise.js';
import {inputsText} from './state.js';

/** Creates an element with attributes/properties and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'style') node.style.cssText = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/**
 * A run or layer name cut after each '/', so that a long nested name
 * ("fit/2026-12-03 10:00/seed 0") wraps between its parts, the part that
 * tells runs apart (usually the last) staying whole and in view.
 */
export function nameParts(name) {
  return String(name).match(/[^/]*\/|[^/]+$/g) || [''];
}

/** A name's text nodes, with a line-break opportunity after each '/'. */
export function breakableName(name) {
  return nameParts(name).flatMap((part, i) => (i ? [el('wbr'), part] : [part]));
}

export function formatShape(shape) {
  if (!shape) return '';
  return '(' + shape.map((d) => (d < 0 ? 'None' : d)).join(', ') + ')';
}

export function formatNumber(x) {
  if (x === null || x === undefined) return '–';
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e4 || a < 1e-3 ? x.toExponential(2) : x.toFixed(a >= 100 ? 1 : 3);
}

/**
 * Text whose numbers never wrap inside: the minus of an exponent
 * ("3.19e-4") becomes a non-breaking hyphen, since browsers may break a
 * line after a hyphen that follows a letter. For narrow captions only; what
 * a user copies elsewhere keeps plain ASCII.
 */
export function unbrokenNumbers(text) {
  return text.replace(/(\de)-(\d)/g, '$1\u2011$2');
}

export function formatTime(seconds) {
  if (!seconds) return '';
  return new Date(seconds * 1000).toLocaleString();
}

/** The "no data yet" state with a code snippet that shows how to log. */
export function emptyState() {
  const code = [
    'from tb_layerview import LayerView',
    '',
    'model.fit(x, y, epochs=10,',
    '          callbacks=[LayerView("logs/run1", probe=(x[:8], y[:8]))])',
    '',
    '# then: tensorboard --logdir logs',
  ].join('\n');
  return el('div', {class: 'empty'},
    el('h2', {text: 'No Layer View data yet'}),
    el('p', {text: 'Add the LayerView callback to model.fit; runs appear here while they train.'}),
    el('pre', {class: 'snippet', text: code}));
}

export function errorBanner(message) {
  return el('div', {class: 'error', role: 'alert', text: message});
}


const tables = new Map();
function tableFor(name) {
  if (!tables.has(name)) tables.set(name, colormapTable(name));
  return tables.get(name);
}

/**
 * Paints a stored image into `canvas` with the chosen normalisation and
 * colormap. `stats` are the image's tile statistics as served (one array per
 * statistic); `fixed` the run's
 * ranges over all epochs (for norm === 'fixed'). Returns the magnification
 * used on screen.
 */
export function paint(canvas, pixels, layout, stats, opts) {
  const {norm, cmap, fixed, rgb} = opts;
  const w = pixels.width;
  const h = pixels.height;
  const zoom = magnify(canvas, w, h, opts.zoom, opts.minSide, layout && layout.layout === 'heat');
  const ctx = canvas.getContext('2d');
  if (rgb) {
    ctx.putImageData(pixels, 0, 0);
    return zoom;
  }
  const diverging = cmap === 'diverging';
  const maps = stats.min.map((lo, t) => {
    const [dlo, dhi] = displayRange(stats, t, norm, fixed, diverging);
    return byteMap(lo ?? 0, stats.max[t] ?? 0, dlo, dhi);
  });
  const out = colourise(pixels.data, w, h, layout, maps, tableFor(cmap));
  ctx.putImageData(new ImageData(out, w, h), 0, 0);
  return zoom;
}

/**
 * Sizes `canvas` for a w x h image at user zoom `zoom` (displayZooms) and
 * records the magnification for tileUnder; returns the horizontal one.
 */
function magnify(canvas, w, h, zoom, minSide, perAxis) {
  const [zx, zy] = displayZooms(w, h, zoom, minSide, perAxis);
  if (canvas.width !== w) canvas.width = w;
  if (canvas.height !== h) canvas.height = h;
  canvas.style.width = `${w * zx}px`;
  canvas.style.height = `${h * zy}px`;
  canvas.dataset.zoom = String(zx);
  canvas.dataset.zoomY = String(zy);
  return zx;
}

/** Puts RGBA `pixels` of a w x h image into `canvas`, magnified as paint() would (`perAxis`: a heat map). */
export function paintPixels(canvas, pixels, w, h, zoom, perAxis = false) {
  const z = magnify(canvas, w, h, zoom, undefined, perAxis);
  canvas.getContext('2d').putImageData(new ImageData(pixels, w, h), 0, 0);
  return z;
}

/** Tile index under a mouse event on a painted canvas, or -1. */
export function tileUnder(canvas, layout, event) {
  const zx = Number(canvas.dataset.zoom) || 1;
  const zy = Number(canvas.dataset.zoomY) || zx;
  const r = canvas.getBoundingClientRect();
  return tileAt(layout, Math.floor((event.clientX - r.left) / zx), Math.floor((event.clientY - r.top) / zy));
}

export function statsLines(label, s) {
  return [
    label,
    `min ${formatNumber(s.min)}  max ${formatNumber(s.max)}`,
    `mean ${formatNumber(s.mean)}  std ${formatNumber(s.std)}`,
    `zeros ${(100 * (s.zero ?? 0)).toFixed(1)}%` + (s.nan || s.inf ? `  NaN ${s.nan}  Inf ${s.inf}` : ''),
  ].join('\n');
}

/** Crops tile `t` of `pixels` into a new ImageData. */
export function cropTile(pixels, layout, t) {
  const [x, y, w, h] = tileRect(layout, t);
  const out = new ImageData(w, h);
  for (let j = 0; j < h; j++) {
    const src = ((y + j) * pixels.width + x) * 4;
    out.data.set(pixels.data.subarray(src, src + w * 4), j * w * 4);
  }
  return out;
}

/** One-tile layout for a cropped tile. */
export function singleLayout(w, h) {
  return {rows: 1, cols: 1, tile_h: h, tile_w: w, gap: 1, shown: 1};
}

/**
 * The configuration card of a layer (from GET /config); `path`, the output
 * shown, when it is one of the layer's further outputs or calls
 * (`lstm:1`, `encoder/conv@2`), which then has its own row and reason.
 */
export function configCard(layer, path = null) {
  if (!layer) return el('div', {class: 'placeholder', text: 'No configuration recorded for this layer.'});
  const own = path !== null && path !== layer.path ? (layer.outputs || []).find((o) => o.path === path) : null;
  const rows = [
    ['Path', layer.path],
    ['Class', layer.class],
    ['Output shape', formatShape(layer.output_shape)],
    ['Output dtype', layer.dtype || '–'],
    ['Parameters', String(layer.params)],
    ['Calls on the probe', String(layer.calls)],
    ['Logged', layer.kinds.length ? layer.kinds.join(', ') : 'nothing'],
  ];
  const inputs = inputsText(layer);
  if (inputs) rows.push(['Depends on inputs', inputs]);
  if (own) rows.push(['This output', `${own.path} ${formatShape(own.shape)} ${own.dtype || ''}`.trim()]);
  const skipped = own ? own.skipped : layer.skipped;
  if (skipped) rows.push(['Skipped', skipped]);
  const table = el('table', {class: 'config'});
  for (const [k, v] of rows) table.append(el('tr', {}, el('th', {text: k}), el('td', {text: v})));
  const cfg = layer.config || {};
  for (const [k, v] of Object.entries(cfg)) {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    table.append(el('tr', {class: 'cfg'}, el('th', {text: k}), el('td', {text: text})));
  }
  return table;
}

/** The names of classes `cs`: the writer's `names` where given, else `classNames`. */
function classList(cs, names, classNames) {
  const shown = cs.slice(0, 5).map((c, i) => (names && names[i]) || (classNames && classNames[c]) || String(c));
  if (cs.length > 5) shown.push(`+${cs.length - 5}`);
  return `{${shown.join(', ')}}`;
}

/** Short text of one probe's prediction record (GET /predictions). */
export function predictionText(entry, classNames) {
  if (!entry) return '';
  const parts = [];
  // A writer that named some output's classes named every output class_names
  // fit (a 2-class head of a 10-class model keeps its ids); records written
  // without names take the run's.
  const fallback = Object.values(entry.outputs || {}).some((r) => r.names) ? null : classNames;
  for (const [name, rec] of Object.entries(entry.outputs || {})) {
    const prefix = Object.keys(entry.outputs).length > 1 ? `${name}: ` : '';
    if (rec.type === 'classes') {
      const asShare = rec.kind === 'probabilities' || (rec.kind === 'multilabel' && rec.threshold === 0.5);
      const top = rec.top.slice(0, 3).map(([c, v], i) => {
        const label = (rec.names && rec.names[i]) || (fallback && fallback[c]) || String(c);
        return `${label} ${asShare ? (100 * v).toFixed(0) + '%' : formatNumber(v)}`;
      });
      const set = rec.kind === 'multilabel'
        ? `${classList(rec.predicted_set, rec.predicted_names, fallback)} · ` : '';
      parts.push(prefix + set + top.join(', '));
    } else if (rec.type === 'binary') {
      parts.push(prefix + `p=${rec.value.toFixed(3)}`);
    } else if (rec.type === 'positions') {
      const top = rec.top.slice(0, 3).map(([c, share], i) =>
        `${(rec.names && rec.names[i]) || (fallback && fallback[c]) || String(c)} ${(100 * share).toFixed(0)}%`);
      const right = typeof rec.accuracy === 'number' ? ` · ${(100 * rec.accuracy).toFixed(0)}% right` : '';
      parts.push(prefix + `per position (${rec.shape.join('×')}): ${top.join(', ')}${right}`);
    } else {
      parts.push(prefix + valuesText(rec.values));
    }
    // Labels given per output (a multi-output model) follow their output;
    // a label map already counts in its output's share of positions right.
    const own = rec.accuracy === undefined ? labelText(rec.label, rec.kind === 'multilabel', null) : '';
    if (own) parts[parts.length - 1] += ` · true: ${own}`;
  }
  if (Object.values(entry.outputs || {}).some((r) => r.label)) return parts.join('\n');
  // A tagger's one-hot label is a set of one tag, as its prediction is a set.
  const tagger = Object.values(entry.outputs || {}).some((r) => r.kind === 'multilabel');
  const text = Object.values(entry.outputs || {}).some((r) => r.accuracy !== undefined)
    ? '' : labelText(entry.label, tagger, fallback);
  if (text) parts.push(`true: ${text}`);
  return parts.join('\n');
}

/** The first values of a record of several (an output's, or a target's). */
function valuesText(values) {
  return values.slice(0, 4).map(formatNumber).join(', ') + (values.length > 4 ? ', …' : '');
}

/** A label record (GET /predictions) in a few words; '' without one. */
function labelText(l, tagger, classNames) {
  if (l && l.classes && (tagger || l.class === undefined)) return classList(l.classes, l.names, classNames);
  if (l && l.class !== undefined) return l.name ?? String(l.class);
  if (l && l.value !== null && l.value !== undefined) return formatNumber(l.value);
  if (l && l.values && l.values.length) return valuesText(l.values);
  return '';
}

/**
 * Whether the model's prediction matches the label (null if unknown), for
 * the model's first output that predicts classes (a regression head before
 * the classifier has none): the same class, or for a multi-label output the
 * same set of classes.
 */
export function predictionCorrect(entry) {
  const recs = Object.values((entry && entry.outputs) || {});
  if (recs.some((r) => r.label)) {
    // Labels per output: right when every output that can be judged is.
    const verdicts = recs.filter((r) => r.label).map((r) => outputCorrect(r, r.label)).filter((v) => v !== null);
    return verdicts.length ? verdicts.every(Boolean) : null;
  }
  const l = entry && entry.label;
  if (!l) return null;
  const rec = recs.find((r) => r.predicted !== undefined || r.predicted_set !== undefined);
  return rec ? outputCorrect(rec, l) : null;
}

/** Whether one output's prediction matches label `l`; null when it cannot be judged. */
function outputCorrect(rec, l) {
  // The writer decides what is predicted (tb_layerview.probe.predicted_class
  // and predicted_set); both lists are in class order.
  if (rec.predicted_set !== undefined) {
    if (!l.classes) return null;
    return l.classes.length === rec.predicted_set.length && l.classes.every((c, i) => c === rec.predicted_set[i]);
  }
  if (rec.predicted === undefined) return null;
  return l.class === undefined ? null : rec.predicted === l.class;
}
