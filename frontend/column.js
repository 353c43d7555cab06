// A run's column in the panel: its layer's cells (one per probe, or the
// filters), each painted for the current epoch, with the probe's input, its
// prediction and its attribution overlay beside the activations.

import * as api from './api.js';
import {classViews} from './classgrid.js';
import {enlarge} from './enlarge.js';
import {healthView} from './health.js';
import {colormapTable, dequantize, differencePixels, downsampleNote, overlayPixels} from './normalise.js';
import {
  attributionFor, configLayerOf, costLine, diffReference, drawnInputs, nearestShown, planReason, probeDrawn, probeSummary, sameLayout, shownInput,
  undrawnInput, undrawnProbeText,
} from './state.js';
import {
  configCard, el, errorBanner, formatShape, paint, paintPixels, predictionCorrect, predictionText,
  unbrokenNumbers,
} from './views.js';
import {fetchInfo, fetchPredictions, loadImage, pixelsOf, planAt} from './model.js';

/** Tile statistics of the image a cell shows (filters have one image, whatever the probe). */
export function tilesOf(info, cell) {
  return (info.probes || [])[cell.kind === 'filters' ? 0 : cell.probe] || {min: [], max: []};
}

export function buildColumn(panel, run) {
  const s = panel.state;
  const layer = run.layers.find((l) => l.path === s.layer);
  const head = el('header', {class: 'column-head'},
    el('span', {class: 'swatch', style: `background:${panel.colour(run.run)}`}),
    el('span', {class: 'run-name', text: run.run}));
  const cost = el('div', {class: 'run-cost', role: 'note', hidden: true});
  const body = el('div', {class: 'column-body'});
  const col = {run, layer, cost, node: el('div', {class: 'column', 'data-run': run.run}, head, cost, body), cells: []};
  if (s.view === 'health') {
    col.layer = null; // the view draws itself, nothing per probe to paint
    healthView(panel, run, body);
    return col;
  }
  if (s.view === 'classes') {
    col.layer = null; // nothing per layer to paint
    classViews(panel, run, body);
    return col;
  }
  if (!layer) {
    body.append(el('div', {class: 'placeholder', text: `Layer “${s.layer ?? ''}” is not in this run.`}));
    return col;
  }
  body.append(el('div', {class: 'layer-title'},
    el('strong', {text: layer.path}), ` ${layer.class} ${formatShape(layer.output_shape)}`));
  if (s.view === 'config') {
    const holder = el('div', {class: 'config-holder', text: 'Loading…'});
    body.append(holder);
    panel.model.config(run.run).then((cfg) => {
      holder.replaceChildren(configCard(configLayerOf(cfg, layer.path), layer.path));
    }).catch((err) => holder.replaceChildren(errorBanner(err.message)));
    return col;
  }
  const kind = s.view;
  if (kind === 'filters' && !layer.kinds.filters && layer.layer && layer.layer !== layer.path) {
    // A shared layer's further call, or a further output, has its layer's kernel: show that.
    const owner = run.layers.find((l) => l.path === layer.layer);
    if (owner && owner.kinds.filters) {
      body.append(el('div', {class: 'owner-note', role: 'note', text: `The filters of ${owner.path}, whose output this is.`}));
      col.layer = owner;
      return addCells(panel, run, col, body, owner, kind);
    }
  }
  if (!layer.kinds[kind]) {
    const why = el('div', {class: 'placeholder',
      text: kind === 'filters' ? 'This layer has no filters (only convolution and dense kernels are drawn).'
        : 'No activations were logged for this layer (see its configuration for why).'});
    body.append(why);
    // Not drawn yet: the budget's plan says why.
    planAt(run, panel.currentStep()).then((plan) => {
      const reason = plan && planReason(plan, layer.path, kind);
      if (reason) why.textContent = `No ${kind === 'filters' ? 'filters' : 'images'} of this layer yet (${reason}).`;
    });
    return col;
  }
  return addCells(panel, run, col, body, layer, kind);
}

/** The cells of a column: one per probe shown (activations), or one (filters). */
function addCells(panel, run, col, body, layer, kind) {
  const s = panel.state;
  const probes = kind === 'filters' ? [0] : (s.probe < 0 ? [...Array(run.probe_count).keys()] : [Math.min(s.probe, Math.max(run.probe_count - 1, 0))]);
  for (const p of probes) {
    const canvas = el('canvas', {class: 'tiles'});
    const status = el('div', {class: 'cell-status'});
    const notice = el('div', {class: 'thinned', hidden: true, role: 'note'});
    const cell = {probe: p, kind, canvas, status, notice};
    const side = kind === 'activations' ? probeSide(panel, run, p, cell, layer) : null;
    canvas.addEventListener('mousemove', (e) => panel.hover(cell, e));
    canvas.addEventListener('mouseleave', () => {
      panel.tooltip.hidden = true;
    });
    canvas.addEventListener('click', (e) => enlarge(panel, col, cell, e));
    body.append(el('div', {class: 'cell'}, side, el('div', {class: 'cell-main'}, notice, canvas, status)));
    col.cells.push(cell);
  }
  return col;
}

