// The enlarged view of one tile, with a filmstrip of it across every epoch.

import * as api from './api.js';
import {tilesOf} from './column.js';
import {displayRange, oneTile, tileStats} from './normalise.js';
import {probeDrawn} from './state.js';
import {cropTile, el, paint, singleLayout, tileUnder} from './views.js';
import {fetchInfo, loadImage, pixelsOf} from './model.js';

/** Shows one channel large, with a filmstrip of it across all epochs. */
export async function enlarge(panel, col, cell, e) {
  if (!cell.info) return;
  const t = tileUnder(cell.canvas, cell.info, e);
  if (t < 0) return;
  const s = panel.state;
  const run = col.run.run;
  const layer = col.layer.path;
  const title = `${run} · ${layer} · ${cell.kind === 'filters' ? 'filter' : 'channel'} ${t}` +
    (cell.kind === 'activations' ? ` · probe ${cell.probe}` : '');
  const strip = el('div', {class: 'filmstrip'});
  const big = el('canvas', {class: 'tiles big'});
  panel.modal.replaceChildren(el('div', {class: 'modal-body', role: 'dialog', 'aria-label': title},
    el('div', {class: 'modal-head'}, el('strong', {text: title}),
      el('button', {text: 'Close', onclick: () => closeModal(panel)})),
    big, el('h4', {text: 'Across epochs'}), strip));
  panel.modal.hidden = false;
  const fixed = s.norm === 'fixed' ? await panel.model.fixedRanges(run, layer, cell.kind, col.run.steps.length) : null;
  // The budget may have drawn this layer at some epochs only, and fewer probes at some.
  const drawn = await panel.model.seriesSteps(run, layer, cell.kind, col.run.steps.length).catch(() => null);
  const draw = async (canvas, step, zoom, side) => {
    const info = await fetchInfo(run, layer, cell.kind, step);
    if (!probeDrawn(info, cell.kind, cell.probe)) throw new Error(`no image of probe ${cell.probe} at epoch ${step}`);
    const url = api.imageUrl(run, layer, cell.kind, step, cell.probe);
    const img = await loadImage(url);
    const tile = cropTile(pixelsOf(url, img), info, t);
    const all = tilesOf(info, cell);
    // One tile alone: its range under the chosen normalisation, as a fixed one.
    const [lo, hi] = displayRange(all, t, s.norm, fixed, false);
    // A heat map's axes are blown up each on its own, to the side the zoom aims at.
    const heat = info.layout === 'heat';
    paint(canvas, tile, {...singleLayout(tile.width, tile.height), layout: heat ? 'heat' : undefined},
      oneTile(tileStats(all, t)),
      {norm: 'fixed', cmap: s.cmap, zoom: heat ? 1 : zoom, fixed: {min: lo, max: hi}, rgb: info.rgb,
        minSide: heat ? side : 1});
    canvas.dataset.painted = 'true';
  };
  const bigZoom = Math.max(2, Math.floor(320 / Math.max(cell.info.tile_w, cell.info.tile_h)));
  await draw(big, cell.step, bigZoom, 320).catch((err) => panel.showError(err));
  for (const x of col.run.steps) {
    const c = el('canvas', {class: 'tiles', title: `epoch ${x.step}`});
    const fig = el('figure', {class: x.step === cell.step ? 'current' : ''}, c, el('figcaption', {text: String(x.step)}));
    fig.addEventListener('click', () => {
      closeModal(panel);
      panel.set({step: x.step, follow: false}, false);
    });
    strip.append(fig);
    if (drawn && !drawn.includes(x.step)) {
      c.title = `epoch ${x.step}: no image of this layer`;
      continue;
    }
    draw(c, x.step, Math.max(1, Math.floor(64 / Math.max(cell.info.tile_w, cell.info.tile_h))), 64)
      .catch((err) => {
        c.title = `epoch ${x.step}: ${err.message}`;
      });
  }
}

export function closeModal(panel) {
  panel.modal.hidden = true;
  panel.modal.replaceChildren();
}
