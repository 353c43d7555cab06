// The Health view of a run: the layers whose units went dead, saturated or
// non-finite, since when, and a channel x epoch heatmap of one statistic of
// the selected layer (GET /health).

import {colormapTable, heatmapPixels, matrixRange} from './normalise.js';
import {HEALTH_STATS, UNIT_PROBLEMS, firstProblem, problemCell, unitLines} from './state.js';
import {el, errorBanner} from './views.js';

const STAT_LABELS = {
  active: 'active (fraction > 0)', zero: 'zeros (fraction)', sat: 'saturated (fraction)', mean: 'mean', std: 'std',
  min: 'min', max: 'max', nan: 'NaN count', inf: 'Inf count',
};
const FRACTIONS = ['active', 'zero', 'sat'];

/** Fills a run column's body with the Health view. */
export function healthView(panel, run, body) {
  const version = run.steps.length;
  const tableHolder = el('div', {class: 'health-problems', text: 'Loading…'});
  body.append(el('h4', {text: 'Unit problems'}), tableHolder);
  panel.model.health(run.run, version).then((res) => {
    const rows = res.layers.filter((l) => firstProblem(l) !== null);
    if (!rows.length) {
      tableHolder.replaceChildren(el('div', {class: 'placeholder',
        text: 'No dead, saturated or NaN/Inf units at any logged epoch (measured on the probe).'}));
      return;
    }
    const table = el('table', {class: 'health-table'},
      el('tr', {}, el('th', {text: 'layer'}), UNIT_PROBLEMS.map(([, label]) => el('th', {text: `${label} units`})),
        el('th', {text: 'first epoch'})));
    for (const l of rows) {
      const first = firstProblem(l);
      table.append(el('tr', {class: 'health-row' + (l.path === panel.state.layer ? ' selected' : ''), 'data-path': l.path,
        title: `Go to ${l.path} at epoch ${first}`, onclick: () => panel.set({layer: l.path, step: first, follow: false})},
      el('td', {class: 'layer-name', text: l.path}),
      UNIT_PROBLEMS.map(([key]) => el('td', {text: problemCell(l, key)})),
      el('td', {text: String(first)})));
    }
    tableHolder.replaceChildren(table);
  }).catch((err) => tableHolder.replaceChildren(errorBanner(err.message)));

  const layer = panel.state.layer;
  if (!layer) return;
  if (!run.layers.some((l) => l.path === layer)) {
    // Runs side by side need not share layers: nothing of this one to ask for.
    body.append(el('h4', {text: layer}), el('div', {class: 'placeholder', text: `Layer “${layer}” is not in this run.`}));
    return;
  }
  const select = el('select', {'aria-label': 'Statistic', onchange: () => panel.set({hstat: select.value}, false)},
    HEALTH_STATS.map((k) => el('option', {value: k, selected: k === panel.state.hstat, text: STAT_LABELS[k]})));
  const holder = el('div', {class: 'heatmap-holder', text: 'Loading…'});
  body.append(el('h4', {}, `${layer}: `, select, ' per channel (rows) and epoch (columns)'), holder);
  panel.model.health(run.run, version, layer, panel.state.hstat).then((res) => {
    const [lo, hi] = FRACTIONS.includes(res.stat) ? [0, 1] : matrixRange(res.values);
    const canvas = el('canvas', {class: 'heatmap', width: String(res.steps.length), height: String(res.channels)});
    const img = new ImageData(heatmapPixels(res.values, res.channels, lo, hi, colormapTable('viridis')),
      res.steps.length, res.channels);
    canvas.getContext('2d').putImageData(img, 0, 0);
    const px = Math.max(2, Math.floor(480 / Math.max(res.steps.length, 1)));
    canvas.style.width = `${res.steps.length * px}px`;
    canvas.style.height = `${res.channels * Math.max(2, Math.min(8, Math.floor(320 / res.channels)))}px`;
    const current = res.steps.indexOf(panel.currentStep());
    const marker = el('div', {class: 'heat-marker', style: `left:${current * px}px;width:${px}px`, hidden: current < 0});
    canvas.addEventListener('click', (e) => {
      const r = canvas.getBoundingClientRect();
      const i = Math.floor(((e.clientX - r.left) / r.width) * res.steps.length);
      if (res.steps[i] !== undefined) panel.set({step: res.steps[i], follow: false}, false);
    });
    const lines = unitLines(res.units);
    holder.replaceChildren(el('div', {class: 'heatmap-frame'}, canvas, marker),
      el('div', {class: 'heat-legend', text: `${STAT_LABELS[res.stat]}: ${lo.toPrecision(3)} (dark) to ${hi.toPrecision(3)} (bright)` +
        ` · ${res.channels} channels × ${res.steps.length} epochs`}),
      el('div', {class: 'unit-lines', role: 'note'},
        ...(lines.length ? lines : [`No dead, saturated or NaN/Inf units in ${layer} at epoch ${res.steps[res.steps.length - 1]}.`])
          .map((t) => el('div', {text: t}))));
  }).catch((err) => holder.replaceChildren(errorBanner(err.message)));
}