export function probeSide(panel, run, p, cell, layer) {
  const side = el('div', {class: 'probe'});
  cell.prediction = el('pre', {class: 'prediction'});
  if (!run.has_probes) {
    side.append(el('div', {class: 'probe-index', text: `probe ${p}`}), cell.prediction);
    return side;
  }
  panel.model.probeInfo(run.run).then((info) => {
    const input = shownInput(info, layer);
    const plain = undrawnInput(info, layer);
    if (input !== null && plain === null) {
      // With several drawn inputs, the picture says which one it is.
      const several = drawnInputs(info).length > 1;
      const head = el('div', {class: 'probe-index', text: several ? `probe ${p} · ${input}` : `probe ${p}`});
      const first = input === drawnInputs(info)[0];
      const img = el('img', {class: 'probe-img', alt: `probe ${p}${several ? ` (${input})` : ''}`,
        src: api.probeImageUrl(run.run, p, first ? undefined : input)});
      const stack = el('div', {class: 'probe-stack'}, img);
      side.prepend(head, stack);
      // Attribution maps explain one input (the first drawn, unless their
      // info names another): paintAttribution shows them on its picture only.
      cell.overlay = el('canvas', {class: 'attribution', hidden: true});
      cell.overlayInput = {input, first};
      stack.append(cell.overlay);
      if (cell.step !== undefined) paintAttribution(panel, run, cell, cell.step, panel.paintToken);
    } else {
      // No picture, or the layer sees none of them: the values of what it does see.
      const several = (info.inputs || []).length > 1 && plain !== null;
      const head = el('div', {class: 'probe-index', text: several ? `probe ${p} · ${plain}` : `probe ${p}`});
      side.prepend(head, el('div', {class: 'probe-values', text: probeSummary(info.probes[p], plain)}));
    }
  }).catch(() => side.prepend(el('div', {class: 'probe-index', text: `probe ${p}`})));
  side.append(cell.prediction);
  return side;
}

/** The column's line on what LayerView cost up to `step`, from the step's plan record. */
export async function paintCost(panel, token, col, step) {
  const plan = await planAt(col.run, step);
  const line = plan && costLine(plan);
  if (token !== panel.paintToken) return;
  col.cost.hidden = !line;
  col.cost.textContent = line ? line.text : '';
  col.cost.classList.toggle('over', Boolean(line && line.over.length));
}

export async function paintCell(panel, token, col, cell, step, hasStep) {
  const s = panel.state;
  const run = col.run.run;
  const layer = col.layer.path;
  if (!hasStep) {
    cell.status.textContent = `No epoch ${step} in this run.`;
    cell.canvas.classList.add('stale');
    return;
  }
  // The budget may have left this layer's images out at this epoch: show
  // the nearest drawn epoch and say why, never an empty gap.
  let notice = '';
  const drawn = await panel.model.seriesSteps(run, layer, cell.kind, col.run.steps.length);
  if (!drawn.includes(step)) {
    const plan = await planAt(col.run, step);
    const reason = plan && planReason(plan, layer, cell.kind);
    const shownStep = nearestShown(drawn, step);
    notice = `No ${cell.kind === 'filters' ? 'filters' : 'images'} at epoch ${step}${reason ? ` (${reason})` : ''}.` +
      (shownStep !== null ? ` Showing epoch ${shownStep}.` : '');
    if (token !== panel.paintToken) return;
    cell.notice.textContent = notice;
    cell.notice.hidden = false;
    if (shownStep === null) {
      cell.canvas.classList.add('stale');
      return;
    }
    step = shownStep;
  } else {
    cell.notice.hidden = true;
  }
  if (cell.prediction && cell.kind === 'activations') {
    // Every logged epoch has every probe's prediction, drawn or not.
    fetchPredictions(run, step).then((pred) => {
      if (token !== panel.paintToken) return;
      const entry = pred.probes[cell.probe];
      cell.prediction.textContent = unbrokenNumbers(predictionText(entry, null));
      const ok = predictionCorrect(entry);
      cell.prediction.className = 'prediction' + (ok === true ? ' correct' : ok === false ? ' wrong' : '');
    }).catch(() => {});
  }
  const info = await fetchInfo(run, layer, cell.kind, step);
  if (!probeDrawn(info, cell.kind, cell.probe)) {
    // The budget drew fewer probes at this epoch: say so, and ask for no image that is not there.
    const plan = await planAt(col.run, step);
    if (token !== panel.paintToken) return;
    cell.notice.textContent = [notice, undrawnProbeText(step, cell.probe, (info.probes || []).length, plan)]
      .filter(Boolean).join(' ');
    cell.notice.hidden = false;
    cell.canvas.classList.add('stale');
    cell.info = null;
    cell.status.textContent = '';
    return;
  }
  const url = api.imageUrl(run, layer, cell.kind, step, cell.probe);
  const img = await loadImage(url);
  let fixed = null;
  if (s.norm === 'fixed') {
    fixed = await panel.model.fixedRanges(run, layer, cell.kind, col.run.steps.length);
  }
  if (token !== panel.paintToken) return;
  const tiles = tilesOf(info, cell);
  cell.info = info;
  cell.tiles = tiles;
  cell.step = step;
  let compared = '';
  if (s.diff !== 'none' && !info.rgb) {
    compared = await paintDifference(panel, token, col, cell, step, drawn, url, img, info);
    if (compared === null) return;
  } else {
    paint(cell.canvas, pixelsOf(url, img), info, tiles, {norm: s.norm, cmap: s.cmap, zoom: s.zoom, fixed, rgb: info.rgb});
  }
  cell.canvas.classList.toggle('stale', Boolean(notice));
  if (cell.kind === 'activations') paintAttribution(panel, col.run, cell, step, token);
  const shown = info.shown < info.channels ? `${info.shown} of ${info.channels} ${cell.kind === 'filters' ? 'filters' : 'channels'}` : '';
  const notes = [compared, shown, downsampleNote(info), info.slice ? `middle slice ${info.slice.index}` : '', info.note || '']
    .filter(Boolean).join(' · ');
  cell.status.textContent = notes;
}

/**
 * Paints a cell as the signed change from its reference (the previous or
 * first drawn epoch, or the first selected run) on the diverging map.
 * Returns the note for the status line, or null when a newer paint took over.
 */
async function paintDifference(panel, token, col, cell, step, drawn, url, img, info) {
  const s = panel.state;
  const first = panel.selectedRuns()[0];
  const ref = diffReference(s.diff, col.run.run, step, drawn, first ? first.run : null);
  const px = pixelsOf(url, img);
  if (ref.error) {
    paint(cell.canvas, px, info, tilesOf(info, cell), {norm: s.norm, cmap: s.cmap, zoom: s.zoom, fixed: null});
    return ref.reference ? 'the reference of Δ first run' : `no Δ: ${ref.error}`;
  }
  const refUrl = api.imageUrl(ref.run, col.layer.path, cell.kind, ref.step, cell.probe);
  let refImg;
  let refInfo;
  try {
    refInfo = await fetchInfo(ref.run, col.layer.path, cell.kind, ref.step);
    if (!probeDrawn(refInfo, cell.kind, cell.probe)) throw new Error('probe not drawn there');
    refImg = await loadImage(refUrl);
  } catch (err) {
    paint(cell.canvas, px, info, tilesOf(info, cell), {norm: s.norm, cmap: s.cmap, zoom: s.zoom, fixed: null});
    return `no Δ: ${ref.run === col.run.run ? 'epoch ' + ref.step : 'run ' + ref.run} has no image here`;
  }
  if (token !== panel.paintToken) return null;
  if (!sameLayout(info, refInfo)) {
    paint(cell.canvas, px, info, tilesOf(info, cell), {norm: s.norm, cmap: s.cmap, zoom: s.zoom, fixed: null});
    return `no Δ: the shapes differ (${refInfo.shown} tiles of ${refInfo.tile_w}×${refInfo.tile_h} there)`;
  }
  const refPx = pixelsOf(refUrl, refImg);
  const a = dequantize(px.data, px.width, px.height, info, tilesOf(info, cell));
  const b = dequantize(refPx.data, refPx.width, refPx.height, refInfo, tilesOf(refInfo, cell));
  const diff = differencePixels(a, b, px.width, px.height, info, s.norm === 'channel' ? 'channel' : 'layer',
    colormapTable('diverging'));
  paintPixels(cell.canvas, diff.pixels, px.width, px.height, s.zoom, info.layout === 'heat');
  return `Δ from ${ref.run === col.run.run ? 'epoch ' + ref.step : ref.run} (blue lower, red higher; ` +
    `largest change ${Math.max(...diff.maxAbs).toPrecision(3)})`;
}

/** Draws the attribution map of probe `p` at `step` over its input image. */
export async function paintAttribution(panel, run, cell, step, token) {
  const overlay = cell.overlay;
  if (!overlay) return;
  if (!panel.state.attr || !(run.class_views || {}).attribution) {
    overlay.hidden = true;
    return;
  }
  try {
    const info = await fetchInfo(run.run, null, 'attribution', step);
    const i = info.targets.findIndex((t) => t.probe === cell.probe && t.which === 'predicted');
    if (i < 0 || !attributionFor(info, cell.overlayInput.input, cell.overlayInput.first)) {
      overlay.hidden = true;
      return;
    }
    const url = api.imageUrl(run.run, null, 'attribution', step, i);
    const px = pixelsOf(url, await loadImage(url));
    if (token !== panel.paintToken) return;
    const out = new ImageData(overlayPixels(px.data, colormapTable('magma')), px.width, px.height);
    overlay.width = px.width;
    overlay.height = px.height;
    overlay.getContext('2d').putImageData(out, 0, 0);
    overlay.hidden = false;
    overlay.title = `${info.method}${info.layer ? ' on ' + info.layer : ''} for class ${info.targets[i].class}`
      + (info.output ? ` of output ${info.output}` : '');
  } catch (err) {
    overlay.hidden = true; // no attribution at this step
  }
}
